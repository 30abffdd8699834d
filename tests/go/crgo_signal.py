#!/usr/bin/env python3
"""A Go program that wants the agent's freeze signal (62) for itself, suite 'go'.

  crgo_signal.py --checksync T --prog sigcheck --notify one|all|c|reset

sigcheck calls signal.Notify on signal 62 (one) or on every signal (all), or
installs a C handler without SA_SIGINFO for it (c), and counts what arrives; it runs under `checksync run` with a checkpoint every
100 ms. Checked: the Go runtime's takeover of the signal is reported (one
stderr line, Stats().Signal, the agent's status reply); checkpoints keep
succeeding; every `kill -62 <pid>` from outside reaches the Go channel, one
for one, and none of the agent's own freeze signals does; a signal sent
straight at the agent's thread reaches it too; after os/signal takes the
signal back again (Ignore, then Notify) the agent notices and checkpoints go
on; and checkpoint (through checksync.Sync) / SIGKILL / `checksync restore`
keeps the synced keys, the count, and the forwarding.

--notify reset: sigcheck calls signal.Ignore(62), signal.Notify(ch, 62) and
signal.Reset(62), at start and then 1,500 times 1 ms apart (/flip) while the
agent checkpoints every 10 ms: Go installs SIG_IGN (which discards the
pending freeze signals of every thread) and its own handler at any moment,
during freezes too, and os/signal's thread blocks and unblocks the signal.
No checkpoint may fail (they used to, "did not park within 50 ms"); then
checkpoint (through checksync.Sync) / SIGKILL / restore keeps the synced
keys, and checkpoints go on after the restore.

Exit 77 (meson: skipped) only when the checksync tool is not built.
Everything started here is killed, and the temp dirs removed, in `finally`.
"""
import argparse
import ctypes
import http.client
import json
import os
import sys
import time

import crgo
from crgo import Failure, Session, agent_status, get, log, wait_answer
from crgo_static import expect_agent_threads, put_synced, verify

FREEZE_SIGNAL = 62
SYS_TGKILL = 234
REPORT = "checksync: signal %d (the agent's freeze signal) was " % FREEZE_SIGNAL


def stats(port):
    return json.loads(get(port, "/stats")[1])


def count(port):
    return json.loads(get(port, "/count")[1])["sig62"]



def wait_for(what, cond, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failure("timed out (%d s) waiting for %s" % (timeout, what))
        time.sleep(0.05)


def send_each(port, send, n, what):
    """Sends n signals, one at a time: Go's os/signal merges a signal that
    arrives while the same one is still pending, so each must be received
    before the next. Then checks that nothing else arrives while the agent
    keeps freezing the process with the same signal."""
    base = count(port)
    ck0 = stats(port)["checkpoints"]
    for i in range(n):
        send()
        wait_for("%s %d of %d to reach signal.Notify" % (what, i + 1, n),
                 lambda: count(port) >= base + i + 1, timeout=15)
    wait_for("3 more checkpoints", lambda: stats(port)["checkpoints"] >= ck0 + 3)
    got = count(port) - base
    if got != n:
        raise Failure("%s: sent %d, signal.Notify received %d (the agent's own leaked?)" % (what, n, got))


def tgkill(pid, tid, sig):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_TGKILL, pid, tid, sig) != 0:
        raise Failure("tgkill(%d, %d, %d): errno %d" % (pid, tid, sig, ctypes.get_errno()))


def check_reported(s, proc, ckdir, port, mode):
    st = wait_for("the takeover in Stats", lambda: (lambda x: x if x["takeovers"] >= 1 else None)(stats(port)))
    if st["signal"] != FREEZE_SIGNAL or st["foreign_handler"] in (0, 1) or not st["first_takeover"]:
        raise Failure("Stats().Signal after the Go runtime took the signal: %s" % st)
    lines = [l for l in s.tail(proc, 100000).splitlines() if l.startswith(REPORT)]
    go_first = len(lines) == 1 and "the Go runtime's" in lines[0]
    if len(lines) != 1 or (mode != "c" and not go_first):
        raise Failure("want one stderr line reporting the takeover by the Go runtime, got %s" % lines)
    if mode == "c":
        # The C handler, installed in main, is taken back too: after the Go
        # runtime's when the agent saw that one first.
        want = 2 if go_first else 1
        st = wait_for("the C handler's takeover",
                      lambda: (lambda x: x if x["takeovers"] >= want else None)(stats(port)))
    status = agent_status(ckdir)
    if int(status.get("sig_takeovers", 0)) < 1 or status.get("signal") != str(FREEZE_SIGNAL):
        raise Failure("the status reply does not report the takeover: %s" % status)
    log("reported: %s" % lines[0][:110])
    log("  Stats: takeovers %d, handler %#x; status: sig_takeovers=%s sig_foreign=%s" %
        (st["takeovers"], st["foreign_handler"], status["sig_takeovers"], status["sig_foreign"]))


