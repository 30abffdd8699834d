#!/usr/bin/env python3
"""Compaction scenarios (meson suite 'cr'; docs/testing-cr.md).

    compact.py --build-root BUILD --workloads BUILD/tests/cr SCENARIO

compact              the background compactor of `checksync run` folds the
                     chain: deltas become full images, old images go, the
                     agent takes no second base, and a restore from the
                     compacted chain gives back exactly the heap
compact-interrupted  a compaction killed at random moments, or a truncated
                     .tmp of one, never stops the directory from restoring
compact-prune        restored again and again without a compaction, the
                     directory still keeps only two chains
compact-refuse       `checksync compact` on a damaged chain refuses naming
                     the file and offset and changes nothing; an intact
                     older generation still compacts and restores
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # never leave __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crlib import (run_scenario, App, TestFailure, log, images, snapshot_dir,  # noqa: E402
                   diff_snapshots, all_pids, header, DELTA)

COMPACTED_RX = re.compile(r"compacted generation (\d+) into a full image .* down to generation "
                          r"(\d+)\); removed (\d+)")
TMP_RX = re.compile(r"^gen-\d{20}\.img\.tmp$")



def image_path(d, gen):
    return os.path.join(d, "gen-%020d.img" % gen)


def tmp_files(d):
    return sorted(n for n in os.listdir(d) if TMP_RX.match(n))


def compactions(proc):
    """[(generation, old base, removed)] the compactor reported on stderr."""
    out = []
    for tag, text, _ in list(proc.lines):
        m = COMPACTED_RX.search(text)
        if tag == "err" and m:
            out.append(tuple(int(x) for x in m.groups()))
    return out


def chain_of(d, gen):
    """Generations of gen's chain, newest first, from the headers."""
    chain = [gen]
    while True:
        flags, g, parent, _ = header(image_path(d, chain[-1]))
        if g != chain[-1]:
            raise TestFailure("%s names generation %d" % (image_path(d, chain[-1]), g))
        if not flags & DELTA:
            return chain
        chain.append(parent)


def tagged_compactors(h):
    out = []
    for pid in all_pids():
        try:
            with open("/proc/%d/comm" % pid) as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm == "checksync-cmpct" and h.is_ours(pid):
            out.append(pid)
    return out


def set_policy(min_bytes, factor, base_every=2):
    # checksync run passes its environment on; CHECKSYNC_BASE_EVERY=2 would
    # make the agent take a base every two deltas if it still took them.
    os.environ.update({"CHECKSYNC_COMPACT_MIN_BYTES": str(min_bytes),
                       "CHECKSYNC_COMPACT_FACTOR": str(factor),
                       "CHECKSYNC_BASE_EVERY": str(base_every)})


def backlog(d):
    """(bytes of deltas after the newest full image, its size or None)."""
    deltas = 0
    for gen, path in reversed(images(d)):
        try:
            if not header(path)[0] & DELTA:
                return deltas, os.path.getsize(path)
            deltas += os.path.getsize(path)
        except (OSError, TestFailure):
            pass  # pruned or replaced meanwhile
    return deltas, None


