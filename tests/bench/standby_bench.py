#!/usr/bin/env python3
"""Warm standby against cold restore (not a test; issue 13). Per heap size:

  cr-bench-heap runs under `checksync run` (on-demand checkpoints only, no
  compactor); a first image, then `checksync standby --dir D` is built from
  it; then --rounds rounds of "dirty --dirty permille of the pages,
  checkpoint", each applied to the standby. Then, --reps times, in turn:

  standby  a fresh standby of the newest generation (run primary ->
           standby ready -> primary SIGKILLed -> `promote`): promote sent to
           the `promoted` event, and to the first tick of the promoted
           program on the tool's stdout
  cold     `checksync restore --generation G` of the same generation, to the
           first tick of the restored program

Printed as one table: the standby's build time (ms of its ready event) and
RSS, the apply cost per generation (wall ms and CPU ms, median, and CPU ms
per MiB of delta), promote and cold restore times (median of --reps), and
cold/standby. The cold column is the guard of "cold restore stays fast": it
is the same path cr_bench.py times, here next to the standby in the same
minute. Every case runs with the chain in the page cache.

Check `uptime` first: figures taken under load are figures of the load.
Usage (root; the lead runs it on a quiet machine):

  meson compile -C build
  tests/bench/standby_bench.py --build-root build                # 64 MiB, 1 GiB
  tests/bench/standby_bench.py --build-root build --sizes 64,1024,4096 --json F

A size is skipped when memory (4x the heap: primary, its writer's twin,
standby, page cache) or disk (3x) is short.
"""

import argparse
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cr"))
sys.path.insert(0, HERE)
from crlib import App, Harness, TestFailure, log  # noqa: E402
from standby import Standby  # noqa: E402
from cr_bench import agent_request, cpu_model, mem_ok  # noqa: E402

TICK_RX = r"^tick \d+"


def checkpoint(app):
    reply = agent_request(app.dir, "checkpoint")
    m = re.match(r"ok (\d+)", reply)
    if not m:
        raise TestFailure("checkpoint request answered %r" % reply)
    return int(m.group(1))


def dirty(app):
    start = app.proc.count()
    app.signal(signal.SIGUSR2)
    app.proc.wait_line(r"^dirtied \d+", 300, "dirtying", start=start)


def primary(h, exe, mib, permille):
    app = App(h, "cr-bench-heap", ["--mib", str(mib), "--permille", str(permille)],
              interval_ms=3600 * 1000, exe=exe, run_args=["--no-compact"])
    app.run(ready_timeout=600, ready_rx=r"^ready \d+")
    return app


def applies(h, exe, mib, permille, rounds, timeout):
    """Builds a standby from a first image, applies `rounds` generations;
    returns (ready event fields, [applied event fields])."""
    app = primary(h, exe, mib, permille)
    checkpoint(app)
    sb = Standby(h, app)
    _, ready = sb.event(("ready",), timeout, "ready")
    done = []
    for _ in range(rounds):
        dirty(app)
        gen = checkpoint(app)
        while sb.generation is None or sb.generation < gen:
            _, f = sb.event(("applied",), timeout, "applied %d" % gen)
            done.append(f)
    sb.proc.kill()
    app.proc.kill()
    return ready, done


def time_standby(h, exe, mib, permille, timeout):
    """ms from `promote` to the promoted event and to the first tick."""
    app = primary(h, exe, mib, permille)
    checkpoint(app)
    dirty(app)
    gen = checkpoint(app)
    sb = Standby(h, app)
    sb.event(("ready", "applied"), timeout, "ready")
    while sb.generation < gen:
        sb.event(("applied",), timeout, "applied %d" % gen)
    app.kill()
    start = sb.proc.count()
    t0 = time.monotonic()
    sb.send("promote next_generation=%d" % (gen + 1))
    sb.event(("promoted",), timeout, "promoted")
    promoted = (time.monotonic() - t0) * 1000
    tick = None
    try:
        sb.proc.wait_line(TICK_RX, 30, "first tick of the promoted program", start=start)
        with sb.proc.cond:
            t = next(t for _, text, t in sb.proc.lines[start:] if re.match(TICK_RX, text))
        tick = (t - t0) * 1000
    except TestFailure:
        log("no tick of the promoted program on the tool's stdout")
    sb.proc.kill()
    return app, gen, promoted, tick


def time_cold(h, app, gen, timeout):
    t0 = time.monotonic()
    p = h.start("cold restore", [h.tool, "restore", "--dir", app.dir, "--generation", str(gen)])
    p.wait_line(TICK_RX, timeout, "first tick of the restored program")
    with p.cond:
        t = next(t for _, text, t in p.lines if re.match(TICK_RX, text))
    p.kill()
    return (t - t0) * 1000