def scenario(a):
    s = Session(a.checksync)
    port = crgo.free_port()
    try:
        proc = s.run([a.prog, "-listen", "127.0.0.1:%d" % port, "-notify", a.notify], a.interval_ms)
        wait_answer(port, "/count", proc, s, 120)
        pid = s.app_pid()
        check_reported(s, proc, s.dir, port, a.notify)

        send_each(port, lambda: os.kill(pid, FREEZE_SIGNAL), a.kills, "kill -62")
        tids = expect_agent_threads(pid, 1, "under checksync run")
        send_each(port, lambda: tgkill(pid, tids[0], FREEZE_SIGNAL), 3, "tgkill -62 to the agent's thread")
        st = stats(port)
        if st["forwarded"] < a.kills + 3:
            raise Failure("Stats().Signal.Forwarded %d < %d signals sent" % (st["forwarded"], a.kills + 3))
        log("%d kills and 3 tgkills at the agent's thread reached signal.Notify one for one; "
            "%d checkpoints, %d failures" % (a.kills, st["checkpoints"], st["failures"]))

        # os/signal takes the signal back once more: Ignore installs SIG_IGN,
        # Notify then installs Go's handler again.
        takeovers = st["takeovers"]
        get(port, "/retake")
        wait_for("the agent to notice the retake",
                 lambda: stats(port)["takeovers"] > takeovers, timeout=30)
        send_each(port, lambda: os.kill(pid, FREEZE_SIGNAL), 3, "kill -62 after the retake")

        acked = put_synced(port, "sig", 20)  # each answered after checksync.Sync
        at_sync = count(port)
        st = stats(port)
        s.kill_app(proc)
        proc = s.restore()
        wait_answer(port, "/count", proc, s, 60)
        verify(port, acked)
        if count(port) != at_sync:
            raise Failure("count after restore %d, %d when the keys were synced" % (count(port), at_sync))
        pid = s.app_pid()
        after = stats(port)
        if not after["restored_from"] or after["takeovers"] < st["takeovers"]:
            raise Failure("Stats after restore: %s (before: %s)" % (after, st))
        send_each(port, lambda: os.kill(pid, FREEZE_SIGNAL), 3, "kill -62 after the restore")
        log("restore: %d synced keys, the count and the forwarding survived; Stats %s" %
            (len(acked), {k: after[k] for k in ("takeovers", "forwarded", "restored_from")}))
        return 0
    except BaseException:
        s.dump_logs()
        raise
    finally:
        s.cleanup()


def scenario_reset(a):
    s = Session(a.checksync)
    port = crgo.free_port()
    try:
        proc = s.run([a.prog, "-listen", "127.0.0.1:%d" % port, "-notify", "reset"], a.interval_ms)
        wait_answer(port, "/count", proc, s, 120)
        wait_for("the takeover in Stats", lambda: stats(port)["takeovers"] >= 1)
        before = stats(port)
        for _ in range(5):
            get(port, "/flip?n=300")
        after = stats(port)
        log("1500 x Ignore/Notify/Reset: %d checkpoints, %d failures, %d takeovers; last error %r" %
            (after["checkpoints"] - before["checkpoints"], after["failures"] - before["failures"],
             after["takeovers"] - before["takeovers"], after["last_error"]))
        if after["failures"] != before["failures"] or after["checkpoints"] < before["checkpoints"] + 20:
            raise Failure("checkpoints while os/signal took the signal back and forth: %s (before: %s)" %
                          (after, before))
        acked = put_synced(port, "reset", 10)
        s.kill_app(proc)
        proc = s.restore()
        wait_answer(port, "/count", proc, s, 60)
        verify(port, acked)
        ck = stats(port)["checkpoints"]
        wait_for("3 checkpoints after the restore", lambda: stats(port)["checkpoints"] >= ck + 3)
        if stats(port)["failures"]:
            raise Failure("failed checkpoints after the restore: %s" % stats(port))
        log("restore: %d synced keys back, checkpoints go on" % len(acked))
        return 0
    except BaseException:
        s.dump_logs()
        raise
    finally:
        s.cleanup()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checksync", required=True, help="the checksync tool")
    p.add_argument("--prog", required=True)
    p.add_argument("--notify", choices=["one", "all", "c", "reset"], default="one")
    p.add_argument("--interval-ms", type=int, default=100)
    p.add_argument("--kills", type=int, default=10)
    a = p.parse_args()
    crgo.ensure_tool(a.checksync)
    if os.geteuid() != 0:
        print("SKIP: needs root (PID and time namespaces)")
        return crgo.SKIP
    try:
        return scenario_reset(a) if a.notify == "reset" else scenario(a)
    except Failure as e:
        log("FAIL:", e)
        return 1
    except (OSError, http.client.HTTPException) as e:
        log("FAIL: the program stopped answering: %r" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
