#!/usr/bin/env python3
"""Warm standby scenarios (issue 13; docs/testing-cr.md, "Warm standby").

    standby.py --build-root BUILD --workloads BUILD/tests/cr SCENARIO

`wl-standby` runs under `checksync run --interval-ms 0` and, in rounds,
changes its heap, its mappings and its fds at random, records what it
expects of each generation in a file outside the chain directory, and takes
a checkpoint with cs_checkpoint(). `checksync standby --dir D` keeps a
standby of it (commands on its stdin, events on its stdout). The primary
is SIGKILLed at random points and the standby promoted; the promoted
program compares itself with what it recorded for the generation it was
restored from and says so (verify ok|FAIL, in $CR_RESULT, and its status,
which the tool exits with).

  standby-cold          the same kills, restored cold with `checksync
                        restore` (the workload checked against the path
                        that exists without a standby)
  standby-equality      promote after a random number of applied generations
  standby-kill-apply    primary killed while generations keep coming, some
                        while the standby applies one, promoted at once or
                        once DIR settled: the promoted program is one whole
                        generation, the newest complete one
  standby-never-runs    the program's counter thread does not move while the
                        standby holds it, and moves after promotion
  standby-new-primary   the primary comes back after its kill (restored in
                        place, or a new process in the same DIR) and the
                        standby follows it; then promoted
  standby-compacting    the primary's compactor prunes the chain all the time
                        while the standby follows
  standby-cold-append   standby-cold comparing the offsets of O_APPEND files
                        too

Each has a -long variant (1 GiB heap, more iterations; meson suite cr-long,
`meson test -C build --setup long --suite cr-long`). CR_SEED and
CR_ITERATIONS as in harness.py; CR_STANDBY_MIB overrides the heap size.
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # never leave __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crlib import run_scenario, App, images, log, pid_alive, header, DELTA  # noqa: E402
from harness import iterate  # noqa: E402

EVENT_RX = r"^(ready|applied|rebuilding|skipped|promoted|error|status) "


def fields(line):
    """key=value fields of an event line; why= runs to the end of the line."""
    head, _, why = line.partition(" why=")
    out = dict(kv.split("=", 1) for kv in head.split()[1:] if "=" in kv)
    if why:
        out["why"] = why
    return out


class Standby:
    """`checksync standby --dir D` with its stdin (commands) and stdout (events)."""

    def __init__(self, h, app):
        self.h = h
        self.app = app
        self.proc = h.start("checksync standby", [h.tool, "standby", "--dir", app.dir],
                            stdin=subprocess.PIPE)
        self.pos = 0          # first line of stdout not looked at yet
        self.applied = []     # generations of the applied events, in order
        self.generation = None
        self.rebuilds = 0

    def send(self, cmd):
        if cmd != "status":  # polled: too many to log
            log("  standby <- %s" % cmd)
        try:
            self.proc.p.stdin.write((cmd + "\n").encode())
            self.proc.p.stdin.flush()
        except OSError as e:
            self.h.fail("standby: writing %r: %s" % (cmd, e), self.proc, self.app.proc)

    def event(self, kinds, timeout, what):
        """The next event of one of kinds."""
        while True:
            i, m = self.proc.wait_line(EVENT_RX, timeout, what, start=self.pos)
            self.pos = i + 1
            kind, f = self.take(m)
            if kind in kinds:
                return kind, f

    def poll(self):
        """Takes the events written so far, without waiting."""
        while True:
            found = self.proc.find(EVENT_RX, start=self.pos)
            if not found:
                return
            self.pos = found[0] + 1
            self.take(found[1])

    def take(self, m):
        """Notes one event; fails on error and skipped."""
        line, kind = m.string, m.group(1)
        f = fields(line)
        if kind in ("error", "skipped"):
            # nothing wl-standby does may be refused by a restore
            self.h.fail("standby: %s" % line, self.proc, self.app.proc)
        if kind == "rebuilding":  # allowed (docs/restore.md, section 9)
            log("  standby: %s" % line)
            self.rebuilds += 1
            self.generation = None
        if kind in ("ready", "applied"):
            self.note_generation(kind, f, line)
        return kind, f

    def note_generation(self, kind, f, line):
        g = int(f.get("generation", -1))
        if self.generation is not None and g <= self.generation:
            self.h.fail("standby: %r: generation not above the one it held, %d" %
                        (line, self.generation), self.proc)
        if not os.path.exists(os.path.join(self.app.dir, "gen-%020d.img" % g)):
            self.h.fail("standby: %r names a generation with no image in %s" %
                        (line, self.app.dir), self.proc)
        self.generation = g
        if kind == "applied":
            self.applied.append(g)

    def ready(self, timeout):
        _, f = self.event(("ready",), timeout, "ready")
        log("  standby ready: generation %s rss %s ms %s" %
            (f.get("generation"), f.get("rss"), f.get("ms")))
        return int(f["generation"])

    def wait_applied(self, n, timeout):
        want = len(self.applied) + n
        deadline = time.monotonic() + timeout
        while len(self.applied) < want:
            left = deadline - time.monotonic()
            if left <= 0:
                self.h.fail("standby: %d applied events within %.0f s, want %d" %
                            (len(self.applied), timeout, want), self.proc, self.app.proc)
            self.event(("applied",), left, "applied #%d" % (len(self.applied) + 1))
        return self.applied[-1]

    def status(self, timeout=10):
        self.send("status")
        _, f = self.event(("status",), timeout, "the status reply")
        return f

    def promote(self, next_generation, timeout):
        self.send("promote next_generation=%d" % next_generation)
        _, f = self.event(("promoted",), timeout, "promoted")
        log("  promoted: generation %s pid %s ms %s" %
            (f.get("generation"), f.get("pid"), f.get("ms")))
        pid = int(f["pid"])
        self.h.track(pid)
        return int(f["generation"]), pid


def mib():
    return int(os.environ.get("CR_STANDBY_MIB", "0")) or None


def start_primary(h, rng, heap_mib, args=(), run_args=(), ckpt_dir=None, env=None):
    app = App(h, "wl-standby",
              ["--mib", str(mib() or heap_mib), "--seed", str(rng.randrange(1, 1 << 30))] +
              list(args), interval_ms=0, run_args=run_args, ckpt_dir=ckpt_dir, env=env)
    app.run(ready_timeout=300)
    _, m = app.proc.wait_line(r"^counter_addr=(0x[0-9a-f]+)", 10, "the counter's address")
    app.counter_addr = int(m.group(1), 16)
    app.proc.wait_line(r"^ckpt round=\d+ gen=\d+", 120, "the first checkpoint")
    return app


def kill_primary(h, app, settle=True):
    """SIGKILLs the primary; returns the newest complete generation, once
    the directory no longer changes (its image writer dies with it), or
    at once without settle."""
    app.kill()
    if not settle:
        newest = images(app.dir)[-1][0]
        log("  newest complete generation in DIR right after the kill: %d" % newest)
        return newest
    last, stable = None, 0
    deadline = time.monotonic() + 30
    while stable < 3:
        now = images(app.dir)
        stable = stable + 1 if now == last else 0
        last = now
        if time.monotonic() > deadline:
            h.fail("%s kept changing for 30 s after the primary was killed" % app.dir)
        time.sleep(0.1)
    newest = last[-1][0]
    log("  newest complete generation in DIR: %d" % newest)
    return newest


def check_verdict(h, app, sb, want_gen, timeout):
    """The promoted program's verdict: ok, for want_gen, and the tool exits 0."""
    line = app.wait_result_file(timeout)
    log("  " + line)
    m = re.search(r"restored_from=(\d+)", line)
    if not line.startswith("verify ok") or not m:
        h.fail("promoted program: %s" % line, sb.proc)
    if int(m.group(1)) != want_gen:
        h.fail("promoted program was restored from generation %s, want %d (the newest complete "
               "one)" % (m.group(1), want_gen), sb.proc)
    rc = sb.proc.wait_exit(timeout, "exit with the promoted program's status")
    if rc != 0:
        h.fail("checksync standby exited %d after the program's verify ok (want its status, 0)" %
               rc, sb.proc)
    os.unlink(app.result)


