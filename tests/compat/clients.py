"""Clients of the compatibility suite's programs, each speaking the
program's own protocol (stdlib only): write(key, value) stores something
and returns once the program acknowledged it; check(key, value) reads it
back and raises TestFailure when it differs."""

import json
import socket
import urllib.parse
import urllib.request

from crlib import TestFailure


class LineClient:
    """A text protocol over one TCP connection."""

    def __init__(self, port):
        self.port = port
        self.sock = None
        self.buf = b""

    def connect(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.buf = b""

    def reconnect(self):
        if self.sock:
            self.sock.close()
        self.connect()

    def clone(self):
        c = type(self)(self.port)
        c.connect()
        return c

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf.split(b"\r\n", 1)
        return out.decode()

    def exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n + 2:]
        return out.decode()

    def ask(self, text):
        self.sock.sendall(text.encode())
        return self.line()

    def expect(self, what, got, want):
        if got != want:
            raise TestFailure("%s: got %r, want %r" % (what, got, want))


class Redis(LineClient):
    def write(self, k, v):
        self.expect("SET " + k, self.ask("SET %s %s\r\n" % (k, v)), "+OK")

    def check(self, k, v):
        head = self.ask("GET %s\r\n" % k)
        self.expect("GET " + k, self.exact(int(head[1:])) if head.startswith("$") and
                    head != "$-1" else head, v)


class Memcached(LineClient):
    def write(self, k, v):
        self.expect("set " + k, self.ask("set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v)), "STORED")

    def check(self, k, v):
        head = self.ask("get %s\r\n" % k)
        got = self.exact(int(head.split()[3])) if head.startswith("VALUE") else head
        if got != "END":
            self.expect("get end", self.line(), "END")
        self.expect("get " + k, got, v)


class Beanstalkd(LineClient):
    """Jobs in a tube per key; the body is the value."""

    def write(self, k, v):
        self.expect("use", self.ask("use %s\r\n" % k), "USING " + k)
        r = self.ask("put 0 0 600 %d\r\n%s\r\n" % (len(v), v))
        if not r.startswith("INSERTED "):
            raise TestFailure("put in tube %s: %r" % (k, r))

    def check(self, k, v):
        self.expect("use", self.ask("use %s\r\n" % k), "USING " + k)
        head = self.ask("peek-ready\r\n")
        got = self.exact(int(head.split()[2])) if head.startswith("FOUND") else head
        self.expect("peek-ready in tube " + k, got, v)


class Http:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port

    def connect(self):
        pass

    reconnect = connect

    def clone(self):
        return type(self)(int(self.base.rsplit(":", 1)[1]))

    def call(self, method, path, body=None, ctype="text/plain"):
        req = urllib.request.Request(self.base + path, data=body, method=method,
                                     headers={"Content-Type": ctype})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()


class Nginx(Http):
    """nginx keeps no data: its state is the request counter of stub_status,
    which must go on from where it was."""

    def __init__(self, port):
        super().__init__(port)
        self.seen = 0

    def requests(self):
        _, text = self.call("GET", "/status")
        return int(text.split("\n")[2].split()[2])

    def write(self, k, v):
        self.call("GET", "/" + k)
        self.seen = max(self.seen, self.requests())

    def check(self, k, v):
        n = self.requests()
        if n < self.seen:
            raise TestFailure("nginx counts %d requests, %d were counted before" % (n, self.seen))


class Pushgateway(Http):
    """A metric group per key; a metric's value is a number: the digits of v."""

    def write(self, k, v):
        self.call("PUT", "/metrics/job/%s" % k, ("m_%s %s\n" % (k, number(v))).encode())

    def check(self, k, v):
        _, text = self.call("GET", "/metrics")
        if 'm_%s{instance="",job="%s"} %s' % (k, k, number(v)) not in text:
            raise TestFailure("pushgateway lost metric m_%s=%s" % (k, number(v)))


def number(v):
    return int("".join(c for c in v if c.isdigit()) or "0")


class Etcd(Http):
    """Keys through etcd's v2 HTTP API (--enable-v2)."""

    def write(self, k, v):
        status, _ = self.call("PUT", "/v2/keys/" + k, urllib.parse.urlencode({"value": v})
                              .encode(), "application/x-www-form-urlencoded")
        if status not in (200, 201):
            raise TestFailure("PUT %s: HTTP %d" % (k, status))

    def check(self, k, v):
        _, text = self.call("GET", "/v2/keys/" + k)
        got = json.loads(text).get("node", {}).get("value")
        if got != v:
            raise TestFailure("etcd key %s: %r, want %r" % (k, got, v))


CLIENTS = {
    "redis": Redis,
    "memcached": Memcached,
    "beanstalkd": Beanstalkd,
    "nginx": Nginx,
    "pushgateway": Pushgateway,
    "etcd": Etcd,
}
