#!/usr/bin/env python3
"""The metrics endpoint of a real checksyncd, scraped over HTTP.

One daemon (alpha of a three-host cluster whose other hosts are not
running; certificates made with `checksyncctl certs`) listens for metrics
on 127.0.0.1. The scrape must name the node, show exactly one role, the
peers down and the counters at zero, agree with `checksyncctl status`, and
pass `promtool check metrics` (Debian's prometheus package; the check is
skipped, saying so, when promtool is not installed). Other paths answer 404,
other methods 501 (405 accepted), and a config with metrics.listen on a taken port stops
the start naming the address.

Then a one-node cluster runs a real app (APP: cs_sync() on each SIGUSR2)
under the checksync tool: after checkpoints, a Sync, a kill of the app (a
local restore) and a restart of the daemon (a promotion that restores the
app: a failover), every histogram must count what happened: pauses as many
as the checkpoints the agents took (the agent's own status says how many),
image sizes by kind as many as the images and summing to their bytes, one
Sync answered ok, one restore, one failover; buckets never decrease and the
+Inf bucket is the count. promtool checks those scrapes too. Usage:
    test_metrics_http.py CHECKSYNCD CHECKSYNCCTL CHECKSYNC_TOOL APP"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "cr"))
from checks import check, finish  # noqa: E402
from crlib import agent_status  # noqa: E402  (the agent's own status reply, as a dict)

DAEMON, CTL, TOOL, APP = (os.path.abspath(a) for a in sys.argv[1:5])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(d, metrics_port):
    pki = os.path.join(d, "pki")
    for args in (("init", pki), ("issue", pki, "alpha")):
        subprocess.run([CTL, "certs", *args], check=True, capture_output=True)
    ports = [free_port() for _ in range(3)]
    cfg = {
        "node": "alpha", "cluster": "kv", "listen": f"127.0.0.1:{ports[0]}",
        "peers": [{"name": "alpha", "address": f"127.0.0.1:{ports[0]}"},
                  {"name": "beta", "address": f"127.0.0.1:{ports[1]}"},
                  {"name": "gamma", "address": f"127.0.0.1:{ports[2]}", "witness": True}],
        "tls": {"ca": f"{pki}/ca.pem", "cert": f"{pki}/alpha.pem", "key": f"{pki}/alpha.key"},
        "state_dir": os.path.join(d, "state"),
        "control_socket": os.path.join(d, "control.sock"),
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
    }
    path = os.path.join(d, "checksync.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path, cfg


def get(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, "", ""


def wait_for(url, proc):
    """Polls until the endpoint answers or the daemon exits (bounded)."""
    for _ in range(200):
        if proc.poll() is not None:
            return False
        try:
            get(url)
            return True
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    return False


def samples(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def check_scrape(base, cfg):
    status, ctype, text = get(base + "/metrics")
    check(status == 200, "GET /metrics answers 200", str(status))
    check(ctype.startswith("text/plain; version=0.0.4"), "text format content type", ctype)
    s = samples(text)
    check(s.get('checksync_info{node="alpha",cluster="kv"}') == 1, "info names the node", text)
    roles = {k: v for k, v in s.items() if k.startswith("checksync_role{")}
    check(len(roles) >= 5 and sum(roles.values()) == 1, "exactly one role is 1", text)
    for peer in ("beta", "gamma"):
        check(s.get(f'checksync_peer_up{{peer="{peer}"}}') == 0, f"{peer} is down", text)
    check(s.get("checksync_checkpoints_total") == 0, "no checkpoints yet", text)
    check(s.get("checksync_restores_total") == 0, "no restores yet", text)

    ctl = subprocess.run([CTL, "-s", cfg["control_socket"], "status", "--json"],
                         capture_output=True, text=True, timeout=30)
    st = json.loads(ctl.stdout) if ctl.returncode == 0 else {}
    check(s.get(f'checksync_role{{role="{st.get("role")}"}}') == 1,
          "the role that is 1 is the one checksyncctl status shows", ctl.stdout + ctl.stderr)
    check(s.get("checksync_term") == st.get("term"), "the term agrees with the status",
          f"{text}\n{ctl.stdout}")
    return text


def find_promtool():
    """promtool from PATH, else from Debian's prometheus package unpacked (never
    installed: that would start a Prometheus) into the compat suite's cache."""
    tool = shutil.which("promtool")
    if tool:
        return tool
    cache = os.environ.get("CHECKSYNC_COMPAT_CACHE") or os.path.join(
        os.path.dirname(os.path.dirname(DAEMON)), "compat-cache")
    fetch = os.path.join(os.path.dirname(__file__), "../../compat/fetch_debs.py")
    r = subprocess.run([sys.executable, fetch, cache, "prometheus"], capture_output=True,
                       text=True, timeout=600)
    tool = os.path.join(r.stdout.strip(), "usr/bin/promtool")
    if r.returncode != 0 or not os.access(tool, os.X_OK):
        print("SKIP promtool check: no promtool on PATH and Debian's prometheus package "
              "could not be fetched: " + (r.stderr.strip() or "no usr/bin/promtool in it"))
        return None
    return tool