def promote_and_check(h, app, sb, newest, rng, timeout, settled=True):
    """Promotes; the program must be the newest complete generation (when
    promoted before DIR settled: one at least as new as the newest at the
    kill, and no newer than the newest there is), and say so itself."""
    nextgen = newest + 10 + rng.randint(0, 5)
    log("  the standby applied %d generations (%s), rebuilt %d times" %
        (len(sb.applied), "%d..%d" % (sb.applied[0], sb.applied[-1]) if sb.applied else "-",
         sb.rebuilds))
    gen, _ = sb.promote(nextgen, timeout)
    latest = max(g for g, _ in images(app.dir) if g < nextgen)
    if gen != newest and (settled or not newest <= gen <= latest):
        h.fail("standby promoted generation %d, want %s: the newest complete one in DIR "
               "(pending ones are applied before promotion)" %
               (gen, newest if settled else "%d..%d" % (newest, latest)), sb.proc)
    check_verdict(h, app, sb, gen, timeout)
    path = os.path.join(app.dir, "gen-%020d.img" % nextgen)
    if not os.path.exists(path):
        h.fail("promote next_generation=%d: the promoted program's first image is not %s; DIR "
               "holds %s" % (nextgen, path, [g for g, _ in images(app.dir)][-5:]), sb.proc)
    # tracking armed before its threads ran: a delta on what it was promoted from
    flags, _, parent, _ = header(path)
    if not flags & DELTA or parent != gen:
        h.fail("the promoted program's first image %s is %s with parent %d; want a delta on "
               "generation %d" % (path, "a delta" if flags & DELTA else "full", parent, gen),
               sb.proc)


