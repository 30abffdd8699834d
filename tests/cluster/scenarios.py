#!/usr/bin/env python3
"""Cluster scenarios: checksyncd on hosts that are network namespaces.

    scenarios.py NAME     runs one scenario (each is a meson test, suite 'cluster')

Heartbeats every 50 ms, suspicion after 600 ms, a 100 ms drift margin: a
failover takes about a second. Every wait is bounded.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_until  # noqa: E402

THREE = [("alpha", False), ("beta", False), ("gamma", True)]
TWO = [("alpha", False), ("beta", False)]
TIMEOUT_S = 0.6
DRIFT_S = 0.1


@contextlib.contextmanager
def cluster(nodes=THREE, **kw):
    c = harness.Cluster(nodes, **kw)
    try:
        c.start_infrastructure()
        yield c
        if os.environ.get("CS_SHOW_JOURNAL"):
            c.print_journal(200, file=sys.stdout)
    except BaseException:
        show_failure(c)
        c.stop()
        raise
    problems = c.stop()
    assert not problems, "\n".join(problems)


def show_failure(c):
    print("---- statuses:", json.dumps(c.roles()), file=sys.stderr)
    if c.journal and c.journal.proc:
        c.print_journal(150)
    for n in c.nodes:
        p = os.path.join(n.dir, "stderr.log")
        if os.path.exists(p):
            print("---- %s stderr:\n%s" % (n.name, open(p).read()[-3000:]), file=sys.stderr)


def converge(c, primary="alpha"):
    c.start_all()
    wait_until("one primary (%s) agreed by every node" % primary,
               lambda: c.converged(primary), 20)


def events(c, kind, node=None):
    matches = ["CHECKSYNC_EVENT=" + kind] + (["CHECKSYNC_NODE=" + node] if node else [])
    return c.journal.query(*matches)


def wait_event(c, kind, node=None, timeout=20):
    matches = ["CHECKSYNC_EVENT=" + kind] + (["CHECKSYNC_NODE=" + node] if node else [])
    found = c.journal.wait_for(*matches, timeout=timeout)
    assert found, "no %s event%s in the journal" % (kind, " from " + node if node else "")
    return found


def when(entry):
    return int(entry["__REALTIME_TIMESTAMP"])


# ---- the scenarios ----

def converges_to_the_preferred_primary():
    """Three hosts (two members, one witness) elect alpha, the first member,
    and every node sees it, through checksyncctl and in the journal."""
    with cluster() as c:
        converge(c)
        for n in c.nodes:
            r = n.ctl("status", "--json")
            assert r.returncode == 0, r.stderr
            s = json.loads(r.stdout)
            assert s["node"] == n.name and s["primary"] == "alpha" and s["term"] >= 1, s
            want = {"alpha": "primary", "beta": "backup", "gamma": "witness"}[n.name]
            assert s["role"] == want, s
            assert {p["name"] for p in s["peers"]} == {"alpha", "beta", "gamma"} - {n.name}
            assert all(p["state"] == "up" for p in s["peers"]), s
            assert all(p["last_heartbeat_ms"] is not None for p in s["peers"]), s
        r = c["beta"].ctl("status")
        assert r.returncode == 0 and "primary:  alpha" in r.stdout, r.stdout
        promoted = wait_event(c, "promoted")
        assert [e["CHECKSYNC_NODE"] for e in promoted] == ["alpha"], promoted
        assert promoted[0]["CHECKSYNC_ROLE"] == "primary"
        assert promoted[0].get("MESSAGE_ID"), promoted[0]
        # The notify hook ran for the promotion and its output is in the journal.
        out = c.journal.wait_for("CHECKSYNC_EVENT=notify_hook_output", "CHECKSYNC_NODE=alpha",
                                 count=2)
        assert any("notify: promoted primary" in e["MESSAGE"] for e in out), out


def killed_primary_is_replaced():
    """SIGKILL the primary's daemon: the backup promotes, in a higher term,
    once the lease has run out (timeout + drift margin), not before."""
    with cluster() as c:
        converge(c)
        term = c["alpha"].role()[1]
        t0 = time.monotonic()  # before the kill: "took" can only be longer
        c.kill("alpha")
        wait_until("beta primary", lambda: c["beta"].role()[0] == "primary", 15, step=0.01)
        took = time.monotonic() - t0
        role, new_term = c["beta"].role()
        print("beta promoted %.2f s after the kill, term %d -> %d" % (took, term, new_term))
        assert new_term > term
        assert took >= TIMEOUT_S - 0.1, "promoted before the lease could have expired"
        assert took <= TIMEOUT_S + DRIFT_S + 5, "no promotion within timeout + margin"
        e = wait_event(c, "promoted", "beta")
        assert int(e[-1]["CHECKSYNC_TERM"]) == new_term
        # The witness learns who won from beta's first lease renewal, which
        # may come a heartbeat after the promotion itself.
        wait_until("gamma to follow beta", lambda: c["gamma"].status()["primary"] == "beta", 5)


def cut_primary_fences_before_backup_promotes():
    """Cut the primary's link: it fences itself before the backup promotes;
    sampled every 20 ms, no two nodes are ever primary in one term and the
    fenced side never claims primary again without a new term."""
    with cluster() as c:
        converge(c)
        term = c["alpha"].role()[1]
        c.start_sampling()
        time.sleep(0.3)
        c.cut("alpha")
        wait_until("alpha fenced", lambda: c["alpha"].role()[0] == "fenced", 10)
        wait_until("beta primary", lambda: c["beta"].role()[0] == "primary", 15)
        time.sleep(2)  # the cut side stays fenced; keep sampling
        c.stop_sampling()
        c.check_samples()
        fenced = c.first_sample("alpha", lambda r, t: r == "fenced")
        promoted = c.first_sample("beta", lambda r, t: r == "primary" and t > term)
        assert fenced is not None and promoted is not None
        # alpha was never seen primary after beta was seen primary: every
        # sample of alpha as primary started before beta's first one ended.
        last_alpha = c.last_sample("alpha", lambda r, t: r == "primary")
        assert last_alpha is None or last_alpha[0] < promoted[1], (last_alpha, promoted)
        assert c["alpha"].role() == ("fenced", term)
        # The journal agrees: alpha's fenced entry is older than beta's promotion.
        f = wait_event(c, "fenced", "alpha")
        p = wait_event(c, "promoted", "beta")
        assert when(f[0]) < when(p[-1]), (f, p)


def healed_primary_rejoins_as_backup():
    """Cut the primary, let the backup take over, heal the link: the old
    primary comes back as a backup of the new term; never two primaries."""
    with cluster() as c:
        converge(c)
        c.start_sampling()
        c.cut("alpha")
        wait_until("beta primary", lambda: c["beta"].role()[0] == "primary", 15)
        c.heal("alpha")
        wait_until("alpha back as backup", lambda: c.converged("beta"), 20)
        time.sleep(1)
        c.stop_sampling()
        c.check_samples()
        assert c["alpha"].role() == ("backup", c["beta"].role()[1])
        assert c["beta"].role()[0] == "primary"


def two_voters_promote_only_after_the_fence_hook():
    """Two voters, no witness: when the primary dies, the backup runs the
    fence hook (fence.sh alpha TERM) and promotes only after it exits 0."""
    with cluster(TWO, fence_exit=0) as c:
        converge(c)
        assert not os.path.exists(c.fence_log)
        c.kill("alpha")
        wait_until("beta primary", lambda: c["beta"].role()[0] == "primary", 15)
        role, term = c["beta"].role()
        calls = open(c.fence_log).read().split("\n")
        assert "alpha %d" % term in calls, calls
        ok = wait_event(c, "fence_hook_ok", "beta")
        promoted = wait_event(c, "promoted", "beta")
        assert when(ok[0]) <= when(promoted[-1])
        out = c.journal.wait_for("CHECKSYNC_EVENT=notify_hook_output", "CHECKSYNC_NODE=beta",
                                 "CHECKSYNC_HOOK=fence")
        assert any("fencing alpha for term %d" % term in e["MESSAGE"] for e in out), out
        # Alone, beta keeps its lease: the fenced peer stands in for a grant.
        time.sleep(2 * TIMEOUT_S)
        assert c["beta"].role() == ("primary", term)


def two_voters_failing_fence_hook_blocks_promotion():
    """Two voters: a fence hook that fails means no promotion, and says so."""
    with cluster(TWO, fence_exit=1) as c:
        converge(c)
        c.start_sampling()
        c.kill("alpha")
        failed = wait_event(c, "fence_hook_failed", "beta")
        assert "exit status 1" in failed[0]["MESSAGE"], failed[0]
        wait_event(c, "promotion_blocked", "beta")
        time.sleep(3)  # retries keep failing
        c.stop_sampling()
        assert not any(n == "beta" and r == "primary" for _, _, n, r, _ in c.samples)
        assert c["beta"].role()[0] != "primary"
        assert len(events(c, "fence_hook_failed", "beta")) >= 2  # it retries


def foreign_ca_is_refused():
    """beta's certificate comes from another CA: its peers refuse it, say why
    in the journal, and never count it as up; once beta gets a good
    certificate, SIGHUP is enough for it to join."""
    with cluster() as c:
        other = c.certs.ca("other-ca")
        c.certs.node("beta", "beta", other)
        c.start_all()
        found = c.journal.wait_for("CHECKSYNC_EVENT=tls_refused", "CHECKSYNC_NODE=alpha")
        assert any("certificate not signed by cluster CA" in e["MESSAGE"] for e in found), found
        found = c.journal.wait_for("CHECKSYNC_EVENT=tls_refused", "CHECKSYNC_NODE=gamma")
        assert any("certificate not signed by cluster CA" in e["MESSAGE"] for e in found), found
        wait_until("alpha primary with gamma's vote", lambda: c.converged("alpha") or
                   (c["alpha"].role()[0] == "primary"), 20)
        for n in ("alpha", "gamma"):
            peers = {p["name"]: p["state"] for p in c[n].status()["peers"]}
            assert peers["beta"] == "down", peers
        assert not events(c, "peer_up", "beta")
        # A good certificate and SIGHUP: beta joins without a restart.
        c.certs.node("beta", "beta", c.ca)
        c["beta"].proc.send_signal(signal.SIGHUP)
        wait_event(c, "config_reloaded", "beta")
        wait_until("beta follows alpha", lambda: c.converged("alpha"), 20)


def impostor_name_is_refused():
    """beta presents a valid certificate that names gamma: refused, with
    "certificate names gamma, peer claims beta" in the journal."""
    with cluster() as c:
        c.certs.node("beta", "gamma", c.ca)
        c.start_all()
        want = "certificate names gamma, peer claims beta"
        for n in ("alpha", "gamma"):
            found = c.journal.wait_for("CHECKSYNC_EVENT=tls_refused", "CHECKSYNC_NODE=" + n)
            assert any(want in e["MESSAGE"] for e in found), found
        wait_until("alpha primary", lambda: c["alpha"].role()[0] == "primary", 20)
        assert c["beta"].role()[0] != "primary"
        assert not events(c, "peer_up", "beta")


def switchover_hands_over_cleanly():
    """checksyncctl switchover beta: alpha steps down, beta leads a new term,
    without waiting for the lease to run out."""
    with cluster() as c:
        converge(c)
        term = c["alpha"].role()[1]
        r = c["beta"].ctl("switchover", "beta")
        assert r.returncode != 0 and "not the primary" in r.stderr, (r.stdout, r.stderr)
        c.start_sampling()
        r = c["alpha"].ctl("switchover", "beta")
        assert r.returncode == 0, r.stderr
        assert "primary is beta" in r.stdout, r.stdout
        wait_until("everyone follows beta", lambda: c.converged("beta"), 10)
        c.stop_sampling()
        c.check_samples()
        assert c["beta"].role()[1] == term + 1
        wait_event(c, "switchover_done", "alpha")


def stopping_primary_hands_over():
    """SIGTERM to the primary's daemon (systemctl stop): it hands the role to
    the backup before it exits, cleanly, with exit status 0, and after the
    notify hook of its own demotion has finished (the hook that gives up the
    floating IP: exiting earlier killed it)."""
    with cluster() as c:
        converge(c)
        term = c["alpha"].role()[1]
        with open(c.hooks["notify"], "w") as f:
            f.write('#!/bin/sh\n[ "$1" = demoted ] && sleep 1\necho "notify: $*"\n')
        c.start_sampling()
        c.kill("alpha", signal.SIGTERM)
        assert c["alpha"].proc.returncode == 0
        out = c.journal.wait_for("CHECKSYNC_EVENT=notify_hook_output", "CHECKSYNC_NODE=alpha",
                                 count=2)
        assert any("notify: demoted backup" in e["MESSAGE"] for e in out), out
        wait_until("beta primary", lambda: c["beta"].role()[0] == "primary", 10)
        c.stop_sampling()
        c.check_samples()
        assert c["beta"].role()[1] == term + 1
        e = wait_event(c, "switchover", "alpha")
        assert e[0]["CHECKSYNC_PEER"] == "beta", e
        assert int(wait_event(c, "promoted", "beta")[-1]["CHECKSYNC_TERM"]) == term + 1


def systemd_notifications_and_reload():
    """Under a NOTIFY_SOCKET the daemon says READY=1, STATUS=<role, term,
    peers>, WATCHDOG=1 when asked to, STOPPING=1. SIGHUP applies what can
    change live, names what needs a restart, and keeps the old
    configuration when the new one is broken."""
    with cluster() as c:
        messages, env = c.listen_notify("alpha")
        env["WATCHDOG_USEC"] = "400000"
        c.launch("alpha", env)
        c.start("beta")
        c.start("gamma")
        wait_until("alpha primary", lambda: c.converged("alpha"), 20)
        wait_until("READY and STATUS", lambda: "READY=1" in messages and any(
            m.startswith("STATUS=primary, term ") and "peers up 2/2" in m
            for m in messages), 10)
        wait_until("watchdog pings", lambda: messages.count("WATCHDOG=1") >= 3, 10)
        n = c["alpha"]
        cfg = c.config_of(n)
        cfg["heartbeat"]["interval_ms"] = 40
        cfg["listen"] = "0.0.0.0:7401"
        c.write_config(n, cfg)
        n.proc.send_signal(signal.SIGHUP)
        e = wait_event(c, "config_reload_partial", "alpha")[0]["MESSAGE"]
        assert "applied: heartbeat" in e and "needs a restart: listen" in e, e
        with open(n.config, "w") as f:
            f.write('{"node": ')
        n.proc.send_signal(signal.SIGHUP)
        e = wait_event(c, "config_reload_failed", "alpha")[0]["MESSAGE"]
        assert n.config in e, e
        time.sleep(2 * TIMEOUT_S)
        assert c.converged("alpha")
        c.write_config(n)
        c.kill("alpha", signal.SIGTERM)
        assert n.proc.returncode == 0
        wait_until("STOPPING", lambda: "STOPPING=1" in messages, 5)


def check_config_rejects_broken_configs():
    """checksyncd --check-config: a good file prints "FILE: ok"; broken ones
    exit 1 with the file, the JSON path and what was wrong."""
    with cluster() as c:
        n = c["alpha"]
        binary = c.build_file("daemon/checksyncd")

        def check(cfg_text):
            with open(n.config, "w") as f:
                f.write(cfg_text)
            return subprocess.run([binary, "--check-config", "-c", n.config],
                                  capture_output=True, text=True, timeout=30)

        good = c.config_of(n)
        r = check(json.dumps(good))
        assert r.returncode == 0 and r.stdout.strip() == n.config + ": ok", (r.stdout, r.stderr)
        bad_peer = json.loads(json.dumps(good))
        bad_peer["peers"][2]["address"] = 7400
        no_key = dict(good, tls=dict(good["tls"], key=os.path.join(c.tmp, "missing.key")))
        cases = [
            ("{ not json", ["checksync.json"]),
            (json.dumps({k: v for k, v in good.items() if k != "cluster"}), ["cluster"]),
            (json.dumps(bad_peer), ["peers[2].address", "number"]),
            (json.dumps(dict(good, heartbeat={"interval_ms": "fast"})),
             ["heartbeat.interval_ms", "string"]),
            (json.dumps(dict(good, colour="blue")), ["colour"]),
            (json.dumps(dict(good, node="delta")), ["node", "delta"]),
            (json.dumps(no_key), ["tls.key", "missing.key"]),
        ]
        for text, words in cases:
            r = check(text)
            assert r.returncode == 1, (text, r.returncode, r.stdout, r.stderr)
            assert n.config in r.stderr, r.stderr
            for w in words:
                assert w in r.stderr, (w, r.stderr)
            print("  refused as expected:", r.stderr.strip())


SCENARIOS = {f.__name__: f for f in [
    converges_to_the_preferred_primary,
    killed_primary_is_replaced,
    cut_primary_fences_before_backup_promotes,
    healed_primary_rejoins_as_backup,
    two_voters_promote_only_after_the_fence_hook,
    two_voters_failing_fence_hook_blocks_promotion,
    foreign_ca_is_refused,
    impostor_name_is_refused,
    switchover_hands_over_cleanly,
    stopping_primary_hands_over,
    systemd_notifications_and_reload,
    check_config_rejects_broken_configs,
]}

if __name__ == "__main__":
    harness.run(SCENARIOS)
