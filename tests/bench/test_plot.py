#!/usr/bin/env python3
"""tests/bench/plot.py on made-up results of the three benchmarks, in the
shape their --json writes: each gives its PNGs (real PNG files gnuplot
wrote without a warning), and a JSON of no benchmark is refused. Skipped
(77) without gnuplot (scripts/install-deps installs gnuplot-nox)."""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from checks import check, finish  # noqa: E402

PLOT = os.path.join(HERE, "plot.py")


def kvbench():
    rnd = random.Random(1)
    runs = [{"mode": m, "round": r, "rps": base * (1 + rnd.uniform(-0.05, 0.05))}
            for r in range(3) for m, base in (("none", 50000), ("cs100", 41000),
                                              ("cs1000", 47000), ("savefile", 12000))]
    return {"args": {"modes": ["none", "cs100", "cs1000", "savefile"], "items": 20000,
                     "value_size": 1024, "duration": 3}, "runs": runs,
            "mode_names": {"none": "none", "savefile": "go-cache SaveFile every 1 s"}}


def cr_bench():
    rnd = random.Random(2)
    cases = [{"mib": mib, "permille": pm, "rounds": 30,
              "pauses_ms": [rnd.lognormvariate(0, 0.6) * (0.4 + pm / 100) for _ in range(30)]}
             for mib in (64, 1024) for pm in (10, 100)]
    return {"bench": "cr_bench", "cases": cases}


def failover_bench():
    """Both paths per size, as --standby both writes them."""
    return {"bench": "failover_bench", "failover": [
        {"keys": k, "path": p, "chain_mb": k / 700, "first": (1450 + w * s) / 1e3,
         "promotion_to_first": (360 + w * s) / 1e3,
         "times_ms": {"primary_lost": 1010 + s, "promoted": 1090 + s,
                      "restore_started": 1095 + s, "restore_done": 1400 + w * s,
                      "first_answer": 1450 + w * s}}
        for k, s in ((50000, 0), (200000, 100), (1000000, 300))
        for p, w in (("cold", 3), ("standby", 0))], "sync": []}


def run(d, name, doc, want):
    path = os.path.join(d, name + ".json")
    with open(path, "w") as f:
        json.dump(doc, f)
    out = os.path.join(d, "plots")
    r = subprocess.run([sys.executable, PLOT, "--out", out, path], capture_output=True,
                       text=True, timeout=300)
    check(r.returncode == 0 and not r.stderr, f"{name}: plot.py succeeds", r.stdout + r.stderr)
    for png in want:
        p = os.path.join(out, png)
        head = open(p, "rb").read(8) if os.path.exists(p) else b""
        check(head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(p) > 10000,
              f"{name}: {png} is a PNG with something drawn", f"{p}: {head!r}")


def main():
    if not shutil.which("gnuplot"):
        print("SKIP: gnuplot not installed (apt-get install gnuplot-nox)")
        return 77
    d = tempfile.mkdtemp(prefix="cs-test-plot-")
    try:
        run(d, "kvbench", kvbench(), ["kvbench-throughput.png"])
        run(d, "cr_bench", cr_bench(), ["cr-pause-cdf.png", "cr-pause-histogram.png"])
        run(d, "failover_bench", failover_bench(), ["failover-timeline.png",
                                                   "failover-by-size.png"])
        bad = os.path.join(d, "other.json")
        with open(bad, "w") as f:
            json.dump({"something": 1}, f)
        r = subprocess.run([sys.executable, PLOT, "--out", d, bad], capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 1 and "not the JSON of" in r.stderr,
              "a JSON of no benchmark is refused", r.stderr)
        if os.environ.get("CS_PLOT_KEEP"):  # to look at them: CS_PLOT_KEEP=DIR
            shutil.copytree(os.path.join(d, "plots"), os.environ["CS_PLOT_KEEP"],
                            dirs_exist_ok=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    finish("bench-plot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
