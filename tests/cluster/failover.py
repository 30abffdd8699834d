#!/usr/bin/env python3
"""Failover scenarios: checksyncd runs kvserver -sync as the app, relays its
checkpoints to the backup and resumes it there.

    failover.py NAME     runs one scenario (each is a meson test, suite 'cluster')

Clients run in the witness's network namespace (gamma) through kvclient.py:
a writer PUTs keys and lists every key whose PUT answered 200; a write
answered 200 under -sync was acknowledged by every backup that was up, so
every listed key must survive whatever the scenario does to the cluster.
"""
import contextlib
import ctypes
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import sh, wait_until  # noqa: E402
from scenarios import THREE, cluster, converge, events  # noqa: E402

KVCLIENT = os.path.join(HERE, "kvclient.py")
PORT = 8080


# ---- the app and its clients ----

@contextlib.contextmanager
def app_cluster(kv_args=(), app=None, checkpoint=None, **kw):
    """A three-host cluster (alpha, beta, witness gamma) whose app is
    kvserver -sync (app and checkpoint: more keys of those config sections);
    clients started with client() are stopped on the way out, whatever
    happened."""
    with cluster(THREE, **kw) as c:
        c.app = dict({"exec": [c.build_file("agent/go/kvserver"), "-listen",
                               "0.0.0.0:%d" % PORT, "-sync", *kv_args]}, **(app or {}))
        c.checkpoint = dict({"interval_ms": 100}, **(checkpoint or {}))
        for n in c.nodes:
            c.write_config(n)
        c.clients = []
        try:
            yield c
        finally:
            for p in c.clients:
                stop_client(p)


def url(c, node):
    return "http://%s:%d" % (c[node].address, PORT)


def _die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def client(c, node, *args):
    """kvclient.py ARGS in node's network namespace."""
    p = subprocess.Popen(["ip", "netns", "exec", c[node].ns, sys.executable, KVCLIENT, *args],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
                         preexec_fn=_die_with_parent)
    c.clients.append(p)
    return p


def stop_client(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class Writer:
    """kvclient.py write from gamma to the given nodes, in turn on failure."""

    def __init__(self, c, nodes, prefix="w", threads=4):
        self.c = c
        self.acks = os.path.join(c.tmp, "acks-%s" % prefix)
        self.proc = client(c, "gamma", "write", "--threads", str(threads), "--timeout", "3",
                           self.acks, prefix, *[url(c, n) for n in nodes])

    def acked(self, node=None):
        """[(key, time)] of the writes acknowledged so far (by node)."""
        try:
            lines = open(self.acks).read().splitlines()
        except FileNotFoundError:
            return []
        rows = [line.split() for line in lines]
        return [(k, float(t)) for k, u, t in rows if node is None or u == url(self.c, node)]

    def wait_acks(self, n, node=None, timeout=20):
        """Waits for n more acknowledged writes (by node)."""
        have = len(self.acked(node))
        wait_until("%d more acknowledged writes%s" % (n, " by " + node if node else ""),
                   lambda: len(self.acked(node)) >= have + n, timeout, step=0.05)

    def stop(self):
        stop_client(self.proc)
        assert self.proc.returncode == 0, "the writer failed (%s)" % self.proc.returncode
        return self.acked()


def check_keys(c, acks, node):
    """Every acknowledged key reads back from node's app with its value."""
    p = client(c, "gamma", "check", "--timeout", "5", acks, url(c, node))
    out, _ = p.communicate(timeout=120)
    print(out.strip())
    assert p.returncode == 0, "acknowledged writes lost on %s:\n%s" % (node, out)


def app_of(c, node):
    s = c[node].status()
    return s["app"] if s else {}


def serving(c, node):
    """True once node's app serves and answers over the network."""
    if app_of(c, node).get("state") != "serving":
        return False
    p = client(c, "gamma", "first", url(c, node))
    try:
        p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        stop_client(p)
    return p.returncode == 0


def wait_serving(c, node, timeout=30):
    wait_until("%s's app serving" % node, lambda: serving(c, node), timeout, step=0.1)


def backup_entry(c, primary, backup):
    s = c[primary].status()
    for b in (s or {}).get("backups", []):
        if b["name"] == backup:
            return b
    return None


def newest(c, node):
    return c[node].status()["store"]["newest"]


def wait_caught_up(c, primary, backup, timeout=30):
    """Waits until backup acknowledged the generation that was primary's
    newest when the wait began (the primary goes on checkpointing)."""
    target = newest(c, primary)
    wait_until("%s to acknowledge %s's generation %d" % (backup, primary, target),
               lambda: (backup_entry(c, primary, backup) or {}).get(
                   "acked_generation", 0) >= target, timeout, step=0.05)
    return target


def metrics_text(c, node):
    """node's Prometheus text, scraped on the loopback of its network namespace."""
    r = sh("ip", "netns", "exec", c[node].ns, "curl", "-s", "-f", "-m", "5",
           "http://127.0.0.1:%d/metrics" % harness.METRICS_PORT, check=False, timeout=20)
    assert r.returncode == 0, "no metrics from %s: %s" % (node, r.stderr)
    return r.stdout


def metrics(c, node):
    """node's Prometheus samples {name{labels}: value}."""
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in
                                     metrics_text(c, node).splitlines()
                                     if line and not line.startswith("#"))}


