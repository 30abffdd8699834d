#!/usr/bin/env python3
"""Compatibility suite (meson suite 'compat'; docs/compatibility.md).

    compat.py --build-root BUILD PROGRAM

Unmodified programs from Debian's archive (fetched once into
BUILD/compat-cache, or $CHECKSYNC_COMPAT_CACHE to share one between builds,
by fetch_debs.py, never installed) run under
`checksync run --interval-ms 100`. Each is written to through its own
protocol, checkpointed while a client keeps writing, SIGKILLed, restored;
then every write acknowledged before the checkpoint must read back, and the
restored program must take new writes. The outcome must be the one
docs/compatibility.md states for the program (works, refused or broken):
the table is kept true by this suite. Exit 77 (skip) without root or when
the archive is unreachable and the packages are not cached.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # never leave __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cr"))
from crlib import App, Harness, TestFailure, SKIP, agent_status, free_port, log  # noqa: E402
from clients import CLIENTS  # noqa: E402

DOC = os.path.join(HERE, "..", "..", "docs", "compatibility.md")
REFUSED_RX = re.compile(r"refusing|checkpoint of \S+ failed|cannot checkpoint")
LIB = "usr/lib/x86_64-linux-gnu"


def nginx_conf(work, port):
    path = os.path.join(work, "nginx.conf")
    with open(path, "w") as f:
        f.write("daemon off; master_process off; worker_processes 1; error_log stderr;\n"
                "pid %s/nginx.pid;\nevents { worker_connections 64; }\n"
                "http { access_log off; client_body_temp_path %s; proxy_temp_path %s;\n"
                "  fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;\n"
                "  server { listen 127.0.0.1:%d; location = /status { stub_status; }\n"
                "    location / { return 200 \"hello\\n\"; } } }\n" %
                ((work,) * 6 + (port,)))
    return ["-p", work, "-c", path, "-e", "stderr"]


def etcd_args(work, port):
    peer = free_port()
    url = "http://127.0.0.1:%d" % port
    return ["--data-dir", os.path.join(work, "data"), "--enable-v2",
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", "http://127.0.0.1:%d" % peer,
            "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer,
            "--initial-cluster", "default=http://127.0.0.1:%d" % peer]


# name: packages, executable in the unpacked root, arguments (work dir, port)
PROGRAMS = {
    "redis": (["redis-server", "redis-tools", "libjemalloc2", "liblzf1"], "usr/bin/redis-server",
              lambda w, p: ["--port", str(p), "--bind", "127.0.0.1 -::1", "--save", "",
                            "--appendonly", "no", "--dir", w]),
    "memcached": (["memcached"], "usr/bin/memcached",
                  lambda w, p: ["-l", "127.0.0.1", "-p", str(p), "-U", "0", "-u", "root",
                                "-t", "4"]),
    "beanstalkd": (["beanstalkd"], "usr/bin/beanstalkd",
                   lambda w, p: ["-l", "127.0.0.1", "-p", str(p)]),
    "nginx": (["nginx", "nginx-common"], "usr/sbin/nginx", lambda w, p: nginx_conf(w, p)),
    "pushgateway": (["prometheus-pushgateway"], "usr/bin/prometheus-pushgateway",
                    lambda w, p: ["--web.listen-address=127.0.0.1:%d" % p]),
    "etcd": (["etcd-server"], "usr/bin/etcd", etcd_args),
}


def documented(name):
    """(status, message) of the program's row in docs/compatibility.md."""
    rx = re.compile(r"^\|\s*%s\s*\|[^|]*\|\s*(works|refused|broken)\s*\|([^|]*)\|" % name)
    with open(DOC) as f:
        for line in f:
            m = rx.match(line)
            if m:
                return m.group(1), m.group(2).strip()
    raise TestFailure("docs/compatibility.md has no row for %s" % name)


def fetch(build_root, pkgs):
    cache = os.environ.get("CHECKSYNC_COMPAT_CACHE") or os.path.join(build_root, "compat-cache")
    r = subprocess.run([sys.executable, os.path.join(HERE, "fetch_debs.py"), cache] + pkgs,
                       capture_output=True, text=True)
    if r.returncode == SKIP:
        log(r.stderr.strip())
        return None
    if r.returncode:
        raise TestFailure("fetching %s: %s" % (pkgs, r.stderr.strip()))
    return r.stdout.strip()