PROMTOOL = []


def promtool(text):
    if not PROMTOOL:
        PROMTOOL.append(find_promtool())
    tool = PROMTOOL[0]
    if not tool:
        return
    r = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
          "promtool check metrics finds nothing", r.stdout + r.stderr)


def check_refusals(base):
    check(get(base + "/")[0] == 404, "other paths answer 404")
    code = get(base + "/metrics", method="POST")[0]
    # libevent refuses a method outside evhttp_set_allowed_methods with 501.
    check(code in (405, 501), "POST is refused", str(code))


def check_taken_port(d, path, port):
    """The endpoint's port is taken (by the running daemon): a second daemon
    must not start, and must say which address."""
    with open(path) as f:
        cfg = json.load(f)
    cfg["listen"] = f"127.0.0.1:{free_port()}"
    cfg["control_socket"] = os.path.join(d, "control2.sock")
    cfg["state_dir"] = os.path.join(d, "state2")
    second = os.path.join(d, "second.json")
    with open(second, "w") as f:
        json.dump(cfg, f)
    r = subprocess.run([DAEMON, "-c", second, "--log-target", "stderr"], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode != 0 and f"metrics.listen 127.0.0.1:{port}" in r.stderr,
          "a taken metrics port stops the start and names it", r.stderr)


