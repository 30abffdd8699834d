#!/usr/bin/env python3
"""Checkpoint/restore benchmark (not a test): tests/bench/run.sh runs it.

For each heap size and dirty fraction it starts cr-bench-heap under
`checksync run` (on-demand checkpoints only), takes a first checkpoint, then
rounds of "dirty the fraction of pages, checkpoint", and finally SIGKILLs
the program and times `checksync restore` until the restored program ticks.

Per case it prints: pause per checkpoint (median, p99; the agent's own
figure from the control socket's "status"), checkpoint wall time (request
to durable reply, median), delta bytes, first image bytes against the
process's anonymous RSS, restore time. Ratios against baselines:
  pause/64M   pause against the 64 MiB heap at the same dirty fraction
              (the freeze should not grow with the heap)
  ckpt/fsync  checkpoint wall time against write()+fsync() of as many
              bytes into the same directory
  rest/start  restore time against a fresh start of the same program
              (map and fill the heap, first tick)

--json FILE writes every case with its pauses (ms, one per checkpoint) and
the figures of the table; --plot DIR draws them (tests/bench/plot.py:
cr-pause-cdf.png, cr-pause-histogram.png).
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cr"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crlib import App, Harness, TestFailure, log  # noqa: E402
import plot  # noqa: E402


def agent_request(d, req, timeout=300):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    try:
        s.connect(os.path.join(d, "agent.sock"))
        s.send(req.encode())
        return s.recv(4096).decode(errors="replace").strip()
    finally:
        s.close()


def status_field(d, name):
    reply = agent_request(d, "status")
    m = re.search(r"\b%s=(\d+)" % name, reply)
    if not m:
        raise TestFailure("agent status %r has no %s" % (reply, name))
    return int(m.group(1))


# Where the pause went (the status reply, microseconds): threads stopped,
# /proc/self/maps, the dirty and resident scan (wpscan is the PAGEMAP_SCAN
# part of scan), fds/timers/attributes, copy of the delta, clone of the writer.
PHASES = ("stop_us", "maps_us", "scan_us", "wpscan_us", "fds_us", "copy_us", "clone_us",
          "pause_cpu_us")


def status_phases(d):
    reply = agent_request(d, "status")
    return {k: int(m.group(1)) for k in PHASES
            for m in [re.search(r"\b%s=(\d+)" % k, reply)] if m}


def rss_anon_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def timed_checkpoint(app):
    t0 = time.monotonic()
    reply = agent_request(app.dir, "checkpoint")
    wall = time.monotonic() - t0
    m = re.match(r"ok (\d+)", reply)
    if not m:
        raise TestFailure("checkpoint request answered %r" % reply)
    gen = int(m.group(1))
    size = os.path.getsize(os.path.join(app.dir, "gen-%020d.img" % gen))
    pause_us = status_field(app.dir, "last_pause_us")
    return wall, size, pause_us, status_phases(app.dir)


def fsync_write_time(d, nbytes):
    """write()+fsync() of nbytes into d: the floor a checkpoint cannot beat."""
    path = os.path.join(d, "baseline.tmp")
    buf = os.urandom(1 << 20)
    t0 = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        left = nbytes
        while left > 0:
            left -= os.write(fd, buf[:min(left, len(buf))])
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)
    return time.monotonic() - t0


def fresh_start_time(h, exe, mib):
    p = h.start("fresh start", [exe, "--mib", str(mib)])
    t0 = time.monotonic()
    p.wait_line(r"^tick ", 300, "first tick of a fresh start")
    t = time.monotonic() - t0
    p.kill()
    return t


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def run_case(h, exe, mib, permille, rounds):
    app = App(h, "cr-bench-heap", ["--mib", str(mib), "--permille", str(permille)],
              interval_ms=3600 * 1000, exe=exe)
    app.run(ready_timeout=600, ready_rx=r"^ready \d+")
    first_wall, first_size, first_pause, _ = timed_checkpoint(app)
    rss = rss_anon_kib(app.host_pid) * 1024
    pauses, walls, sizes, phases = [], [], [], []
    for _ in range(rounds):
        start = app.proc.count()
        app.signal(signal.SIGUSR2)
        app.proc.wait_line(r"^dirtied \d+", 120, "dirtying", start=start)
        wall, size, pause_us, ph = timed_checkpoint(app)
        phases.append(ph)
        walls.append(wall)
        sizes.append(size)
        pauses.append(pause_us / 1000.0)
    app.kill()
    restore = None
    t0 = time.monotonic()
    try:
        app.restore(timeout=600)  # a 4 GiB restore on a loaded machine takes minutes
        app.proc.wait_line(r"^tick ", 600, "first tick after restore")
        restore = time.monotonic() - t0
    except TestFailure as e:
        log("restore failed (the table shows no restore time): %s" % e)
    app.proc.kill()
    cold = cold_restore(app) if ARGS.cold else {}
    fsync = fsync_write_time(app.dir, int(statistics.median(sizes)))
    return {
        "mib": mib, "permille": permille, "rounds": rounds,
        "pause_med": statistics.median(pauses), "pause_p99": pct(pauses, 0.99),
        "wall_med": statistics.median(walls) * 1000, "delta_med": statistics.median(sizes),
        "first_size": first_size, "first_wall": first_wall * 1000,
        "first_pause": first_pause / 1000.0, "rss": rss, "restore": restore * 1000 if restore else None,
        "start": fresh_start_time(h, exe, mib) * 1000, "fsync": fsync * 1000,
        "pauses_ms": pauses, **cold,
        "phases": {k: statistics.median([p.get(k, 0) for p in phases]) / 1000.0
                   for k in PHASES},
    }


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def chain_bytes(d):
    return sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d)
               if n.startswith("gen-") and n.endswith(".img"))


def disk_read_time(d):
    """Seconds to read every image of d with a cold page cache: the disk's pace."""
    drop_caches()
    t0 = time.monotonic()
    for n in sorted(os.listdir(d)):
        if n.startswith("gen-") and n.endswith(".img"):
            with open(os.path.join(d, n), "rb", buffering=0) as f:
                while f.read(8 << 20):
                    pass
    return time.monotonic() - t0