def with_standby(h, rng, heap_mib, args, applies, env=None):
    """A primary, and a standby of it that applied `applies` generations
    (a random count between the two): (app, standby, timeout)."""
    t = timeout_for(heap_mib)
    app = start_primary(h, rng, heap_mib, args, env=env)
    sb = Standby(h, app)
    sb.ready(t)
    sb.wait_applied(rng.randint(*applies), t)
    return app, sb, t


def timeout_for(heap_mib):
    return 60 + (mib() or heap_mib) // 8  # a GiB built from a loaded disk


# ---- scenarios ---------------------------------------------------------------

def restore_cold(h, app, gen, timeout):
    """`checksync restore --generation gen`: the program checks itself and
    exits at once, so the restore's status is its verdict's."""
    rc, out, p = h.tool_cmd("restore", ["restore", "--dir", app.dir, "--generation", str(gen)],
                            timeout)
    if not os.path.exists(app.result):
        h.fail("checksync restore --generation %d exited %d and the program gave no verdict: %s"
               % (gen, rc, out.strip()[-2000:]), p)
    line = app.wait_result_file(10)
    os.unlink(app.result)
    return rc, line, p


def tamper(h, app, gen, line, timeout):
    """The workload can fail: with one field of generation gen's record
    changed, the same restore must be judged FAIL, naming that field. line:
    the verdict of that restore, which names the round."""
    path = os.path.join(app.work, "standby.record")
    with open(path) as f:
        text = f.read()
    rx = r"^round %s heap=" % re.search(r" round=(\d+)", line).group(1)
    for field, why in (("heap=", "heap checksum"), ("maps=", "mappings hash"),
                       ("fds=", "fd table differs")):
        at = re.search(rx, text, re.M).start()
        at = text.index(field, at) + len(field)
        forged = text[:at] + ("1" if text[at] == "0" else "0") + text[at + 1:]
        with open(path, "w") as f:
            f.write(forged)
        rc, line, p = restore_cold(h, app, gen, timeout)
        log("  record's %s of generation %d changed: status %d, %s" % (field, gen, rc, line))
        if rc != 1 or not line.startswith("verify FAIL") or why not in line:
            h.fail("a forged %s in the record was not caught: status %d, %s" % (field, rc, line),
                   p)
    with open(path, "w") as f:
        f.write(text)


