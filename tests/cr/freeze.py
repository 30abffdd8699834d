#!/usr/bin/env python3
"""Freeze scenarios (meson suite 'cr'; docs/testing-cr.md).

    freeze.py --build-root BUILD --workloads BUILD/tests/cr SCENARIO

blocked         threads that block every signal and sleep for hours in read,
                nanosleep and sigwaitinfo, checkpointed every 50 ms (the
                supervisor holds them), killed, restored: each still sleeps
                where it slept, none woke early, every mask is as set
blocked-nosup   the same program with the agent but no supervisor (started
                without checksync run): a checkpoint is refused at once,
                naming a thread and its mask; periodic attempts back off;
                the program never noticed
sevthread       a POSIX timer with SIGEV_THREAD (glibc's helper thread
                blocks every signal) ticking through checkpoints and restores
creds           a program that drops to uid/gid 65534 with no_new_privs after
                the agent started: still checkpointed (DIR is handed to it,
                its images are its own), restored with exactly those
                credentials on every thread
creds-caps      the same program keeping CAP_NET_BIND_SERVICE (effective,
                permitted, inheritable, ambient) across its uid change: the
                supervisor's record of what it held lets the restore give the
                capability back, on every thread
creds-start     wl-threads started as uid 65534 (chroot --userspec): its agent
                gets DIR from the supervisor in its constructor
sleeps          threads in poll, epoll_wait and select (300 ms, on an empty
                pipe), nanosleep with a separate rem, usleep and an inline
                ppoll syscall (registers checked after it), under
                checkpoints every 15 ms, then killed and restored twice: no
                call returned EINTR or before its 300 ms were over (the agent
                continued each one to its deadline), none much later
setpriv         wl-threads started by util-linux setpriv --reuid=65534
                --regid=65534 --clear-groups (PR_SET_KEEPCAPS, setresuid,
                capset, setresgid: glibc aborts unless the agent's thread
                followed the capability changes); then as creds-start
creds-refuse    an image owned by uid 65534 that claims root's credentials
                (as one the program forged would) is refused, naming the
                file; owned by root again, it restores
"""

import os
import re
import shutil
import sys
import time

sys.dont_write_bytecode = True  # never leave __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crlib import App, agent_status, images, log, run_scenarios  # noqa: E402
from harness import cycle, iterate, proc_ids  # noqa: E402

THREADS_RX = r"^threads reader=(\d+) sleeper=(\d+) waiter=(\d+) mask=([0-9a-f]+)"


def check_checkpointing(h, app, what):
    """The agent keeps taking periodic checkpoints, none failing."""
    before = int(agent_status(app.dir)["checkpoints"])
    time.sleep(1)
    st = agent_status(app.dir)
    if int(st["checkpoints"]) <= before or st["failed_in_row"] != "0":
        h.fail("%s: %s: checkpoints %s -> %s, failed_in_row %s, last_error %r" %
               (app.describe(), what, before, st["checkpoints"], st["failed_in_row"],
                st["last_error"]), app.proc)
    log("  %s: %s checkpoints, the last pause %s us" % (what, st["checkpoints"],
                                                         st["last_pause_us"]))


def checked_cycles(h, n, workload, args=lambda rng: [], after=None):
    """n times: a workload at 50 ms checkpoints, checkpointing without
    failures, one cycle, then after(app), then verify."""
    def body(i, rng):
        app = App(h, workload, args(rng), interval_ms=50)
        app.run()
        check_checkpointing(h, app, "before the first kill")
        cycle(h, app, rng)
        if after:
            after(app)
        app.verify()
    iterate(h, n, body)


def sc_blocked(h):
    checked_cycles(h, 3, "wl-blocked", lambda rng: ["--sleep-ms", str(rng.choice([2, 10, 50]))],
                   lambda app: check_checkpointing(h, app, "after the restore"))


def sc_blocked_nosup(h):
    d = h.mkdtemp("dir")
    lib = os.path.join(os.path.dirname(os.path.dirname(h.tool)), "capture", "libchecksync.so")
    p = h.start("wl-blocked without a supervisor", [h.workload("wl-blocked")],
                {"LD_PRELOAD": lib, "CHECKSYNC_DIR": d, "CHECKSYNC_INTERVAL_MS": "100"})
    _, m = p.wait_line(THREADS_RX, 30, "the threads line")
    tids, mask = m.groups()[:3], m.group(4)
    rc, out, cp = h.tool_cmd("checkpoint", ["checkpoint", "--dir", d], 20)
    log("  checkpoint: status %d: %s" % (rc, out.strip()))
    named = [t for t in tids if re.search(r"\bthread %s\b" % t, out)]
    if rc == 0 or not named or mask.lstrip("0") not in out or "no supervisor" not in out:
        h.fail("checkpoint with a thread blocking the freeze signal and no supervisor: status "
               "%d, output %r; want non-zero naming one of threads %s, its mask %s and the "
               "missing supervisor" % (rc, out, tids, mask), cp, p)
    time.sleep(3)
    st = agent_status(d)
    log("  after 3 s: failures %s, last pause %s us" % (st["failures"], st["last_pause_us"]))
    # Refused before any signal went out: the program was not stopped at all
    # (it used to stop for 2 s per attempt), and periodic attempts back off
    # (100, 200, 400 ... ms apart: about 5 in 3 s, not 30).
    if int(st["last_pause_us"]) > 0 or int(st["failures"]) > 8 or int(st["checkpoints"]):
        h.fail("status after 3 s: %r; want last_pause_us=0, at most 8 failures, no "
               "checkpoint" % st, p)
    if not re.search(r"thread (%s)\b" % "|".join(tids), st["last_error"]):
        h.fail("status last_error %r names none of threads %s" % (st["last_error"], tids), p)
    start = p.count()
    os.kill(p.p.pid, 10)  # SIGUSR1: verify
    _, m = p.wait_line(r"^verify (ok|FAIL).*", 30, "the verify line", start=start)
    if m.group(1) != "ok":
        h.fail("the program noticed the refused freezes: %s" % m.group(0), p)
    log("  " + m.group(0))


