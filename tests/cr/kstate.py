#!/usr/bin/env python3
"""Kernel state scenarios (meson suite 'cr'; docs/testing-cr.md,
docs/compatibility.md "Kernel state").

    kstate.py --build-root BUILD --workloads BUILD/tests/cr SCENARIO

Each restore scenario runs one workload that builds one kind of kernel
state, checkpoints it, SIGKILLs it, restores it and asks it to check that
state itself (the workload exits 1 naming the first thing that differs).
Each refuse scenario builds state that is not restored and checks that
`checksync checkpoint` refuses it, naming it, at checkpoint time.
"""

import os
import re
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # never leave __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crlib import run_scenario, App, agent_status, log  # noqa: E402


def restored(workload, args=(), iterations=2, env=None):
    """checkpoint, SIGKILL, restore, verify; twice, at seeded random moments."""
    def scenario(h):
        for i in range(h.iterations(iterations)):
            rng = h.rng(i)
            log("== %s iteration %d (seed %d)" % (h.scenario, i + 1, h.seed))
            app = App(h, workload, list(args) + ["--seed", str(rng.randrange(1, 1 << 30))],
                      env=env)
            app.run()
            time.sleep(rng.uniform(0.2, 1.0))
            before = app.wait_progress(1, 30)
            app.checkpoint()
            time.sleep(rng.uniform(0.0, 0.3))
            app.kill()
            app.restore()
            app.check_continued(before)
            app.verify()
    return scenario


def madvise_late(h):
    """Advice given to whole mappings after checkpoints were taken (the
    layout stays as it was): the writers, which reuse the VmFlags an earlier
    one read from smaps, must see it, and the restore must have it."""
    for i in range(h.iterations(2)):
        rng = h.rng(i)
        app = App(h, "wl-madvise", ["--seed", str(rng.randrange(1, 1 << 30)), "--late", "300"],
                  interval_ms=20)
        app.run()
        time.sleep(0.5)
        before = app.wait_progress(1, 30)
        st = agent_status(app.dir)
        log("  %s" % " ".join("%s=%s" % (k, st.get(k)) for k in ("smaps_reads", "smaps_reused")))
        if int(st.get("smaps_reused", 0)) == 0:
            h.fail("no writer reused the advice read from smaps: the test tests nothing",
                   None, app.proc)
        app.checkpoint()
        app.kill()
        app.restore()
        app.check_continued(before)
        app.verify()


def refused(workload, args, must_contain):
    """`checksync checkpoint` fails naming what it cannot restore."""
    def scenario(h):
        app = App(h, workload, list(args), interval_ms=0)
        app.run()
        app.wait_progress(1, 30)
        rc, out, p = h.tool_cmd("checkpoint", ["checkpoint", "--dir", app.dir], 60)
        log("  checkpoint: status %d: %s" % (rc, out.strip()))
        if rc == 0:
            h.fail("%s: checkpoint succeeded, want a refusal naming %s" %
                   (workload, must_contain), p, app.proc)
        for rx in must_contain:
            if not re.search(rx, out):
                h.fail("%s: refusal %r does not match %r" % (workload, out.strip(), rx), p)
        app.verify()  # the refused checkpoint left the program running and intact
        restore_names_refusal(h, app.dir, must_contain)
    return scenario


def restore_names_refusal(h, chain, must_contain):
    """A refused checkpoint still writes its image (the chain goes on); a
    restore of it must name the same refusal, not fail to read the image."""
    if not any(n.startswith("gen-") and n.endswith(".img") for n in os.listdir(chain)):
        return
    rc, out, p = h.tool_cmd("restore", ["restore", "--dir", chain], 60)
    log("  restore of the refused image: status %d: %s" % (rc, out.strip()))
    if rc == 0:
        h.fail("a restore of a refused checkpoint succeeded", p)
    for rx in must_contain:
        if not re.search(rx, out):
            h.fail("restore refusal %r does not match %r" % (out.strip(), rx), p)