def died_unanswered(h, app, rng):
    """The primary SIGKILLs itself right after a checkpoint, before it
    records that checkpoint's generation; returns that generation."""
    rc = app.proc.wait_exit(120, "the primary's own SIGKILL (--die-at-round)")
    if rc not in (-signal.SIGKILL, 128 + signal.SIGKILL):
        h.fail("--die-at-round: checksync run exited %d, want 137" % rc, app.proc)
    newest = images(app.dir)[-1][0]
    log("  the primary killed itself after generation %d" % newest)
    return newest


def cold(heap_mib, n, args=()):
    """The workload's own check through `checksync restore` (no standby); in
    the first iteration the primary dies before recording its last
    generation (the program must find its round anyway), in the last one
    forged records must fail it."""
    def scenario(h):
        def body(i, rng):
            die = ["--die-at-round", str(rng.randint(8, 15))] if i == 0 else []
            # no compactor: the restores go back to older generations
            app = start_primary(h, rng, heap_mib, die + list(args), run_args=["--no-compact"])
            if die:
                gen = newest = died_unanswered(h, app, rng)
            else:
                time.sleep(rng.uniform(0.1, 1.5))
                newest = kill_primary(h, app)
                gen = rng.choice([g for g, _ in images(app.dir)][-3:])
            rc, line, p = restore_cold(h, app, gen, timeout_for(heap_mib))
            log("  restore --generation %d (newest %d): status %d, %s" % (gen, newest, rc, line))
            if rc != 0 or not line.startswith("verify ok") or \
                    "restored_from=%d " % gen not in line:
                h.fail("cold restore of generation %d: status %d, %s" % (gen, rc, line), p)
            if die and " unanswered" not in line:
                h.fail("the program did not notice that generation %d has no record line" % gen)
            if i == h.iterations(n) - 1:
                tamper(h, app, gen, line, timeout_for(heap_mib))
        iterate(h, n, body)
    return scenario


def equality(heap_mib, n):
    def scenario(h):
        def body(i, rng):
            round_ms = str(rng.choice([5, 20, 50]))
            app, sb, t = with_standby(h, rng, heap_mib, ["--round-ms", round_ms], (2, 12))
            time.sleep(rng.uniform(0, 0.2))
            newest = kill_primary(h, app)
            promote_and_check(h, app, sb, newest, rng, t)
        iterate(h, n, body)
    return scenario


def kill_while_applying(h, sb, rng, app, timeout, settle):
    """Kills the primary at a random moment, or (half the time) while the
    standby is applying a generation."""
    if rng.random() < 0.5:
        time.sleep(rng.uniform(0, 0.5))
        log("  kill at a random moment")
        return kill_primary(h, app, settle)
    # The tool answers commands only between two applies (its status never
    # says state=applying): a generation in DIR newer than the last one the
    # standby reported is one it is applying, or is about to.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sb.poll()
        if sb.generation is not None and images(app.dir)[-1][0] > sb.generation:
            log("  kill while the standby applies generation %d (it holds %d)" %
                (images(app.dir)[-1][0], sb.generation))
            return kill_primary(h, app, settle)
        time.sleep(rng.uniform(0, 0.002))
    log("  no generation newer than the standby's within %.0f s; kill anyway" % timeout)
    return kill_primary(h, app, settle)


def kill_apply(heap_mib, n):
    def scenario(h):
        def body(i, rng):
            # many pages per round and no pause: a generation is nearly
            # always arriving or being applied
            writes = str(rng.choice([4096, 65536]))
            app, sb, t = with_standby(h, rng, heap_mib, ["--round-ms", "0", "--writes", writes],
                                      (1, 4))
            # half the time promoted at once: while it still applies
            settle = rng.random() < 0.5
            newest = kill_while_applying(h, sb, rng, app, 10, settle)
            promote_and_check(h, app, sb, newest, rng, t, settle)
        iterate(h, n, body)
    return scenario


