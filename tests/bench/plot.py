#!/usr/bin/env python3
"""PNG plots of the benchmarks' JSON, drawn by gnuplot (Debian: gnuplot-nox).

    tests/bench/plot.py --out docs/plots RESULT.json...

Each file is recognised by its content and gives:
  kvbench (tests/bench/go/kvbench --json)
      kvbench-throughput.png   req/s per mode, every run as a point, the
                               mean as a bar and min..max as an error bar
  cr_bench (tests/bench/cr_bench.py --json)
      cr-pause-cdf.png         the share of checkpoints paused at most x ms,
                               per heap size and dirty fraction
      cr-pause-histogram.png   the same pauses counted in log-spaced bins
  failover_bench (tests/bench/failover_bench.py --json)
      failover-timeline.png    per store size (and path), the phases from the
                               kill of the primary to the first answer on
                               the backup
      failover-by-size.png     with paths (--standby): promotion -> first
                               answer and kill -> first answer against the
                               chain's size, one line each per path

The benchmarks' --plot DIR calls the same functions after writing their
JSON. Only figures from a quiet machine belong in docs/plots.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

TERMINAL = "set terminal pngcairo size 960,600 font 'sans,11' noenhanced"


class PlotError(Exception):
    pass


def gnuplot(script, data, out):
    """Runs SCRIPT with the data files DATA ({name: text}) next to it; the
    script refers to them by name. Any output of gnuplot is an error: it
    warns on stderr about data it could not plot."""
    if not shutil.which("gnuplot"):
        raise PlotError("gnuplot is not installed (apt-get install gnuplot-nox)")
    with tempfile.TemporaryDirectory(prefix="cs-plot-") as d:
        for name, text in data.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        full = "%s\nset output '%s'\n%s\n" % (TERMINAL, os.path.abspath(out), script)
        r = subprocess.run(["gnuplot"], input=full, cwd=d, capture_output=True, text=True,
                           timeout=120)
    if r.returncode != 0 or r.stderr.strip():
        raise PlotError("gnuplot failed on %s: %s" % (out, r.stderr.strip()))
    return out


def quote(s):
    """A string in a gnuplot command."""
    return "'%s'" % str(s).replace("'", "''")


def datastr(s):
    """A string column in a gnuplot data file."""
    return '"%s"' % str(s).replace('"', "'")


# ---- kvbench ----

def kvbench_throughput(doc, outdir):
    runs = doc["runs"]
    modes = doc["args"].get("modes") or sorted({r["mode"] for r in runs})
    points, bars = [], []
    for i, mode in enumerate(modes):
        rps = [r["rps"] for r in runs if r["mode"] == mode]
        if not rps:
            continue
        n = len(rps)
        for j, v in enumerate(rps):  # spread sideways so equal values stay visible
            points.append("%g %g" % (i + (j - (n - 1) / 2) * 0.25 / max(1, n), v))
        name = doc.get("mode_names", {}).get(mode, mode)
        bars.append("%d %s %g %g %g" % (i, datastr(name), sum(rps) / n, min(rps), max(rps)))
    if not bars:
        raise PlotError("kvbench JSON has no runs")
    a = doc["args"]
    rounds = len({r.get("round") for r in runs})
    title = "kvserver, %s items x %s B, %s s per run: req/s per mode (%d round%s)" % (
        a.get("items"), a.get("value_size"), a.get("duration"),
        rounds, "" if rounds == 1 else "s")
    script = """
set title %s
set ylabel 'requests per second'
set yrange [0:*]
set xrange [-0.6:%d.6]
set grid ytics
set style fill solid 0.35 border
set boxwidth 0.6
set key top right
plot 'bars' using 1:3:xtic(2) with boxes lc rgb '#4477aa' title 'mean', \\
     '' using 1:3:4:5 with yerrorbars lc rgb '#222222' pt -1 title 'min..max', \\
     'points' using 1:2 with points pt 7 ps 0.8 lc rgb '#cc3311' title 'one run'
""" % (quote(title), len(modes) - 1)
    return [gnuplot(script, {"bars": "\n".join(bars) + "\n", "points": "\n".join(points) + "\n"},
                    os.path.join(outdir, "kvbench-throughput.png"))]


# ---- cr_bench ----

def case_name(c):
    return "%d MiB, %.1f%% dirty" % (c["mib"], c["permille"] / 10)


def cr_pauses(doc, outdir):
    cases = [c for c in doc["cases"] if c.get("pauses_ms")]
    if not cases:
        raise PlotError("cr_bench JSON has no pauses")
    data, cdf_plots, hist_plots = {}, [], []
    lo = min(p for c in cases for p in c["pauses_ms"] if p > 0)
    hi = max(p for c in cases for p in c["pauses_ms"])
    # Log-spaced bins, 5 per decade, from below the smallest pause.
    edges = [10 ** (k / 5) for k in range(math.floor(5 * math.log10(max(lo, 1e-3))),
                                          math.ceil(5 * math.log10(max(hi, 1e-3))) + 2)]
    for i, c in enumerate(cases):
        ps = sorted(c["pauses_ms"])
        # From 0 below the smallest pause, one step up per checkpoint.
        data["cdf%d" % i] = "%g 0\n" % ps[0] + "".join(
            "%g %g\n" % (p, (k + 1) / len(ps)) for k, p in enumerate(ps))
        counts = [sum(1 for p in ps if a < p <= b) for a, b in zip(edges, edges[1:])]
        counts[0] += sum(1 for p in ps if p <= edges[0])
        data["hist%d" % i] = "".join("%g %d %g %g\n" % (math.sqrt(a * b), n, a, b)
                                     for (a, b), n in zip(zip(edges, edges[1:]), counts))
        cdf_plots.append("'cdf%d' using 1:2 with steps lw 2 title %s" % (i, quote(case_name(c))))
        hist_plots.append("'hist%d' using 1:2:3:4:(0):2 with boxxyerror fs transparent solid "
                          "0.35 title %s" % (i, quote(case_name(c))))
    common = """
