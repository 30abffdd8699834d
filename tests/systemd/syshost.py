"""Test hosts that boot a real systemd (stdlib only).

Each host is systemd 252 as PID 1 of its own PID, mount, UTS, IPC, network
and cgroup namespaces, booted on its own root: an overlay whose lower layer
is the machine's / and whose upper layer is a tmpfs of the test, with fresh
tmpfs /tmp, /var/tmp and /run (boot.py builds that root and refuses to
start systemd unless it is in place: systemd-tmpfiles empties /tmp of
whatever root it boots on). checksync is installed into each root with
`meson install --destdir` of the build under test; the tests then work
the way operators do, through `nsenter` into the host: `systemctl`,
`journalctl`, `checksyncctl`.

Where things live, so that nothing outlives the test even when it is
SIGKILLed:
- The test runs in its own mount and network namespaces
  (reexec_private()). The hosts' bridge is in that network namespace; the
  overlays, their tmpfs and the hosts' mounts are in these mount
  namespaces. Everything of it disappears with the processes.
- Every host's PID 1 gets SIGKILL when the test dies (PR_SET_PDEATHSIG on
  `unshare`, --kill-child for the PID 1 it forks), and the kernel kills
  every process of a PID namespace whose PID 1 dies.
- Left on the machine by a SIGKILLed test: an empty directory
  /tmp/cs-systemd-PID and empty cgroups cs-systemd-PID in the cgroup2
  hierarchy; the next run removes those of dead PIDs (sweep_stale()).

    with Site(build_dir, [("alpha", False), ("beta", False), ("gamma", True)]) as site:
        site.boot()                               # all hosts, in parallel
        site["alpha"].run("systemctl", "start", "checksyncd")
        site["alpha"].journal("CHECKSYNC_EVENT=promoted")
"""
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
from harness import SUBNET, PORT, sh, wait_until  # noqa: E402

_MARK = "CS_SYSTEMD_TEST_NS"
HOST_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "TERM": "dumb"}
CANARY_AGE = 40 * 86400  # older than any age in tmpfiles.d: a cleanup would take it


def reexec_private():
    """Re-executes the running script in new mount and network namespaces
    (once): the bridge and every mount of the test live and die there."""
    parent = os.environ.get(_MARK)
    if parent is not None and parent != str(os.stat("/proc/self/ns/mnt").st_ino):
        return
    env = dict(os.environ, **{_MARK: str(os.stat("/proc/self/ns/mnt").st_ino)})
    sys.stdout.flush()
    os.execvpe("unshare", ["unshare", "--mount", "--net", "--propagation", "private", "--",
                           sys.executable, os.path.abspath(sys.argv[0]), *sys.argv[1:]], env)