def primary_again(h, app, rng, heap_mib, fresh, t):
    """After the primary's kill: restored cold in place (it checks itself
    and goes on), or a new process started in the same DIR."""
    if fresh:
        log("  a new primary in the same DIR")
        return start_primary(h, rng, heap_mib, ckpt_dir=app.dir)
    log("  the primary restored in place")
    app.restore(timeout=t)
    _, m = app.proc.wait_line(r"^restored gen=(\d+) .*verdict=(\w+)", t,
                              "the restored primary's own check")
    if m.group(2) != "ok":
        h.fail("the primary restored in place: %s" % m.string, app.proc)
    # The agent takes one checkpoint nobody asked for right after the base
    # that answers the interrupted cs_checkpoint() (agent.c: reopen_fds()
    # wakes it while that call still counts as waiting): its generation
    # has no record line. Two rounds later every newer one is a round's.
    i, _ = app.proc.wait_line(r"^ckpt round=", t, "a round after the restore")
    app.proc.wait_line(r"^ckpt round=", t, "a second round after the restore", start=i + 1)
    return app


def new_primary(heap_mib, n):
    """The standby follows a primary that came back: restored in place
    (a new full image of the same process) or started afresh in the same
    DIR (another process: the standby starts over); then promoted."""
    def scenario(h):
        def body(i, rng):
            app, sb, t = with_standby(h, rng, heap_mib, ["--go-on", "1"], (1, 4))
            kill_primary(h, app)
            sb.app = app = primary_again(h, app, rng, heap_mib, i % 2 == 1, t)
            sb.wait_applied(rng.randint(2, 5), t)
            newest = kill_primary(h, app)
            promote_and_check(h, app, sb, newest, rng, t)
        iterate(h, n, body)
    return scenario


def compacting(heap_mib, n, seconds):
    """The primary's compactor merges and prunes all the time (at most 4
    images) while the standby follows rounds back to back: for `seconds` no
    error, then promoted. It found a standby that listed the chain while the
    compactor pruned it ("generation G needs generation P, which is
    missing") and gave up."""
    def scenario(h):
        def body(i, rng):
            env = {"CHECKSYNC_COMPACT_MAX_IMAGES": "4", "CHECKSYNC_COMPACT_MIN_BYTES": "1"}
            app, sb, t = with_standby(h, rng, heap_mib, ["--round-ms", "0"], (1, 2), env)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                sb.poll()
                if sb.proc.p.poll() is not None:
                    h.fail("checksync standby exited %d" % sb.proc.p.returncode, sb.proc)
                time.sleep(0.05)
            sb.poll()
            newest = kill_primary(h, app)
            promote_and_check(h, app, sb, newest, rng, t)
        iterate(h, n, body)
    return scenario


def read_counter_file(app):
    try:
        with open(os.path.join(app.work, "standby.counter")) as f:
            return f.read()
    except OSError:
        return ""


def read_counter_mem(pid, addr):
    """The counter as the process's memory holds it, None if unreadable."""
    try:
        with open("/proc/%d/mem" % pid, "rb") as f:
            f.seek(addr)
            return int.from_bytes(f.read(8), "little")
    except (OSError, ValueError):
        return None


def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def standby_pid(h, sb):
    """The standby's process (docs/restore.md, section 9: the restorer, the
    only thread, beneath the tool's namespace init), or None."""
    for child in children(sb.proc.p.pid):
        for pid in children(child):
            try:
                if os.path.basename(os.readlink("/proc/%d/exe" % pid)) == "checksync-restore":
                    h.track(pid)
                    return pid
            except OSError:
                pass
    return None