def cold_restore(app):
    """The same restore with the page cache dropped, against reading the
    chain's files from the cold disk."""
    out = {"chain_bytes": chain_bytes(app.dir), "disk_read": disk_read_time(app.dir) * 1000}
    drop_caches()
    t0 = time.monotonic()
    try:
        app.restore(timeout=600)
        app.proc.wait_line(r"^tick ", 600, "first tick after a cold restore")
        out["cold_restore"] = (time.monotonic() - t0) * 1000
    except TestFailure as e:
        log("cold restore failed: %s" % e)
    app.proc.kill()
    return out


def mem_ok(mib, d, copies=3):
    """Whether copies heaps fit in available memory and three on disk."""
    with open("/proc/meminfo") as f:
        avail = int(re.search(r"MemAvailable:\s+(\d+)", f.read()).group(1)) // 1024
    st = os.statvfs(d)
    disk = st.f_bavail * st.f_frsize // (1 << 20)
    # the program, its copy-on-write twin while an image is written, the
    # restored copy's page cache, and three images on disk
    return avail >= copies * mib and disk >= 3 * mib, avail, disk


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-root", required=True)
    ap.add_argument("--sizes", default="64,1024,4096", help="heap sizes in MiB")
    ap.add_argument("--dirty", default="10,100", help="dirty fractions in permille")
    ap.add_argument("--rounds", type=int, default=0, help="checkpoints per case (0: by size)")
    ap.add_argument("--cold", action="store_true",
                    help="also restore with the page cache dropped, against reading the chain "
                         "from the cold disk (drops the whole machine's page cache)")
    ap.add_argument("--json", help="write the cases, with every pause, to this file")
    ap.add_argument("--plot", metavar="DIR", help="draw the pauses into DIR (needs --json)")
    args = ap.parse_args()
    global ARGS
    ARGS = args
    if args.plot and not args.json:
        ap.error("--plot DIR needs --json FILE")
    args.workloads = os.path.abspath(os.path.join(args.build_root, "tests", "bench"))
    h = Harness(args, "bench")
    exe = os.path.join(args.workloads, "cr-bench-heap")
    results = []
    try:
        if not h.check_ready():
            return 77
        for mib in [int(x) for x in args.sizes.split(",")]:
            ok, avail, disk = mem_ok(mib, tempfile.gettempdir())
            if not ok:
                log("skip %d MiB: %d MiB memory available, %d MiB disk; want 3x the heap" %
                    (mib, avail, disk))
                continue
            for permille in [int(x) for x in args.dirty.split(",")]:
                rounds = args.rounds or (30 if mib <= 64 else 10 if mib <= 1024 else 4)
                log("== heap %d MiB, %.1f%% dirty, %d rounds" % (mib, permille / 10, rounds))
                results.append(run_case(h, exe, mib, permille, rounds))
                h.cleanup()
                h.procs, h.tmpdirs = [], []
    except TestFailure as e:
        log("benchmark failed: %s" % e)
        return 1
    finally:
        h.cleanup()
    report(results)
    return save(args, results)


