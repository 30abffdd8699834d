#!/usr/bin/env python3
"""Runs a capture test program with the agent enabled in a fresh directory.

usage: capture_test.py PROGRAM MODE [LD_PRELOAD-library]
"""
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    prog, mode = sys.argv[1], sys.argv[2]
    d = tempfile.mkdtemp(prefix="cs-capture-")
    try:
        env = dict(os.environ, CHECKSYNC_DIR=d, CHECKSYNC_INTERVAL_MS="0",
                   CHECKSYNC_TRACKING=mode)
        if len(sys.argv) > 3:
            env["LD_PRELOAD"] = sys.argv[3]
        r = subprocess.run([prog, mode], env=env, timeout=120)
        print("images:", sorted(f for f in os.listdir(d)))
        return r.returncode
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