def promtool_check(text):
    """`promtool check metrics` finds nothing (skipped, saying so, without
    promtool: tests/unit/daemon/test_metrics_http.py fetches it)."""
    if not shutil.which("promtool"):
        print("SKIP promtool check: no promtool on PATH")
        return
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


def check_primary_metrics(c, primary, backup):
    """The primary's metrics show what its status shows: its role, the
    checkpoints its app wrote, the backup up and acknowledging."""
    acked = wait_caught_up(c, primary, backup)
    m = metrics(c, primary)
    assert m.get('checksync_role{role="primary"}') == 1, m
    assert m.get("checksync_checkpoints_total", 0) > 0, m
    assert m.get("checksync_checkpoint_bytes_total", 0) > 0, m
    # The histograms: the agent's pauses reach the daemon, the first image is a base.
    assert m.get("checksync_checkpoint_pause_seconds_count", 0) > 0, m
    assert m.get('checksync_checkpoint_size_bytes_count{kind="base"}', 0) >= 1, m
    assert m.get('checksync_backup_up{backup="%s"}' % backup) == 1, m
    assert m.get('checksync_backup_acked_generation{backup="%s"}' % backup, 0) >= acked, m
    print("%s metrics: %d checkpoints, %d bytes, %s acknowledged %d" % (
        primary, m["checksync_checkpoints_total"], m["checksync_checkpoint_bytes_total"],
        backup, m['checksync_backup_acked_generation{backup="%s"}' % backup]))


def kill_app(c, node):
    pid = app_of(c, node)["pid"]
    assert pid > 0, app_of(c, node)
    os.kill(pid, signal.SIGKILL)
    return pid


def pid_gone(pid):
    try:
        os.kill(pid, 0)
        # A zombie still answers kill(0): look at its state.
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (ProcessLookupError, FileNotFoundError):
        return True


def descendants(pid):
    """pid's descendants (every thread's children), recursively."""
    found = []
    for task in glob.glob("/proc/%d/task/*/children" % pid):
        with contextlib.suppress(OSError):
            for child in map(int, open(task).read().split()):
                found += [child] + descendants(child)
    return found


def kill_host(c, node):
    """SIGKILLs node's daemon; its app must die with it. Returns the time of the kill."""
    app = app_of(c, node)
    t = time.monotonic()
    c.kill(node)
    for pid in (app.get("pid"), app.get("tool_pid")):
        if pid:
            wait_until("%s's app (pid %d) to die with its daemon" % (node, pid),
                       lambda: pid_gone(pid), 5)
    return t


def inspect_chain(c, node):
    """Every generation in node's chain loads (checksync inspect); returns them.
    The compactor may remove images while inspect reads them: a generation
    that failed only because a file vanished is looked at again."""
    chain = os.path.join(c[node].dir, "state", "chain")
    for _ in range(5):
        gens, damaged, missed = inspect_once(c, chain)
        if not damaged and not missed:
            return gens
        if not all("No such file" in g["damage"] for g in damaged):
            break
        time.sleep(0.5)
    assert not damaged, "%s's chain is damaged: %s" % (node, damaged)
    assert not missed, "inspect did not list %s" % missed
    return gens


def inspect_once(c, chain):
    """(generations, damaged ones still there, images inspect did not list)."""
    before = set(glob.glob(os.path.join(chain, "gen-*.img")))
    r = sh(c.build_file("agent/tool/checksync"), "inspect", chain, "--json", check=False,
           timeout=120)
    gens = json.loads(r.stdout)["generations"] if r.stdout.startswith("{") else []
    after = set(glob.glob(os.path.join(chain, "gen-*.img")))
    stable = {int(os.path.basename(f)[4:-4]) for f in before & after}
    damaged = [g for g in gens if g["state"] != "restorable" and g["generation"] in stable]
    missed = sorted(stable - {g["generation"] for g in gens})
    return gens, damaged, missed


def events_since(c, kind, node, t_realtime, **fields):
    """kind events of node logged after t_realtime (time.time()), matching fields."""
    found = []
    for e in events(c, kind, node):
        if int(e["__REALTIME_TIMESTAMP"]) >= t_realtime * 1e6 and all(
                e.get("CHECKSYNC_" + k.upper()) == v for k, v in fields.items()):
            found.append(e)
    return found


def wait_event_since(c, kind, node, t_realtime, timeout=20, **fields):
    return wait_until("%s event from %s %s" % (kind, node, fields or ""),
                      lambda: events_since(c, kind, node, t_realtime, **fields), timeout,
                      step=0.1)


def started(c):
    """Boots the cluster with alpha primary and its app serving."""
    converge(c)
    wait_serving(c, "alpha")
    wait_caught_up(c, "alpha", "beta")


# ---- the scenarios ----

def app_killed_is_restored_locally():
    """SIGKILL the app on the primary while a client writes: the daemon
    restores it from the newest generation on the same host (app_crashed,
    app_restored_locally), alpha stays primary in its term, and every
    acknowledged write reads back."""
    with app_cluster() as c:
        started(c)
        w = Writer(c, ["alpha"])
        w.wait_acks(30)
        term = c["alpha"].role()[1]
        t = time.time()
        pid = kill_app(c, "alpha")
        before = len(w.acked())
        crashed = wait_event_since(c, "app_crashed", "alpha", t)
        print("app_crashed:", crashed[0]["MESSAGE"], crashed[0].get("CHECKSYNC_REASON"))
        restored = wait_event_since(c, "app_restored_locally", "alpha", t)
        print("restored locally:", restored[0]["MESSAGE"])
        w.wait_acks(30, timeout=20)
        acked = w.stop()
        assert c["alpha"].role() == ("primary", term), c["alpha"].role()
        assert app_of(c, "alpha")["pid"] not in (0, pid), app_of(c, "alpha")
        assert not events_since(c, "promoted", "beta", t)
        print("%d writes acknowledged before the kill, %d in all" % (before, len(acked)))
        check_keys(c, w.acks, "alpha")


