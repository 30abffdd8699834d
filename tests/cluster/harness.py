"""A checksync cluster in network namespaces, for scenario tests (stdlib only).

Every host is a network namespace with one veth link to a "switch"
namespace that holds a bridge. Nothing is created in the host's own network
namespace, and the namespaces are pinned by mounts of the test's private
mount namespace (journald.reexec_in_mount_namespace), so even a test that is
SIGKILLed leaves no interface behind; a normal run also removes everything
explicitly in Cluster.stop(). Names carry the test's pid, so parallel runs
do not collide.

The daemons log into a private systemd-journald (tests/lib/journald.py);
the test reads events back with journalctl. Their status is read straight
from the control socket (the same JSON that `checksyncctl status --json`
prints), which works even when a host's network is cut.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import journald  # noqa: E402

SUBNET = "10.77.0"
PORT = 7400
METRICS_PORT = 9477  # every host serves metrics on its own loopback


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


def wait_until(what, cond, timeout, step=0.02):
    """Polls cond() until it returns something true; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(step)


class Certs:
    """A CA and node certificates made with the openssl CLI."""

    def __init__(self, d):
        self.d = d
        os.makedirs(d, exist_ok=True)

    def ca(self, name):
        key, pem = self.path(name, "key"), self.path(name, "pem")
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-keyout", key, "-out", pem, "-days", "2", "-subj", "/CN=" + name)
        return pem, key

    def node(self, file_name, cert_name, ca):
        """Certificate for cert_name (CN and DNS subjectAltName) signed by ca."""
        key, csr, pem = (self.path(file_name, e) for e in ("key", "csr", "pem"))
        sh("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + cert_name,
           "-addext", "subjectAltName=DNS:" + cert_name)
        sh("openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
           "-CAcreateserial", "-out", pem, "-days", "2", "-copy_extensions", "copy")
        return pem, key

    def path(self, name, ext):
        return os.path.join(self.d, "%s.%s" % (name, ext))