def main():
    d = tempfile.mkdtemp(prefix="cs-test-metrics-")
    proc = None
    try:
        port = free_port()
        path, cfg = write_config(d, port)
        log = open(os.path.join(d, "daemon.log"), "w")
        proc = subprocess.Popen([DAEMON, "-c", path, "--log-target", "stderr"], stdout=log,
                                stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        if not wait_for(base + "/metrics", proc):
            check(False, "the metrics endpoint comes up", open(log.name).read())
            return
        text = check_scrape(base, cfg)
        promtool(text)
        check_refusals(base)
        check_taken_port(d, path, port)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        out = open(log.name).read()
        # Under ASan a leak or a bad access in the endpoint fails the exit.
        check(rc == 0 and "Sanitizer" not in out, "the daemon stops cleanly", f"rc {rc}\n{out}")
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


# ---- histograms, with a real app ----

def histogram(s, name, labels=""):
    """{le: cumulative count} of NAME{LABELS,le=...}, with its sum and count."""
    pre = f"{name}_bucket{{{labels + ',' if labels else ''}le=\""
    buckets = {k[len(pre):-2]: v for k, v in s.items() if k.startswith(pre)}
    suffix = f"{{{labels}}}" if labels else ""
    return buckets, s.get(f"{name}_sum{suffix}"), s.get(f"{name}_count{suffix}")


def check_histogram(s, name, labels, want_count, text):
    """Buckets in le order never decrease, +Inf is the count, the count is
    WANT_COUNT. Returns the sum."""
    buckets, total, count = histogram(s, name, labels)
    what = f"{name}{{{labels}}}"
    order = sorted((float(le), v) for le, v in buckets.items())
    values = [v for _, v in order]
    check(len(values) >= 2 and values == sorted(values), f"{what}: buckets never decrease", text)
    check(buckets.get("+Inf") == count, f"{what}: the +Inf bucket is the count", text)
    check(count == want_count, f"{what} counts {want_count}", f"count {count}\n{text}")
    return total


def status_of(cfg):
    r = subprocess.run([CTL, "-s", cfg["control_socket"], "status", "--json"],
                       capture_output=True, text=True, timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 else {}


def wait_until(what, cond, detail):
    """Polls COND for up to 30 s: the daemon reads the agent's pauses after
    each new image, a status round trip later."""
    for _ in range(300):
        if cond():
            return True
        time.sleep(0.1)
    return check(False, what, detail())


def app_config(d, port):
    pki = os.path.join(d, "pki")
    for args in (("init", pki), ("issue", pki, "alpha")):
        subprocess.run([CTL, "certs", *args], check=True, capture_output=True)
    peer = f"127.0.0.1:{free_port()}"
    cfg = {
        "node": "alpha", "cluster": "one", "listen": peer,
        "peers": [{"name": "alpha", "address": peer}],
        "tls": {"ca": f"{pki}/ca.pem", "cert": f"{pki}/alpha.pem", "key": f"{pki}/alpha.key"},
        "state_dir": os.path.join(d, "state"),
        "control_socket": os.path.join(d, "control.sock"),
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "app": {"exec": [APP]},
        # No periodic checkpoints: the test counts the ones it asks for.
        "checkpoint": {"interval_ms": 600000, "sync": "local"},
    }
    path = os.path.join(d, "checksync.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path, cfg


def start(path, log):
    return subprocess.Popen([DAEMON, "-c", path, "--log-target", "stderr"], stdout=log,
                            stderr=subprocess.STDOUT, env=dict(os.environ, CHECKSYNC_TOOL=TOOL))


def serving(cfg):
    return status_of(cfg).get("app", {}).get("state") == "serving"


def scrape(base):
    return samples(get(base + "/metrics")[2])


def checkpoint(cfg, n):
    for _ in range(n):
        r = subprocess.run([CTL, "-s", cfg["control_socket"], "checkpoint"], capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 0, "checksyncctl checkpoint succeeds", r.stdout + r.stderr)


def settled(base, at_least, want_syncs=None):
    """The first scrape whose pause histogram counts every checkpoint, once
    there are AT_LEAST of them (and WANT_SYNCS Syncs answered ok)."""
    got = {}

    def cond():
        got.clear()
        got.update(scrape(base))
        images = got.get("checksync_checkpoints_total", -1)
        ok = got.get("checksync_checkpoint_pause_seconds_count") == images >= at_least
        if want_syncs is not None:
            ok = ok and got.get('checksync_sync_duration_seconds_count{result="ok"}') == want_syncs
        return ok
    wait_until(f"the pauses of all checkpoints (at least {at_least}) reach the metrics", cond,
               lambda: json.dumps(got, indent=1))
    return got


def check_sizes(s, text):
    images = s.get("checksync_checkpoints_total")
    base = histogram(s, "checksync_checkpoint_size_bytes", 'kind="base"')
    delta = histogram(s, "checksync_checkpoint_size_bytes", 'kind="delta"')
    check(base[2] >= 1 and base[2] + delta[2] == images,
          "base and delta images add up to the checkpoints", text)
    check_histogram(s, "checksync_checkpoint_size_bytes", 'kind="base"', base[2], text)
    check_histogram(s, "checksync_checkpoint_size_bytes", 'kind="delta"', delta[2], text)
    check(base[1] + delta[1] == s.get("checksync_checkpoint_bytes_total"),
          "their sizes sum to the checkpoint bytes", text)


def first_process(base, cfg):
    """Three checkpoints and one Sync (which takes a fourth) in the app's first process."""
    checkpoint(cfg, 3)
    st = status_of(cfg)
    os.kill(st["app"]["pid"], signal.SIGUSR2)
    s = settled(base, 4, want_syncs=1)
    text = get(base + "/metrics")[2]
    agent = agent_status(st["store"]["chain"])
    check(s.get("checksync_checkpoints_total") == 4 == int(agent.get("checkpoints", -1)),
          "the daemon and the agent count 4 checkpoints", f"{agent}\n{text}")
    check(int(agent.get("pause_count", -1)) == 4, "the agent counts 4 pauses", str(agent))
    total = check_histogram(s, "checksync_checkpoint_pause_seconds", "", 4, text)
    check(total and total > 0, "the pauses took time", text)
    check_histogram(s, "checksync_sync_duration_seconds", 'result="ok"', 1, text)
    check_histogram(s, "checksync_sync_duration_seconds", 'result="error"', 0, text)
    check_histogram(s, "checksync_restore_duration_seconds", "", 0, text)
    check_sizes(s, text)
    promtool(text)
    return st


def local_restore(base, cfg, st):
    """The app killed: restored locally, and its pauses join the first process's."""
    old = st["app"]["pid"]
    os.kill(old, signal.SIGKILL)

    def restored():
        app = status_of(cfg).get("app", {})
        return app.get("state") == "serving" and app.get("pid") not in (0, old)
    wait_until("the killed app is restored and serves", restored,
               lambda: json.dumps(status_of(cfg)))
    checkpoint(cfg, 1)
    s = settled(base, 5)
    text = get(base + "/metrics")[2]
    check_histogram(s, "checksync_checkpoint_pause_seconds", "", s.get(
        "checksync_checkpoints_total"), text)
    check_histogram(s, "checksync_restore_duration_seconds", "", 1, text)
    check_histogram(s, "checksync_failover_duration_seconds", "", 0, text)
    check(s.get("checksync_restores_total") == 1, "one restore", text)
    check_sizes(s, text)


def failover(base, cfg, path, log):
    """A new daemon on the same chain is promoted and restores the app."""
    proc = start(path, log)
    if not wait_until("the restarted daemon restores the app", lambda: serving(cfg),
                      lambda: open(log.name).read()):
        return proc
    s = settled(base, 1)
    text = get(base + "/metrics")[2]
    check(s.get("checksync_term") == 2, "the restart is term 2", text)
    check_histogram(s, "checksync_failover_duration_seconds", "", 1, text)
    check_histogram(s, "checksync_restore_duration_seconds", "", 1, text)
    check_histogram(s, "checksync_checkpoint_pause_seconds", "", s.get(
        "checksync_checkpoints_total"), text)
    promtool(text)
    return proc


def stop(proc, log, what):
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=30)
    out = open(log.name).read()
    check(rc == 0 and "Sanitizer" not in out, f"{what} stops cleanly", f"rc {rc}\n{out}")


def with_app():
    d = tempfile.mkdtemp(prefix="cs-test-metrics-app-")
    procs = []
    try:
        port = free_port()
        path, cfg = app_config(d, port)
        log = open(os.path.join(d, "daemon.log"), "w")
        procs.append(start(path, log))
        base = f"http://127.0.0.1:{port}"
        if not wait_until("the app serves under a one-node cluster", lambda: serving(cfg),
                          lambda: open(log.name).read()):
            return
        st = first_process(base, cfg)
        local_restore(base, cfg, st)
        stop(procs[0], log, "the first daemon")
        procs.append(failover(base, cfg, path, log))
        stop(procs[1], log, "the second daemon")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
    with_app()
    finish("metrics-http")
