#!/usr/bin/env python3
"""daemon/sdnotify.c against a stand-in for systemd's notify socket.

Usage: test_sdnotify.py SDNOTIFY_RUN
With WATCHDOG_USEC set, the program must send READY=1, its STATUS=, then
WATCHDOG=1 repeatedly from its event loop, and STOPPING=1 after SIGTERM.
Without WATCHDOG_USEC it must not send WATCHDOG=1. No timing is asserted:
the test waits for messages (bounded by a generous timeout)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

RUN = sys.argv[1]
failures = []


def check(cond, what, detail=""):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}\n{detail}", file=sys.stderr)


def session(tmp, watchdog_usec, stop_after):
    """Runs the program until STOP_AFTER(messages) is true; returns all
    messages, in order."""
    path = os.path.join(tmp, "notify.sock")
    msgs = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        s.settimeout(30)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "NOTIFY_"))}
        env["NOTIFY_SOCKET"] = path
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        p = subprocess.Popen([RUN], env=env)
        try:
            while not stop_after(msgs):
                msgs += s.recv(4096).decode().split("\n")
            p.send_signal(signal.SIGTERM)
            while "STOPPING=1" not in msgs:
                msgs += s.recv(4096).decode().split("\n")
            check(p.wait(timeout=30) == 0, "clean exit")
        except socket.timeout:
            check(False, "messages arrive", repr(msgs))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        os.unlink(path)
    return msgs


def main():
    tmp = tempfile.mkdtemp(prefix="cs-test-sdnotify-")
    try:
        m = session(tmp, 100000, lambda m: m.count("WATCHDOG=1") >= 3)
        check(m[:2] == ["READY=1", "STATUS=backup, term 3, peers up 1/2"] or
              m[1:3] == ["READY=1", "STATUS=backup, term 3, peers up 1/2"], "READY then STATUS", repr(m))
        check(m.count("WATCHDOG=1") >= 3 and m[-1] == "STOPPING=1", "watchdog pings, then STOPPING", repr(m))
        m = session(tmp, 0, lambda m: "STATUS=backup, term 3, peers up 1/2" in m)
        check("WATCHDOG=1" not in m and m[-1] == "STOPPING=1", "no watchdog unless asked", repr(m))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("FAIL: " + ", ".join(failures) if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
