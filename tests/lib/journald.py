"""A private systemd-journald for tests (stdlib only).

Programs find journald at the fixed path /run/systemd/journal/socket, so a
private journald needs a private mount namespace: there a tmpfs covers
/run/systemd, a temporary directory covers /run/log (where a volatile
journal is written), and a test journald.conf covers the system one. Nothing
outside the namespace changes, and the mounts vanish with the namespace, so
even a killed test leaves nothing behind; journald itself dies with the test
process (PR_SET_PDEATHSIG) and is killed in stop()/__exit__.

Usage, in a python test harness:

    import sys, os
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../lib"))  # adjust
    import journald

    journald.reexec_in_mount_namespace()   # first line of main(): re-runs
                                           # this script under `unshare -m`
    with journald.Journald() as j:
        # Every process started from here (also through `ip netns exec`,
        # which copies our mounts) logs into j: sd_journal_send, syslog(3)
        # and stdout streams all reach it.
        subprocess.run([...])
        entries = j.wait_for("CHECKSYNC_EVENT=promoted", count=1, timeout=20)
        entries[0]["CHECKSYNC_TERM"]            # fields as strings
        j.query("CHECKSYNC_EVENT=peer_up")       # what is there now
        j.dir                                    # for `journalctl -D`

Journald writes asynchronously: use wait_for() (polls journalctl until the
entries are there or the timeout passes), never a sleep. Call
j.print_tail() in a failure path to show what was logged. Needs root.
"""
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

JOURNALD = "/lib/systemd/systemd-journald"
_MARK = "CS_TEST_PRIVATE_MNTNS"
_CONF = """[Journal]
Storage=volatile
RuntimeMaxUse=64M
RateLimitBurst=0
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
Audit=no
"""


def _mnt_ns():
    return str(os.stat("/proc/self/ns/mnt").st_ino)


def in_private_mount_namespace():
    """True in the namespace made by reexec_in_mount_namespace (the parent
    records its namespace in the environment; /proc/1 may not be readable)."""
    parent = os.environ.get(_MARK)
    return parent is not None and parent != _mnt_ns()


def reexec_in_mount_namespace():
    """Re-executes the running script in a new mount namespace (once)."""
    if in_private_mount_namespace():
        return
    env = dict(os.environ, **{_MARK: _mnt_ns()})
    argv = ["unshare", "--mount", "--propagation", "private", "--",
            sys.executable, os.path.abspath(sys.argv[0]), *sys.argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe("unshare", argv, env)


def _die_with_parent():
    # PR_SET_PDEATHSIG = 1: journald gets SIGKILL when the test process dies.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def _mount(*args):
    subprocess.run(["mount", *args], check=True)


class Journald:
    def __init__(self):
        self.tmp = None
        self.proc = None
        self.mounts = []
        self.dir = None

    def start(self, timeout=10):
        if not in_private_mount_namespace():
            raise RuntimeError("journald.Journald needs a private mount namespace: "
                               "call journald.reexec_in_mount_namespace() first")
        self.tmp = tempfile.mkdtemp(prefix="cs-journald-")
        self.dir = os.path.join(self.tmp, "log", "journal")
        os.makedirs(self.dir)
        conf = os.path.join(self.tmp, "journald.conf")
        with open(conf, "w") as f:
            f.write(_CONF)
        try:
            _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run/systemd")
            self.mounts.append("/run/systemd")
            os.mkdir("/run/systemd/journal")
            for src, dst in ((os.path.join(self.tmp, "log"), "/run/log"),
                             (conf, "/etc/systemd/journald.conf")):
                _mount("--bind", src, dst)
                self.mounts.append(dst)
            env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
            self.proc = subprocess.Popen([JOURNALD], env=env, preexec_fn=_die_with_parent,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            while not os.path.exists("/run/systemd/journal/socket"):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("systemd-journald did not start (exit %s)" % self.proc.poll())
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", m], check=False)
        self.mounts = []
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def query(self, *matches):
        """Entries matching journalctl MATCHES ("FIELD=value"), oldest first,
        as dicts of strings."""
        r = subprocess.run(["journalctl", "-D", self.dir, "--no-pager", "-o", "json", *matches],
                           capture_output=True, text=True, timeout=30)
        return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]

    def wait_for(self, *matches, count=1, timeout=20):
        """Polls until at least COUNT entries match; returns them (maybe fewer
        after TIMEOUT seconds: the caller asserts)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.query(*matches)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def print_tail(self, n=50, file=sys.stderr):
        r = subprocess.run(["journalctl", "-D", self.dir, "--no-pager", "-n", str(n)],
                           capture_output=True, text=True, timeout=30)
        print(r.stdout, file=file)