class Program(App):
    """A Debian program under checksync: ready when its port answers."""

    def __init__(self, h, name, exe, args, port, env):
        super().__init__(h, name, args, interval_ms=100, exe=exe)
        h.exes.add(os.path.realpath(exe))
        self.port = port
        self.env = env

    def run(self, ready_timeout=30):
        argv = [self.h.tool, "run", "--dir", self.dir, "--interval-ms", "100", "--",
                self.exe] + self.args
        self.proc = self.h.start("checksync run " + self.workload, argv, self.env)
        self.host_pid = self.wait_agent_pid(None, 10)
        self.h.track(self.host_pid)
        self.wait_port(ready_timeout)
        log("  %s started: host pid %d, port %d" % (self.workload, self.host_pid, self.port))

    def wait_port(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.h.fail("%s: port %d did not answer within %.0f s" %
                    (self.workload, self.port, timeout), self.proc)


def writer_thread(client, stop, acked):
    """Writes key after key until stopped; records what was acknowledged."""
    i = 0
    while not stop.is_set():
        try:
            client.write("load%d" % i, str(i))
            acked.append(i)
            i += 1
        except OSError:
            return


def exercise(h, name, app, client):
    """Writes, checkpoint under load, kill, restore, read back, write again."""
    for i in range(50):
        client.write("k%d" % i, "v%d" % i)
    stop, acked = threading.Event(), []
    t = threading.Thread(target=writer_thread, args=(client.clone(), stop, acked), daemon=True)
    t.start()
    time.sleep(0.5)
    before = len(acked)
    gen = app.checkpoint()
    time.sleep(0.3)
    stop.set()
    t.join(10)
    st = agent_status(app.dir)
    log("  %d load writes acknowledged before the checkpoint (generation %d); %s "
        "checkpoints, last pause %s us, failures %s" %
        (before, gen, st["checkpoints"], st["last_pause_us"], st["failures"]))
    if st["failed_in_row"] != "0":
        raise TestFailure("the agent cannot checkpoint %s: %s" % (name, st["last_error"]))
    app.kill()
    app.restore()
    app.wait_port(30)
    client.reconnect()
    for i in range(50):
        client.check("k%d" % i, "v%d" % i)
    for i in acked[:before]:
        client.check("load%d" % i, str(i))
    for i in range(50, 60):
        client.write("k%d" % i, "v%d" % i)
        client.check("k%d" % i, "v%d" % i)
    time.sleep(0.5)
    st = agent_status(app.dir)
    if st["failed_in_row"] != "0" or int(st["checkpoints"]) < 1:
        raise TestFailure("the restored %s is not checkpointed: %r" % (name, st))
    log("  restored: every acknowledged write reads back, new writes work; the restored "
        "agent took %s checkpoints" % st["checkpoints"])


def run(h, name, build_root):
    want, msg = documented(name)
    pkgs, exe, args = PROGRAMS[name]
    root = fetch(build_root, pkgs)
    if root is None:
        return SKIP
    port = free_port()
    work = h.mkdtemp("work")
    env = {"LD_LIBRARY_PATH": os.path.join(root, LIB)}
    app = Program(h, name, os.path.join(root, exe), args(work, port), port, env)
    client = CLIENTS[name](port)
    try:
        app.run()
        client.connect()
        exercise(h, name, app, client)
        got, why = "works", ""
    except TestFailure as e:
        # checksync said no, by name; anything else is a program it broke
        why = str(e)
        got = "refused" if REFUSED_RX.search(why) else "broken"
    log("%s: %s (docs/compatibility.md says %s%s)" % (name, got, want, ": " + msg if msg else ""))
    if got != want:
        raise TestFailure("%s %s, but docs/compatibility.md says %s: %s" %
                          (name, got, want, why or "update the table"))
    if got == "refused" and msg not in why:
        raise TestFailure("%s is refused with %r; docs/compatibility.md quotes %r" %
                          (name, why, msg))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-root", required=True)
    ap.add_argument("program", choices=sorted(PROGRAMS))
    args = ap.parse_args()
    args.workloads = os.path.join(args.build_root, "tests", "cr")
    h = Harness(args, "compat-" + args.program)
    status = 1
    try:
        if not h.check_ready():
            return SKIP
        status = run(h, args.program, os.path.abspath(args.build_root))
        if status == 0:
            log("PASS %s" % args.program)
    except TestFailure as e:
        log("FAIL %s: %s" % (args.program, e))
    finally:
        h.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
