#!/usr/bin/env python3
"""Checkpoint/restore scenarios (meson suite 'cr'); docs/testing-cr.md.

    harness.py --build-root BUILD --workloads BUILD/tests/cr SCENARIO

Each scenario starts workload programs under `checksync run`, checkpoints
them at seeded random moments, SIGKILLs them, restores them and checks they
continued from the checkpointed state; the refuse-* scenarios check that a
bad restore is refused by name and changes nothing. CR_SEED=<n> replays a
run's random moments, CR_ITERATIONS=<n> overrides the iteration count.
Exit status: 0 pass, 1 fail, 77 skip (not root).
"""

import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # never leave __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crlib import (run_scenario, App, TestFailure, log, images, snapshot_dir,  # noqa: E402
                   diff_snapshots, free_port, pid_alive, agent_status, Skipped)
from cr_sync import sc_sync  # noqa: E402


def pause(rng, lo, hi, what):
    d = rng.uniform(lo, hi)
    log("  wait %.2f s %s" % (d, what))
    time.sleep(d)


def cycle(h, app, rng, before_ckpt=None, after_restore=None, away=0.0, progress_timeout=60):
    """One checkpoint, SIGKILL, restore at random moments; returns progress after."""
    pause(rng, 0.2, 1.5, "before the checkpoint")
    before = app.wait_progress(1, 30)
    if before_ckpt:
        before_ckpt()
        before = app.progress()
    app.checkpoint()
    pause(rng, 0.0, 0.5, "before the kill")
    app.kill()
    if away:
        log("  away %.1f s" % away)
        time.sleep(away)
    app.restore()
    after = app.check_continued(before, progress_timeout)
    if after_restore:
        after_restore()
    return after


def iterate(h, n, body):
    for i in range(h.iterations(n)):
        rng = h.rng(i)
        log("== %s iteration %d/%d (seed %d)" % (h.scenario, i + 1, h.iterations(n), h.seed))
        body(i, rng)


# ---- workloads --------------------------------------------------------------

def sc_threads(h, tracking=None, n=5):
    def body(i, rng):
        app = App(h, "wl-threads", ["--counters", str(rng.randint(2, 6))], tracking=tracking)
        app.run()
        cycle(h, app, rng)
        app.verify()
    iterate(h, n, body)


def sc_hash(h):
    sc_threads(h, tracking="hash", n=2)
    sc_bigheap(h, tracking="hash", n=1, mib=256)


def echo_exchange(port, payload, sock=None):
    """Sends payload and reads it back; returns the (open) socket."""
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(10)
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = s.recv(65536)
        if not chunk:
            raise TestFailure("echo server closed the connection after %d of %d bytes" %
                              (len(got), len(payload)))
        got += chunk
    if got != payload:
        raise TestFailure("echo server returned different bytes")
    return s


def sc_echo(h):
    def body(i, rng):
        port = free_port()
        app = App(h, "wl-echo", ["--port", str(port)])
        app.run()
        sent = {"pre": 0, "post": 0, "accepted": 0}
        old = []

        pre_sizes = [rng.randint(1, 5000), rng.randint(1, 100000), rng.randint(1, 3000)]

        def before_exact():
            a = echo_exchange(port, os.urandom(pre_sizes[0]))
            echo_exchange(port, os.urandom(pre_sizes[1]), a)
            b = echo_exchange(port, os.urandom(pre_sizes[2]))
            b.close()
            old.append(a)
            sent["pre"] = sum(pre_sizes)
            sent["accepted"] = 2

        def after():
            # the connection that was open at the checkpoint is gone for the client...
            a = old[0]
            a.settimeout(10)
            try:
                data = a.recv(10)
                if data:
                    h.fail("old client received %r after the server was killed" % data)
            except ConnectionResetError:
                pass
            a.close()
            # ...and the restored server sees it reset and drops it
            app.proc.wait_line(r"^drop fd=\d+ bytes=%d " % (pre_sizes[0] + pre_sizes[1]), 30,
                               "the restored server dropping the connection open at the checkpoint")
            # new clients work, one after another and at the same time
            for _ in range(3):
                n = rng.randint(1, 20000)
                echo_exchange(port, os.urandom(n)).close()
                sent["post"] += n
            c1 = socket.create_connection(("127.0.0.1", port), timeout=10)
            c2 = socket.create_connection(("127.0.0.1", port), timeout=10)
            for c in (c1, c2, c1):
                n = rng.randint(1, 20000)
                echo_exchange(port, os.urandom(n), c)
                sent["post"] += n
            c1.close()
            c2.close()
            sent["accepted"] += 5

        cycle(h, app, rng, before_exact, after)
        line = app.verify()
        m = re.search(r"accepted=(\d+) bytes=(\d+)", line)
        want_bytes = sent["pre"] + sent["post"]
        if not m or int(m.group(1)) != sent["accepted"] or int(m.group(2)) != want_bytes:
            h.fail("echo server counters after restore: %r; want accepted=%d bytes=%d (bytes "
                   "before the checkpoint plus after the restore)" %
                   (line, sent["accepted"], want_bytes), app.proc)
    iterate(h, 5, body)


