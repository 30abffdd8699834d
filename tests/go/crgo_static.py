#!/usr/bin/env python3
"""The Go package with the agent linked in (-tags checksync_static), suite 'go'.

  crgo_static.py static --checksync T --prog kvserver-static
      a fully static kvserver (no ld.so: LD_PRELOAD cannot reach it, the
      agent comes from libchecksync.a). Without checksync: the package is
      inert (kvserver reports checksync=false and refuses -sync) and there is
      no agent thread. Under `checksync run`: exactly one agent thread, writes
      answered only after checksync.Sync, SIGKILL, `checksync restore`, every
      synced key read back, and the restored process keeps answering and
      checkpointing; twice in a chain.
  crgo_static.py two --checksync T --prog sigcheck-linked
      a dynamically linked program with the agent linked in, under
      `checksync run`, which preloads libchecksync.so as well: two copies of
      the agent in one process. Exactly one agent thread; Sync, Stats and
      the freeze-signal forwarding work through the package; one
      checkpoint / SIGKILL / restore keeps the synced keys.

Exit 77 (meson: skipped) only when the checksync tool is not built.
Everything started here is killed, and the temp dirs removed, in `finally`.
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import time

import crgo
from crgo import Failure, Session, get, http_get, log, wait_answer

FREEZE_SIGNAL = 62
SIGTERM_BIT = 1 << (15 - 1)
FREEZE_BIT = 1 << (FREEZE_SIGNAL - 1)


def agent_threads(pid):
    """Threads whose signal mask is the agent thread's: every signal blocked
    but the freeze signal (agent.c, agent_main). Go's threads block nothing;
    a thread being created blocks everything, the freeze signal included."""
    found = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("SigBlk:"):
                        mask = int(line.split()[1], 16)
                        if mask & SIGTERM_BIT and not mask & FREEZE_BIT:
                            found.append(int(tid))
        except OSError:
            pass  # the thread exited
    return found


def expect_agent_threads(pid, want, what, timeout=10):
    """While the agent thread is inside its own freeze handler every signal
    is blocked on it, so it may be missed for a moment: look again until the
    count is right, but more than wanted fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        got = agent_threads(pid)
        if len(got) > want or (len(got) != want and time.monotonic() > deadline):
            raise Failure("%s: %d agent threads (%s), want %d" % (what, len(got), got, want))
        if len(got) == want:
            return got
        time.sleep(0.05)


def check_static(prog):
    out = subprocess.run(["file", "-L", prog], capture_output=True, text=True).stdout
    if "statically linked" not in out:
        raise Failure("%s is not statically linked: %s" % (prog, out.strip()))
    hdrs = subprocess.run(["readelf", "-lW", prog], capture_output=True, text=True).stdout
    if "INTERP" in hdrs or "DYNAMIC" in hdrs:
        raise Failure("%s has a program interpreter or dynamic section:\n%s" % (prog, hdrs))
    log("%s: %s" % (os.path.basename(prog), out.split(":", 1)[1].strip()[:90]))


def put(port, key, val):
    st, body = http_get(port, "/k/" + key, method="PUT", body=val, timeout=30)
    return st == 200


def put_synced(port, prefix, n):
    acked = {}
    for i in range(n):
        k, v = "%s-%d" % (prefix, i), "v%d.%s" % (i, prefix)
        if not put(port, k, v):
            raise Failure("PUT %s under -sync was refused" % k)
        acked[k] = v
    return acked


def verify(port, acked):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for k, v in acked.items():
            c.request("GET", "/k/" + k)
            r = c.getresponse()
            body = r.read().decode()
            if r.status != 200 or body != v:
                raise Failure("synced key %s lost after restore (got %d %r)" % (k, r.status, body[:40]))
    finally:
        c.close()


def wait_checkpoints(port, path, field, more, timeout=30):
    """Waits until the agent has taken `more` checkpoints beyond now."""
    first = json.loads(get(port, path)[1])[field]
    deadline = time.monotonic() + timeout
    while True:
        now = json.loads(get(port, path)[1])[field]
        if now >= first + more:
            return now
        if time.monotonic() > deadline:
            raise Failure("no checkpoints: %s stayed at %d for %d s" % (field, now, timeout))
        time.sleep(0.1)


def on_restore_called(port, times, timeout=10):
    """kvserver counts checksync.OnRestore calls in /stats (through the
    linked agent here); the call is asynchronous, so allow it a moment."""
    deadline = time.monotonic() + timeout
    while True:
        st = json.loads(get(port, "/stats")[1])
        if st["restores"] >= times and st["restored_from"] >= 1:
            return
        if time.monotonic() > deadline:
            raise Failure("OnRestore: %d calls after %d restores (restored_from %d)" %
                          (st["restores"], times, st["restored_from"]))
        time.sleep(0.05)


