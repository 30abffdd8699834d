#!/usr/bin/env python3
"""The checksync demo: a three-host cluster on this machine, then a Go
key-value service that survives being killed.

Part 1 starts checksyncd on three hosts (network namespaces alpha, beta and
the witness gamma, joined by a bridge) with mutual TLS, shows them elect
alpha, kills alpha's daemon, and shows beta take over in a new term, with
the journal entries an operator would read. Part 2 runs kvserver under
`checksync run`, writes keys, SIGKILLs the process and restores it from its
newest checkpoint; every key written before the checkpoint is still there.
(Shipping checkpoints between the daemons is the data plane's job, which is
not built yet; until then the two halves run side by side.)

Everything it creates lives in temporary directories and namespaces that
are removed at the end, also on failure or Ctrl-C. Needs root.
"""
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("CS_BUILD_DIR", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
os.environ["CS_BUILD_DIR"] = BUILD
import harness  # noqa: E402
import journald  # noqa: E402


def say(text):
    print("\n== " + text, flush=True)


def show(cmd_result):
    print(cmd_result.stdout.rstrip() or cmd_result.stderr.rstrip(), flush=True)


def cluster_demo():
    c = harness.Cluster([("alpha", False), ("beta", False), ("gamma", True)],
                        interval_ms=100, timeout_ms=1000)
    try:
        say("starting checksyncd on hosts alpha, beta and gamma (witness), mutual TLS")
        c.start_infrastructure()
        c.start_all()
        harness.wait_until("a primary", lambda: c.converged("alpha"), 20)
        show(c["alpha"].ctl("status"))

        say("alpha's host dies (SIGKILL of its daemon)")
        t0 = time.monotonic()
        c.kill("alpha")
        harness.wait_until("beta to promote", lambda: c["beta"].role()[0] == "primary", 20)
        print("beta is primary after %.2f s" % (time.monotonic() - t0))
        show(c["beta"].ctl("status"))

        say("alpha comes back and rejoins as a backup")
        c.start("alpha")
        harness.wait_until("alpha to follow beta", lambda: c.converged("beta"), 20)
        show(c["alpha"].ctl("status"))

        say("what the journal says (journalctl CHECKSYNC_EVENT=...)")
        r = harness.sh("journalctl", "-D", c.journal.dir, "--no-pager", "-o", "short-precise",
                       "CHECKSYNC_EVENT=promoted", "CHECKSYNC_EVENT=peer_down",
                       "CHECKSYNC_EVENT=fenced", "CHECKSYNC_EVENT=term_changed",
                       check=False)
        show(r)
    finally:
        problems = c.stop()
        for p in problems:
            print("demo: " + p, file=sys.stderr)


def request(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def wait_http(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return request(port, "GET", "/stats")
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("kvserver did not answer on port %d" % port)


def kill_quietly(fn):
    try:
        fn()
    except (ProcessLookupError, PermissionError):
        pass


def parent_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def restore_demo():
    tool = os.path.join(BUILD, "agent", "tool", "checksync")
    kv = os.path.join(BUILD, "agent", "go", "kvserver")
    if not os.path.exists(kv):
        print("demo: kvserver was not built (no Go toolchain?); skipping part 2")
        return
    tmp = tempfile.mkdtemp(prefix="cs-demo-")
    ckpt = os.path.join(tmp, "ckpt")
    os.mkdir(ckpt)
    port = 18080 + os.getpid() % 1000
    procs = []
    try:
        say("kvserver under `checksync run` (a checkpoint every 100 ms)")
        procs.append(subprocess.Popen([tool, "run", "--dir", ckpt, "--interval-ms", "100", "--",
                                       kv, "-listen", "127.0.0.1:%d" % port],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        wait_http(port)
        for i in range(1000):
            request(port, "PUT", "/k/key%d" % i, b"value-%d" % i)
        gen = subprocess.run([tool, "checkpoint", "--dir", ckpt], capture_output=True,
                             text=True, check=True).stdout.split()[-1]
        print("wrote 1000 keys; checkpoint generation %s is durable" % gen)

        say("SIGKILL the service, then `checksync restore`")
        pid = int(open(os.path.join(ckpt, "agent.pid")).read().split()[0])
        os.kill(pid, signal.SIGKILL)
        procs[0].wait(timeout=20)
        t0 = time.monotonic()
        # The restored program keeps the tool's stdout: a file, not a pipe
        # that would never see EOF.
        out, err = os.path.join(tmp, "restore.out"), os.path.join(tmp, "restore.err")
        with open(out, "w") as fo, open(err, "w") as fe:
            r = subprocess.run([tool, "restore", "--dir", ckpt, "--detach"], stdout=fo,
                               stderr=fe, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("restore failed: " + open(err).read().strip())
        procs.append(int(open(out).read().split()[-1]))
        wait_http(port)
        print("restored in %.2f s (new host pid %s)" % (time.monotonic() - t0, procs[-1]))
        missing = [i for i in range(1000)
                   if request(port, "GET", "/k/key%d" % i) != (200, b"value-%d" % i)]
        print("keys missing after restore: %d of 1000" % len(missing))
        say("checksync inspect (first lines)")
        r = subprocess.run([tool, "inspect", ckpt], capture_output=True, text=True)
        print("\n".join(r.stdout.splitlines()[:14]))
        if missing:
            raise RuntimeError("keys lost: %s" % missing[:10])
    finally:
        try:
            procs.append(int(open(os.path.join(ckpt, "agent.pid")).read().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
        for p in procs:
            # Popen children have sessions of their own; a restored program
            # shares ours, so it is killed alone, with its namespace's init.
            if hasattr(p, "pid"):
                kill_quietly(lambda: os.killpg(p.pid, signal.SIGKILL))
            else:
                init = parent_of(p)
                kill_quietly(lambda: os.kill(p, signal.SIGKILL))
                if init and init != 1:
                    kill_quietly(lambda: os.kill(init, signal.SIGKILL))
        for p in procs:
            if hasattr(p, "wait"):
                p.wait(timeout=20)
        # A writer child may still be finishing an image: retry briefly.
        for _ in range(50):
            shutil.rmtree(tmp, ignore_errors=True)
            if not os.path.exists(tmp):
                break
            time.sleep(0.1)


def main():
    journald.reexec_in_mount_namespace()
    if os.geteuid() != 0:
        sys.exit("demo: run as root (namespaces, mounts, journald)")
    cluster_demo()
    restore_demo()
    say("done")


if __name__ == "__main__":
    main()
