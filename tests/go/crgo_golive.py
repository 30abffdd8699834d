#!/usr/bin/env python3
"""The Go heap's free pages left out of the images (docs/go.md), suite 'go'.

  crgo_golive.py churn --checksync T --prog gochurn [--rounds N]
      gochurn (values dying and replaced, large objects, GCs, FreeOSMemory,
      deep goroutine stacks) under `checksync run` with frequent checkpoints
      (and its compactor); N times: churn for a while, SIGKILL, restore,
      every live value verified, churn again (allocations into pages the
      image left out), verified again. Fails unless pages were actually
      left out (the agent's go_left_out_* counters) and unless a restore
      came after the compactor folded a chain.
  crgo_golive.py fallback --checksync T --prog gochurn-stripped
      a stripped binary: the agent captures page by page (go_heap=off) and
      says why in its status reply; a restore still verifies.

Exit 77 (meson: skipped) only when the checksync tool is not built.
Everything started here is killed, and the temp dirs removed, in `finally`.
"""
import argparse
import json
import os
import random
import sys
import time

import crgo
from crgo import Failure, Session, agent_status, get, log, wait_answer



def verify(port, what):
    st, body = get(port, "/check", timeout=60)
    res = json.loads(body)
    if st != 200 or not res["ok"]:
        raise Failure("%s: /check says %s" % (what, body.decode().strip()))
    return res


def compactions(s):
    return sum(s.tail(p, 10 ** 7).count("compacted generation") for p in s.procs)


def kill_restore(s, proc, port, rnd):
    s.kill_app(proc)
    proc = s.restore()
    waited = wait_answer(port, "/ping", proc, s, 60)
    res = verify(port, "round %d, right after the restore" % rnd)
    time.sleep(1.0)  # churn on: spans reused, pages the image left out allocated again
    res2 = verify(port, "round %d, 1 s after the restore" % rnd)
    if res2["updates"] <= res["updates"]:
        raise Failure("round %d: no churn after the restore (%d updates)" % (rnd, res2["updates"]))
    log("round %d: restored in %.2f s, %d values (%.0f MiB) verified twice, %d updates" %
        (rnd, waited, res["checked"], res["bytes"] / 1048576.0, res2["updates"]))
    return proc


def in_session(a, body):
    """Runs body(session, proc, port) on the program under `checksync run`;
    logs everything on failure and cleans up in any case."""
    s = Session(a.checksync)
    port = a.port or crgo.free_port()
    try:
        proc = s.run([a.prog, "-listen", "127.0.0.1:%d" % port, "-keys", str(a.keys)], a.interval_ms)
        wait_answer(port, "/ping", proc, s, 120)
        return body(a, s, proc, port)
    except BaseException:
        s.dump_logs()
        raise
    finally:
        s.cleanup()


def churn(a, s, proc, port):
    left_out = sent = 0
    after_compaction = 0
    for rnd in range(a.rounds):
        time.sleep(random.uniform(1.0, 3.0))
        st = agent_status(s.dir)
        if st["go_heap"] != "on":
            raise Failure("go_heap=%s (%s): the Go heap was not understood" %
                          (st["go_heap"], st["go_heap_why"]))
        left_out = max(left_out, int(st["go_left_out_sent_total"]))
        sent = max(sent, int(st["go_sent_total"]))
        log("round %d: generation %s, last checkpoint: %s free pages in the Go heap, %s resident "
            "and %s to send left out, %s sent whole again; in all %s pages left out, %s sent; "
            "%s taken page by page (heap lock held)" %
            (rnd, st["generation"], st["go_free_pages"], st["go_left_out_pages"],
             st["go_left_out_sent"], st["go_readded"], st["go_left_out_sent_total"],
             st["go_sent_total"], st["go_skipped"]))
        if compactions(s):
            after_compaction += 1
        proc = kill_restore(s, proc, port, rnd)
    if left_out == 0:
        raise Failure("no page was left out: the test proved nothing")
    if after_compaction == 0:
        raise Failure("the compactor never folded a chain before a kill")
    log("ok: %d restores (%d after a compaction, %d compactions seen); %d pages left out "
        "against %d sent (%.0f%%)" % (a.rounds, after_compaction, compactions(s), left_out,
                                     sent, 100.0 * left_out / max(1, left_out + sent)))
    return 0


def fallback(a, s, proc, port):
    time.sleep(1.0)
    st = agent_status(s.dir)
    log("status: go_heap=%s go_version=%s go_heap_why=%s" %
        (st["go_heap"], st["go_version"], st["go_heap_why"]))
    if st["go_heap"] != "off" or "stripped" not in (st["go_heap_why"] or ""):
        raise Failure("a stripped binary: want go_heap=off naming the stripped symbol table")
    if int(st["go_left_out_sent_total"]) or int(st["go_free_pages"]):
        raise Failure("pages left out although the heap was not understood")
    kill_restore(s, proc, port, 0)
    log("ok: page-level capture, restore verified")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", choices=["churn", "fallback"])
    p.add_argument("--checksync", required=True)
    p.add_argument("--prog", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--interval-ms", type=int, default=100)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--keys", type=int, default=2000)
    a = p.parse_args()
    crgo.ensure_tool(a.checksync)
    if os.geteuid() != 0:
        print("SKIP: needs root (PID and time namespaces)")
        return crgo.SKIP
    try:
        return in_session(a, {"churn": churn, "fallback": fallback}[a.scenario])
    except Failure as e:
        log("FAIL:", e)
        return 1
    except OSError as e:
        log("FAIL: the program stopped answering: %r" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