def save(args, results):
    if not args.json:
        return 0
    doc = {"bench": "cr_bench", "args": vars(args), "machine": cpu_model(),
           "cpus": os.cpu_count(), "kernel": os.uname().release,
           "loadavg": open("/proc/loadavg").read().split()[:3], "cases": results}
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1)
    if args.plot:
        try:
            for png in plot.plot_file(args.json, args.plot):
                log("wrote %s" % png)
        except plot.PlotError as e:
            log("no plot: %s" % e)
            return 1
    return 0


def report(results):
    base = {r["permille"]: r for r in results if r["mib"] == 64}
    print()
    print("machine: %s, %d cpus, kernel %s" % (cpu_model(), os.cpu_count(), os.uname().release))
    hdr = ("heap", "dirty", "pause med", "p99", "pause/64M", "ckpt wall", "ckpt/fsync",
           "delta", "1st image", "anon RSS", "img/RSS", "restore", "rest/start")
    print("%7s %6s %10s %9s %9s %10s %10s %9s %10s %10s %7s %9s %10s" % hdr)
    for r in results:
        b = base.get(r["permille"])
        print("%6dM %5.1f%% %8.2fms %7.2fms %9s %8.1fms %10s %8.1fM %9.1fM %9.1fM %7.2f "
              "%9s %10s" % (
                  r["mib"], r["permille"] / 10, r["pause_med"], r["pause_p99"],
                  "%.2f" % (r["pause_med"] / b["pause_med"]) if b and b["pause_med"] else "-",
                  r["wall_med"],
                  "%.2f" % (r["wall_med"] / r["fsync"]) if r["fsync"] else "-",
                  r["delta_med"] / 2**20, r["first_size"] / 2**20, r["rss"] / 2**20,
                  r["first_size"] / r["rss"] if r["rss"] else 0,
                  "%.0fms" % r["restore"] if r["restore"] else "failed",
                  "%.2f" % (r["restore"] / r["start"]) if r["restore"] and r["start"] else "-"))
    print()
    print("restore speed: warm = page cache holds the chain; cold = dropped; disk = reading "
          "the chain's files cold")
    for r in results:
        warm = r["rss"] / 1e9 / (r["restore"] / 1000) if r["restore"] else 0
        line = "%6dM %5.1f%% warm %.2f GB/s of RSS" % (r["mib"], r["permille"] / 10, warm)
        if r.get("cold_restore"):
            disk = r["chain_bytes"] / 1e6 / (r["disk_read"] / 1000)
            cold = r["chain_bytes"] / 1e6 / (r["cold_restore"] / 1000)
            line += ("; cold %.0f ms, %.0f MB/s of chain; disk %.0f ms, %.0f MB/s; "
                     "cold/disk time %.2f" % (r["cold_restore"], cold, r["disk_read"], disk,
                                              r["cold_restore"] / r["disk_read"]))
        print(line)
    print()
    print("pause phases, median ms: " + " ".join(k[:-3] for k in PHASES))
    for r in results:
        print("%6dM %5.1f%% " % (r["mib"], r["permille"] / 10) +
              " ".join("%.2f" % r["phases"][k] for k in PHASES))
    print("(p99 of %s checkpoints per case is close to the maximum; first image: %s)" %
          ("/".join(str(r["rounds"]) for r in results),
           ", ".join("%dM %.0fms wall %.2fms pause" % (r["mib"], r["first_wall"], r["first_pause"])
                     for r in results)))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            return m.group(1) if m else "?"
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