def refused_newest_restores_older(h):
    """A refused checkpoint is written all the same (the chain goes on); a
    restore without --generation takes the newest generation that can be
    restored, and says on stderr which one, why, and what was refused."""
    app = App(h, "wl-attrs", ["--pty-at", "100"], interval_ms=0)
    app.run()
    before = app.wait_progress(1, 30)
    app.checkpoint()
    refused_at = app.wait_progress(101, 30)
    rc, out, p = h.tool_cmd("checkpoint", ["checkpoint", "--dir", app.dir], 60)
    log("  second checkpoint: status %d: %s" % (rc, out.strip()))
    if rc == 0 or "pseudo-terminal" not in out:
        h.fail("a checkpoint with a pty open: status %d, %r (want a refusal)" % (rc, out), p)
    app.kill()
    proc = app.restore()
    proc.wait_line(r"restoring generation 1, the newest that can be restored", 30,
                   "the restore naming the generation it fell back to", stream="err")
    proc.wait_line(r"generation 2: fd \d+ cannot be restored: a pseudo-terminal", 30,
                   "the restore naming what generation 2 refused", stream="err")
    app.check_continued(before)
    if app.progress() >= refused_at:
        h.fail("restored progress %d is not below %d, the refused checkpoint's" %
               (app.progress(), refused_at), proc)
    app.verify()


