#!/usr/bin/env python3
"""Writes made by a restored process survive the next restore.

usage: restore_chain.py CHECKSYNC-TOOL WL-PAGES uffd|hash [ROUNDS]

wl-pages writes each page of a mapping once (page s gets the number s) and
checks the pages below. Each round: restore, let the restored process write
new pages right away (the window between the restore and the agent's first
base), `checksync checkpoint`, SIGKILL, restore again. The number printed
before the checkpoint was requested must be in memory after the next restore
(the program resumes above it) and no page may have lost its write (the
program prints BAD). Writes acknowledged after the checkpoint and before the
kill are not promised and not checked.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time


class Failure(Exception):
    pass


class Run:
    def __init__(self, tool, wl, mode):
        self.tool, self.wl, self.mode = tool, wl, mode
        self.dir = tempfile.mkdtemp(prefix="cs-restore-chain-")
        self.procs = []
        self.n = 0

    def spawn(self, args):
        self.n += 1
        path = os.path.join(self.dir, "out-%d.txt" % self.n)
        with open(path, "w") as f:
            p = subprocess.Popen([self.tool] + args, stdin=subprocess.DEVNULL, stdout=f,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        p.out = path
        self.procs.append(p)
        return p

    def seqs(self, p):
        with open(p.out) as f:
            text = f.read()
        bad = [l for l in text.splitlines() if l.startswith("BAD")]
        if bad:
            raise Failure("pages lost their writes: %s" % "; ".join(bad[:5]))
        return [int(x) for x in re.findall(r"^seq (\d+)", text, re.M)]

    def wait_seqs(self, p, count, what):
        deadline = time.monotonic() + 60
        while True:
            s = self.seqs(p)
            if len(s) >= count:
                return s
            if p.poll() is not None or time.monotonic() > deadline:
                raise Failure("%s: %d lines after 60 s, status %s:\n%s" %
                              (what, len(s), p.poll(), open(p.out).read()[-2000:]))
            time.sleep(0.005)

    def app_pid(self):
        with open(os.path.join(self.dir, "agent.pid")) as f:
            return int(f.read().split()[0])

    def kill(self, p):
        os.kill(self.app_pid(), signal.SIGKILL)
        rc = p.wait(timeout=60)
        if rc != 128 + signal.SIGKILL and rc != -signal.SIGKILL:
            raise Failure("program killed, `checksync` exited %s" % rc)

    def checkpoint(self):
        r = subprocess.run([self.tool, "checkpoint", "--dir", self.dir], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise Failure("checksync checkpoint: %d %s" % (r.returncode, r.stderr.strip()))
        return r.stdout.strip()

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.wait()
        try:
            os.kill(self.app_pid(), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    tool, wl, mode = sys.argv[1:4]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    r = Run(tool, wl, mode)
    try:
        p = r.spawn(["run", "--dir", r.dir, "--interval-ms", "100", "--tracking", mode, "--", wl])
        promised = r.wait_seqs(p, 50, "first run")[-1]
        r.checkpoint()
        r.kill(p)
        for rnd in range(rounds):
            p = r.spawn(["restore", "--dir", r.dir])
            s = r.wait_seqs(p, 1, "restore %d" % rnd)
            if s[0] <= promised:
                raise Failure("round %d: resumed at %d, but %d was printed before the checkpoint"
                              % (rnd, s[0], promised))
            # Right after the restore: these pages are written before or
            # while the agent takes its first base.
            s = r.wait_seqs(p, 5 + 10 * rnd, "restore %d" % rnd)
            promised = s[-1]
            gen = r.checkpoint()
            s = r.wait_seqs(p, len(s) + 20, "restore %d" % rnd)
            r.kill(p)
            print("round %d: resumed at %d, %d promised by generation %s, killed at %d" %
                  (rnd, s[0], promised, gen, s[-1]))
        p = r.spawn(["restore", "--dir", r.dir])
        s = r.wait_seqs(p, 50, "last restore")
        if s[0] <= promised:
            raise Failure("resumed at %d, but %d was printed before the checkpoint" % (s[0], promised))
        r.kill(p)
        print("ok: last restore resumed at %d (promised %d)" % (s[0], promised))
        return 0
    except Failure as e:
        print("FAIL:", e)
        return 1
    finally:
        r.cleanup()


if __name__ == "__main__":
    sys.exit(main())