def wait_quiet(h, app, threshold, timeout=120):
    """Until no compaction is due or running (no checkpoints are being taken)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deltas, full = backlog(app.dir)
        if full is not None and deltas <= max(threshold[0], threshold[1] * full) and \
                not tmp_files(app.dir):
            time.sleep(1.5)  # one more compactor tick: still nothing started
            if not tmp_files(app.dir):
                return
        time.sleep(0.2)
    h.fail("the compactor of %s did not settle within %d s: %s" %
           (app.dir, timeout, sorted(os.listdir(app.dir))), app.proc)


def sc_compact(h):
    rng = h.rng(0)
    min_bytes, factor = 2 << 20, 0.25
    set_policy(min_bytes, factor)
    app = App(h, "wl-bigheap", ["--mib", "32", "--seed", str(rng.randrange(1, 1 << 30))],
              interval_ms=0)
    app.run(ready_timeout=120)
    app.wait_progress(1, 30)
    seen = {}  # generation -> was it full when the agent had just written it
    deadline = time.monotonic() + 150
    while len(compactions(app.proc)) < 2:
        if time.monotonic() > deadline:
            h.fail("fewer than two compactions in 150 s (seen: %s; DIR %s)" %
                   (compactions(app.proc), sorted(os.listdir(app.dir))), app.proc)
        # The compactor runs at idle priority: on a loaded machine (sanitizer
        # builds, other tests) it may get little CPU, so do not outrun it.
        deltas, full = backlog(app.dir)
        if full and deltas > 3 * max(min_bytes, factor * full):
            time.sleep(0.5)
            continue
        gen = app.checkpoint()
        seen[gen] = not header(image_path(app.dir, gen))[0] & DELTA
        time.sleep(rng.uniform(0.2, 0.5))
    wait_quiet(h, app, (min_bytes, factor))
    done = compactions(app.proc)
    log("  compactions: %s" % ", ".join("%d (from %d, removed %d)" % c for c in done))
    folded = {g for g, _, _ in done}
    first = min(seen)
    bases = [g for g, full in sorted(seen.items()) if full and g != first and g not in folded]
    if bases:
        h.fail("the agent took bases %s after its first (%d) although a compactor runs" %
               (bases, first), app.proc)
    if not seen[first]:
        h.fail("the first checkpoint %d is not a base" % first, app.proc)
    unfolded = [g for g in folded if g in seen and seen[g]]
    if unfolded:
        h.fail("generations %s were compacted but were already full when written" % unfolded)
    last, last_from, _ = done[-1]
    if header(image_path(app.dir, last))[0] & DELTA:
        h.fail("generation %d is still a delta after its compaction" % last, app.proc)
    left = [g for g, _ in images(app.dir)]
    if first in left or min(left) < last_from:
        h.fail("images older than generation %d (where the compacted chain ended) are still "
               "there: %s" % (last_from, left), app.proc)
    if tmp_files(app.dir):
        h.fail("left-over .tmp files: %s" % tmp_files(app.dir), app.proc)
    # one more delta on top, then restore through the compacted image
    before = app.progress()
    newest = app.checkpoint()
    chain = chain_of(app.dir, newest)
    log("  chain of %d: %s" % (newest, chain))
    if chain[-1] not in folded:
        h.fail("the chain of %d ends at %d, not at a compacted image %s" %
               (newest, chain[-1], sorted(folded)), app.proc)
    app.kill()
    if tagged_compactors(h):
        h.fail("a compactor is still running after its program died: pids %s" %
               tagged_compactors(h))
    app.restore()
    app.check_continued(before)
    # the restored agent expects a compactor (CHECKSYNC_COMPACTOR=1 is in its
    # memory): the restore started one
    deadline = time.monotonic() + 10
    while not tagged_compactors(h) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not tagged_compactors(h):
        h.fail("no compactor runs next to the restored program", app.proc)
    app.verify(timeout=120)  # the heap checksum, recomputed over every page
    if tagged_compactors(h):
        h.fail("the restore's compactor outlived its program: pids %s" % tagged_compactors(h))


def killed_app(h, rng, extra):
    """A 32 MiB heap checkpointed (base + extra deltas) and killed; the
    background compactor never fires (its threshold is out of reach)."""
    set_policy(1 << 40, 100)
    app = App(h, "wl-bigheap", ["--mib", "32", "--seed", str(rng.randrange(1, 1 << 30))],
              interval_ms=0)
    app.run(ready_timeout=120)
    app.wait_progress(1, 30)
    for _ in range(1 + extra):
        time.sleep(rng.uniform(0.1, 0.3))
        before = app.progress()  # the restore must come back at least here
        app.checkpoint()
    app.kill()
    return app, before


def reset_dir(d, pristine):
    """d holds exactly the images of pristine again. The agent in the image
    writes into the directory it was started with, so every round restores
    from that same path, not from a copy elsewhere."""
    shutil.rmtree(d)
    os.mkdir(d, 0o700)
    for name in os.listdir(pristine):
        shutil.copy2(os.path.join(pristine, name), d)


def restore_round(h, app, before, what):
    log("== restore (%s): %s" % (what, sorted(os.listdir(app.dir))))
    app.restore()
    app.check_continued(before)
    app.verify(timeout=120)


def sc_compact_interrupted(h):
    rng = h.rng(0)
    app, before = killed_app(h, rng, extra=4)
    pristine = h.mkdtemp("pristine")
    for name in os.listdir(app.dir):
        if name.startswith("gen-"):
            shutil.copy2(os.path.join(app.dir, name), pristine)
    newest = images(pristine)[-1][0]
    for i in range(h.iterations(3)):
        reset_dir(app.dir, pristine)
        delay = rng.uniform(0.0, 0.6)
        p = h.start("checksync compact", [h.tool, "compact", app.dir])
        time.sleep(delay)
        p.kill()
        state = "full" if not header(image_path(app.dir, newest))[0] & DELTA else "delta"
        restore_round(h, app, before, "compaction SIGKILLed after %.2f s: generation %d is a "
                      "%s, .tmp: %s" % (delay, newest, state, tmp_files(app.dir)))
    # a compaction that died after writing half of its .tmp
    full = h.mkdtemp("full")
    reset_dir(full, pristine)
    rc, out, p = h.tool_cmd("compact", ["compact", full], 120)
    if rc != 0:
        h.fail("checksync compact of an intact chain failed: %s" % out, p)
    reset_dir(app.dir, pristine)
    with open(image_path(full, newest), "rb") as f:
        data = f.read()
    with open(image_path(app.dir, newest) + ".tmp", "wb") as f:
        f.write(data[:len(data) // 2])
    restore_round(h, app, before, "half-written .tmp of a compaction")


def sc_compact_refuse(h):
    rng = h.rng(0)
    set_policy(1 << 40, 100)
    app = App(h, "wl-threads")
    app.run()
    before = app.wait_progress(1, 30)
    for _ in range(4):
        app.checkpoint()
        time.sleep(0.2)
    app.kill()
    imgs = images(app.dir)
    newest = imgs[-1][0]
    chain = chain_of(app.dir, newest)
    if len(chain) < 4:
        h.fail("want a chain of 4 images, have %s" % chain)
    victim = image_path(app.dir, chain[1])
    size = os.path.getsize(victim)
    at = rng.randrange(size // 4, size // 2)
    with open(victim, "r+b") as f:
        f.seek(at)
        data = f.read(8)
        f.seek(at)
        f.write(bytes(b ^ 0x5A for b in data))
    log("  flipped 8 bytes at offset %d of %s (%d bytes)" % (at, victim, size))
    snap = snapshot_dir(app.dir)
    rc, out, p = h.tool_cmd("compact", ["compact", app.dir], 60)
    log("  compact: status %d: %s" % (rc, out.strip()))
    if rc == 0:
        h.fail("checksync compact of a damaged chain succeeded", p)
    for rx in (re.escape(os.path.basename(victim)), r"offset \d+"):
        if not re.search(rx, out):
            h.fail("the refusal %r does not name /%s/" % (out.strip(), rx), p)
    changed = diff_snapshots(snap, snapshot_dir(app.dir))
    if changed:
        h.fail("the refused compaction changed %s: %s" % (app.dir, changed), p)
    # the chain below the damage is intact: it compacts, and restores from
    # its single full image
    older = chain[2]
    rc, out, p = h.tool_cmd("compact", ["compact", app.dir, "--generation", str(older)], 60)
    log("  compact --generation %d: status %d: %s" % (older, rc, out.strip()))
    if rc != 0 or header(image_path(app.dir, older))[0] & DELTA:
        h.fail("compaction of the intact generation %d: status %d, %r" % (older, rc, out), p)
    app.restore(generation=older)
    app.check_continued(1)
    app.verify()


def full_images(d):
    return [g for g, path in images(d) if not header(path)[0] & DELTA]


def sc_compact_prune(h):
    """Restored again and again, a program goes on with one chain: the
    restorer arms dirty tracking before any thread runs, so each restored
    agent's first image is a delta on the generation it was restored from
    (a base per restore used to pause a large program for ~100 ms and left
    old chains for the compactor to prune). The directory keeps one full
    image, the newest chain ends at it (the compactor may merge deltas of
    it, restored generations among them), and that chain restores."""
    rng = h.rng(0)
    set_policy(1 << 40, 1000)  # never due: nothing is merged or pruned
    app = App(h, "wl-threads")
    app.run()
    restored = []
    for k in range(3):
        time.sleep(rng.uniform(0.3, 1.0))
        before = app.progress()
        restored.append(app.checkpoint())
        app.kill()
        app.restore()
        app.check_continued(before)
    app.checkpoint()
    fulls = full_images(app.dir)
    chain, g = [], max(g for g, _ in images(app.dir))
    paths = dict(images(app.dir))
    while g:
        chain.append(g)
        flags, _, parent, _ = header(paths[g])
        g = parent if flags & DELTA else 0
    log("  after 3 restores: full images %s, newest chain %s" % (fulls, chain[::-1]))
    if fulls != [1] or chain[-1] != 1:
        h.fail("after 3 restores (from generations %s) %s holds the full images %s and the "
               "newest chain %s; want only generation 1 full, at the end of the chain" %
               (restored, app.dir, fulls, chain[::-1]), app.proc)
    app.kill()
    app.restore()
    app.verify()


SCENARIOS = {
    "compact-prune": sc_compact_prune,
    "compact": sc_compact,
    "compact-interrupted": sc_compact_interrupted,
    "compact-refuse": sc_compact_refuse,
}


if __name__ == "__main__":
    sys.exit(run_scenario(__doc__, SCENARIOS))