def corrupt_image_is_refused_and_sent_again():
    """The primary sends its first three images with a byte flipped after
    their digest was taken (CHECKSYNC_TEST_CORRUPT_IMAGES, the daemon's
    fault injection for tests: a sender with bad memory). beta refuses each
    (checkpoint_refused, naming the SHA-256; deltas pipelined behind a
    refused image are dropped quietly), nothing damaged enters its
    chain, alpha starts over and beta catches up; then alpha's host dies
    and beta serves every acknowledged write."""
    os.environ["CHECKSYNC_TEST_CORRUPT_IMAGES"] = "3"
    try:
        with app_cluster() as c:
            t = time.time()
            started(c)
            refused = wait_event_since(c, "checkpoint_refused", "beta", t, peer="alpha")
            print("beta:", refused[0]["MESSAGE"], "-", refused[0].get("CHECKSYNC_REASON"))
            assert "SHA-256" in refused[0].get("CHECKSYNC_REASON", ""), refused[0]
            w = Writer(c, ["alpha"])
            w.wait_acks(30)
            wait_caught_up(c, "alpha", "beta")
            # Deltas pipelined behind a refused image are dropped without an
            # event (their parent is missing): at least one refusal, and a
            # chain that loads.
            n = len(events_since(c, "checkpoint_refused", "beta", t, peer="alpha"))
            assert inspect_chain(c, "beta"), "beta holds no chain"
            acked = w.stop()
            kill_host(c, "alpha")
            wait_serving(c, "beta")
            print("%d refusals; %d writes acknowledged" % (n, len(acked)))
            check_keys(c, w.acks, "beta")
    finally:
        del os.environ["CHECKSYNC_TEST_CORRUPT_IMAGES"]


def app_killed_with_on_exit_failover_moves_to_beta():
    """app.on_exit "failover": SIGKILL the app on the primary and alpha
    hands the role to beta (app_crashed on alpha), which restores the app
    with every acknowledged write; alpha's daemon lives on as a backup."""
    with app_cluster(app={"on_exit": "failover"}) as c:
        started(c)
        w = Writer(c, ["alpha", "beta"])
        w.wait_acks(30)
        t = time.time()
        kill_app(c, "alpha")
        wait_event_since(c, "app_crashed", "alpha", t)
        wait_until("beta primary", lambda: c["beta"].role()[0] == "primary", 15)
        wait_serving(c, "beta")
        wait_until("alpha back as beta's backup", lambda: c.converged("beta"), 20)
        assert not events_since(c, "app_restored_locally", "alpha", t)
        w.wait_acks(30, node="beta")
        acked = w.stop()
        print("%d writes acknowledged, %d by beta" % (len(acked), len(w.acked("beta"))))
        check_keys(c, w.acks, "beta")


def host_killed_backup_serves_every_synced_key():
    """SIGKILL the primary's daemon (its app dies with it) while a client
    writes: beta promotes, restores the newest generation it holds and
    serves every write acknowledged before the kill."""
    host_killed("disk")


def host_killed_memory_durability_serves_every_synced_key():
    """The same with checkpoint.durability "memory": a backup acknowledges
    before its disk has the image, and one surviving host is enough."""
    host_killed("memory")


def host_killed(durability):
    with app_cluster(checkpoint={"durability": durability}) as c:
        started(c)
        assert c["alpha"].status()["durability"] == durability, c["alpha"].status()
        w = Writer(c, ["alpha", "beta"])
        w.wait_acks(100)
        check_primary_metrics(c, "alpha", "beta")
        first = client(c, "gamma", "first", url(c, "beta"))
        t = time.time()
        t_kill = kill_host(c, "alpha")
        before = [k for k, at in w.acked() if at < t_kill]
        out, _ = first.communicate(timeout=30)
        assert first.returncode == 0, "beta's app never answered"
        took = float(out) - t_kill
        print("beta answered its first request %.3f s after alpha's host was killed" % took)
        done = wait_event_since(c, "restore_done", "beta", t)[0]
        print("beta:", done["MESSAGE"])
        check_takeover_journal(c, "beta", "alpha", t)
        m = metrics(c, "beta")
        assert m.get('checksync_role{role="primary"}') == 1, m
        assert m.get("checksync_restores_total", 0) >= 1, m
        assert m.get("checksync_promotions_total", 0) >= 1, m
        assert m.get("checksync_restore_duration_seconds_count", 0) >= 1, m
        assert m.get("checksync_failover_duration_seconds_count", 0) >= 1, m
        assert m.get("checksync_received_images_total", 0) > 0, m
        acked = w.stop()
        # Alone, beta cannot make a write durable anywhere else: Sync fails
        # (503 from kvserver) instead of hanging.
        r = sh("ip", "netns", "exec", c["gamma"].ns, "curl", "-s", "-m", "10", "-o", "/dev/null",
               "-w", "%{http_code}", "-X", "PUT", "--data", "x", url(c, "beta") + "/k/alone",
               check=False, timeout=20)
        assert r.stdout == "503", "a write to beta without a backup answered %r" % r.stdout
        print("%d writes acknowledged before the kill, %d in all" % (len(before), len(acked)))
        check_keys(c, w.acks, "beta")
        assert took < 10, took