def sc_sevthread(h):
    # the main thread goes on after the restore; the helper is checked at verify
    checked_cycles(h, 3, "wl-sevthread",
                   after=lambda app: app.wait_progress(app.progress() + 20, 30))


def owner(path):
    st = os.stat(path)
    return st.st_uid, st.st_gid


def sc_creds(h, args=()):
    def body(i, rng):
        app = App(h, "wl-setuid", list(args), interval_ms=100)
        app.run()
        check_checkpointing(h, app, "after the program dropped its privileges")
        cycle(h, app, rng)
        newest = images(app.dir)[-1][1]
        if owner(app.dir) != (65534, 65534) or owner(newest) != (65534, 65534):
            h.fail("%s: DIR owned by %s and %s by %s; want both 65534:65534 (handed over when "
                   "the program dropped its privileges)" % (app.describe(), owner(app.dir),
                                                            newest, owner(newest)), app.proc)
        ceiling = os.path.join(app.dir, "creds-ceiling")
        if not os.path.exists(ceiling) or owner(ceiling) != (0, 0):
            h.fail("%s: no creds-ceiling of root's in DIR (the supervisor records what the "
                   "program held when it handed DIR over)" % app.describe(), app.proc)
        check_checkpointing(h, app, "after the restore")
        app.verify()
    iterate(h, 2, body)


def sc_creds_start(h):
    """wl-threads started as 65534 by chroot --userspec: its agent cannot
    open DIR in its constructor until the supervisor hands it over."""
    def body(i, rng):
        chroot = shutil.which("chroot")
        app = App(h, "wl-threads", ["--userspec=65534:65534", "--groups=65534", "/",
                                    h.workload("wl-threads")], interval_ms=100, exe=chroot)
        app.run()
        check_checkpointing(h, app, "a program started as uid 65534")
        cycle(h, app, rng)
        if owner(app.dir) != (65534, 65534):
            h.fail("%s: DIR is owned by %s, not 65534:65534" % (app.describe(), owner(app.dir)),
                   app.proc)
        app.verify()
    iterate(h, 1, body)


def sc_setpriv(h):
    """setpriv changes capabilities on its own thread between setresuid and
    setresgid; glibc repeats both on the agent's thread (follow.c)."""
    setpriv = shutil.which("setpriv")
    if not setpriv:
        log("  no setpriv here (util-linux); nothing to test")
        sys.exit(77)

    def body(i, rng):
        app = App(h, "wl-threads", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                    h.workload("wl-threads")], interval_ms=100, exe=setpriv)
        app.run()
        check_checkpointing(h, app, "a program started by setpriv")
        ids = proc_ids(app.host_pid)
        if ids != ([65534] * 4, [65534] * 4, []):
            h.fail("%s: the program runs with uids %s gids %s groups %s; want 65534 and no "
                   "supplementary groups" % ((app.describe(),) + ids), app.proc)
        cycle(h, app, rng)
        check_checkpointing(h, app, "after the restore")
        app.verify()
    iterate(h, 1, body)


def sc_creds_refuse(h):
    app = App(h, "wl-threads")
    app.run()
    gen = app.checkpoint()
    app.kill()
    path = os.path.join(app.dir, "gen-%020d.img" % gen)
    os.chown(path, 65534, 65534)
    rc, out, p = h.tool_cmd("restore", ["restore", "--dir", app.dir], 60)
    log("  restore of root's credentials from a file of uid 65534: status %d: %s" %
        (rc, out.strip()))
    if rc == 0 or path not in out or "65534" not in out:
        h.fail("restore of an image owned by uid 65534 claiming uid 0: status %d, output %r; "
               "want a refusal naming %s and its owner" % (rc, out, path), p)
    os.chown(path, 0, 0)
    app.restore()
    app.check_continued(1)
    app.verify()


def sc_sleeps(h):
    def sleeps_continued(app, what):
        st = agent_status(app.dir)
        log("  %s: sleeps_continued=%s sleeps_cut=%s" % (what, st.get("sleeps_continued"),
                                                        st.get("sleeps_cut")))
        if int(st.get("sleeps_continued", 0)) == 0:
            h.fail("%s: %s: the agent continued no sleep (status %r)" %
                   (app.describe(), what, st), app.proc)

    def body(i, rng):
        app = App(h, "wl-sleeps", ["--ms", "300"], interval_ms=15)
        app.run()
        check_checkpointing(h, app, "300 ms sleeps under 15 ms checkpoints")
        sleeps_continued(app, "before the first kill")
        for _ in range(2):
            cycle(h, app, rng)
            app.wait_progress(app.progress() + 15, 30)  # some full calls after the restore
        sleeps_continued(app, "after the restores")
        app.verify()
    iterate(h, 1, body)


SCENARIOS = {
    "sleeps": sc_sleeps,
    "blocked": sc_blocked,
    "blocked-nosup": sc_blocked_nosup,
    "sevthread": sc_sevthread,
    "creds": sc_creds,
    "creds-caps": lambda h: sc_creds(h, ["--keep-cap", "1"]),
    "creds-start": sc_creds_start,
    "creds-refuse": sc_creds_refuse,
    "setpriv": sc_setpriv,
}


def main():
    return run_scenarios(__doc__, SCENARIOS)


if __name__ == "__main__":
    sys.exit(main())