def forged_seccomp(h):
    """An image whose filters were removed (the section made one a reader
    skips) is refused; the images as written restore with the filters."""
    app = App(h, "wl-seccomp", [])
    app.run()
    before = app.wait_progress(1, 30)
    app.checkpoint()
    app.kill()
    editor = os.path.join(h.wl_dir, "cr-imgedit")
    forged = h.mkdtemp("forged")
    for name in sorted(os.listdir(app.dir)):
        if name.startswith("gen-") and name.endswith(".img"):
            shutil.copy2(os.path.join(app.dir, name), os.path.join(forged, name))
            r = subprocess.run([editor, os.path.join(forged, name), "drop_seccomp"],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                h.fail("cr-imgedit drop_seccomp %s: %s" % (name, r.stderr.strip()))
    rc, out, p = h.tool_cmd("restore", ["restore", "--dir", forged], 60)
    log("  restore of the forged images: status %d: %s" % (rc, out.strip()))
    if rc == 0 or not re.search(r"seccomp filters but holds none", out):
        h.fail("forged image without its seccomp filters: restore status %d, %r" % (rc, out), p)
    app.restore()
    app.check_continued(before)
    app.verify()


SCENARIOS = {
    "kstate-pipes": restored("wl-pipes"),
    "kstate-timers": restored("wl-itimers"),
    "kstate-thread-timer": restored("wl-itimers", ["--thread-timer", "1"]),
    "kstate-sockets": restored("wl-sockets"),
    "kstate-refuse-ebpf-filter": refused("wl-sockets", ["--ebpf", "1"],
                                         [r"fd \d+: .*an eBPF socket filter is attached"]),
    "kstate-tmpfile": restored("wl-tmpfile"),
    "kstate-attrs": restored("wl-attrs"),
    "kstate-locks": restored("wl-locks"),
    "kstate-signalfd": restored("wl-signalfd"),
    "kstate-socketpair": restored("wl-socketpair"),
    "kstate-inotify": restored("wl-inotify"),
    "kstate-sigqueue": restored("wl-sigqueue"),
    "kstate-madvise": restored("wl-madvise"),
    "kstate-madvise-late": madvise_late,
    "kstate-seccomp": restored("wl-seccomp"),
    "kstate-refuse-forged-seccomp": forged_seccomp,
    "kstate-multicast": restored("wl-mcast"),
    "kstate-refuse-multicast-v6": refused("wl-mcast", ["--v6", "1"],
                                          [r"fd \d+: socket:\[\d+\] \(an IPv6 multicast "
                                           r"group joined"]),
    "kstate-rseq": restored("wl-rseq", env={"GLIBC_TUNABLES": "glibc.pthread.rseq=0"}),
    "kstate-shmem": restored("wl-shmem"),
    "kstate-shmem-fd": restored("wl-shmem", ["--fd", "1"]),
    "kstate-refuse-big-shmem": refused("wl-shmem", ["--big-mib", "65"],
                                       [r"mapping [0-9a-f]+-[0-9a-f]+ shared /dev/zero \(deleted\) "
                                        r"\(shared memory above the 64 MiB"]),
    "kstate-refuse-sealed-shmem": refused("wl-shmem", ["--sealed-map", "1"],
                                          [r"fd \d+: /memfd:cr-sealed \(deleted\) \(memfd sealed "
                                           r"against writing"]),
    "kstate-refuse-sealed-mapped-memfd": refused(
        "wl-shmem", ["--sealed-mapped-only", "1"],
        [r"mapping [0-9a-f]+-[0-9a-f]+ shared /memfd:cr-sealed-map \(deleted\) \(a sealed memfd "
         r"that no fd holds"]),
    "kstate-refuse-mlock": refused("wl-madvise", ["--mlock", "1"],
                                   [r"memory locked with mlock \(VmLck \d+ kB\): not restored"]),
    "kstate-refuse-mseal": refused("wl-madvise", ["--mseal", "1"],
                                   [r"mapping [0-9a-f]+-[0-9a-f]+ is sealed \(mseal\)"]),
    "kstate-sigqueue-timer": restored("wl-sigqueue", ["--timer", "1"]),
    "kstate-refuse-inotify-queued": refused("wl-inotify", ["--queued", "1"],
                                            [r"fd \d+: anon_inode:inotify \(inotify events are "
                                             r"queued"]),
    "kstate-refuse-inotify-gap": refused("wl-inotify", ["--gap", "1"],
                                         [r"fd \d+: anon_inode:inotify \(watch numbers with gaps"]),
    "kstate-refuse-scm-rights": refused("wl-socketpair", ["--scm", "1"],
                                        [r"fd \d+: socket:\[\d+\] \(queued messages carry "
                                         r"SCM_RIGHTS"]),
    "kstate-refuse-mapped-posix-lock": refused("wl-locks", ["--mapped", "1"],
                                               [r"fd \d+: \S+/mapped \(a POSIX lock on a file "
                                                r"the process also maps"]),
    "kstate-refuse-big-tmpfile": refused("wl-tmpfile", ["--big-mib", "9"],
                                         [r"fd \d+: .*unlinked file of 9437184 bytes, above"]),
    "kstate-refuse-tmpfile-twice": refused("wl-tmpfile", ["--twice", "1"],
                                           [r"fd \d+: .*unlinked file open twice"]),
    "kstate-refuse-cpu-clock-timer": refused("wl-itimers", ["--cpu-clock-timer", "1"],
                                             [r"POSIX timer \d+: runs on clock -\d+, which "
                                              r"cannot be recreated"]),
    "kstate-refuse-epoll-lost": refused("wl-pipes", ["--epoll-lost", "1"],
                                        [r"fd \d+: anon_inode:\[eventpoll\] \(registered fd \d+: "
                                         r"the file it watches is not open"]),
    "kstate-refuse-thread-nice": refused("wl-attrs", ["--thread-nice", "1"],
                                         [r"scheduling: thread \d+ has another nice value"]),
    "kstate-refuse-removed-cwd": refused("wl-attrs", ["--rmcwd", "1"],
                                         [r"working directory: \S+ \(deleted\) was removed"]),
    "kstate-refused-newest-restores-older": refused_newest_restores_older,
    "kstate-refuse-pty": refused("wl-attrs", ["--pty", "1"],
                                 [r"fd \d+: /dev/ptmx \(a pseudo-terminal", r"fd \d+: /dev/pts/\d+ \(a pseudo-terminal"]),
}


if __name__ == "__main__":
    sys.exit(run_scenario(__doc__, SCENARIOS))