def cgroup2_root():
    """Where the machine's cgroup2 hierarchy is mounted (pure or hybrid)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ")
            if right.split()[0] == "cgroup2":
                return left.split()[4]
    raise RuntimeError("no cgroup2 hierarchy is mounted")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def remove_cgroup(path):
    """rmdir of a cgroup tree, leaves first (a cgroup is removable once its
    processes are gone, which may take a moment after a PID 1 died)."""
    def attempt():
        for d, _, _ in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError:
                return False
        return True
    if os.path.isdir(path):
        wait_until("cgroup %s to empty" % path, attempt, 10, step=0.1)


def sweep_stale():
    """What a SIGKILLed earlier run left: an empty directory, the canary,
    empty cgroups."""
    for d in glob.glob("/tmp/cs-systemd-*") + glob.glob(cgroup2_root() + "/cs-systemd-*"):
        tail = d.rsplit("-", 1)[1]
        if tail.isdigit() and not pid_alive(int(tail)):
            if d.startswith("/tmp/"):
                with contextlib.suppress(OSError):
                    (os.rmdir if os.path.isdir(d) else os.unlink)(d)
            else:
                remove_cgroup(d)


def _die_with_parent():
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


class Host:
    def __init__(self, site, index, name, witness):
        self.site, self.index, self.name, self.witness = site, index, name, witness
        self.address = "%s.%d" % (SUBNET, index + 1)
        self.dir = os.path.join(site.base, name)
        self.root = os.path.join(self.dir, "root")
        self.upper = os.path.join(self.dir, "upper")
        self.cgroup = os.path.join(site.cgroup, name)
        self.unshare = None
        self.pid = None  # PID 1 of the host, as the machine sees it
        self.veth = "csv%d%d" % (os.getpid() % 100000, index)

    # ---- files of the host's root ----

    def path(self, p):
        return os.path.join(self.root, p.lstrip("/"))

    def write(self, p, text, mode=0o644):
        full = self.path(p)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
        os.chmod(full, mode)

    def prepare(self):
        """The overlay, checksync installed into it, and what makes the
        machine's root a host of its own (name, machine id, no fstab)."""
        for d in ("upper", "work", "root"):
            os.makedirs(os.path.join(self.dir, d))
        sh("mount", "-t", "overlay", "overlay", "-o", "lowerdir=/,upperdir=%s,workdir=%s" % (
            self.upper, os.path.join(self.dir, "work")), self.root)
        # tar, not cp: /lib of the root is a link to usr/lib (merged /usr).
        sh("sh", "-c", 'tar -C "$0" -cf - . | tar -C "$1" -xf - --keep-directory-symlink',
           self.site.stage, self.root)
        self.write("/etc/hostname", self.name + "\n")
        self.write("/etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
        self.write("/etc/fstab", "# %s: nothing to mount\n" % self.name)
        # journald keeps the host's journal in its private /run.
        self.write("/etc/systemd/journald.conf.d/cs-test.conf",
                   "[Journal]\nStorage=volatile\nRateLimitBurst=0\n")
        # The clock is the machine's (CAP_SYS_TIME stays, see boot.py).
        for unit in ("systemd-timesyncd.service", "systemd-time-wait-sync.service"):
            link = self.path("/etc/systemd/system/" + unit)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
            os.symlink("/dev/null", link)

    # ---- boot and stop ----

    def launch(self, machine_dev):
        remove_cgroup(self.cgroup)  # of an earlier boot of this host
        os.makedirs(self.cgroup)
        cgroup_procs = os.path.join(self.cgroup, "cgroup.procs")

        def child():
            _die_with_parent()
            with open(cgroup_procs, "w") as f:
                f.write("0")
        console = open(os.path.join(self.dir, "console.log"), "w")
        self.unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--net", "--cgroup",
             "--propagation", "private", "--kill-child=SIGKILL", "--",
             sys.executable, os.path.join(HERE, "boot.py"), self.root, self.upper, machine_dev,
             *self.site.ro_binds, "--", "/lib/systemd/systemd", "--system", "--unit=basic.target",
             "--show-status=no"],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            preexec_fn=child, env={"PATH": HOST_ENV["PATH"]})
        console.close()
        self.pid = int(wait_until("%s's PID 1" % self.name, self._pid1, 10))

    def _pid1(self):
        if self.unshare.poll() is not None:
            raise AssertionError("%s did not boot (exit %s):\n%s" % (
                self.name, self.unshare.returncode, self.console()))
        with contextlib.suppress(OSError):
            with open("/proc/%d/task/%d/children" % (self.unshare.pid, self.unshare.pid)) as f:
                children = f.read().split()
            return children[0] if children else None
        return None

    def plug(self, bridge):
        """eth0 of the host on the test's bridge, lo up."""
        sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0",
           "netns", str(self.pid))
        sh("ip", "link", "set", self.veth, "master", bridge, "up")
        # The network namespace only: the host may still be making its root.
        ip = ("nsenter", "-t", str(self.pid), "-n", "ip")
        sh(*ip, "addr", "add", self.address + "/24", "dev", "eth0")
        sh(*ip, "link", "set", "eth0", "up")
        sh(*ip, "link", "set", "lo", "up")

    def wait_booted(self, timeout=60):
        # is-system-running says "offline" before PID 1 has made its socket.
        wait_until("%s's systemd to listen" % self.name, lambda: self.run(
            "test", "-S", "/run/systemd/private", check=False).returncode == 0, timeout, step=0.05)
        r = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=timeout)
        state = r.stdout.strip()
        assert state in ("running", "degraded"), "%s: system %s\n%s" % (
            self.name, state, self.console())
        if state == "degraded":
            print("%s: failed units (not ours): %s" % (self.name, self.run(
                "systemctl", "--failed", "--plain", "--no-legend").stdout.split()[0::4]))
        return state

    def alive(self):
        return self.unshare is not None and self.unshare.poll() is None

    def power_off(self, timeout=30):
        """An orderly shutdown: systemd stops every unit and exits."""
        if self.alive():
            os.kill(self.pid, signal.SIGRTMIN + 4)
            try:
                self.unshare.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print("%s: no shutdown within %d s, killed" % (self.name, timeout))
                self.crash()

    def crash(self):
        """The host dies at once: PID 1 and with it every process of the host."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.unshare.wait(timeout=30)

    def cleanup(self):
        self.crash()
        if os.path.ismount(self.root):
            sh("umount", "-l", self.root, check=False)
        remove_cgroup(self.cgroup)

    def console(self):
        with contextlib.suppress(OSError):
            return open(os.path.join(self.dir, "console.log")).read()[-3000:]
        return ""

    # ---- working in the host ----

    def run(self, *cmd, check=True, timeout=60, input=None):
        """cmd in every namespace and the root of the host, as root."""
        r = subprocess.run(["nsenter", "-t", str(self.pid), "-m", "-u", "-i", "-n", "-p", "-C",
                            "-r", "-w", "--", *cmd], capture_output=True, text=True,
                           timeout=timeout, env=HOST_ENV, input=input)
        if check and r.returncode != 0:
            raise AssertionError("%s: %s exited %d:\n%s%s" % (
                self.name, " ".join(cmd), r.returncode, r.stdout, r.stderr))
        return r

    def popen(self, *cmd, **kw):
        return self.site.track(subprocess.Popen(
            ["nsenter", "-t", str(self.pid), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w",
             "--", *cmd], env=HOST_ENV, preexec_fn=_die_with_parent, **kw))

    def popen_on_network(self, *cmd, **kw):
        """cmd of the test in the host's network namespace only: it reaches
        the cluster as this host would, and signals reach it directly."""
        return self.site.track(subprocess.Popen(
            ["nsenter", "-t", str(self.pid), "-n", "--", *cmd],
            preexec_fn=_die_with_parent, **kw))

    def systemctl(self, *args, check=True):
        return self.run("systemctl", *args, check=check, timeout=90)

    def show(self, prop, unit="checksyncd"):
        return self.systemctl("show", "-P", prop, unit).stdout.strip()

    def journal(self, *matches):
        """journalctl -o json MATCHES in the host: entries, oldest first."""
        r = self.run("journalctl", "--no-pager", "-o", "json", *matches, check=False)
        return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]

    def wait_journal(self, *matches, count=1, timeout=30):
        return wait_until("%d entries %s in %s's journal" % (count, " ".join(matches), self.name),
                          lambda: (lambda e: e if len(e) >= count else None)(
                              self.journal(*matches)), timeout, step=0.2)

    def events(self, kind):
        return self.journal("-u", "checksyncd", "CHECKSYNC_EVENT=" + kind)

    def status(self):
        """checksyncctl status --json in the host, or None if it does not answer."""
        r = self.run("checksyncctl", "status", "--json", check=False, timeout=30)
        with contextlib.suppress(ValueError):
            return json.loads(r.stdout) if r.returncode == 0 else None
        return None

    def role(self):
        s = self.status()
        return (s["role"], s["term"]) if s else (None, None)


class Site:
    """The machine room: hosts, their bridge, the installed tree, a CA."""

    def __init__(self, build, nodes, meson_install=True):
        """meson_install=False: the hosts get no checksync files (a test
        installs the package into them)."""
        self.build = build
        self.meson_install = meson_install
        self.ro_binds = []
        self.base = "/tmp/cs-systemd-%d" % os.getpid()
        self.cgroup = os.path.join(cgroup2_root(), "cs-systemd-%d" % os.getpid())
        self.stage = os.path.join(self.base, "stage")
        self.pki = os.path.join(self.base, "pki")
        self.canary = "/tmp/cs-systemd-canary-%d" % os.getpid()
        self.bridge = "csbr0"
        self.hosts = [Host(self, i, n, w) for i, (n, w) in enumerate(nodes)]
        self.by_name = {h.name: h for h in self.hosts}
        self.procs = []  # started by the test: stopped in cleanup()

    def track(self, proc):
        self.procs.append(proc)
        return proc

    def __getitem__(self, name):
        return self.by_name[name]

    def build_file(self, rel):
        return os.path.join(self.build, rel)

    def host_build(self):
        """The build tree as the hosts see it: at its own path, unless that
        is under a directory each host gets a fresh tmpfs on (a CI checkout
        in /tmp), then at /opt/checksync-build."""
        real = os.path.realpath(self.build)
        if any(real == d or real.startswith(d + "/") for d in ("/tmp", "/var/tmp", "/run")):
            return "/opt/checksync-build"
        return real

    def host_build_file(self, rel):
        return os.path.join(self.host_build(), rel)

    def __enter__(self):
        sweep_stale()
        try:
            self.setup()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def setup(self):
        # The canary: a file in the machine's /tmp old enough for any cleanup.
        with open(self.canary, "w") as f:
            f.write("must survive the test's systemd hosts\n")
        os.utime(self.canary, (time.time() - CANARY_AGE,) * 2)
        os.mkdir(self.base)
        sh("mount", "-t", "tmpfs", "-o", "mode=0700", "cs-systemd", self.base)
        os.mkdir(self.cgroup)
        if self.meson_install:
            self.install()
        else:
            os.makedirs(self.stage)
        self.make_certs()
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "link", "set", self.bridge, "up")
        for h in self.hosts:
            h.prepare()
            if self.meson_install:
                self.install_certs(h)

    def install(self):
        """`meson install --destdir` of the build under test, once; each
        host copies it. A build configured for another prefix than /usr
        (the default /usr/local) also gets /usr/sbin/checksyncd, the path
        the unit names, as a link."""
        sh("meson", "install", "-C", self.build, "--destdir", self.stage, "--no-rebuild",
           "--quiet", timeout=300)
        opts = {o["name"]: o["value"] for o in json.loads(
            sh("meson", "introspect", self.build, "--buildoptions").stdout)}
        prefix = opts["prefix"]
        if prefix != "/usr":
            os.makedirs(self.stage + "/usr/sbin", exist_ok=True)
            os.symlink(os.path.join(prefix, opts["sbindir"], "checksyncd"),
                       self.stage + "/usr/sbin/checksyncd")
        # What the app maps comes from outside the overlay (boot.py says
        # why): the system's libraries, the build tree, the installed library.
        libdir = os.path.join(prefix, opts["libdir"])
        self.ro_binds = ["--ro", "/usr/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                         "--ro", os.path.realpath(self.build), self.host_build()]
        if libdir != "/usr/lib/x86_64-linux-gnu":
            self.ro_binds += ["--ro", self.stage + libdir, libdir]
        etc = os.path.join(prefix, opts["sysconfdir"])
        if etc != "/etc":  # the example hooks where the configuration names them
            shutil.copytree(self.stage + etc + "/checksync", self.stage + "/etc/checksync")

    def make_certs(self):
        ctl = self.build_file("daemon/checksyncctl")
        sh(ctl, "certs", "init", self.pki)
        for h in self.hosts:
            sh(ctl, "certs", "issue", self.pki, h.name)

    def install_certs(self, h):
        os.makedirs(h.path("/etc/checksync"), exist_ok=True)
        for name, mode in (("ca.pem", 0o644), (h.name + ".pem", 0o644), (h.name + ".key", 0o600)):
            dst = h.path("/etc/checksync/" + name)
            shutil.copy(os.path.join(self.pki, name), dst)
            os.chmod(dst, mode)

    def boot(self, hosts=None):
        """Boots the hosts (all by default) in parallel, as a rack powers on."""
        hosts = [self[n] for n in hosts] if hosts else self.hosts
        machine_dev = sh("mountpoint", "-d", "/").stdout.strip()
        for h in hosts:
            h.launch(machine_dev)
            h.plug(self.bridge)
        for h in hosts:
            h.wait_booted()
            self.check_isolation(h)

    def check_isolation(self, h):
        """tmpfiles ran in the host (its /tmp was emptied) and the machine's
        /tmp was not touched."""
        r = h.run("test", "-e", "/tmp/cs-doomed", check=False)
        assert r.returncode != 0, "%s: systemd-tmpfiles did not clean the host's /tmp" % h.name
        assert os.path.exists(self.canary), "the machine's /tmp lost %s" % self.canary

    def cleanup(self):
        problems = []
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for h in self.hosts:
            try:
                h.cleanup()
            except Exception as e:  # go on: the rest must be cleaned up too
                problems.append("%s: %s" % (h.name, e))
        sh("ip", "link", "del", self.bridge, check=False)
        if os.path.ismount(self.base):
            sh("umount", "-l", self.base, check=False)
        with contextlib.suppress(OSError):
            os.rmdir(self.base)
        with contextlib.suppress(Exception):
            remove_cgroup(self.cgroup)
        survived = os.path.exists(self.canary)
        with contextlib.suppress(OSError):
            os.unlink(self.canary)
        assert survived, "the machine's /tmp lost the canary %s" % self.canary
        assert not problems, "cleanup: %s" % problems
