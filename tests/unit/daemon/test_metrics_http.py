#!/usr/bin/env python3
"""The metrics endpoint of a real checksyncd, scraped over HTTP.

One daemon (alpha of a three-host cluster whose other hosts are not
running; certificates made with `checksyncctl certs`) listens for metrics
on 127.0.0.1. The scrape must name the node, show exactly one role, the
peers down and the counters at zero, agree with `checksyncctl status`, and
pass `promtool check metrics` (Debian's prometheus package; the check is
skipped, saying so, when promtool is not installed). Other paths answer 404,
other methods 501 (405 accepted), and a config with metrics.listen on a taken port stops
the start naming the address. Usage:
    test_metrics_http.py CHECKSYNCD CHECKSYNCCTL"""
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from checks import check, finish  # noqa: E402

DAEMON, CTL = sys.argv[1], sys.argv[2]


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


def promtool(d, text):
    tool = shutil.which("promtool")
    if not tool:
        print("SKIP promtool check: promtool not installed (apt-get install prometheus)")
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
        promtool(d, text)
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


if __name__ == "__main__":
    main()
    finish("metrics-http")