def check_takeover_journal(c, node, old, t):
    """node's journal tells the takeover in order, each entry with its
    MESSAGE_ID: primary_lost (old), promoted and restore_started (the
    restore starts within the promotion: either may be logged first),
    restore_done (generation, duration), app_serving."""
    kinds = ["primary_lost", "promoted", "restore_started", "restore_done", "app_serving"]
    seen = [wait_event_since(c, k, node, t)[0] for k in kinds]
    for k, e in zip(kinds, seen):
        assert e.get("MESSAGE_ID"), (k, e)
    assert seen[0].get("CHECKSYNC_PEER") == old, seen[0]
    when = [int(e["__REALTIME_TIMESTAMP"]) for e in seen]
    order = when[:1] + sorted(when[1:3]) + when[3:]
    assert order == sorted(order), list(zip(kinds, when))
    done = seen[3]
    assert int(done["CHECKSYNC_GENERATION"]) == int(seen[2]["CHECKSYNC_GENERATION"]) > 0, done
    assert "CHECKSYNC_DURATION_MS" in done, done
    print("%s: %s" % (node, ", ".join("%s +%.0f ms" % (k, (w - when[0]) / 1000)
                                      for k, w in zip(kinds, when))))


def cut_primary_never_two_writers():
    """Cut the primary's link while a client writes to whichever node
    answers. Probes inside alpha's and beta's namespaces PUT to the local app
    every 20 ms: no request answered by alpha began after beta answered one
    (alpha's app stops before beta's serves), so never two apps take writes.
    After healing, alpha rejoins as a backup, keeps its old chain in
    state/stale and catches up, and beta acknowledges writes again."""
    with app_cluster() as c:
        started(c)
        probes = {}
        for n in ("alpha", "beta"):
            f = os.path.join(c.tmp, "probe-" + n)
            probes[n] = (f, client(c, n, "probe", "--timeout", "2", f,
                                   "http://127.0.0.1:%d" % PORT))
        w = Writer(c, ["alpha", "beta"])
        w.wait_acks(50)
        term = c["alpha"].role()[1]
        c.cut("alpha")
        t_cut = time.monotonic()  # the link is down: beta hears nothing sent after
        wait_until("alpha fenced", lambda: c["alpha"].role()[0] == "fenced", 10)
        wait_until("beta primary", lambda: c["beta"].role()[0] == "primary", 15)
        wait_until("beta's app serving", lambda: app_of(c, "beta").get("state") == "serving", 15)
        time.sleep(1)  # both probes keep sampling
        t_heal = time.time()
        c.heal("alpha")
        wait_until("alpha back as beta's backup", lambda: c.converged("beta"), 20)
        joined = wait_event_since(c, "backup_joined", "beta", t_heal, peer="alpha")
        print("beta:", joined[0]["MESSAGE"])
        wait_caught_up(c, "beta", "alpha")
        w.wait_acks(30, node="beta")
        for f, p in probes.values():
            stop_client(p)
        w.stop()
        stale = glob.glob(os.path.join(c["alpha"].dir, "state", "stale", "*-term-%d" % term,
                                       "gen-*.img"))
        assert stale, "alpha's chain of term %d is not in state/stale: %s" % (
            term, os.listdir(os.path.join(c["alpha"].dir, "state", "stale")))
        check_one_app_at_a_time(probes, t_cut, t_heal)
        check_keys(c, w.acks, "beta")


def check_one_app_at_a_time(probes, t_cut, t_heal):
    """From the probes' samples (t0 t1 status): alpha's app answered nothing
    that it received after beta's app had answered something, before the
    heal (alpha is a backup after it, with no app); and it acknowledged no
    write sent after the cut (beta could not have acknowledged it)."""
    answered, written = {}, {}
    heal = t_heal - time.time() + time.monotonic()
    for n, (f, _) in probes.items():
        rows = [line.split() for line in open(f).read().splitlines()]
        rows = [(float(t0), float(t1), int(st)) for t0, t1, st in rows if float(t0) < heal]
        answered[n] = [(t0, t1) for t0, t1, st in rows if st != 0]
        written[n] = [(t0, t1) for t0, t1, st in rows if st == 200]
        print("%s's app: %d probes before the heal, %d answered, %d writes acknowledged" % (
            n, len(rows), len(answered[n]), len(written[n])))
    assert written["alpha"], "alpha never acknowledged a probe write before the cut"
    late = [s for s in written["alpha"] if s[0] > t_cut]
    assert not late, "alpha acknowledged %d writes sent after its link was cut, the first " \
        "sent %.3f s after the cut" % (len(late), late[0][0] - t_cut)
    assert answered["beta"], "beta's app never answered a probe before the heal"
    last_alpha = max(answered["alpha"], key=lambda s: s[0])
    first_beta = min(answered["beta"], key=lambda s: s[1])
    print("alpha's app answered last %.3f s before beta's first answer began" % (
        first_beta[0] - last_alpha[1]))
    # An answer came at some moment between a probe's t0 and t1: alpha's
    # last one provably came after beta's first only if it began later.
    assert last_alpha[0] < first_beta[1], \
        "alpha's app answered a request sent at %.3f, after beta's had answered one by %.3f" % (
            last_alpha[0], first_beta[1])


