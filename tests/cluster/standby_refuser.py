#!/usr/bin/env python3
"""CHECKSYNC_TOOL for a daemon whose standby must refuse its promotion
(failover.py, standby_killed_or_refused_goes_cold): `standby` runs the real
`checksync standby` behind a relay that passes every line both ways but
answers promote with an error (and ends the real standby first, as the
tool does after error); every other command is the real tool.

    standby_refuser.py REAL_TOOL ARGS...   (REAL_TOOL from $CHECKSYNC_REAL_TOOL)
"""
import os
import select
import signal
import socket
import sys

real = os.environ["CHECKSYNC_REAL_TOOL"]
args = sys.argv[1:]
if args[:1] != ["standby"]:
    os.execv(real, [real, *args])

daemon = socket.socket(fileno=int(args[args.index("--control-fd") + 1]))
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
argv = list(args)
argv[argv.index("--control-fd") + 1] = str(theirs.fileno())
tool = os.fork()
if tool == 0:
    os.set_inheritable(theirs.fileno(), True)
    os.execv(real, [real, *argv])
theirs.close()


def refuse():
    os.kill(tool, signal.SIGKILL)
    os.waitpid(tool, 0)
    daemon.send(b"error why=test: promote refused on purpose (standby_refuser.py)\n")
    sys.exit(1)


while True:
    ready, _, _ = select.select([daemon, ours], [], [])
    for s in ready:
        data = s.recv(65536)
        if not data:  # either side gone: so is the standby
            os.kill(tool, signal.SIGKILL)
            _, st = os.waitpid(tool, 0)
            sys.exit(1)
        if s is daemon and any(line.startswith(b"promote ") for line in data.splitlines()):
            refuse()
        (ours if s is daemon else daemon).send(data)