class Node:
    def __init__(self, cluster, index, name, witness):
        self.cluster, self.index, self.name, self.witness = cluster, index, name, witness
        self.ns = "cs%d-%s" % (os.getpid(), name)
        self.dir = os.path.join(cluster.tmp, name)
        self.address = "%s.%d" % (SUBNET, index + 1)
        self.config = os.path.join(self.dir, "checksync.json")
        self.socket = os.path.join(self.dir, "control.sock")
        self.proc = None
        self.sw_if = "cs%dv%d" % (os.getpid() % 100000, index)  # <= 15 characters

    def status(self):
        """The control socket's status answer, or None if it does not answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(self.socket)
                s.sendall(b'{"cmd":"status"}\n')
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        return None
                    buf += chunk
            a = json.loads(buf)
            return a if a.get("ok") else None
        except (OSError, ValueError):
            return None

    def role(self):
        s = self.status()
        return (s["role"], s["term"]) if s else (None, None)

    def ctl(self, *args):
        return sh(self.cluster.build_file("daemon/checksyncctl"), "-s", self.socket, *args,
                  check=False, timeout=90)


class Cluster:
    """nodes: [(name, witness)]. Heartbeats are fast so scenarios run fast."""

    def __init__(self, nodes, interval_ms=50, timeout_ms=600, drift_ms=100, fence_exit=None,
                 app=None, checkpoint=None):
        self.build = os.environ.get("CS_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
        self.tmp = tempfile.mkdtemp(prefix="cs-cluster-")
        self.nodes = [Node(self, i, n, w) for i, (n, w) in enumerate(nodes)]
        self.by_name = {n.name: n for n in self.nodes}
        self.timing = dict(interval_ms=interval_ms, timeout_ms=timeout_ms, drift_ms=drift_ms)
        self.fence_exit = fence_exit
        self.app, self.checkpoint = app, checkpoint  # config sections, if given
        self.switch = "cs%d-switch" % os.getpid()
        self.netns = []
        self.journal = None
        self.certs = Certs(os.path.join(self.tmp, "pki"))
        self.ca = None
        self.samples = []
        self._sampler = None
        self._stop_sampling = threading.Event()

    def __getitem__(self, name):
        return self.by_name[name]

    def build_file(self, rel):
        return os.path.join(self.build, rel)

    # ---- setup and teardown ----

    def start_infrastructure(self):
        self.journal = journald.Journald().start()
        self.ca = self.certs.ca("ca")
        sh("ip", "netns", "add", self.switch)
        self.netns.append(self.switch)
        sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        for n in self.nodes:
            os.makedirs(os.path.join(n.dir, "state"))
            sh("ip", "netns", "add", n.ns)
            self.netns.append(n.ns)
            sh("ip", "-n", self.switch, "link", "add", n.sw_if, "type", "veth",
               "peer", "name", "eth0", "netns", n.ns)
            sh("ip", "-n", self.switch, "link", "set", n.sw_if, "master", "br0", "up")
            sh("ip", "-n", n.ns, "addr", "add", n.address + "/24", "dev", "eth0")
            sh("ip", "-n", n.ns, "link", "set", "eth0", "up")
            sh("ip", "-n", n.ns, "link", "set", "lo", "up")
            self.certs.node(n.name, n.name, self.ca)
        self.write_hooks()
        for n in self.nodes:
            self.write_config(n)
        return self

    def write_hooks(self):
        notify = os.path.join(self.tmp, "notify.sh")
        with open(notify, "w") as f:
            f.write("#!/bin/sh\necho \"notify: $*\"\n")
        self.fence_log = os.path.join(self.tmp, "fence.log")
        fence = os.path.join(self.tmp, "fence.sh")
        with open(fence, "w") as f:
            f.write("#!/bin/sh\necho \"$*\" >> %s\necho \"fencing $1 for term $2\"\nexit %d\n"
                    % (self.fence_log, self.fence_exit or 0))
        os.chmod(notify, 0o755)
        os.chmod(fence, 0o755)
        self.hooks = {"notify": notify}
        if self.fence_exit is not None:
            self.hooks["fence"] = fence

    def config_of(self, n):
        return {
            "node": n.name,
            "cluster": "test",
            "listen": "0.0.0.0:%d" % PORT,
            "peers": [dict({"name": p.name, "address": "%s:%d" % (p.address, PORT)},
                           **({"witness": True} if p.witness else {})) for p in self.nodes],
            "tls": {"ca": self.ca[0], "cert": self.certs.path(n.name, "pem"),
                    "key": self.certs.path(n.name, "key")},
            "heartbeat": dict(self.timing),
            "state_dir": os.path.join(n.dir, "state"),
            "control_socket": n.socket,
            "hooks": dict(self.hooks, timeout_ms=5000),
            "metrics": {"listen": "127.0.0.1:%d" % METRICS_PORT},
            **({"app": self.app} if self.app else {}),
            **({"checkpoint": self.checkpoint} if self.checkpoint else {}),
        }

    def write_config(self, n, cfg=None):
        with open(n.config, "w") as f:
            json.dump(cfg or self.config_of(n), f, indent=2)

    def launch(self, name, env=None):
        n = self[name]
        log = open(os.path.join(n.dir, "stderr.log"), "a")
        n.proc = subprocess.Popen(
            ["ip", "netns", "exec", n.ns, self.build_file("daemon/checksyncd"),
             "-c", n.config, "--log-target", "journal"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            env=dict(os.environ, **dict({"CHECKSYNC_TOOL": self.build_file(
                "agent/tool/checksync")}, **(env or {}))))
        log.close()

    def listen_notify(self, name):
        """A NOTIFY_SOCKET for name's daemon, as systemd would give it; the
        messages pile up in the returned list. Pass the env to launch()."""
        n = self[name]
        path = os.path.join(n.dir, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(0.2)
        messages = []

        def loop():
            while not self._stop_sampling.is_set():
                try:
                    messages.append(sock.recv(4096).decode())
                except socket.timeout:
                    continue
                except OSError:
                    return
            sock.close()
        threading.Thread(target=loop, daemon=True).start()
        return messages, {"NOTIFY_SOCKET": path}

    def start(self, name, env=None):
        self.launch(name, env)
        wait_until("%s's control socket" % name, self[name].status, 10)

    def start_all(self):
        """Starts every daemon at (nearly) the same time, like a cluster boot."""
        for n in self.nodes:
            self.launch(n.name)
        for n in self.nodes:
            wait_until("%s's control socket" % n.name, n.status, 10)

    def cut(self, name):
        sh("ip", "-n", self[name].ns, "link", "set", "eth0", "down")

    def heal(self, name):
        n = self[name]
        sh("ip", "-n", n.ns, "link", "set", "eth0", "up")
        # Bringing a link down drops its routes; the address route comes back
        # by itself, nothing else to restore.

    def kill(self, name, sig=signal.SIGKILL):
        n = self[name]
        if n.proc and n.proc.poll() is None:
            n.proc.send_signal(sig)
            n.proc.wait(timeout=10)
            n.killed = sig == signal.SIGKILL

    def stop(self):
        """Stops everything; returns what went wrong with the daemons (a
        daemon that crashed, or did not exit 0 on SIGTERM: sanitizer reports
        end up here)."""
        self.stop_sampling()
        problems = []
        for n in self.nodes:
            try:
                self.kill(n.name, signal.SIGTERM)
            except subprocess.TimeoutExpired:
                self.kill(n.name, signal.SIGKILL)
                problems.append("%s did not stop on SIGTERM" % n.name)
            rc = n.proc.returncode if n.proc else 0
            if rc != 0 and not getattr(n, "killed", False):
                log = open(os.path.join(n.dir, "stderr.log")).read()[-4000:]
                problems.append("%s exited %s:\n%s" % (n.name, rc, log))
        for ns in reversed(self.netns):
            sh("ip", "netns", "del", ns, check=False)
        self.netns = []
        if self.journal:
            self.journal.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return problems

    # ---- observing ----

    def roles(self):
        return {n.name: n.role() for n in self.nodes}

    def converged(self, primary):
        """True when every running node agrees primary leads, in one term."""
        sts = [n.status() for n in self.nodes if n.proc and n.proc.poll() is None]
        if not sts or any(s is None for s in sts):
            return False
        terms = {s["term"] for s in sts}
        return (len(terms) == 1 and all(s.get("primary") == primary for s in sts)
                and sum(s["role"] == "primary" for s in sts) == 1)

    def start_sampling(self, period=0.02):
        """Samples every node's (role, term) every 20 ms in a thread."""
        def loop():
            while not self._stop_sampling.is_set():
                for n in self.nodes:
                    # The answer reflects some moment between t0 and t1.
                    t0 = time.monotonic()
                    role, term = n.role()
                    if role:
                        self.samples.append((t0, time.monotonic(), n.name, role, term))
                time.sleep(period)
        self._sampler = threading.Thread(target=loop, daemon=True)
        self._sampler.start()

    def stop_sampling(self):
        self._stop_sampling.set()
        if self._sampler:
            self._sampler.join(timeout=5)
            self._sampler = None

    def check_samples(self):
        """No two nodes ever primary in the same term; a node that was fenced
        in term T never claims primary again in a term <= T."""
        primary_of = {}
        fenced_in = {}
        for _, _, name, role, term in self.samples:
            if role == "primary":
                other = primary_of.setdefault(term, name)
                assert other == name, "%s and %s both primary in term %d" % (other, name, term)
                assert term > fenced_in.get(name, -1), \
                    "%s claims primary in term %d after being fenced in term %d" % (
                        name, term, fenced_in[name])
            if role == "fenced":
                fenced_in[name] = max(term, fenced_in.get(name, -1))
        return primary_of

    def print_journal(self, n=150, file=sys.stderr):
        """The daemons' last n entries (the kernel logs into this journal too)."""
        r = sh("journalctl", "-D", self.journal.dir, "--no-pager", "-o", "short-precise",
               "-n", str(n), "SYSLOG_IDENTIFIER=checksyncd", check=False, timeout=30)
        print(r.stdout, file=file)

    def first_sample(self, name, pred):
        """(t0, t1) of the first sample of name that satisfies pred."""
        for t0, t1, n, role, term in self.samples:
            if n == name and pred(role, term):
                return t0, t1
        return None

    def last_sample(self, name, pred):
        found = None
        for t0, t1, n, role, term in self.samples:
            if n == name and pred(role, term):
                found = (t0, t1)
        return found


def run(scenarios, enter=journald.reexec_in_mount_namespace):
    """main() of a scenario file: runs the scenario named by argv[1], in the
    namespaces enter() re-executes it in."""
    enter()
    if os.geteuid() != 0:
        print("SKIP: scenarios need root")
        sys.exit(77)
    name = sys.argv[1]
    fn = scenarios[name]
    print("scenario %s: %s" % (name, (fn.__doc__ or "").strip()))
    fn()
    print("scenario %s: ok" % name)
