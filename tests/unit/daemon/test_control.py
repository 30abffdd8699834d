#!/usr/bin/env python3
"""The control socket and checksyncctl, end to end on one host.

A test server (control_server: the real control.c with canned answers) is
asked by the real checksyncctl, as root, as users in and out of the allowed
group, and with raw requests. Usage:
    test_control.py CONTROL_SERVER CHECKSYNCCTL
Runs as root (it switches users with setpriv)."""
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

SERVER, CTL = sys.argv[1], sys.argv[2]
GROUP, GID = "daemon", 1      # allowed group; nobody (65534) is not in it
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
failures = []


def check(cond, what, detail=""):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}\n{detail}", file=sys.stderr)


def ctl(*args, prefix=()):
    return subprocess.run([*prefix, CTL, *args], capture_output=True, text=True, timeout=30)


def raw(sock, payload):
    """Sends bytes, returns the answer lines until the server closes or
    one answer per request line has arrived."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(sock)
        s.sendall(payload)
        want, data = payload.count(b"\n"), b""
        while data.count(b"\n") < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_files(tmp, sock):
    st = os.stat(sock)
    check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660, "socket mode 0660",
          oct(st.st_mode))
    check(st.st_uid == 0 and st.st_gid == GID, "socket owned root:daemon", f"{st.st_uid}:{st.st_gid}")
    d = os.stat(os.path.dirname(sock))
    check(stat.S_IMODE(d.st_mode) == 0o750 and d.st_gid == GID, "socket dir 0750 root:daemon",
          oct(d.st_mode))


def test_status(sock):
    r = ctl("-s", sock, "status", "--json")
    check(r.returncode == 0, "status --json exits 0", r.stderr)
    if r.returncode == 0:
        st = json.loads(r.stdout)
        check(st["node"] == "alpha" and st["role"] == "primary" and st["term"] == 5
              and st["primary"] == "alpha", "status fields", r.stdout)
        check("ok" not in st, "status --json drops the protocol's ok", r.stdout)
        check([p["name"] for p in st["peers"]] == ["beta", "gamma"]
              and st["peers"][0] == {"name": "beta", "state": "up", "role": "backup",
                                     "witness": False, "last_heartbeat_ms": 12}
              and st["peers"][1]["last_heartbeat_ms"] is None, "status peers", r.stdout)
    r = ctl("-s", sock, "status")
    out = r.stdout
    check(r.returncode == 0 and "role:     primary" in out and "term:     5" in out
          and "820 ms remaining" in out, "human status header", out + r.stderr)
    lines = {l.split()[0]: l.split() for l in out.splitlines() if l.startswith(("beta", "gamma"))}
    check(lines.get("beta", [])[1:] == ["backup", "up", "12", "ms", "ago"]
          and lines.get("gamma", [])[1:] == ["witness", "down", "never"], "human status table", out)


def test_switchover(sock):
    r = ctl("-s", sock, "switchover", "beta")
    check(r.returncode == 0 and "primary is beta (term 7)" in r.stdout, "switchover beta", r.stdout + r.stderr)
    r = ctl("-s", sock, "switchover", "zeta")
    check(r.returncode == 1 and "checksyncd: no such peer: zeta" in r.stderr, "switchover error shown",
          r.stdout + r.stderr)
    r = ctl("-s", sock, "switchover", "slow")
    check(r.returncode == 0 and "primary is slow (term 8)" in r.stdout, "deferred switchover answer",
          r.stdout + r.stderr)
    r = ctl("-s", sock, "switchover", "a", "b")
    check(r.returncode == 2 and "usage:" in r.stderr, "too many arguments is a usage error", r.stderr)


def test_raw(sock):
    # Pipelined requests, one deferred: answers come back in request order.
    a = raw(sock, b'{"cmd":"switchover","target":"slow"}\n{"cmd":"status"}\nnot json\n'
                  b'{"cmd":"frobnicate"}\n[1]\n')
    check(len(a) == 5, "five answers", repr(a))
    if len(a) == 5:
        check(a[0] == {"ok": True, "primary": "slow", "term": 8} and a[1]["node"] == "alpha"
              and a[1]["ok"] is True, "answers in order", repr(a))
        check(a[2]["ok"] is False and "invalid JSON" in a[2]["error"], "bad JSON answered", repr(a[2]))
        check(a[3] == {"ok": False, "error": 'unknown command "frobnicate"'}, "unknown command", repr(a[3]))
        check(a[4]["ok"] is False and '"cmd"' in a[4]["error"], "non-object answered", repr(a[4]))


def test_gone_client(sock):
    # A client that leaves while its answer is deferred: the late answer is
    # dropped and the server carries on (under ASan this also checks that
    # the pending reply does not touch freed memory).
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(b'{"cmd":"switchover","target":"slow"}\n')
    time.sleep(0.3)  # lets the 100 ms deferred answer fire; no timing is asserted
    a = raw(sock, b'{"cmd":"status"}\n')
    check(len(a) == 1 and a[0].get("node") == "alpha", "server alive after a gone client", repr(a))


def test_access(sock):
    r = ctl("-s", sock, "status", prefix=NOBODY)
    check(r.returncode == 1 and "permission denied on " + sock in r.stderr,
          "nobody stopped by the file system", r.stderr)
    # With CAP_DAC_OVERRIDE the file mode no longer protects: the daemon's
    # own credential check must refuse.
    caps = ["--inh-caps=+dac_override", "--ambient-caps=+dac_override"]
    r = ctl("-s", sock, "status", prefix=NOBODY + caps)
    check(r.returncode == 1 and "checksyncd: permission denied: uid 65534 is not root and not in group daemon"
          in r.stderr, "nobody refused by SO_PEERCRED check", r.stderr)
    member = ["setpriv", "--reuid=65534", f"--regid={GID}", "--clear-groups"]
    r = ctl("-s", sock, "status", "--json", prefix=member)
    check(r.returncode == 0 and json.loads(r.stdout or "{}").get("node") == "alpha",
          "member of the group (primary gid) allowed", r.stderr)
    supplementary = ["setpriv", "--reuid=65534", "--regid=65534", f"--groups={GID}"]
    r = ctl("-s", sock, "status", "--json", prefix=supplementary)
    check(r.returncode == 0, "member of the group (supplementary) allowed", r.stderr)


def test_socket_choice(tmp, sock):
    r = ctl("-s", os.path.join(tmp, "none.sock"), "status")
    check(r.returncode == 1 and "checksyncd not running? no socket at " + os.path.join(tmp, "none.sock")
          in r.stderr, "missing socket message", r.stderr)
    cfg = os.path.join(tmp, "checksync.json")
    with open(cfg, "w") as f:
        json.dump({"node": "alpha", "cluster": "kv",
                   "peers": [{"name": "alpha", "address": "127.0.0.1:7400"},
                             {"name": "beta", "address": "127.0.0.2:7400"},
                             {"name": "gamma", "address": "127.0.0.3:7400", "witness": True}],
                   "tls": {"ca": "/nonexistent/ca.pem", "cert": "/nonexistent/a.pem",
                           "key": "/nonexistent/a.key"},
                   "control_socket": sock}, f)
    r = ctl("-c", cfg, "status", "--json")
    check(r.returncode == 0 and json.loads(r.stdout or "{}").get("term") == 5,
          "socket taken from the config", r.stderr)
    r = ctl("-c", os.path.join(tmp, "absent.json"), "status")
    check(r.returncode == 1 and "absent.json: cannot open" in r.stderr, "explicit config must load", r.stderr)
    r = ctl("frobnicate")
    check(r.returncode == 2 and 'unknown command "frobnicate"' in r.stderr, "unknown command", r.stderr)


def main():
    tmp = tempfile.mkdtemp(prefix="cs-test-control-")
    os.chmod(tmp, 0o755)                 # others may traverse; the socket dir decides
    sock = os.path.join(tmp, "run", "control.sock")
    server = None
    try:
        server = subprocess.Popen([SERVER, sock, GROUP], stdout=subprocess.PIPE, text=True)
        check(server.stdout.readline().strip() == "ready", "server ready")
        test_files(tmp, sock)
        test_status(sock)
        test_switchover(sock)
        test_raw(sock)
        test_gone_client(sock)
        test_access(sock)
        test_socket_choice(tmp, sock)
        server.terminate()
        check(server.wait(timeout=10) == 0, "server exits cleanly on SIGTERM")
        check(not os.path.exists(sock), "socket removed on close")
    finally:
        if server and server.poll() is None:
            server.kill()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("FAIL: " + ", ".join(failures) if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