def sc_timers(h):
    def body(i, rng):
        app = App(h, "wl-timers", ["--max-gap-ms", "1000"])
        app.run()
        cycle(h, app, rng, away=3.0)
        # let the timers run a while after the restore (25 ticks = 0.5 s)
        app.wait_progress(app.progress() + 25, 30)
        app.verify()
    iterate(h, 5, body)


def sc_bigheap(h, tracking=None, n=2, mib=None):
    def body(i, rng):
        # 1 GiB first (the case), then a smaller heap at another moment:
        # two 1 GiB rounds take minutes on a loaded 2-core machine.
        size = mib or (1024 if i == 0 else 384)
        app = App(h, "wl-bigheap", ["--mib", str(size), "--seed", str(rng.randrange(1, 1 << 30))],
                  tracking=tracking)
        app.run(ready_timeout=120)
        cycle(h, app, rng, progress_timeout=180)
        app.verify(timeout=120)
    iterate(h, n, body)


def page_sections(path):
    """[(type, payload offset, payload length, first 8 payload bytes)] of an
    image's page sections (8 PAGES, 16 PAGES_ALIGNED), walked by their
    16-byte section heads."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off + 16 <= len(data):
        stype, _, plen = struct.unpack_from("<IIQ", data, off)
        if stype in (8, 16):
            out.append((stype, off + 16, plen, data[off + 16:off + 24]))
        if stype == 15:
            break
        off += 16 + plen + 4
    return out


def fs_type(path):
    """The file system type of the mount holding path, from /proc/mounts."""
    best, kind = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            mnt, typ = line.split()[1], line.split()[2]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                best, kind = mnt, typ
    return kind


def sc_direct_io(h):
    """The agent writes page bytes with O_DIRECT (status direct_bytes > 0 on
    a disk file system) into a PAGES_ALIGNED section whose data starts on a
    4096-byte boundary of the file; with CHECKSYNC_DIRECT_IO=0 it writes
    them through the page cache (direct_bytes 0). Either way the chain
    restores and the program verifies its heap."""
    def body(i, rng):
        dio = "1" if i % 2 == 0 else "0"
        log("  CHECKSYNC_DIRECT_IO=%s" % dio)
        app = App(h, "wl-bigheap", ["--mib", "64", "--seed", str(rng.randrange(1, 1 << 30))],
                  interval_ms=100, env={"CHECKSYNC_DIRECT_IO": dio})
        app.run(ready_timeout=120)
        app.wait_progress(app.progress() + 20, 60)
        gen = app.checkpoint()
        path = os.path.join(app.dir, "gen-%020d.img" % gen)
        st = agent_status(app.dir)
        direct, total, kind = int(st["direct_bytes"]), int(st["bytes"]), fs_type(app.dir)
        secs = page_sections(path)
        log("  %s: direct_bytes %d of %d; page sections %s (file system %s)" %
            (os.path.basename(path), direct, total, [(s[0], s[1], s[2]) for s in secs], kind))
        if len(secs) != 1 or secs[0][0] != 16:
            h.fail("%s: page sections %s; want one PAGES_ALIGNED (16)" % (path, secs), app.proc)
        count, data_off = struct.unpack("<II", secs[0][3])
        if (secs[0][1] + data_off) % 4096:
            h.fail("%s: PAGES_ALIGNED data at file offset %d, not a multiple of 4096" %
                   (path, secs[0][1] + data_off), app.proc)
        if dio == "0" and direct:
            h.fail("CHECKSYNC_DIRECT_IO=0, yet direct_bytes is %d" % direct, app.proc)
        if dio == "1" and kind in ("ext4", "xfs", "btrfs") and direct * 2 < total:
            h.fail("on %s, direct_bytes %d of %d bytes: the page bytes were not written "
                   "with O_DIRECT" % (kind, direct, total), app.proc)
        cycle(h, app, rng)
        app.verify()
    iterate(h, 2, body)


def sc_full_disk(h):
    """DIR on a full file system (a 64 MiB ext4 on a loop device, filled by
    another file): a checkpoint that does not fit fails, and says so with
    the image file and "No space left on device"; it leaves no .tmp, takes
    nothing from the complete images, and the program runs on. With room
    again the next checkpoint succeeds, and the chain restores and verifies."""
    base = h.mkdtemp("fs")
    img, mnt = os.path.join(base, "fs.img"), os.path.join(base, "mnt")
    os.mkdir(mnt)
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", img], check=True)
    m = subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True, text=True)
    if m.returncode:
        raise Skipped("cannot mount a file system on a loop device: %s" % m.stderr.strip())
    h.undo.append(lambda: subprocess.run(["umount", mnt], check=True))
    ckpt = os.path.join(mnt, "ckpt")
    app = App(h, "wl-bigheap", ["--mib", "16", "--writes-per-tick", "0", "--burst", "2048"],
              interval_ms=0, ckpt_dir=ckpt)
    app.run(ready_timeout=120)
    app.checkpoint()
    before = {n: os.path.getsize(os.path.join(ckpt, n)) for n in os.listdir(ckpt)
              if n.endswith(".img")}
    st = os.statvfs(mnt)
    filler = os.path.join(mnt, "filler")
    with open(filler, "wb") as f:
        f.write(b"\0" * (st.f_bavail * st.f_frsize - (2 << 20)))
        os.fsync(f.fileno())
    start = app.proc.count()
    app.signal(signal.SIGUSR2)
    app.proc.wait_line(r"^burst 2048 done", 30, "the page burst", start=start)
    rc, out, p = h.tool_cmd("checkpoint", ["checkpoint", "--dir", ckpt], 60)
    err = agent_status(ckpt)["last_error"]
    log("  full: checkpoint status %d, last_error %r" % (rc, err))
    if rc == 0 or "No space left on device" not in err or ".img.tmp" not in err:
        h.fail("a checkpoint into a full file system: status %d, last_error %r; want non-zero "
               "and the image file with \"No space left on device\"" % (rc, err), p, app.proc)
    left = sorted(n for n in os.listdir(ckpt) if n.endswith(".tmp"))
    after = {n: os.path.getsize(os.path.join(ckpt, n)) for n in before}
    if left or after != before:
        h.fail("after the failed checkpoint DIR holds %s (want no .tmp) and images %s (want %s)"
               % (left, after, before), app.proc)
    start = app.proc.count()  # it runs on: a second burst is done
    app.signal(signal.SIGUSR2)
    app.proc.wait_line(r"^burst 2048 done", 30, "a burst after the failed checkpoint",
                       start=start)
    os.unlink(filler)
    app.checkpoint()
    app.kill()
    app.restore()
    app.verify()


def sc_discard(h):
    """Pages given back (MADV_DONTNEED) between and around checkpoints, some
    read or written again at once: RESIDENT must drop them or carry their
    new bytes, in every image of a chain (50 ms deltas). The agent waits
    30 ms before each freeze (CHECKSYNC_TEST_PRESCAN_DELAY_US), after the
    prescan where one runs: pages change between the list of live pages a
    freeze starts from (the prescan's, or the last delta's scan) and the
    freeze too. Most freezes start from the last delta's scan (the status
    reply's prescans counts the walks)."""
    os.environ["CHECKSYNC_TEST_PRESCAN_DELAY_US"] = "30000"

    def body(i, rng):
        app = App(h, "wl-bigheap", ["--mib", "64", "--seed", str(rng.randrange(1, 1 << 30)),
                                    "--discards-per-tick", "16"], tracking=None, interval_ms=50)
        app.run(ready_timeout=60)
        deadline = time.monotonic() + 30
        while True:
            st = agent_status(app.dir)
            done, walks = int(st["checkpoints"]), int(st["prescans"])
            if done >= 8 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        log("  %d checkpoints, %d prescan walks" % (done, walks))
        if done < 8 or walks * 2 > done:
            h.fail("%d prescan walks in %d checkpoints: the freezes did not start from the "
                   "last delta's scan" % (walks, done), app.proc)
        cycle(h, app, rng)
        cycle(h, app, rng)
        app.verify(timeout=60)
    iterate(h, 3, body)