def disk_full_backup_degrades_and_recovers():
    """beta's state_dir is a 64 MiB tmpfs and the app's base image is
    bigger: beta refuses it (backup_degraded, state "degraded" on alpha),
    alpha keeps serving reads, and once the tmpfs grows beta catches up.
    Then a filler file takes all free space while beta holds a chain:
    degraded again, the chain still loads, and it catches up once the
    filler is gone, with every acknowledged write: beta takes over with
    them when alpha's host dies."""
    with app_cluster(kv_args=("-preload", "80000")) as c:
        state = os.path.join(c["beta"].dir, "state")
        sh("mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", state)
        try:
            fill_and_free_beta(c, state)
        finally:
            sh("umount", "-l", state, check=False)


def fill_and_free_beta(c, state):
    """The two disk-full phases of the scenario above."""
    t = time.time()
    converge(c)
    wait_serving(c, "alpha")
    degraded = wait_event_since(c, "backup_degraded", "alpha", t, peer="beta")
    print("alpha:", degraded[0]["MESSAGE"])
    wait_until("beta degraded in alpha's status", lambda: (backup_entry(
        c, "alpha", "beta") or {}).get("state") == "degraded", 10)
    assert serving(c, "alpha"), "alpha stopped serving reads"
    check_keys_preloaded(c, "alpha", 80000)
    inspect_chain(c, "beta")
    sh("mount", "-o", "remount,size=1g", state)
    t = time.time()
    wait_caught_up(c, "alpha", "beta")
    wait_event_since(c, "backup_caught_up", "alpha", t, peer="beta")
    assert inspect_chain(c, "beta"), "beta caught up without a chain"

    filler = os.path.join(state, "filler")
    t = time.time()  # beta may refuse an image while the filler grows: the event comes once
    sh("sh", "-c", "dd if=/dev/zero of=%s bs=1M 2>/dev/null; true" % filler)
    w = Writer(c, ["alpha"], threads=2)
    wait_event_since(c, "backup_degraded", "alpha", t, peer="beta")
    assert serving(c, "alpha"), "alpha stopped serving reads"
    gens = inspect_chain(c, "beta")
    print("beta's chain while its disk is full: %d generations, all load" % len(gens))
    os.unlink(filler)
    t = time.time()
    wait_caught_up(c, "alpha", "beta")
    wait_event_since(c, "backup_caught_up", "alpha", t, peer="beta")
    w.wait_acks(20)  # writes are acknowledged again
    acked = w.stop()
    inspect_chain(c, "beta")
    # Nothing acknowledged was lost on the way: beta takes over with it all.
    kill_host(c, "alpha")
    wait_serving(c, "beta")
    print("%d writes acknowledged while beta's disk filled and emptied" % len(acked))
    check_keys(c, w.acks, "beta")
    check_keys_preloaded(c, "beta", 80000)


