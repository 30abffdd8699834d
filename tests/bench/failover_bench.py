#!/usr/bin/env python3
"""Failover benchmark (not a test): a three-host cluster in network
namespaces (tests/cluster/harness.py) runs kvserver with -preload N and
-sync; the benchmark measures, per store size:

  sync       Sync latency (PUT answered after checksync.Sync) at 1, 10 and
             100 checkpoints/s, with checkpoint.durability disk and memory,
             p50/p99, against a PUT without -sync on the same server (the
             baseline: ratio = sync latency / plain latency)
  repl       replication of the first full image over TLS between two
             namespaces: MiB/s, and CPU ms per MiB on the sender and the
             receiver (their daemons' utime+stime)
  failover   the primary's host SIGKILLed: detection (kill -> primary_lost
             on the backup), election (-> promoted), restore
             (restore_started -> restore_done), first request answered on
             the backup, all from the kill; the chain's size on disk. Per
             path (--standby): "standby", the backup's warm standby
             promoted (checkpoint.standby true; the kill waits until the
             standby equals the backup's newest generation), or "cold",
             `checksync restore` from the chain (checkpoint.standby
             false). Reported: kill -> first answer and promotion ->
             first answer, the path the journal names (restore_done's
             CHECKSYNC_PATH, and why when cold), and the standby's cost
             on the backup (rss, build ms, CPU ms per MiB applied)

Prints one table; check `uptime` first: figures taken under load are
figures of the load. --json FILE writes the figures (the failover's
moments in ms since the kill, the Sync latencies); --plot DIR draws the
failover timeline (tests/bench/plot.py: failover-timeline.png). Usage (root):
  tests/bench/failover_bench.py [--build-root build] [--keys 200000,1000000]
      [--standby on|off|both] [--json FILE [--plot DIR]]
--keys (alias --preload) are kvserver -preload sizes (1 KiB values, about
1.5 KiB of RSS per key: 200000 keys ~ 300 MiB, 1000000 ~ 1.35 GiB). --standby both
(the default) runs the two paths interleaved for each size, cold first.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import journald  # noqa: E402
import plot  # noqa: E402

PORT = 8080
# Runs in the witness's namespace: N PUTs of 1 KiB, prints each latency (us).
CLIENT = r"""
import http.client, sys, time
host, n, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = http.client.HTTPConnection(host, %d, timeout=30)
body = b"x" * 1024
for i in range(n):
    t = time.monotonic()
    c.request("PUT", "/k/bench%%d" %% i, body=body)
    r = c.getresponse(); r.read()
    print(int((time.monotonic() - t) * 1e6), r.status)
    time.sleep(pause)