def sc_signals(h):
    def body(i, rng):
        app = App(h, "wl-signals")
        app.run()
        counts = {"USR2": rng.randint(1, 3), "HUP": rng.randint(1, 3)}
        signo = {"USR2": signal.SIGUSR2, "HUP": signal.SIGHUP}

        def send(name, want):
            app.signal(signo[name])
            app.proc.wait_line(r"^sig %s %d$" % (name, want), 10,
                               "SIG%s handled (count %d)" % (name, want), start=app.out_start)

        def before():
            for name, k in counts.items():
                for j in range(1, k + 1):
                    send(name, j)

        def after():
            # the handlers are still installed and the counters came back
            for name, k in counts.items():
                send(name, k + 1)

        cycle(h, app, rng, before, after)
        line = app.verify()
        want = "usr2=%d hup=%d" % (counts["USR2"] + 1, counts["HUP"] + 1)
        if want not in line:
            h.fail("signal counts after restore: %r, want %s" % (line, want), app.proc)
    iterate(h, 5, body)


def sc_chain(h):
    rng = h.rng(0)
    app = App(h, "wl-threads", ["--counters", "3"])
    app.run()
    last = 0
    for k in range(h.iterations(5)):
        log("== chain restore %d (seed %d)" % (k + 1, h.seed))
        after = cycle(h, app, rng)
        if after <= last:
            h.fail("chain restore %d: progress %d did not increase past %d" %
                   (k + 1, after, last), app.proc)
        last = after
    app.verify()