def static_without_checksync(a, s, port):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKSYNC_") and k != "LD_PRELOAD"}
    r = subprocess.run([a.prog, "-listen", "127.0.0.1:%d" % port, "-sync"], env=env,
                       capture_output=True, text=True, timeout=60)
    if r.returncode == 0 or "-sync needs the checksync agent" not in r.stderr:
        raise Failure("kvserver-static -sync without checksync: exit %d, %r" % (r.returncode, r.stderr[-300:]))
    p = subprocess.Popen([a.prog, "-listen", "127.0.0.1:%d" % port], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    s.procs.append(p)
    p.logpath = os.devnull
    try:
        wait_answer(port, "/stats", p, s, 60)
        st, body = get(port, "/stats/checksync")
        if body.strip() != b"null":
            raise Failure("without checksync the package reports counters: %r" % body[:200])
        expect_agent_threads(p.pid, 0, "without checksync")
        if not put(port, "plain", "x"):
            raise Failure("PUT without -sync and without checksync failed")
    finally:
        p.kill()
        err = p.communicate(timeout=10)[1]
    if "checksync=false" not in err:
        raise Failure("kvserver-static without checksync did not say checksync=false: %r" % err[-300:])
    log("without checksync: inert package, -sync refused, no agent thread")


def static(a):
    check_static(a.prog)
    s = Session(a.checksync)
    port = crgo.free_port()
    try:
        static_without_checksync(a, s, port)
        proc = s.run([a.prog, "-listen", "127.0.0.1:%d" % port, "-sync"], a.interval_ms)
        wait_answer(port, "/stats", proc, s, 120)
        if "checksync=true" not in s.tail(proc):
            raise Failure("kvserver-static under checksync run: the package is not enabled:\n" + s.tail(proc))
        expect_agent_threads(s.app_pid(), 1, "under checksync run")
        acked = {}
        for rnd in range(a.restores):
            acked.update(put_synced(port, "r%d" % rnd, 100))
            s.kill_app(proc)
            t0 = time.monotonic()
            proc = s.restore()
            waited = wait_answer(port, "/stats", proc, s, 60)
            verify(port, acked)
            on_restore_called(port, rnd + 1)
            acked.update(put_synced(port, "after%d" % rnd, 10))
            expect_agent_threads(s.app_pid(), 1, "after restore %d" % (rnd + 1))
            wait_checkpoints(port, "/stats/checksync", "checkpoints", 2)
            log("round %d: restored (answered after %.3f s), %d synced keys intact, new writes and "
                "checkpoints go on (%.1f s)" % (rnd + 1, waited, len(acked), time.monotonic() - t0))
        return 0
    except BaseException:
        s.dump_logs()
        raise
    finally:
        s.cleanup()


def two(a):
    """Two copies of the agent: the program's (linked) and the preloaded one."""
    s = Session(a.checksync)
    port = crgo.free_port()
    try:
        proc = s.run([a.prog, "-listen", "127.0.0.1:%d" % port], a.interval_ms)
        wait_answer(port, "/count", proc, s, 120)
        if "checksync=true" not in s.tail(proc):
            raise Failure("the package is not enabled with two copies of the agent:\n" + s.tail(proc))
        pid = s.app_pid()
        expect_agent_threads(pid, 1, "two copies under checksync run")
        wait_checkpoints(port, "/stats", "checkpoints", 3)
        acked = put_synced(port, "two", 20)
        st = json.loads(get(port, "/stats")[1])
        if not st["enabled"] or st["checkpoints"] < 3 or st["takeovers"] < 1:
            raise Failure("Stats through the package: %s" % st)
        before = json.loads(get(port, "/count")[1])["sig62"]
        os.kill(pid, FREEZE_SIGNAL)
        deadline = time.monotonic() + 10
        while json.loads(get(port, "/count")[1])["sig62"] != before + 1:
            if time.monotonic() > deadline:
                raise Failure("kill -%d did not reach signal.Notify with two copies" % FREEZE_SIGNAL)
            time.sleep(0.05)
        s.kill_app(proc)
        proc = s.restore()
        wait_answer(port, "/count", proc, s, 60)
        verify(port, acked)
        expect_agent_threads(s.app_pid(), 1, "two copies after restore")
        st = json.loads(get(port, "/stats")[1])
        if not st["enabled"] or not st["restored_from"]:
            raise Failure("Stats after restore: %s" % st)
        put_synced(port, "two-after", 5)
        log("two copies: one agent thread, Sync/Stats/forwarding through the package, restore ok")
        return 0
    except BaseException:
        s.dump_logs()
        raise
    finally:
        s.cleanup()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", choices=["static", "two"])
    p.add_argument("--checksync", required=True, help="the checksync tool")
    p.add_argument("--prog", required=True)
    p.add_argument("--interval-ms", type=int, default=200)
    p.add_argument("--restores", type=int, default=2)
    a = p.parse_args()
    crgo.ensure_tool(a.checksync)
    if os.geteuid() != 0:
        print("SKIP: needs root (PID and time namespaces)")
        return crgo.SKIP
    try:
        return {"static": static, "two": two}[a.scenario](a)
    except Failure as e:
        log("FAIL:", e)
        return 1
    except (OSError, http.client.HTTPException) as e:
        log("FAIL: the program stopped answering: %r" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