""" % PORT


def cluster(build, keys, interval_ms, sync=True, durability="disk", standby=False):
    c = harness.Cluster([("alpha", False), ("beta", False), ("gamma", True)],
                        interval_ms=100, timeout_ms=1000)
    kv = os.path.join(build, "agent", "go", "kvserver")
    plain = c.config_of

    def config_of(n):
        cfg = plain(n)
        if not n.witness:
            cfg["app"] = {"exec": [kv, "-listen", "0.0.0.0:%d" % PORT, "-preload", str(keys)]
                          + (["-sync"] if sync else [])}
            cfg["checkpoint"] = {"interval_ms": interval_ms, "durability": durability,
                                 "standby": standby}
        return cfg
    c.config_of = config_of
    return c


def in_ns(c, node, *cmd, timeout=600):
    return subprocess.run(["ip", "netns", "exec", c[node].ns] + list(cmd), capture_output=True,
                          text=True, timeout=timeout)


def answers(c, node, path="/stats"):
    return in_ns(c, "gamma", "curl", "-s", "-m", "1", "-o", "/dev/null", "-w", "%{http_code}",
                 "http://%s:%d%s" % (c[node].address, PORT, path)).stdout == "200"


def caught_up(c):
    s = c["alpha"].status() or {}
    b = [x for x in s.get("backups", []) if x["name"] == "beta"]
    return b and b[0]["up"] and b[0]["acked_generation"] > 0 and b[0]["lag_generations"] == 0


def cpu_ms(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def events(c, kind, node):
    r = harness.sh("journalctl", "-D", c.journal.dir, "--no-pager", "-o", "json",
                   "CHECKSYNC_EVENT=" + kind, "CHECKSYNC_NODE=" + node, check=False)
    return [json.loads(x) for x in r.stdout.splitlines() if x.strip()]


def first_time(c, kind, node, timeout=10):
    """When node first logged kind (journald may write it a moment later)."""
    e = harness.wait_until("%s on %s" % (kind, node), lambda: events(c, kind, node), timeout)
    return int(e[0]["__REALTIME_TIMESTAMP"]) / 1e6


def start(c):
    c.start_infrastructure()
    c.start_all()
    harness.wait_until("alpha primary", lambda: c.converged("alpha"), 30)
    harness.wait_until("kvserver", lambda: answers(c, "alpha"), 120)


def latencies(c, n, pause):
    r = in_ns(c, "gamma", sys.executable, "-c", CLIENT, c["alpha"].address, str(n), str(pause))
    rows = [line.split() for line in r.stdout.splitlines()]
    return sorted(int(us) for us, status in rows if status == "200"), len(rows)


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")


def bench_sync(build, keys):
    """Rows (interval, mode, latencies, sent); mode: plain (no -sync, the
    baseline), disk or memory (-sync with that checkpoint.durability)."""
    out = []
    for interval in (1000, 100, 10):
        for mode in ("plain", "disk", "memory"):
            c = cluster(build, keys, interval, mode != "plain",
                        "memory" if mode == "memory" else "disk")
            try:
                start(c)
                harness.wait_until("beta caught up", lambda: caught_up(c), 300)
                lat, sent = latencies(c, 20 if interval == 1000 else 100, 0.0)
                out.append((interval, mode, lat, sent))
            finally:
                c.stop()
    return out


def standby_caught_up(c):
    """beta's standby is ready at beta's newest generation (or newer)."""
    s = c["beta"].status() or {}
    sb = s.get("standby") or {}
    return sb.get("state") in ("ready", "applying") and \
        sb.get("generation", 0) >= s.get("store", {}).get("newest", 1)


def bench_failover(build, keys, standby):
    c = cluster(build, keys, 100, standby=standby)
    try:
        start(c)
        a, b = c["alpha"].proc.pid, c["beta"].proc.pid
        ca0, cb0 = cpu_ms(a), cpu_ms(b)
        t0 = first_time(c, "backup_joined", "alpha")
        harness.wait_until("beta caught up", lambda: caught_up(c), 600)
        t1 = time.time()
        ca1, cb1 = cpu_ms(a), cpu_ms(b)
        sent = (c["alpha"].status()["backups"][0])["sent_bytes"] / 2**20
        chain = sum(os.path.getsize(os.path.join(d, f)) for d in [os.path.join(
            c["beta"].dir, "state", "chain")] for f in os.listdir(d) if f.endswith(".img"))
        repl = (sent, sent / (t1 - t0), (ca1 - ca0) / sent, (cb1 - cb0) / sent)
        time.sleep(2)
        if standby:
            harness.wait_until("beta's standby caught up", lambda: standby_caught_up(c), 600)
        sb = (c["beta"].status() or {}).get("standby") or {}
        kill = time.time()
        c.kill("alpha")
        harness.wait_until("beta serves", lambda: answers(c, "beta", "/k/k0"), 120, step=0.005)
        first = time.time() - kill
        lost = first_time(c, "primary_lost", "beta")
        promoted = first_time(c, "promoted", "beta")
        rs, rd = first_time(c, "restore_started", "beta"), first_time(c, "restore_done", "beta")
        done = events(c, "restore_done", "beta")[0]
        times = {"primary_lost": lost - kill, "promoted": promoted - kill,
                 "restore_started": rs - kill, "restore_done": rd - kill, "first_answer": first}
        # The tool reports whole CPU ms per apply: small deltas round to 0,
        # so this is a floor, meaningful with large deltas.
        mib = sb.get("applied_bytes", 0) / 2**20
        return dict(repl=repl, chain_mb=chain / 2**20, detect=lost - kill,
                    elect=promoted - kill, restore=(rd - rs) if rs and rd else None,
                    first=first, promotion_to_first=first - (promoted - kill),
                    path=done.get("CHECKSYNC_PATH", "?"),
                    path_reason=done.get("CHECKSYNC_PATH_REASON", ""),
                    standby=dict(rss_mb=sb.get("rss_bytes", 0) / 2**20,
                                 build_ms=sb.get("build_ms"), applied=sb.get("applied", 0),
                                 cpu_ms_per_mib=(sb.get("applied_cpu_ms", 0) / mib
                                                 if mib else None)),
                    times_ms={k: v * 1e3 for k, v in times.items()})
    finally:
        c.stop()


def print_failover(keys, f):
    print("\n%d keys, %s path%s: chain on the backup %.0f MiB" % (
        keys, f["path"], " (%s)" % f["path_reason"] if f["path_reason"] else "", f["chain_mb"]))
    print("  replication of the first images: %.0f MiB at %.0f MiB/s; CPU per MiB: "
          "sender %.1f ms, receiver %.1f ms" % f["repl"])
    print("  from the kill: primary_lost %.0f ms, promoted %.0f ms, first request %.0f ms;"
          " restore (started -> done) %s ms; promotion -> first answer %.0f ms" % (
              f["detect"] * 1e3, f["elect"] * 1e3, f["first"] * 1e3,
              "%.0f" % (f["restore"] * 1e3) if f["restore"] else "?",
              f["promotion_to_first"] * 1e3))
    sb = f["standby"]
    if f["path"] == "standby":
        print("  standby on the backup: rss %.0f MiB, built in %s ms, %d generations applied, "
              "%s CPU ms per MiB applied" % (
                  sb["rss_mb"], sb["build_ms"], sb["applied"],
                  "%.1f" % sb["cpu_ms_per_mib"] if sb["cpu_ms_per_mib"] is not None else "?"))


def print_paths(doc):
    """The table of the issue: failover time per path against the heap."""
    print("\n%-10s %-8s %10s %22s %20s" % ("keys", "path", "chain MiB", "promotion->answer ms",
                                           "kill->answer ms"))
    for f in doc["failover"]:
        print("%-10d %-8s %10.0f %22.0f %20.0f" % (f["keys"], f["path"], f["chain_mb"],
                                                  f["promotion_to_first"] * 1e3,
                                                  f["first"] * 1e3))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-root", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--keys", "--preload", default="200000",
                    help="kvserver -preload sizes, comma-separated")
    ap.add_argument("--standby", choices=("on", "off", "both"), default="both",
                    help="the failover's path: warm standby (on), cold (off), or both "
                    "interleaved per size")
    ap.add_argument("--no-sync", action="store_true", help="skip the Sync latency rounds")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--plot", metavar="DIR", help="draw the failover timeline into DIR "
                    "(needs --json)")
    a = ap.parse_args()
    if a.plot and not a.json:
        ap.error("--plot DIR needs --json FILE")
    doc = {"bench": "failover_bench", "args": vars(a), "failover": [], "sync": []}
    build = os.path.abspath(a.build_root)
    os.environ["CS_BUILD_DIR"] = build
    os.environ["CHECKSYNC_TOOL"] = os.path.join(build, "agent", "tool", "checksync")
    journald.reexec_in_mount_namespace()
    print("load average at start: %s" % open("/proc/loadavg").read().split()[:3])
    paths = {"on": [True], "off": [False], "both": [False, True]}[a.standby]
    for keys in [int(k) for k in a.keys.split(",")]:
        for standby in paths:
            f = bench_failover(build, keys, standby)
            doc["failover"].append(dict(f, keys=keys))
            save(a, doc)
            print_failover(keys, f)
        if a.no_sync:
            continue
        rows = bench_sync(build, keys)
        doc["sync"] += [{"keys": keys, "interval_ms": i, "mode": m, "latencies_us": lat,
                         "sent": n} for i, m, lat, n in rows]
        save(a, doc)
        base = {i: statistics.median(lat) for i, m, lat, _ in rows if m == "plain" and lat}
        print("  %-12s %-8s %10s %10s %8s %s" % ("ckpt every", "PUT", "p50 us", "p99 us",
                                                 "p50/base", "answered"))
        for interval, mode, lat, sent in rows:
            print("  %-12s %-8s %10.0f %10.0f %8.1f %d/%d" % (
                "%d ms" % interval, mode if mode == "plain" else "sync/" + mode,
                pct(lat, 0.5), pct(lat, 0.99),
                pct(lat, 0.5) / base.get(interval, float("nan")), len(lat), sent))
    print_paths(doc)
    print("load average at end: %s" % open("/proc/loadavg").read().split()[:3])
    if a.plot:
        try:
            for png in plot.plot_file(a.json, a.plot):
                print("wrote %s" % png)
        except plot.PlotError as e:
            sys.exit("no plot: %s" % e)


def save(a, doc):
    """After each measurement, so a later failure loses nothing."""
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
