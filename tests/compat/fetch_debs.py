#!/usr/bin/env python3
"""Fetches Debian packages for the compatibility suite into a cache.

    fetch_debs.py CACHE_DIR PACKAGE...

Each package is downloaded once with `apt-get download` into CACHE_DIR/debs
and unpacked with `dpkg-deb -x` into CACHE_DIR/root (nothing is installed,
no service started). Prints CACHE_DIR/root. Exit status 77 (skip) with a
message when the archive cannot be reached and a package is not cached yet;
1 on any other failure. Concurrent runs share the cache under a lock.
"""

import fcntl
import glob
import os
import subprocess
import sys

SKIP = 77


def have(debs, pkg):
    return glob.glob(os.path.join(debs, "%s_*.deb" % pkg.replace("+", "?")))


def fetch(cache, pkgs):
    debs = os.path.join(cache, "debs")
    root = os.path.join(cache, "root")
    os.makedirs(debs, exist_ok=True)
    os.makedirs(root, exist_ok=True)
    missing = [p for p in pkgs if not have(debs, p)]
    if missing:
        try:
            r = subprocess.run(["apt-get", "download"] + missing, cwd=debs,
                               capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            r = subprocess.CompletedProcess([], 1, "", str(e))
        still = [p for p in missing if not have(debs, p)]
        if still:
            sys.stderr.write("SKIP: cannot download %s from the Debian archive (apt-get "
                             "download: %s)\n" % (" ".join(still), (r.stderr or r.stdout).strip()
                                                  [-400:]))
            return SKIP
    for p in pkgs:
        for deb in have(debs, p):
            mark = os.path.join(root, ".unpacked-" + os.path.basename(deb))
            if not os.path.exists(mark):
                subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
                open(mark, "w").close()
    print(root)
    return 0


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    cache = os.path.abspath(sys.argv[1])
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return fetch(cache, sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
