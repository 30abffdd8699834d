#!/usr/bin/env python3
"""A kvserver client for the failover scenarios (stdlib only).

It runs inside a host's network namespace (`ip netns exec NS kvclient.py ...`),
so it reaches the kvservers the way a real client would. Times are
CLOCK_MONOTONIC seconds, which every namespace shares with the test.

    kvclient.py write ACKS PREFIX URL...   PUTs PREFIX-<thread>-<n> = value(key)
        from --threads writers, forever (until SIGTERM); a write that fails
        goes to the next URL. Every key whose PUT answered 200 is appended
        to ACKS as "key url time", so only acknowledged writes are listed.
    kvclient.py check ACKS URL             GETs every key of ACKS; prints the
        missing or wrong ones and exits 1 if there are any.
    kvclient.py probe OUT URL              PUTs a key every --period s, each
        in its own thread (a request that hangs does not delay the next
        sample), and appends "t0 t1 status" per answer to OUT; status is the
        HTTP status or 0 (no answer: refused, reset, timeout).
    kvclient.py first URL                  GETs URL until it answers 200 and
        prints the time at which that answer arrived.
"""
import argparse
import http.client
import signal
import sys
import threading
import time
import urllib.parse

stop = threading.Event()


def value(key):
    return ("value-of-" + key).encode()


class Conn:
    """One keep-alive HTTP connection to host:port, remade after an error."""

    def __init__(self, url, timeout):
        u = urllib.parse.urlsplit(url)
        self.url, self.host, self.port, self.timeout = url, u.hostname, u.port, timeout
        self.c = None

    def request(self, method, path, body=None):
        """(status, body), or (0, why) when no answer came."""
        try:
            if self.c is None:
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.c.request(method, path, body=body)
            r = self.c.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            return 0, str(e).encode()

    def close(self):
        if self.c:
            self.c.close()
        self.c = None


def writer(args, index, lock, out):
    conns = [Conn(u, args.timeout) for u in args.urls]
    at, n = 0, 0
    while not stop.is_set():
        key = "%s-%d-%d" % (args.prefix, index, n)
        n += 1
        status, _ = conns[at].request("PUT", "/k/" + key, value(key))
        if status == 200:
            with lock:
                out.write("%s %s %.6f\n" % (key, args.urls[at], time.monotonic()))
                out.flush()
        else:
            at = (at + 1) % len(conns)
            time.sleep(0.01)


def cmd_write(args):
    lock = threading.Lock()
    with open(args.acks, "a") as out:
        ts = [threading.Thread(target=writer, args=(args, i, lock, out), daemon=True)
              for i in range(args.threads)]
        for t in ts:
            t.start()
        stop.wait()
        for t in ts:
            t.join(args.timeout + 1)
    return 0


def cmd_check(args):
    conn = Conn(args.urls[0], args.timeout)
    bad = []
    keys = [line.split()[0] for line in open(args.acks) if line.strip()]
    for key in keys:
        for _ in range(3):  # a connection the server closed is retried
            status, body = conn.request("GET", "/k/" + key)
            if status:
                break
        if status != 200 or body != value(key):
            bad.append("%s: %d %r" % (key, status, body[:60]))
    print("checked %d acknowledged keys on %s: %d missing or wrong" % (
        len(keys), args.urls[0], len(bad)))
    for b in bad[:20]:
        print("  " + b)
    return 1 if bad else 0


def cmd_probe(args):
    lock = threading.Lock()
    out = open(args.acks, "a")
    conn_url = args.urls[0]
    n = [0]

    def one(i):
        t0 = time.monotonic()
        status, _ = Conn(conn_url, args.timeout).request("PUT", "/k/probe-%d" % i, b"p")
        t1 = time.monotonic()
        with lock:
            out.write("%.6f %.6f %d\n" % (t0, t1, status))
            out.flush()

    while not stop.is_set():
        threading.Thread(target=one, args=(n[0],), daemon=True).start()
        n[0] += 1
        stop.wait(args.period)
    time.sleep(0.1)
    return 0


def cmd_first(args):
    conn = Conn(args.urls[0], 0.5)
    while not stop.is_set():
        status, _ = conn.request("GET", "/stats/checksync")
        if status == 200:
            print("%.6f" % time.monotonic())
            return 0
        conn.close()
        time.sleep(0.005)
    return 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["write", "check", "probe", "first"])
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--timeout", type=float, default=5)
    p.add_argument("--period", type=float, default=0.02)
    p.add_argument("rest", nargs="+")
    args = p.parse_args()
    if args.mode == "write":
        args.acks, args.prefix, args.urls = args.rest[0], args.rest[1], args.rest[2:]
    elif args.mode == "first":
        args.urls = args.rest
    else:
        args.acks, args.urls = args.rest[0], args.rest[1:]
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    fn = {"write": cmd_write, "check": cmd_check, "probe": cmd_probe, "first": cmd_first}
    sys.exit(fn[args.mode](args))


if __name__ == "__main__":
    main()
