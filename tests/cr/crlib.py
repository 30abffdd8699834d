"""Library of the checkpoint/restore test harness (stdlib only).

A Harness owns everything a test starts: processes (in their own sessions),
temporary directories, and the host pids of programs the checksync tool runs
or restores inside their own PID namespaces. Harness.cleanup() kills all of
them and removes the directories, whatever happened.

An App is one workload program under `checksync run`: it can be
checkpointed, SIGKILLed, restored (any number of times) and asked to verify
itself. Each step has a bounded wait and fails with a TestFailure whose text
names the step, the seed and the last lines of output.

The workloads' line protocol is described in wl_common.h.
"""

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import traceback

SKIP = 77


class Skipped(Exception):
    """Raised by a scenario when this machine lacks what it needs (named)."""


class TestFailure(Exception):
    pass


def log(msg):
    print(msg, flush=True)


class Proc:
    """A process the harness started, its stdout and stderr kept as lines."""

    def __init__(self, harness, name, argv, env, stdin=subprocess.DEVNULL):
        self.name = name
        self.argv = argv
        self.lines = []  # (stream, text, monotonic time)
        self.cond = threading.Condition()
        self.open_streams = 2
        log("+ " + " ".join(argv))
        self.p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, start_new_session=True)
        harness.procs.append(self)
        for stream, tag in ((self.p.stdout, "out"), (self.p.stderr, "err")):
            threading.Thread(target=self._reader, args=(stream, tag), daemon=True).start()

    def _reader(self, stream, tag):
        for raw in iter(stream.readline, b""):
            text = raw.decode(errors="replace").rstrip("\n")
            with self.cond:
                self.lines.append((tag, text, time.monotonic()))
                self.cond.notify_all()
        with self.cond:
            self.open_streams -= 1
            self.cond.notify_all()

    def find(self, pattern, start=0, stream="out"):
        """Index and match of the first line from start matching pattern, or None."""
        rx = re.compile(pattern)
        with self.cond:
            for i in range(start, len(self.lines)):
                tag, text, _ = self.lines[i]
                if stream in (None, tag):
                    m = rx.search(text)
                    if m:
                        return i, m
        return None

    def wait_line(self, pattern, timeout, what, start=0, stream="out"):
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        pos = start
        with self.cond:
            while True:
                while pos < len(self.lines):
                    tag, text, _ = self.lines[pos]
                    m = rx.search(text) if stream in (None, tag) else None
                    if m:
                        return pos, m
                    pos += 1
                left = deadline - time.monotonic()
                if self.open_streams == 0 or left <= 0:
                    why = "its output ended" if self.open_streams == 0 else \
                        "no such line within %.0f s" % timeout
                    rc = self.p.poll()
                    if rc is not None:
                        why += " (it exited with status %d)" % rc
                    raise TestFailure("%s: waiting for %s (/%s/): %s\n%s" %
                                      (self.name, what, pattern, why, self.tail()))
                self.cond.wait(min(left, 0.5))

    def last(self, pattern, stream="out"):
        rx = re.compile(pattern)
        with self.cond:
            for tag, text, _ in reversed(self.lines):
                if stream in (None, tag):
                    m = rx.search(text)
                    if m:
                        return m
        return None

    def output(self):
        with self.cond:
            return "\n".join(t for _, t, _ in self.lines)

    def count(self):
        with self.cond:
            return len(self.lines)

    def wait_exit(self, timeout, what):
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s: %s: still running after %.0f s\n%s" %
                              (self.name, what, timeout, self.tail()))
        # let the readers drain what the process wrote last
        with self.cond:
            end = time.monotonic() + 2
            while self.open_streams > 0 and time.monotonic() < end:
                self.cond.wait(0.1)
        return rc

    def tail(self, n=25):
        with self.cond:
            lines = self.lines[-n:]
        body = "\n".join("    [%s] %s" % (tag, text) for tag, text, _ in lines)
        return "  last output of %s (%s):\n%s" % (self.name, " ".join(self.argv), body or "    (none)")

    def kill(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                pass


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def read_environ(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def argv0(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def pid_ns(pid):
    try:
        return os.readlink("/proc/%d/ns/pid" % pid)
    except OSError:
        return None


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def snapshot_dir(path):
    """name -> (size, sha256) of every entry; sockets by type only."""
    snap = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        st = os.lstat(full)
        if os.path.isfile(full):
            h = hashlib.sha256()
            with open(full, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            snap[name] = (st.st_size, h.hexdigest()[:16])
        else:
            snap[name] = ("type %o" % (st.st_mode >> 12), "")
    return snap


def diff_snapshots(before, after):
    out = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            out.append("removed %s" % name)
        elif name not in before:
            out.append("added %s %s" % (name, after[name]))
        elif before[name] != after[name]:
            out.append("changed %s %s -> %s" % (name, before[name], after[name]))
    return out


IMAGE_RX = re.compile(r"^gen-(\d{20})\.img$")


def images(path):
    """[(generation, file path)] of the complete images in a directory, oldest first."""
    out = []
    for name in os.listdir(path):
        m = IMAGE_RX.match(name)
        if m:
            out.append((int(m.group(1)), os.path.join(path, name)))
    return sorted(out)


DELTA = 0x1  # the image header's flag


def header(path):
    """(flags, generation, parent, base) from an image's HEADER
    (docs/image-format.md: 16-byte section head, then the header record)."""
    with open(path, "rb") as f:
        b = f.read(72)
    if len(b) < 72 or b[16:24] != b"CSYNCIMG":
        raise TestFailure("%s is not an image" % path)
    flags, = struct.unpack_from("<I", b, 36)
    gen, parent, base = struct.unpack_from("<QQQ", b, 48)
    return flags, gen, parent, base


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Harness:
    def __init__(self, args, scenario):
        self.tool = os.path.abspath(os.path.join(args.build_root, "agent", "tool", "checksync"))
        self.wl_dir = os.path.abspath(args.workloads)
        self.scenario = scenario
        seed = os.environ.get("CR_SEED")
        self.seed = int(seed) if seed else random.SystemRandom().randrange(1, 2**31)
        self.iterations_override = os.environ.get("CR_ITERATIONS")
        self.tag = "cr-%d-%x" % (os.getpid(), random.SystemRandom().getrandbits(32))
        self.procs = []
        self.tmpdirs = []
        self.undo = []  # callables run at cleanup, newest first, before the dirs go
        self.host_pids = set()
        self.exes = set()  # executables whose processes may lose the tag (is_ours)
        self.context = ""

    def check_ready(self):
        if os.geteuid() != 0:
            log("SKIP: checkpoint/restore tests need root (namespaces)")
            return False
        for path in (self.tool,):
            if not os.access(path, os.X_OK):
                raise TestFailure("the checksync tool is not built: %s" % path)
        return True

    def rng(self, iteration):
        return random.Random("%d-%s-%d" % (self.seed, self.scenario, iteration))

    def iterations(self, default):
        return int(self.iterations_override) if self.iterations_override else default

    def workload(self, name):
        path = os.path.join(self.wl_dir, name)
        if not os.access(path, os.X_OK):
            raise TestFailure("workload %s is not built at %s" % (name, path))
        return path

    def mkdtemp(self, prefix):
        d = tempfile.mkdtemp(prefix="cr-%s-%s-" % (self.scenario, prefix))
        self.tmpdirs.append(d)
        return d

    def env(self, extra=None):
        env = dict(os.environ)
        env["CR_TEST_TAG"] = self.tag
        env.update(extra or {})
        return env

    def start(self, name, argv, extra_env=None, stdin=subprocess.DEVNULL):
        """stdin=subprocess.PIPE: the caller writes to proc.p.stdin."""
        return Proc(self, name, argv, self.env(extra_env), stdin)

    def tool_cmd(self, name, args, timeout, extra_env=None):
        """Runs a checksync subcommand to completion: (rc, combined output, Proc)."""
        p = self.start("checksync " + name, [self.tool] + args, extra_env)
        rc = p.wait_exit(timeout, "checksync " + " ".join(args))
        return rc, p.output(), p

    def track(self, host_pid):
        self.host_pids.add(host_pid)

    def is_ours(self, pid):
        """True if pid is a live process started by this harness run. Pids and
        namespace inode numbers are reused quickly on a busy machine, so a
        number alone never identifies a process: the tag in its environment
        (inherited through checksync run, kept by restore) does."""
        if ("CR_TEST_TAG=" + self.tag).encode() in read_environ(pid):
            return pid_alive(pid)
        # A program that rewrites its environment block (redis's process
        # title does) loses the tag: one this run started, running an
        # executable it named, is still ours.
        try:
            exe = os.readlink("/proc/%d/exe" % pid)
        except OSError:
            return False
        return pid in self.host_pids and exe in self.exes and pid_alive(pid)

    def tagged_pids(self):
        """Live processes that carry this harness run's tag in their environment."""
        me = os.getpid()
        return [p for p in all_pids() if p != me and self.is_ours(p)]

    def fail(self, msg, *procs):
        tails = "\n".join(p.tail() for p in procs if p)
        raise TestFailure("%s\n%s" % (msg, tails))

    def cleanup(self):
        for p in self.procs:
            p.kill()
        for _ in range(50):
            victims = set(self.tagged_pids())
            if not victims:
                break
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        else:
            log("cleanup: processes still alive: %s" % sorted(victims))
        for fn in reversed(self.undo):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                log("cleanup: %s" % e)
        for d in self.tmpdirs:
            shutil.rmtree(d, ignore_errors=True)


TOKEN_RX = r"token=([0-9a-f]{16})"


class App:
    """One workload program under checksync: run, checkpoint, kill, restore, verify."""

    def __init__(self, h, workload, args=(), tracking=None, interval_ms=None, exe=None,
                 ckpt_dir=None, env=None, run_args=()):
        self.h = h
        self.env = dict(env or {})
        self.run_args = list(run_args)  # more options of `checksync run`
        self.workload = workload
        self.exe = exe or h.workload(workload)
        self.args = list(args)
        self.tracking = tracking
        self.interval_ms = interval_ms
        self.dir = ckpt_dir or h.mkdtemp("dir")
        self.work = h.mkdtemp("work")
        self.result = os.path.join(self.work, "result")
        self.proc = None       # the Proc whose output is the program's (run or restore)
        self.out_start = 0     # first line of the current incarnation in proc
        self.host_pid = None
        self.token = None
        self.generations = []
        self.restores = 0

    def describe(self):
        return "%s (tracking=%s, dir=%s)" % (self.workload, self.tracking or "default", self.dir)

    def run(self, ready_timeout=60, ready_rx=r"^ready \S+ " + TOKEN_RX):
        argv = [self.h.tool, "run", "--dir", self.dir]
        if self.interval_ms is not None:
            argv += ["--interval-ms", str(self.interval_ms)]
        if self.tracking:
            argv += ["--tracking", self.tracking]
        argv += self.run_args + ["--", self.exe] + self.args
        self.proc = self.h.start("checksync run " + self.workload, argv,
                                 dict(self.env, CR_RESULT=self.result))
        _, m = self.proc.wait_line(ready_rx, ready_timeout, "the ready line")
        self.token = m.group(1) if m.re.groups else None
        self.host_pid = self.wait_agent_pid(None, 10)
        self.h.track(self.host_pid)
        log("  %s started: host pid %d token %s" % (self.workload, self.host_pid, self.token))

    def read_agent_pid(self):
        try:
            with open(os.path.join(self.dir, "agent.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def find_by_argv0(self, old_pid):
        base = os.path.basename(self.exe)
        mark = ("CR_TEST_TAG=" + self.h.tag).encode()
        for pid in all_pids():
            if pid != old_pid and os.path.basename(argv0(pid)) == base and \
                    mark in read_environ(pid) and pid_alive(pid):
                return pid
        return None

    def wait_agent_pid(self, old_pid, timeout):
        """The program's host pid: DIR/agent.pid, or (after a restore that did
        not rewrite it) the live process running our executable."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.read_agent_pid()
            if pid and pid != old_pid and pid_alive(pid):
                return pid
            if self.proc.p.poll() is not None:
                self.h.fail("%s: `%s` exited with status %d before the program ran" %
                            (self.describe(), " ".join(self.proc.argv[1:3]), self.proc.p.returncode),
                            self.proc)
            # A restored program that already prints, or a long wait: the tool
            # may not rewrite agent.pid, so look for our executable instead.
            late = time.monotonic() > deadline - timeout / 4
            if old_pid is not None and (late or self.proc.find(r"^progress ")):
                pid = self.find_by_argv0(old_pid)
                if pid:
                    log("  note: DIR/agent.pid was not updated by the restore; found pid %d "
                        "by its executable" % pid)
                    return pid
            time.sleep(0.05)
        self.h.fail("%s: no live program pid in %s/agent.pid within %.0f s" %
                    (self.describe(), self.dir, timeout), self.proc)

    def progress(self):
        """Latest progress number of the current incarnation, 0 if none yet."""
        m = None
        with self.proc.cond:
            lines = self.proc.lines[self.out_start:]
        for tag, text, _ in reversed(lines):
            if tag == "out":
                m = re.match(r"^progress (\d+) ", text)
                if m:
                    return int(m.group(1))
        return 0

    def wait_progress(self, minimum, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.progress()
            if p >= minimum:
                return p
            if self.proc.p.poll() is not None and self.proc.open_streams == 0:
                break
            time.sleep(0.05)
        self.h.fail("%s: progress did not reach %d within %.0f s (last %d)" %
                    (self.describe(), minimum, timeout, self.progress()), self.proc)

    def checkpoint(self, timeout=120):
        rc, out, p = self.h.tool_cmd("checkpoint", ["checkpoint", "--dir", self.dir], timeout)
        m = re.search(r"(\d+)\s*$", out.strip())
        if rc != 0 or not m:
            self.h.fail("%s: `checksync checkpoint` exited %s, output %r (want status 0 and a "
                        "generation number); program pid %d %s; DIR holds %s" %
                        (self.describe(), rc, out, self.host_pid,
                         "alive" if pid_alive(self.host_pid) else "dead (`checksync %s` status %s)"
                         % (self.proc.argv[1], self.proc.p.poll()),
                         sorted(os.listdir(self.dir))), p, self.proc)
        gen = int(m.group(1))
        if self.generations and gen <= self.generations[-1]:
            self.h.fail("%s: checkpoint generation %d not above the previous %d" %
                        (self.describe(), gen, self.generations[-1]), p)
        path = os.path.join(self.dir, "gen-%020d.img" % gen)
        if not os.path.exists(path):
            self.h.fail("%s: checkpoint said generation %d but %s does not exist" %
                        (self.describe(), gen, path), p)
        self.generations.append(gen)
        log("  checkpoint: generation %d" % gen)
        return gen

    def kill(self, timeout=20):
        """SIGKILLs the program; its checksync run/restore must exit with that status."""
        try:
            if not self.h.is_ours(self.host_pid):
                raise ProcessLookupError
            os.kill(self.host_pid, signal.SIGKILL)
        except ProcessLookupError:
            rc = self.proc.p.poll()
            self.h.fail("%s: the program (host pid %d) died before the harness killed it; "
                        "`checksync %s` %s" %
                        (self.describe(), self.host_pid, self.proc.argv[1],
                         "is still running" if rc is None else "exited with status %d" % rc),
                        self.proc)
        log("  SIGKILL host pid %d" % self.host_pid)
        if self.proc.p.poll() is None and self.proc.argv[1] in ("run", "restore") and \
                "--detach" not in self.proc.argv:
            rc = self.proc.wait_exit(timeout, "exit after its program was SIGKILLed")
            if rc not in (-signal.SIGKILL, 128 + signal.SIGKILL):
                self.h.fail("%s: checksync %s exited %d after SIGKILL of its program (want the "
                            "program's status: 137 or killed by signal 9)" %
                            (self.describe(), self.proc.argv[1], rc), self.proc)
        deadline = time.monotonic() + timeout
        while pid_alive(self.host_pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restore(self, generation=None, detach=False, timeout=60, args=()):
        """Restores the program (args: more options of `checksync restore`);
        check_continued() then checks it carried on."""
        argv = [self.h.tool, "restore", "--dir", self.dir] + list(args)
        if generation is not None:
            argv += ["--generation", str(generation)]
        if detach:
            argv += ["--detach"]
        old = self.host_pid
        self.restores += 1
        self.proc = self.h.start("checksync restore #%d %s" % (self.restores, self.workload),
                                 argv)
        self.out_start = 0
        if detach:
            rc = self.proc.wait_exit(timeout, "restore --detach")
            m = re.search(r"^\s*(\d+)\s*$", self.proc.output(), re.M)
            if rc != 0 or not m:
                self.h.fail("%s: `checksync restore --detach` exited %s and printed %r (want 0 "
                            "and the new host pid)" % (self.describe(), rc, self.proc.output()),
                            self.proc)
            self.host_pid = int(m.group(1))
            if not pid_alive(self.host_pid):
                self.h.fail("%s: restore --detach printed pid %d, which is not running" %
                            (self.describe(), self.host_pid), self.proc)
        else:
            self.host_pid = self.wait_agent_pid(old, timeout)
        self.h.track(self.host_pid)
        log("  restored: host pid %d" % self.host_pid)
        return self.proc

    def check_continued(self, before, timeout=60):
        """The restored program prints our token and progress >= before, and never "ready"."""
        _, m = self.proc.wait_line(r"^progress (\d+) " + TOKEN_RX, timeout,
                                   "progress from the restored program")
        first, token = int(m.group(1)), m.group(2)
        again = self.proc.find(r"^ready ")
        if again:
            self.h.fail("%s: the restored program printed %r: it started from zero" %
                        (self.describe(), again[1].string), self.proc)
        if token != self.token:
            self.h.fail("%s: restored program has token %s, the checkpointed one had %s" %
                        (self.describe(), token, self.token), self.proc)
        if first < before or first <= 0:
            self.h.fail("%s: first progress after restore is %d, but %d was seen before the "
                        "checkpoint" % (self.describe(), first, before), self.proc)
        log("  continued: progress %d after restore (>= %d before checkpoint)" % (first, before))
        return first

    def signal(self, sig):
        """Sends sig to the program, after checking the pid is still ours."""
        if not self.h.is_ours(self.host_pid):
            rc = self.proc.p.poll()
            self.h.fail("%s: the program (host pid %d) is gone; `checksync %s` %s" %
                        (self.describe(), self.host_pid, self.proc.argv[1],
                         "is still running" if rc is None else "exited with status %d" % rc),
                        self.proc)
        os.kill(self.host_pid, sig)

    def verify(self, timeout=60, expect_ok=True):
        """Asks the program to verify itself (SIGUSR1); returns the verify line."""
        start = self.proc.count()
        self.signal(signal.SIGUSR1)
        detached = "--detach" in self.proc.argv
        if detached:
            line = self.wait_result_file(timeout)
        else:
            _, m = self.proc.wait_line(r"^verify (ok|FAIL).*", timeout, "the verify line",
                                       start=start)
            line = m.group(0)
            rc = self.proc.wait_exit(timeout, "exit after verify")
            if expect_ok and rc != 0:
                self.h.fail("%s: exited %d after verify (want 0)" % (self.describe(), rc),
                            self.proc)
        if expect_ok and not line.startswith("verify ok"):
            self.h.fail("%s: %s" % (self.describe(), line), self.proc)
        m = re.search(TOKEN_RX, line)
        if m and m.group(1) != self.token:
            self.h.fail("%s: verify came from token %s, not %s" %
                        (self.describe(), m.group(1), self.token), self.proc)
        log("  " + line)
        return line

    def wait_result_file(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(self.result) as f:
                    text = f.read()
                if text.endswith("\n"):
                    return text.strip()
            except OSError:
                pass
            time.sleep(0.05)
        self.h.fail("%s: no verify result in %s within %.0f s" %
                    (self.describe(), self.result, timeout), self.proc)


def agent_status(d):
    """The agent's status reply on DIR/agent.sock as a dict; last_error, a
    sentence, runs to the end of the reply."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(10)
    try:
        s.connect(os.path.join(d, "agent.sock"))
        s.send(b"status")
        reply = s.recv(4096).decode()
    finally:
        s.close()
    head, _, err = reply.partition(" last_error=")
    out = dict(kv.split("=", 1) for kv in head.split()[1:] if "=" in kv)
    out["last_error"] = err
    return out


def run_scenario(doc, scenarios):
    """The main() of a scenario script: parses --build-root, --workloads and
    the scenario name, runs it with a Harness that is always cleaned up, and
    returns the exit status (0 pass, 1 fail, 77 skip)."""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-root", required=True)
    ap.add_argument("--workloads", required=True)
    ap.add_argument("scenario", choices=sorted(scenarios))
    args = ap.parse_args()
    h = Harness(args, args.scenario)
    log("scenario %s seed %d (replay: CR_SEED=%d)" % (h.scenario, h.seed, h.seed))
    status = 0
    try:
        if not h.check_ready():
            return SKIP
        scenarios[args.scenario](h)
        log("PASS %s (seed %d)" % (h.scenario, h.seed))
    except Skipped as e:
        log("SKIP %s: %s" % (h.scenario, e))
        status = SKIP
    except TestFailure as e:
        log("FAIL %s (seed %d, replay with CR_SEED=%d): %s" % (h.scenario, h.seed, h.seed, e))
        status = 1
    except Exception:
        log("ERROR %s (seed %d):\n%s" % (h.scenario, h.seed, traceback.format_exc()))
        status = 1
    finally:
        h.cleanup()
    return status


# The name the freeze scenarios use.
run_scenarios = run_scenario
