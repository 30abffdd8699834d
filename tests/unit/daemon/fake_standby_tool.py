#!/usr/bin/env python3
"""A stand-in for `checksync standby --dir CHAIN --control-fd N` that speaks
the control protocol of docs/dataplane.md ("Warm standby") and misbehaves on
demand, for test_standby.c. $FAKE_STANDBY picks the behaviour:

  ok       ready, answers status, applies nothing; on promote forks an "app"
           (a sleeping child), answers promoted and exits with its status
  applied  as ok, and reports one applied generation after ready
  refuse   ready; promote answers error (the tool then exits 1)
  die      ready; promote kills the tool (SIGKILL) without an answer
  crash    exits 3 at once
  silent   ready; promote is never answered
"""
import os
import signal
import socket
import sys
import time

mode = os.environ.get("FAKE_STANDBY", "ok")
args = sys.argv[1:]
assert args[:1] == ["standby"] and "--dir" in args and "--control-fd" in args, args
chain = args[args.index("--dir") + 1]
assert os.path.isdir(chain), chain
fd = int(args[args.index("--control-fd") + 1])
ctl = socket.socket(fileno=fd)
if mode == "crash":
    sys.exit(3)


def say(line):
    ctl.send((line + "\n").encode())


say("ready generation=5 rss=123456 ms=42")
if mode == "applied":
    say("applied generation=6 bytes=4096 ms=7 cpu_ms=2")
gen = 6 if mode == "applied" else 5
while True:
    msg = ctl.recv(4096).decode()
    if not msg:
        sys.exit(0)  # the daemon went away
    for line in msg.splitlines():
        if line == "status":
            say("status state=ready generation=%d rss=123456 applied=%d" % (gen, gen - 5))
        elif line.startswith("promote next_generation="):
            if mode == "refuse":
                say("error why=the image's vDSO differs from this kernel's")
                sys.exit(1)
            if mode == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            if mode == "silent":
                continue
            app = os.fork()
            if app == 0:
                time.sleep(600)
                os._exit(0)
            say("promoted generation=%d pid=%d ms=1" % (gen, app))
            _, st = os.waitpid(app, 0)
            sys.exit(os.waitstatus_to_exitcode(st) & 0xff)