def threads(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return int(re.search(r"^Threads:\s+(\d+)", f.read(), re.M).group(1))
    except (OSError, AttributeError):
        return None


def check_no_program_fds(h, app, sb, pid):
    """Before promotion no fd of the program exists: none of its files (all
    in its work dir) or eventfds. (The restorer's own fds, a pipe, the
    control socket and the exe, sit right above the program's highest fd of
    the generation it was built from: their numbers prove nothing.)"""
    held = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            held[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    bad = {fd: t for fd, t in held.items() if t.startswith(app.work) or "eventfd" in t}
    if bad:
        h.fail("the standby (pid %d) holds fds of the program before promotion: %s" %
               (pid, bad), sb.proc)
    log("  the standby holds %d fds, none of the program's: %s" %
        (len(held), ", ".join("%d %s" % (fd, held[fd]) for fd in sorted(held))))


def hold_still(h, app, sb, seconds):
    """Over `seconds`, neither the counter file nor (when the standby's
    process can be found) its memory moves."""
    pid = standby_pid(h, sb)
    if pid is None:
        h.fail("no checksync-restore process beneath checksync standby (pid %d)" %
               sb.proc.p.pid, sb.proc)
    f0, m0 = read_counter_file(app), read_counter_mem(pid, app.counter_addr)
    if m0 is None:
        h.fail("cannot read the counter at 0x%x in the standby's memory (pid %d)" %
               (app.counter_addr, pid), sb.proc)
    if threads(pid) != 1:
        h.fail("the standby's process %d has %s threads: the restorer alone (no thread of "
               "the program) was expected" % (pid, threads(pid)), sb.proc)
    log("  holding %.1f s: counter file %r, standby pid %d (one thread) counter %d" %
        (seconds, f0.strip(), pid, m0))
    check_no_program_fds(h, app, sb, pid)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        f1 = read_counter_file(app)
        m1 = read_counter_mem(pid, app.counter_addr)
        if f1 != f0 or m1 != m0:
            h.fail("the counter moved while the standby held the program: file %r -> %r, "
                   "memory of pid %s %s -> %s" % (f0, f1, pid, m0, m1), sb.proc)
        if sb.proc.p.poll() is not None:
            h.fail("checksync standby exited %d while holding" % sb.proc.p.returncode, sb.proc)
        time.sleep(0.05)
    return f0


def wait_moves(h, app, sb, pid, f0, timeout):
    """After promotion the counter file changes twice and the memory grows."""
    seen = [f0]
    deadline = time.monotonic() + timeout
    m0 = read_counter_mem(pid, app.counter_addr)
    while len(seen) < 3:
        if time.monotonic() > deadline:
            h.fail("the counter of the promoted program did not move within %.0f s: file %r" %
                   (timeout, seen), sb.proc)
        f = read_counter_file(app)
        if f != seen[-1]:
            seen.append(f)
        time.sleep(0.02)
    m1 = read_counter_mem(pid, app.counter_addr)
    if m0 is not None and m1 is not None and m1 <= m0:
        h.fail("the promoted program's counter in memory did not grow: %d -> %d" % (m0, m1),
               sb.proc)
    log("  after promotion the counter moves: %s; memory %s -> %s" %
        (" -> ".join(s.split()[-1] if s else "-" for s in seen), m0, m1))


def never_runs(heap_mib, n, hold):
    def scenario(h):
        def body(i, rng):
            app, sb, t = with_standby(h, rng, heap_mib, ["--stay-ms", "120000"], (1, 3))
            newest = kill_primary(h, app)
            f0 = hold_still(h, app, sb, hold)
            gen, pid = sb.promote(newest + 1, t)
            wait_moves(h, app, sb, pid, f0, t)
            if not pid_alive(pid):
                h.fail("promoted pid %d is not alive" % pid, sb.proc)
            os.kill(pid, signal.SIGUSR1)  # ends --stay-ms: the verdict
            check_verdict(h, app, sb, newest, t)
        iterate(h, n, body)
    return scenario


SCENARIOS = {
    "standby-cold": cold(16, 4),
    "standby-equality": equality(16, 3),
    "standby-kill-apply": kill_apply(16, 4),
    "standby-never-runs": never_runs(16, 1, 2.0),
    "standby-new-primary": new_primary(16, 2),
    "standby-compacting": compacting(16, 2, 15),
    # not in meson yet: restore leaves the offset of O_APPEND files at 0
    # (agent/tool/fds.c open_path() skips the lseek for them)
    "standby-cold-append": cold(16, 4, ["--append-offsets", "1"]),
    "standby-cold-long": cold(1024, 4),
    "standby-equality-long": equality(1024, 10),
    "standby-kill-apply-long": kill_apply(1024, 10),
    "standby-never-runs-long": never_runs(256, 3, 10.0),
    "standby-new-primary-long": new_primary(1024, 4),
}


if __name__ == "__main__":
    sys.exit(run_scenario(__doc__, SCENARIOS))