set logscale x 10
set xlabel 'pause of the program per checkpoint (ms, log scale)'
set grid
set key bottom right
"""
    cdf = common + """
set title 'Checkpoint pauses: share of checkpoints paused at most x'
set ylabel 'share of checkpoints'
set yrange [0:1.02]
plot %s
""" % ", \\\n     ".join(cdf_plots)
    hist = common + """
set title 'Checkpoint pauses: count per bin (5 bins per decade)'
set ylabel 'checkpoints'
set yrange [0:*]
set key top right
plot %s
""" % ", \\\n     ".join(hist_plots)
    return [gnuplot(cdf, data, os.path.join(outdir, "cr-pause-cdf.png")),
            gnuplot(hist, data, os.path.join(outdir, "cr-pause-histogram.png"))]


# ---- failover_bench ----

# (label, from, to): the phases of a failover, in ms since the kill. The
# last row runs from the promotion: the restored app may answer a client a
# few ms before the daemon has logged restore_done.
PHASES = [
    ("detection", "kill", "primary_lost"),
    ("election", "primary_lost", "promoted"),
    ("restore", "restore_started", "restore_done"),
    ("promotion to first answer", "promoted", "first_answer"),
]
COLORS = ["#cc3311", "#ee7733", "#4477aa", "#228833"]


def failover_timeline(doc, outdir):
    runs = [f for f in doc["failover"] if f.get("times_ms")]
    if not runs:
        raise PlotError("failover_bench JSON has no failovers")
    data, plots, ytics = {}, [], []
    for p, (label, start, end) in enumerate(PHASES):
        rows = []
        for i, f in enumerate(runs):
            t = dict(f["times_ms"], kill=0)
            if t.get(start) is None or t.get(end) is None:
                continue
            y = i * (len(PHASES) + 1) + p
            rows.append("%g %d %g %g\n" % ((t[start] + t[end]) / 2, y, t[start], t[end]))
        data["phase%d" % p] = "".join(rows) or "nan nan nan nan\n"
        plots.append("'phase%d' using 1:2:3:4:($2-0.4):($2+0.4) with boxxyerror "
                     "fs solid 0.8 lc rgb %s title %s" % (p, quote(COLORS[p]), quote(label)))
        # Its length in ms, right of the bar.
        plots.append("'phase%d' using 4:2:(sprintf('%%.0f ms', $4-$3)) with labels left "
                     "offset 0.5,0 notitle" % p)
    for i, f in enumerate(runs):
        label = "%s keys" % f["keys"] + (", %s" % f["path"] if f.get("path") else "")
        ytics.append("%s %d" % (quote(label),
                                i * (len(PHASES) + 1) + (len(PHASES) - 1) / 2))
    script = """
set title 'Failover: from the kill of the primary host to the first answer on the backup'
set xlabel 'ms since the kill'
set xrange [0:*]
set offsets 0, graph 0.1, 0, 0
set yrange [%g:-1]
set ytics (%s)
set grid xtics
set key outside top center horizontal
plot %s
""" % (len(runs) * (len(PHASES) + 1) - 1, ", ".join(ytics), ", \\\n     ".join(plots))
    return [gnuplot(script, data, os.path.join(outdir, "failover-timeline.png"))]


def failover_by_size(doc, outdir):
    """Failover time against the chain's size, per path: the issue's plot
    (a warm standby's promotion must not grow with the heap)."""
    runs = [f for f in doc["failover"] if f.get("path") and f.get("chain_mb")]
    if not runs:
        return []
    data, plots = {}, []
    for path in sorted({f["path"] for f in runs}):
        rows = sorted((f["chain_mb"], f["promotion_to_first"] * 1e3, f["first"] * 1e3)
                      for f in runs if f["path"] == path)
        data[path] = "".join("%g %g %g\n" % r for r in rows)
        plots.append("%s using 1:2 with linespoints title %s" % (
            quote(path), quote("%s: promotion -> first answer" % path)))
        plots.append("%s using 1:3 with linespoints dashtype 2 title %s" % (
            quote(path), quote("%s: kill -> first answer" % path)))
    script = """
set title 'Failover time against the store size, warm standby and cold'
set xlabel 'chain on the backup (MiB)'
set ylabel 'ms'
set logscale x
set yrange [0:*]
set grid
set key outside top center horizontal
plot %s
""" % ", \\\n     ".join(plots)
    return [gnuplot(script, data, os.path.join(outdir, "failover-by-size.png"))]


def plot_file(path, outdir):
    """The PNGs of one benchmark's JSON (the kind is recognised by content)."""
    with open(path) as f:
        doc = json.load(f)
    os.makedirs(outdir, exist_ok=True)
    kind = doc.get("bench")
    if kind == "cr_bench":
        return cr_pauses(doc, outdir)
    if kind == "failover_bench":
        return failover_timeline(doc, outdir) + failover_by_size(doc, outdir)
    if "runs" in doc and "args" in doc:
        return kvbench_throughput(doc, outdir)
    raise PlotError("%s: not the JSON of kvbench, cr_bench or failover_bench" % path)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory for the PNGs")
    ap.add_argument("json", nargs="+")
    a = ap.parse_args()
    try:
        for path in a.json:
            for png in plot_file(path, a.out):
                print(png)
    except (PlotError, OSError, ValueError, KeyError) as e:
        print("plot: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
