#!/usr/bin/env python3
"""The checksync demo: a key-value service that survives the death of its
host, on a three-host cluster on this machine.

checksyncd runs on three hosts (network namespaces alpha, beta and the
witness gamma, joined by a bridge) with mutual TLS. alpha is elected
primary and starts kvserver, a Go key-value service, under the agent: ten
checkpoints a second, each relayed to beta over the peer link. A client
writes 1000 keys; each write is answered only once checksync.Sync says a
checkpoint holding it is durable on beta. Then alpha's host dies (its
daemon and the service are SIGKILLed): beta promotes, restores the newest
checkpoint it holds and serves every key. alpha comes back and rejoins as
a backup; its old chain is moved aside and it receives a fresh one.

Everything it creates lives in temporary directories and namespaces that
are removed at the end, also on failure or Ctrl-C. Needs root.
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("CS_BUILD_DIR", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
os.environ["CS_BUILD_DIR"] = BUILD
os.environ["CHECKSYNC_TOOL"] = os.path.join(BUILD, "agent", "tool", "checksync")
import harness  # noqa: E402
import journald  # noqa: E402

PORT = 8080
# Runs inside gamma's network namespace: PUT (or GET) keys on one host.
CLIENT = r"""
import http.client, sys
mode, host, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
bad = 0
for i in range(n):
    c = http.client.HTTPConnection(host, %d, timeout=10)
    if mode == "put":
        c.request("PUT", "/k/key%%d" %% i, body=b"value-%%d" %% i)
        r = c.getresponse(); ok = r.status == 200
    else:
        c.request("GET", "/k/key%%d" %% i)
        r = c.getresponse(); ok = r.status == 200 and r.read() == b"value-%%d" %% i
    bad += not ok
    c.close()
print(bad)
""" % PORT


def say(text):
    print("\n== " + text, flush=True)


def show(cmd_result):
    print(cmd_result.stdout.rstrip() or cmd_result.stderr.rstrip(), flush=True)


def client(c, mode, node, n):
    r = subprocess.run(["ip", "netns", "exec", c["gamma"].ns, sys.executable, "-c", CLIENT, mode,
                        c[node].address, str(n)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("client failed: " + r.stderr.strip())
    return int(r.stdout.split()[-1])


def answers(c, node):
    r = subprocess.run(["ip", "netns", "exec", c["gamma"].ns, "curl", "-s", "-m", "1",
                        "http://%s:%d/stats" % (c[node].address, PORT)], capture_output=True)
    return r.returncode == 0


def with_app(c):
    kv = os.path.join(BUILD, "agent", "go", "kvserver")
    plain = c.config_of

    def config_of(n):
        cfg = plain(n)
        if not n.witness:
            cfg["app"] = {"exec": [kv, "-listen", "0.0.0.0:%d" % PORT, "-sync"]}
            cfg["checkpoint"] = {"interval_ms": 100, "durability": "disk", "sync": "backups"}
        return cfg
    c.config_of = config_of


def backup_caught_up(c, primary, backup):
    s = c[primary].status() or {}
    for b in s.get("backups", []):
        if b["name"] == backup and b["up"] and b["lag_generations"] == 0:
            return True
    return False


def story():
    c = harness.Cluster([("alpha", False), ("beta", False), ("gamma", True)],
                        interval_ms=100, timeout_ms=1000)
    with_app(c)
    try:
        say("checksyncd on alpha, beta and gamma (witness): mutual TLS, kvserver as the app")
        c.start_infrastructure()
        c.start_all()
        harness.wait_until("a primary", lambda: c.converged("alpha"), 20)
        harness.wait_until("kvserver on alpha", lambda: answers(c, "alpha"), 30)
        show(c["alpha"].ctl("status"))

        say("a client writes 1000 keys to alpha; each answer waits for beta's acknowledgement")
        failed = client(c, "put", "alpha", 1000)
        print("1000 writes, %d refused" % failed)
        show(c["alpha"].ctl("status"))

        say("alpha's host dies (SIGKILL of its daemon; the service dies with it)")
        t0 = time.monotonic()
        c.kill("alpha")
        harness.wait_until("kvserver on beta", lambda: answers(c, "beta"), 30)
        print("beta serves %.2f s after the kill" % (time.monotonic() - t0))
        missing = client(c, "get", "beta", 1000)
        print("keys missing on beta: %d of 1000" % missing)
        show(c["beta"].ctl("status"))

        say("alpha comes back and rejoins as a backup of beta")
        c.start("alpha")
        harness.wait_until("alpha to follow beta", lambda: c.converged("beta"), 20)
        harness.wait_until("alpha to catch up", lambda: backup_caught_up(c, "beta", "alpha"), 60)
        s = c["beta"].status()
        print(json.dumps(s["backups"], indent=1))

        say("what the journal says (journalctl CHECKSYNC_EVENT=...)")
        events = ["promoted", "peer_down", "restore_started", "restore_done", "app_serving",
                  "backup_joined", "backup_caught_up"]
        r = harness.sh("journalctl", "-D", c.journal.dir, "--no-pager", "-o", "short-precise",
                       *["CHECKSYNC_EVENT=" + e for e in events], check=False)
        show(r)
        if failed or missing:
            raise RuntimeError("%d writes refused, %d keys lost" % (failed, missing))
    finally:
        problems = c.stop()
        for p in problems:
            print("demo: " + p, file=sys.stderr)


def main():
    journald.reexec_in_mount_namespace()
    if os.geteuid() != 0:
        sys.exit("demo: run as root (namespaces, mounts, journald)")
    story()
    say("done")


if __name__ == "__main__":
    main()