def sc_detach(h):
    rng = h.rng(0)
    app = App(h, "wl-threads")
    app.run()
    pause(rng, 0.2, 1.0, "before the checkpoint")
    before = app.wait_progress(1, 30)
    app.checkpoint()
    app.kill()
    app.restore(detach=True)
    time.sleep(0.5)
    gen = app.checkpoint()  # the detached program goes on checkpointing
    line = app.verify()
    m = re.search(r"progress=(\d+)", line)
    if not m or int(m.group(1)) < before:
        h.fail("detached restore: %r, want progress >= %d" % (line, before), app.proc)
    deadline = time.monotonic() + 10
    while pid_alive(app.host_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    log("  generation %d taken by the detached program" % gen)


def sc_move(h):
    """A chain copied to another directory and restored there goes on there:
    the restored agent writes its images, agent.sock and lock into the
    directory it was restored from, never into the one it was checkpointed
    into (another host's, in a failover)."""
    rng = h.rng(0)
    app = App(h, "wl-threads", interval_ms=200)
    app.run()
    before = app.wait_progress(1, 30)
    app.checkpoint()
    app.kill()
    old_dir, new_dir = app.dir, h.mkdtemp("moved")
    for _, path in images(old_dir):
        shutil.copy2(path, new_dir)
    old_images = {os.path.basename(p) for _, p in images(old_dir)}
    os.unlink(os.path.join(old_dir, "agent.sock"))  # the dead program's
    app.dir = new_dir
    app.restore()
    app.check_continued(before)
    pause(rng, 0.5, 1.0, "while the interval timer checkpoints")
    gen = app.checkpoint()  # through DIR/agent.sock of the new directory
    new_gens = [g for g, _ in images(new_dir) if g > app.generations[0]]
    stray = sorted({os.path.basename(p) for _, p in images(old_dir)} - old_images)
    if stray or os.path.exists(os.path.join(old_dir, "agent.sock")):
        h.fail("restored from %s, the agent still wrote into %s: new images %s, agent.sock %s" %
               (new_dir, old_dir, stray, os.path.exists(os.path.join(old_dir, "agent.sock"))),
               app.proc)
    if gen not in new_gens or len(new_gens) < 2:
        h.fail("restored from %s: want the requested generation %d and the interval's "
               "images there, found %s" % (new_dir, gen, new_gens), app.proc)
    log("  generations %s written into the new directory, none into the old" % new_gens)
    app.verify()


def sc_delta_size(h):
    """A delta after the program wrote K distinct pages holds about K pages."""
    k, mib = 2000, 256
    for tracking in ("uffd", "hash"):
        log("== delta size, tracking %s" % tracking)
        app = App(h, "wl-bigheap", ["--mib", str(mib), "--writes-per-tick", "0",
                                    "--burst", str(k)], tracking=tracking, interval_ms=600000)
        app.run(ready_timeout=120)
        app.checkpoint()
        time.sleep(0.3)
        quiet = app.checkpoint()
        quiet_size = os.path.getsize(os.path.join(app.dir, "gen-%020d.img" % quiet))
        start = app.proc.count()
        app.signal(signal.SIGUSR2)
        app.proc.wait_line(r"^burst %d done" % k, 30, "the page burst", start=start)
        gen = app.checkpoint()
        size = os.path.getsize(os.path.join(app.dir, "gen-%020d.img" % gen))
        lo, hi = k * 4096, k * 4096 + quiet_size + 512 * 4096
        log("  quiet delta %d bytes, delta after %d pages: %d bytes (want %d..%d)" %
            (quiet_size, k, size, lo, hi))
        if not lo <= size <= hi:
            h.fail("tracking %s: delta after writing %d distinct pages is %d bytes; want "
                   "%d..%d (the quiet delta before it was %d bytes, the heap %d MiB)" %
                   (tracking, k, size, lo, hi, quiet_size, mib), app.proc)
        app.kill()


# ---- options of run and restore ---------------------------------------------

def proc_ids(pid):
    """(uids, gids, groups) from /proc/PID/status: real, effective, saved, fs."""
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                ids[key] = [int(x) for x in value.split()]
    return ids["Uid"], ids["Gid"], ids["Groups"]


def expect_run_refusal(h, args, must_contain, what):
    """`checksync run` with bad options: non-zero, a message naming the
    problem, nothing of ours left running."""
    rc, out, p = h.tool_cmd("run", ["run"] + args, 30)
    log("  refusal (%s): status %d: %s" % (what, rc, out.strip().replace("\n", " | ")))
    if rc == 0 or not re.search(must_contain, out):
        h.fail("%s: status %d, output %r; want non-zero and /%s/" %
               (what, rc, out.strip(), must_contain), p)
    if h.tagged_pids():
        h.fail("%s: processes alive after the refused run: %s" % (what, h.tagged_pids()), p)


def sc_user(h):
    """--user: the program and its agent run as that user from exec on; the
    agent, which started after the credentials changed, still checkpoints
    (its images belong to the user) and the checkpoint restores."""
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        h.fail("this test needs the user 'nobody'")
    rng = h.rng(0)
    app = App(h, "wl-threads", ["--counters", "3"], run_args=["--user", "nobody"])
    app.run()
    uids, gids, groups = proc_ids(app.host_pid)
    want_groups = sorted(set(os.getgrouplist("nobody", nobody.pw_gid)))
    if set(uids) != {nobody.pw_uid} or set(gids) != {nobody.pw_gid} or \
            sorted(set(groups)) != want_groups:
        h.fail("program runs with uids %s gids %s groups %s; want all uids %d, gids %d, "
               "groups %s" % (uids, gids, groups, nobody.pw_uid, nobody.pw_gid, want_groups),
               app.proc)
    if os.stat(app.dir).st_uid != nobody.pw_uid:
        h.fail("%s is not owned by nobody: the agent could not write there" % app.dir)
    log("  runs as uid %d gid %d groups %s" % (uids[0], gids[0], groups))

    def images_are_users():
        gen = app.checkpoint()
        st = os.stat(os.path.join(app.dir, "gen-%020d.img" % gen))
        if st.st_uid != nobody.pw_uid:
            h.fail("generation %d was written by uid %d, not by the agent as nobody (%d)" %
                   (gen, st.st_uid, nobody.pw_uid), app.proc)
    cycle(h, app, rng, before_ckpt=images_are_users)
    # Issue 10 restores credentials; until then this is reported, not checked.
    log("  restored program runs as uid %d (the image's was %d)" %
        (proc_ids(app.host_pid)[0][0], nobody.pw_uid))
    app.verify()

    # The credentials change before the working directory is entered: a
    # directory only root may enter is refused for nobody.
    private = h.mkdtemp("private")
    os.chmod(private, 0o700)
    d = h.mkdtemp("dir")
    expect_run_refusal(h, ["--dir", d, "--user", "nobody", "--workdir", private, "--",
                           h.workload("wl-threads")],
                       r"working directory %s: Permission denied" % re.escape(private),
                       "--workdir only root may enter, as nobody")
    expect_run_refusal(h, ["--dir", d, "--user", "no-such-user-cs", "--",
                           h.workload("wl-threads")],
                       r"--user no-such-user-cs: no such user", "unknown user")


def sc_workdir(h):
    """--workdir: the program starts there, and is restored there."""
    rng = h.rng(0)
    work = h.mkdtemp("workdir")
    app = App(h, "wl-threads", run_args=["--workdir", work])
    app.run()

    def check_cwd(when):
        cwd = os.readlink("/proc/%d/cwd" % app.host_pid)
        if cwd != work:
            h.fail("%s: the program's working directory is %s, want %s" % (when, cwd, work),
                   app.proc)
        log("  %s: working directory %s" % (when, cwd))
    check_cwd("after run")
    cycle(h, app, rng, after_restore=lambda: check_cwd("after restore"))
    app.verify()
    expect_run_refusal(h, ["--dir", h.mkdtemp("dir"), "--workdir", work + "/absent", "--",
                           h.workload("wl-threads")],
                       r"--workdir %s/absent: No such file" % re.escape(work), "missing workdir")


def new_generations(app, before):
    """Generations of the images in DIR that are not in before (a set)."""
    return sorted(g for g, _ in images(app.dir) if g not in before)


def restore_at(h, app, args, want_first, what):
    """SIGKILLs app, restores it with args, checkpoints once and checks the
    first image written after the restore is generation want_first."""
    before_progress = app.progress()
    app.kill()
    old = {g for g, _ in images(app.dir)}
    app.restore(args=args)
    app.check_continued(before_progress)
    gen = app.checkpoint()
    new = new_generations(app, old)
    log("  %s: images written after the restore: %s" % (what, new))
    if not new or new[0] != want_first or gen not in new:
        h.fail("%s: images written after the restore are generations %s (the checkpoint "
               "said %d); want the first to be %d" % (what, new, gen, want_first), app.proc)
    return gen


def sc_generations(h):
    """run --first-generation and restore --next-generation: the number the
    agent writes next is the larger of the option and what DIR holds + 1.
    Checkpoints on request only and no compactor, so every image is one the
    harness asked for (or the base a restored agent takes)."""
    rng = h.rng(0)
    first = rng.randint(1000, 100000)
    opts = ["--no-compact", "--first-generation", str(first)]
    app = App(h, "wl-threads", interval_ms=0, run_args=opts)
    app.run()
    app.wait_progress(1, 30)
    got = [app.checkpoint(), app.checkpoint()]
    if got != [first, first + 1] or [g for g, _ in images(app.dir)] != got:
        h.fail("--first-generation %d in an empty DIR: checkpoints %s, DIR holds %s; want "
               "%d and %d only" % (first, got, images(app.dir), first, first + 1), app.proc)
    # Above what DIR holds: the option wins.
    nxt = first + rng.randint(1000, 100000)
    top = restore_at(h, app, ["--next-generation", str(nxt)], nxt, "--next-generation above DIR")
    # Below what DIR holds: DIR wins.
    top = restore_at(h, app, ["--next-generation", "5"], top + 1, "--next-generation below DIR")
    app.verify()

    # A fresh run in the same DIR: DIR wins over a small number, a large one wins over DIR.
    for ask, want in ((3, top + 1), (top + 500, top + 500)):
        fresh = App(h, "wl-threads", interval_ms=0, ckpt_dir=app.dir,
                    run_args=["--no-compact", "--first-generation", str(ask)])
        fresh.run()
        fresh.wait_progress(1, 30)
        old = {g for g, _ in images(app.dir)}
        gen = fresh.checkpoint()
        if gen != want or new_generations(fresh, old) != [want]:
            h.fail("fresh run with --first-generation %d over a DIR up to %d: checkpoint %d, "
                   "new images %s; want %d" % (ask, top, gen, new_generations(fresh, old), want),
                   fresh.proc)
        log("  fresh run, --first-generation %d over DIR up to %d: generation %d" %
            (ask, top, gen))
        top = gen
        fresh.verify()


# ---- refusals ---------------------------------------------------------------

def expect_refusal(h, app, args, must_contain, what, extra_env=None):
    """Runs `checksync restore` expecting a refusal: non-zero status, a message
    containing each of must_contain (regexes), DIR unchanged, nothing started."""
    d = args[args.index("--dir") + 1]
    before = snapshot_dir(d)
    rc, out, p = h.tool_cmd("restore", ["restore"] + args, 60, extra_env)
    log("  refusal (%s): status %d: %s" % (what, rc, out.strip().replace("\n", " | ")))
    if rc == 0:
        h.fail("%s: restore succeeded, want a refusal" % what, p)
    missing = [rx for rx in must_contain if not re.search(rx, out, re.I)]
    if missing:
        h.fail("%s: refusal message %r does not name %s" % (what, out.strip(), missing), p)
    time.sleep(0.3)
    changed = diff_snapshots(before, snapshot_dir(d))
    if changed:
        h.fail("%s: the refused restore changed %s: %s" % (what, d, "; ".join(changed)), p)
    started = h.tagged_pids()  # the checkpointed program is dead: nothing of ours may run
    if started:
        h.fail("%s: processes alive after the refused restore: %s" % (what, started), p)
    return out


def ckpt_and_kill(h, app, rng, extra=1):
    app.run()
    pause(rng, 0.2, 0.8, "before the checkpoint")
    before = app.wait_progress(1, 30)
    for _ in range(1 + extra):
        app.checkpoint()
        time.sleep(0.2)
    app.kill()
    return before


def refuse_damaged(h, damage):
    rng = h.rng(0)
    app = App(h, "wl-threads")
    ckpt_and_kill(h, app, rng)
    imgs = images(app.dir)
    if len(imgs) < 2:
        h.fail("want at least two images in %s, found %s" % (app.dir, imgs), app.proc)
    (prev_gen, _), (gen, path) = imgs[-2], imgs[-1]
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        if damage == "corrupt":
            at = size // 2
            f.seek(at)
            data = f.read(16)
            f.seek(at)
            f.write(bytes(b ^ 0xFF for b in data))
            log("  flipped 16 bytes at offset %d of %s (%d bytes)" % (at, path, size))
        else:
            f.truncate(size // 2)
            log("  truncated %s from %d to %d bytes" % (path, size, size // 2))
    expect_refusal(h, app, ["--dir", app.dir],
                   [re.escape(os.path.basename(path)), r"offset\D{0,3}(0x[0-9a-f]+|\d+)",
                    r"\b0*%d\b" % prev_gen],
                   "%s newest image (generation %d, previous %d)" % (damage, gen, prev_gen))
    app.restore(generation=prev_gen)
    app.check_continued(1)
    app.verify()


def refuse_buildid(h):
    rng = h.rng(0)
    work = h.mkdtemp("bin")
    exe = os.path.join(work, "wl-app")
    shutil.copy2(h.workload("wl-threads"), exe)
    app = App(h, "wl-threads", exe=exe)
    ckpt_and_kill(h, app, rng, extra=0)
    original = exe + ".orig"
    shutil.copy2(exe, original)
    shutil.copyfile(h.workload("wl-threads-v2"), exe)  # in place: same inode, new build-id
    expect_refusal(h, app, ["--dir", app.dir], [re.escape("wl-app"), r"build.?id"],
                   "executable replaced by another build")
    # control: with the original binary back the same images restore
    shutil.copyfile(original, exe)
    app.restore()
    app.check_continued(1)
    app.verify()


def refuse_abi(h):
    rng = h.rng(0)
    app = App(h, "wl-threads")
    ckpt_and_kill(h, app, rng, extra=0)
    editor = os.path.join(h.wl_dir, "cr-imgedit")
    if not os.access(editor, os.X_OK):
        h.fail("cr-imgedit is not built (it needs proto's image encoder and decoder)")
    # The kernel release string alone is not a refusal: the restore depends on
    # the vDSO bytes and the FPU frame layout, which these fields describe.
    for field, rx in (("xsave_features", r"xsave|xcr0|fpu"), ("xsave_size", r"xsave|fpu"),
                      ("vdso_crc", r"vdso")):
        d = h.mkdtemp("abi")
        for _, path in images(app.dir):
            dst = os.path.join(d, os.path.basename(path))
            shutil.copy2(path, dst)
            r = subprocess.run([editor, dst, field], capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                h.fail("cr-imgedit %s %s failed: %s" % (dst, field, r.stderr.strip()))
        expect_refusal(h, app, ["--dir", d], [rx], "image from another kernel (%s edited)" % field)
    app.restore()
    app.check_continued(1)
    app.verify()


def refuse_port(h):
    rng = h.rng(0)
    port = free_port()
    app = App(h, "wl-echo", ["--port", str(port)])
    app.run()
    echo_exchange(port, os.urandom(1000)).close()
    pause(rng, 0.2, 0.8, "before the checkpoint")
    app.checkpoint()
    app.kill()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen(1)
    try:
        expect_refusal(h, app, ["--dir", app.dir], [r"\b%d\b" % port],
                       "port %d in use" % port)
    finally:
        squatter.close()
    app.restore()
    app.check_continued(1)
    echo_exchange(port, os.urandom(2000)).close()
    app.verify()


def refuse_noagent(h):
    empty = h.mkdtemp("empty")
    for d, what in ((empty, "empty directory"),
                    (os.path.join(empty, "missing"), "missing directory")):
        rc, out, p = h.tool_cmd("checkpoint", ["checkpoint", "--dir", d], 20)
        log("  checkpoint in %s: status %d: %s" % (what, rc, out.strip()))
        if rc == 0 or not re.search(r"agent|not running|no such", out, re.I):
            h.fail("checkpoint in an %s: status %d, output %r; want non-zero and a message "
                   "saying no agent runs there" % (what, rc, out), p)
    if os.listdir(empty):
        h.fail("checkpoint with no agent created %s in %s" % (os.listdir(empty), empty))
    # a directory whose agent was SIGKILLed (stale agent.sock): fail, do not hang
    app = App(h, "wl-threads")
    app.run()
    app.checkpoint()
    app.kill()
    before = snapshot_dir(app.dir)
    rc, out, p = h.tool_cmd("checkpoint", ["checkpoint", "--dir", app.dir], 20)
    log("  checkpoint after the agent died: status %d: %s" % (rc, out.strip()))
    if rc == 0 or not re.search(r"agent|not running|refused", out, re.I):
        h.fail("checkpoint with a dead agent: status %d, output %r" % (rc, out), p)
    changed = diff_snapshots(before, snapshot_dir(app.dir))
    if changed:
        h.fail("checkpoint with a dead agent changed %s: %s" % (app.dir, changed), p)


SCENARIOS = {
    "threads": sc_threads,
    "echo": sc_echo,
    "timers": sc_timers,
    "bigheap": sc_bigheap,
    "discard": sc_discard,
    "signals": sc_signals,
    "chain": sc_chain,
    "detach": sc_detach,
    "hash": sc_hash,
    "delta-size": sc_delta_size,
    "move": sc_move,
    "sync": sc_sync,
    "user": sc_user,
    "workdir": sc_workdir,
    "generations": sc_generations,
    "direct-io": sc_direct_io,
    "full-disk": sc_full_disk,
    "refuse-corrupt": lambda h: refuse_damaged(h, "corrupt"),
    "refuse-truncated": lambda h: refuse_damaged(h, "truncated"),
    "refuse-buildid": refuse_buildid,
    "refuse-abi": refuse_abi,
    "refuse-port": refuse_port,
    "refuse-noagent": refuse_noagent,
}


if __name__ == "__main__":
    sys.exit(run_scenario(__doc__, SCENARIOS))