def run_case(h, exe, mib, permille, rounds, reps):
    timeout = 120 + mib // 4
    ready, done = applies(h, exe, mib, permille, rounds, timeout)
    reset(h)
    promoted, ticks, colds = [], [], []
    for _ in range(reps):
        app, gen, p, t = time_standby(h, exe, mib, permille, timeout)
        promoted.append(p)
        if t is not None:
            ticks.append(t)
        colds.append(time_cold(h, app, gen, timeout))
        reset(h)
    delta_mib = sum(int(f.get("bytes", 0)) for f in done) / 2**20
    cpu = sum(float(f.get("cpu_ms", 0)) for f in done)
    med = statistics.median
    return {
        "mib": mib, "permille": permille, "rounds": rounds, "reps": reps,
        "build_ms": float(ready.get("ms", 0)), "rss": int(ready.get("rss", 0)),
        "apply_ms_med": med([float(f.get("ms", 0)) for f in done]) if done else None,
        "apply_cpu_med": med([float(f.get("cpu_ms", 0)) for f in done]) if done else None,
        "cpu_ms_per_mib": cpu / delta_mib if delta_mib else None,
        "delta_mib_med": med([int(f.get("bytes", 0)) for f in done]) / 2**20 if done else None,
        "promoted_ms": med(promoted), "tick_ms": med(ticks) if ticks else None,
        "cold_ms": med(colds), "promoted_all": promoted, "tick_all": ticks, "cold_all": colds,
    }


def reset(h):
    h.cleanup()
    h.procs, h.tmpdirs = [], []


def fmt(v, f="%.0f"):
    return "-" if v is None else f % v


def report(results):
    print()
    print("machine: %s, %d cpus, kernel %s, load %s" %
          (cpu_model(), os.cpu_count(), os.uname().release,
           " ".join(open("/proc/loadavg").read().split()[:3])))
    hdr = ("heap", "dirty", "build", "sb RSS", "delta", "apply", "apply cpu", "cpu/MiB",
           "promoted", "1st tick", "cold", "cold/sb")
    print("%6s %6s %8s %8s %8s %8s %9s %8s %9s %9s %8s %8s" % hdr)
    for r in results:
        sb = r["tick_ms"] if r["tick_ms"] is not None else r["promoted_ms"]
        print("%5dM %5.1f%% %6.0fms %7.0fM %7sM %6sms %7sms %6sms %7.1fms %7sms %6.0fms %8s" % (
            r["mib"], r["permille"] / 10, r["build_ms"], r["rss"] / 2**20,
            fmt(r["delta_mib_med"], "%.1f"), fmt(r["apply_ms_med"], "%.1f"),
            fmt(r["apply_cpu_med"], "%.1f"),
            fmt(r["cpu_ms_per_mib"], "%.2f"), r["promoted_ms"], fmt(r["tick_ms"], "%.1f"),
            r["cold_ms"], "%.1f" % (r["cold_ms"] / sb) if sb else "-"))
    print("(promoted: `promote` sent -> `promoted` event; 1st tick: -> the promoted program's "
          "first line; cold: `checksync restore` started -> its first line; medians of %s)" %
          "/".join(str(r["reps"]) for r in results))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-root", required=True)
    ap.add_argument("--sizes", default="64,1024", help="heap sizes in MiB (4096 too: opt in)")
    ap.add_argument("--dirty", type=int, default=10, help="dirty permille per generation")
    ap.add_argument("--rounds", type=int, default=10, help="generations applied per case")
    ap.add_argument("--reps", type=int, default=3, help="promote/cold pairs per case")
    ap.add_argument("--json", help="write the cases to this file")
    args = ap.parse_args()
    args.workloads = os.path.abspath(os.path.join(args.build_root, "tests", "bench"))
    h = Harness(args, "standby-bench")
    exe = os.path.join(args.workloads, "cr-bench-heap")
    results = []
    try:
        if not h.check_ready():
            return 77
        for mib in [int(x) for x in args.sizes.split(",")]:
            # primary, its writer's twin, standby, page cache
            ok, avail, disk = mem_ok(mib, tempfile.gettempdir(), 4)
            if not ok:
                log("skip %d MiB: %d MiB memory available, %d MiB disk" % (mib, avail, disk))
                continue
            log("== heap %d MiB, %.1f%% dirty" % (mib, args.dirty / 10))
            results.append(run_case(h, exe, mib, args.dirty, args.rounds, args.reps))
            reset(h)
    except TestFailure as e:
        log("benchmark failed: %s" % e)
        return 1
    finally:
        h.cleanup()
    report(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bench": "standby_bench", "args": vars(args), "machine": cpu_model(),
                       "kernel": os.uname().release, "cases": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