def check_keys_preloaded(c, node, n):
    """A few of the n preloaded keys read back from node (kvserver's PreloadValue)."""
    for i in (0, n // 2, n - 1):
        r = sh("ip", "netns", "exec", c["gamma"].ns, "curl", "-sf", "-m", "5",
               "%s/k/k%d" % (url(c, node), i), check=False, timeout=10)
        unit = "v%d." % i
        assert r.returncode == 0 and r.stdout.startswith(unit * 3), (i, r.returncode,
                                                                     r.stdout[:40])


def backup_restarted_mid_transfer_catches_up():
    """kvserver preloads 200000 keys: SIGKILL beta's daemon while it
    receives the base, restart it: it catches up (acknowledges alpha's
    newest generation), leaves no .tmp file behind, and serves every key
    once alpha's host dies."""
    with app_cluster(kv_args=("-preload", "200000")) as c:
        converge(c)
        state = os.path.join(c["beta"].dir, "state")

        def receiving():
            for f in glob.glob(os.path.join(state, "*", "gen-*.img.tmp")):
                try:
                    if os.path.getsize(f) > 16 << 20:
                        return f
                except FileNotFoundError:
                    pass
            return None
        tmp = wait_until("beta receiving the base", receiving, 60, step=0.005)
        size = os.path.getsize(tmp)
        c.kill("beta")
        print("killed beta with %d bytes of %s received" % (size, os.path.basename(tmp)))
        assert not (backup_entry(c, "alpha", "beta") or {}).get("acked_generation"), \
            "beta had acknowledged a generation already: the kill was not mid-transfer"
        t_restart = time.time()
        c.start("beta")
        wait_serving(c, "alpha")
        target = wait_caught_up(c, "alpha", "beta", timeout=60)
        print("beta acknowledged generation %d after its restart" % target)
        # Transfers and compactions go on: a partial file written since the
        # restart is one of them, an older one is left over.
        left = []
        for f in glob.glob(os.path.join(state, "*", "*.tmp")):
            with contextlib.suppress(FileNotFoundError):
                if os.stat(f).st_mtime < t_restart:
                    left.append(f)
        assert not left, "beta left partial images from before its restart: %s" % left
        inspect_chain(c, "beta")
        # What beta holds now is a working chain: it takes over with every key.
        first = client(c, "gamma", "first", url(c, "beta"))
        t_kill = kill_host(c, "alpha")
        out, _ = first.communicate(timeout=30)
        assert first.returncode == 0, "beta's app never answered"
        print("with 200000 keys, beta answered %.3f s after alpha's host was killed" % (
            float(out) - t_kill))
        check_keys_preloaded(c, "beta", 200000)


def failover_repeated():
    """Six faults in a row under writes, alternating: SIGKILL the app on the
    primary (restored locally), SIGKILL the primary's host (the backup takes
    over; the dead host is restarted and rejoins). Zero acknowledged writes
    lost, every failover completes."""
    faults_in_a_row(["app", "host"] * 3)


def failover_randomized():
    """Twenty faults chosen at random (seed from $CS_SEED, else the time;
    printed) among: SIGKILL the app, SIGKILL the primary's host, cut the
    primary's link. Zero acknowledged writes lost, every failover completes."""
    seed = int(os.environ.get("CS_SEED") or time.time())
    print("CS_SEED=%d" % seed)
    rnd = random.Random(seed)
    faults_in_a_row([rnd.choice(["app", "host", "cut"]) for _ in range(20)])


def faults_in_a_row(kinds):
    """Each fault in turn under writes, with the backup caught up before it;
    then every acknowledged write is read back from the last primary."""
    with app_cluster() as c:
        started(c)
        w = Writer(c, ["alpha", "beta"], threads=8)
        primary, backup = "alpha", "beta"
        kills = {"alpha": [], "beta": []}  # app kills, per daemon's life
        for i, kind in enumerate(kinds):
            w.wait_acks(20, node=primary)
            wait_caught_up(c, primary, backup)
            t0 = time.monotonic()
            if kind == "app":
                what = app_fault(c, primary, backup, kills[primary])
            else:
                what = host_or_link_fault(c, kind, primary, backup)
                if kind == "host":
                    kills[primary] = []
            if "took over" in what:
                primary, backup = backup, primary
                wait_until("%s back as a backup" % backup, lambda: c.converged(primary), 20)
            print("fault %d: %s, serving after %.2f s" % (i + 1, what, time.monotonic() - t0))
        w.wait_acks(20, node=primary)
        acked = w.stop()
        print("%d writes acknowledged across the faults" % len(acked))
        check_keys(c, w.acks, primary)


MAX_RESTORES = 3  # app.max_restores_per_minute's default


def app_fault(c, primary, backup, kills):
    """SIGKILLs the app: restored locally, unless that would be more than
    MAX_RESTORES within a minute: then the backup takes over (a minute is
    the daemon's; kills within 55-65 s of this one may count either way)."""
    now = time.monotonic()
    surely = sum(now - k < 55 for k in kills) + 1
    maybe = sum(now - k < 65 for k in kills) + 1
    kills.append(now)
    t = time.time()
    kill_app(c, primary)

    def outcome():
        if events_since(c, "app_restored_locally", primary, t):
            return "local"
        return "failover" if c[backup].role()[0] == "primary" else None
    got = wait_until("the app restored on %s or %s promoted" % (primary, backup), outcome, 20,
                     step=0.1)
    if surely > MAX_RESTORES:
        assert got == "failover", "%s restored the app for the %d. time in a minute" % (
            primary, surely)
    if maybe <= MAX_RESTORES:
        assert got == "local", "%s failed over after %d restores in a minute" % (primary, maybe)
    if got == "local":
        wait_serving(c, primary)
        return "app on %s restored locally" % primary
    wait_serving(c, backup)
    return "app on %s killed %d times in a minute, %s took over" % (primary, surely, backup)


def host_or_link_fault(c, kind, primary, backup):
    """SIGKILLs the primary's host or cuts its link; the backup takes over,
    then the host is restarted or its link healed."""
    if kind == "host":
        kill_host(c, primary)
    else:
        c.cut(primary)
    wait_until("%s primary" % backup, lambda: c[backup].role()[0] == "primary", 15)
    wait_serving(c, backup)
    if kind == "host":
        c.start(primary)
    else:
        c.heal(primary)
    return "%s %s, %s took over" % (primary, "killed" if kind == "host" else "cut off", backup)


# ---- the warm standby (issue 13) ----

REFUSER = os.path.join(HERE, "standby_refuser.py")


def standby_of(c, node):
    s = c[node].status()
    return (s or {}).get("standby") or {}


def wait_standby(c, node, generation, timeout=60):
    """Waits until node's standby is ready (or applying) at generation or newer."""
    def ok():
        sb = standby_of(c, node)
        return sb.get("state") in ("ready", "applying") and sb.get("generation", 0) >= generation
    wait_until("%s's standby at generation %d" % (node, generation), ok, timeout, step=0.1)
    return standby_of(c, node)


def started_with_standby(c, acks):
    """Boots the cluster (alpha primary) with a writer that got acks
    acknowledged and beta's standby at the generation beta acknowledged."""
    started(c)
    w = Writer(c, ["alpha", "beta"])
    w.wait_acks(acks)
    wait_standby(c, "beta", wait_caught_up(c, "alpha", "beta"))
    return w


def restore_events(c, node, t):
    """(restore_started events, the restore_done) of node's takeover after t."""
    done = wait_event_since(c, "restore_done", node, t)[0]
    return events_since(c, "restore_started", node, t), done


def take_over(c, primary, backup, t_kill):
    """After primary's host died at t_kill (time.time()): backup promotes and
    serves; returns (restore_started events, restore_done, seconds from the
    kill to the first answer)."""
    wait_until("%s primary" % backup, lambda: c[backup].role()[0] == "primary", 15)
    wait_serving(c, backup)
    took = time.time() - t_kill
    started_evs, done = restore_events(c, backup, t_kill)
    return started_evs, done, took


def standby_failovers(n, standby=True):
    """n host kills in a row under kvserver -sync writes, alternating the
    primary between alpha and beta (the dead host restarts and rejoins as
    the backup). Before each kill the backup's standby equals the
    generation the primary had when the backup acknowledged it; the
    takeover then goes through the standby (restore_started and
    restore_done with CHECKSYNC_PATH=standby; status app.path standby), or,
    with checkpoint.standby false, cold with the reason "off:
    checkpoint.standby is false" and no standby tool ever started. Zero
    acknowledged writes lost; the metrics count the failovers by path."""
    path = "standby" if standby else "cold"
    with app_cluster(checkpoint={"standby": standby}) as c:
        started(c)
        w = Writer(c, ["alpha", "beta"])
        primary, backup = "alpha", "beta"
        for i in range(n):
            w.wait_acks(20, node=primary)
            target = wait_caught_up(c, primary, backup)
            if standby:
                sb = wait_standby(c, backup, target)
                assert sb["rss_bytes"] > 0 and sb["pid"] > 0, sb
                if i == 0:
                    check_standby_metrics(c, backup, target)
            else:
                sb = standby_of(c, backup)
                assert sb["state"] == "off" and sb["starts"] == 0, sb
            shown = c[backup].ctl("status").stdout
            want = "standby:  ready" if standby else "standby:  off (checkpoint.standby is false)"
            assert want in shown or (standby and "standby:  applying" in shown), shown
            t = time.time()
            kill_host(c, primary)
            starts, done, took = take_over(c, primary, backup, t)
            assert done.get("CHECKSYNC_PATH") == path, done
            assert [e.get("CHECKSYNC_PATH") for e in starts] == [path], starts
            if not standby:
                assert done.get("CHECKSYNC_PATH_REASON") == "off: checkpoint.standby is false", done
            assert app_of(c, backup).get("path") == path, app_of(c, backup)
            assert "restored: %s path" % path in c[backup].ctl("status").stdout
            print("failover %d: %s -> %s, %s path, generation %s, first answer %.2f s after "
                  "the kill" % (i + 1, primary, backup, path, done.get("CHECKSYNC_GENERATION"),
                                took))
            c.start(primary)
            wait_until("%s back as a backup" % primary, lambda: c.converged(backup), 20)
            primary, backup = backup, primary
        w.wait_acks(20, node=primary)
        acked = w.stop()
        print("%d writes acknowledged across %d failovers" % (len(acked), n))
        check_keys(c, w.acks, primary)
        m = metrics(c, primary)
        assert m.get('checksync_failovers_total{path="%s"}' % path, 0) >= 1, m


def check_standby_metrics(c, backup, target):
    """The backup's scrape shows its standby (rss, generation) and passes promtool."""
    text = metrics_text(c, backup)
    promtool_check(text)
    m = metrics(c, backup)
    assert m.get('checksync_standby_state{state="ready"}', 0) + m.get(
        'checksync_standby_state{state="applying"}', 0) == 1, m
    assert m.get("checksync_standby_rss_bytes", 0) > 0, m
    assert m.get("checksync_standby_generation", 0) >= target, m
    assert 'checksync_failovers_total{path="standby"}' in m, m
    print("%s's standby: %.0f MiB resident, generation %d, %d generations applied" % (
        backup, m["checksync_standby_rss_bytes"] / 2**20, m["checksync_standby_generation"],
        m.get("checksync_standby_applied_total", 0)))


def standby_failovers_serve_every_synced_key():
    """Four failovers through the warm standby (standby_failovers)."""
    standby_failovers(4)


def standby_failovers_long():
    """Twenty failovers through the warm standby (suite cluster-long, out
    of the default test setup: docs/hacking.md)."""
    standby_failovers(int(os.environ.get("CS_FAILOVERS") or 20))


def standby_off_failovers_long():
    """Twenty cold failovers (checkpoint.standby false; suite cluster-long)."""
    standby_failovers(int(os.environ.get("CS_FAILOVERS") or 20), standby=False)


def standby_off_failovers_take_the_cold_path():
    """checkpoint.standby false: the same failovers, each cold (standby_failovers)."""
    standby_failovers(2, standby=False)


def standby_adopted_app_is_supervised_as_restored():
    """The promoted standby is supervised as a restored app. alpha's host
    dies: beta promotes its standby and adopts the tool as its app (path
    standby in the journal and the status), and with alpha back as its
    backup the adopted app acknowledges writes. beta is cut off: it fences,
    and the adopted app and its tool are gone; alpha takes over through its
    own standby. alpha's adopted app is SIGKILLed: restored locally as any
    app (app.on_exit restore: cold, "off: this node is not a backup"), its
    tool gone. Every acknowledged write is served at the end."""
    with app_cluster() as c:
        w = started_with_standby(c, 30)
        t = time.time()
        kill_host(c, "alpha")
        adopted(c, "beta", t)
        c.start("alpha")  # alone, beta's Sync has no backup to wait for
        wait_until("alpha back as a backup", lambda: c.converged("beta"), 20)
        w.wait_acks(20, node="beta")
        wait_standby(c, "alpha", wait_caught_up(c, "beta", "alpha"))
        app = app_of(c, "beta")
        t = time.time()
        c.cut("beta")
        wait_until("beta fenced", lambda: c["beta"].role()[0] == "fenced", 10)
        for pid in (app["pid"], app["tool_pid"]):
            wait_until("beta's adopted app (pid %d) gone after the fence" % pid,
                       lambda: pid_gone(pid), 5)
        adopted(c, "alpha", t)
        c.heal("beta")
        wait_until("beta back as a backup", lambda: c.converged("alpha"), 20)
        w.wait_acks(20, node="alpha")
        t = time.time()
        tool = app_of(c, "alpha")["tool_pid"]
        kill_app(c, "alpha")
        restored = wait_event_since(c, "app_restored_locally", "alpha", t)
        done = wait_event_since(c, "restore_done", "alpha", t)[0]
        assert done.get("CHECKSYNC_PATH") == "cold", done
        assert done.get("CHECKSYNC_PATH_REASON") == "off: this node is not a backup", done
        assert pid_gone(tool), "the adopted tool %d outlived its app" % tool
        print("alpha:", restored[0]["MESSAGE"])
        w.wait_acks(20, node="alpha")
        acked = w.stop()
        check_keys(c, w.acks, "alpha")
        print("%d writes acknowledged" % len(acked))


def adopted(c, node, t):
    """node took over after t through its standby, whose tool is its app now."""
    wait_until("%s primary" % node, lambda: c[node].role()[0] == "primary", 15)
    wait_serving(c, node)
    starts, done = restore_events(c, node, t)
    print("%s: %s" % (node, done["MESSAGE"]))
    assert [e.get("CHECKSYNC_PATH") for e in starts] == ["standby"], starts
    assert done.get("CHECKSYNC_PATH") == "standby", done
    assert app_of(c, node)["path"] == "standby", app_of(c, node)


def standby_killed_or_refused_goes_cold():
    """A standby that is gone or refuses leaves the failover to the cold
    path at once, and the journal says why. 1: alpha's host dies and beta's
    standby tool is SIGKILLed (again whenever it restarts) until beta is
    primary: beta restores cold ("failed: ..." killed by signal 9, or
    "building: ..." when the restarted one was not ready). 2: alpha comes
    back as the backup with a tool whose standby answers promote with an
    error (standby_refuser.py); beta's host dies: alpha tries the standby
    (restore_started path=standby), gets "refused: SENTENCE" and restores
    cold (restore_started and restore_done path=cold with that reason).
    Every acknowledged write survives both."""
    with app_cluster() as c:
        w = started_with_standby(c, 20)
        t = time.time()
        kill_host(c, "alpha")
        killed, tree = 0, []
        while c["beta"].role()[0] != "primary":
            pid = standby_of(c, "beta").get("pid")
            if pid:
                tree += [pid] + descendants(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
            time.sleep(0.02)
        starts, done, _ = take_over(c, "alpha", "beta", t)
        why = done.get("CHECKSYNC_PATH_REASON", "")
        print("beta (%d standby tools killed): %s; %s" % (killed, done["MESSAGE"], why))
        assert killed >= 1 and done.get("CHECKSYNC_PATH") == "cold", done
        assert why.startswith("failed: the standby tool was killed by signal 9") or \
            why.startswith("building: "), done
        assert starts[-1].get("CHECKSYNC_PATH") == "cold", starts
        for pid in tree:  # the standby's namespace init and restorer die with it
            wait_until("process %d of a killed standby gone" % pid, lambda: pid_gone(pid), 5)

        c.start("alpha", env={"CHECKSYNC_TOOL": REFUSER,
                              "CHECKSYNC_REAL_TOOL": c.build_file("agent/tool/checksync")})
        wait_until("alpha back as a backup", lambda: c.converged("beta"), 20)
        w.wait_acks(20, node="beta")
        wait_standby(c, "alpha", wait_caught_up(c, "beta", "alpha"))
        t = time.time()
        kill_host(c, "beta")
        starts, done, _ = take_over(c, "beta", "alpha", t)
        print("alpha:", [(e.get("CHECKSYNC_PATH"), e.get("CHECKSYNC_PATH_REASON")) for e in starts],
              done["MESSAGE"])
        assert [e.get("CHECKSYNC_PATH") for e in starts] == ["standby", "cold"], starts
        refused = "refused: test: promote refused on purpose"
        assert starts[1].get("CHECKSYNC_PATH_REASON", "").startswith(refused), starts[1]
        assert done.get("CHECKSYNC_PATH") == "cold", done
        assert done.get("CHECKSYNC_PATH_REASON", "").startswith(refused), done
        acked = w.stop()
        print("%d writes acknowledged" % len(acked))
        check_keys(c, w.acks, "alpha")


SCENARIOS = {f.__name__: f for f in [
    app_killed_is_restored_locally,
    app_killed_with_on_exit_failover_moves_to_beta,
    corrupt_image_is_refused_and_sent_again,
    host_killed_backup_serves_every_synced_key,
    host_killed_memory_durability_serves_every_synced_key,
    cut_primary_never_two_writers,
    disk_full_backup_degrades_and_recovers,
    backup_restarted_mid_transfer_catches_up,
    failover_repeated,
    failover_randomized,
    standby_failovers_serve_every_synced_key,
    standby_failovers_long,
    standby_off_failovers_long,
    standby_off_failovers_take_the_cold_path,
    standby_killed_or_refused_goes_cold,
    standby_adopted_app_is_supervised_as_restored,
]}

if __name__ == "__main__":
    harness.run(SCENARIOS)
