#!/usr/bin/env python3
"""CHECKSYNC_TOOL whose `standby` is a stand-in for the real one, to test
the daemon's side of a promotion (failover.py,
standby_adopted_app_is_supervised_as_restored) apart from the tool's: it
speaks the control protocol (docs/dataplane.md, "Warm standby"), says ready
at once at the chain's newest generation and, on promote, answers promoted
and becomes `checksync restore --dir CHAIN --next-generation N` in the same
process, which is what the real tool is after promotion (the app's parent,
exiting with its status). It keeps nothing warm: only the daemon's side is
under test. Every other command is the real tool ($CHECKSYNC_REAL_TOOL).
"""
import os
import re
import socket
import sys

real = os.environ["CHECKSYNC_REAL_TOOL"]
args = sys.argv[1:]
if args[:1] != ["standby"]:
    os.execv(real, [real, *args])
chain = args[args.index("--dir") + 1]
fd = int(args[args.index("--control-fd") + 1])
ctl = socket.socket(fileno=fd)


def newest():
    gens = [int(m.group(1)) for m in map(re.compile(r"gen-(\d+)\.img$").match, os.listdir(chain))
            if m]
    return max(gens, default=0)


ctl.send(b"ready generation=%d rss=0 ms=0\n" % newest())
while True:
    data = ctl.recv(4096)
    if not data:
        sys.exit(1)
    for line in data.decode().splitlines():
        if line == "status":
            ctl.send(b"status state=ready generation=%d rss=0 applied=0\n" % newest())
        elif line.startswith("promote next_generation="):
            n = line.split("=", 1)[1]
            ctl.send(b"promoted generation=%d pid=0 ms=0\n" % newest())
            ctl.detach()
            os.close(fd)
            os.execv(real, [real, "restore", "--dir", chain, "--next-generation", n])
