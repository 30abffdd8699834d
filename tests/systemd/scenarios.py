#!/usr/bin/env python3
"""checksync driven the way operators drive it: hosts that boot a real
systemd (syshost.py), checksync installed into each, certificates from
`checksyncctl certs`, /etc/checksync.json, and then only `systemctl`,
`journalctl` and `checksyncctl` inside the hosts.

    scenarios.py NAME      runs one scenario (each is a meson test, suite 'systemd')

The app is kvserver -sync; its clients run in the witness gamma and talk to
the floating IP address that the shipped notify hook moves to the primary,
so they find the service the way a real client would.
"""
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import syshost  # noqa: E402  (puts tests/cluster on the path)
import harness  # noqa: E402
from syshost import PORT, SUBNET, wait_until  # noqa: E402

KVCLIENT = os.path.join(HERE, "..", "cluster", "kvclient.py")
THREE = [("alpha", False), ("beta", False), ("gamma", True)]
FLOATING_IP = SUBNET + ".100"
APP_PORT = 8080
# systemd-analyze security's overall exposure of the shipped unit (0 is
# best, 10 worst). The unit is hardened as far as the daemon's work allows
# (docs/operations.md, "The unit's sandbox"); a change that weakens it
# fails here.
MAX_EXPOSURE = 7.7
WATCHDOG_S = 10  # WatchdogSec= of the shipped unit


def build_dir():
    return os.path.abspath(os.environ.get("CS_BUILD_DIR") or
                           os.path.join(HERE, "..", "..", "build"))


def config(site, h, app=False):
    """/etc/checksync.json of host h: fast heartbeats, the shipped hooks."""
    cfg = {
        "node": h.name,
        "cluster": "test",
        "listen": "0.0.0.0:%d" % PORT,
        "peers": [dict({"name": p.name, "address": "%s:%d" % (p.address, PORT)},
                       **({"witness": True} if p.witness else {})) for p in site.hosts],
        "tls": {"ca": "/etc/checksync/ca.pem", "cert": "/etc/checksync/%s.pem" % h.name,
                "key": "/etc/checksync/%s.key" % h.name},
        "heartbeat": {"interval_ms": 50, "timeout_ms": 600, "drift_ms": 100},
        "state_dir": "/var/lib/checksync",
        "control_socket": "/run/checksync/control.sock",
        "hooks": {"notify": "/etc/checksync/notify.sh", "timeout_ms": 5000},
    }
    if app:
        cfg["app"] = {"exec": [site.host_build_file("agent/go/kvserver"), "-listen",
                               "0.0.0.0:%d" % APP_PORT, "-sync"]}
        cfg["checkpoint"] = {"interval_ms": 100}
    return cfg


def configure(site, app=False):
    for h in site.hosts:
        h.write("/etc/checksync.json", json.dumps(config(site, h, app), indent=2) + "\n")
        h.write("/etc/default/checksync-notify",
                "FLOATING_IP=%s/24\nIFACE=eth0\n" % FLOATING_IP)


@contextlib.contextmanager
def site_of(nodes=THREE, app=False):
    with syshost.Site(build_dir(), nodes) as site:
        configure(site, app)
        site.boot()
        try:
            yield site
        except BaseException:
            show_failure(site)
            raise


def show_failure(site):
    for h in site.hosts:
        if h.alive():
            r = h.run("journalctl", "--no-pager", "-n", "60", "-o", "short-precise",
                      check=False)
            print("---- %s's journal:\n%s" % (h.name, r.stdout), file=sys.stderr)


def start_all(site):
    """systemctl start on every host at once, like a cluster that boots."""
    procs = [h.popen("systemctl", "start", "checksyncd", stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT, text=True) for h in site.hosts]
    for h, p in zip(site.hosts, procs):
        out, _ = p.communicate(timeout=90)
        assert p.returncode == 0, "%s: systemctl start checksyncd failed:\n%s" % (h.name, out)
        assert h.show("ActiveState") == "active", h.show("ActiveState")


def event(h, kind, timeout=30, **fields):
    """The first kind event of h's checksyncd (with fields), waiting for it."""
    matches = ["-u", "checksyncd", "CHECKSYNC_EVENT=" + kind] + [
        "CHECKSYNC_%s=%s" % (k.upper(), v) for k, v in fields.items()]
    return h.wait_journal(*matches, timeout=timeout)[0]


def holds_floating_ip(h):
    return (" %s/24 " % FLOATING_IP) in h.run("ip", "-o", "addr", "show", "dev", "eth0").stdout


def wait_floating_ip(site, owner, timeout=20):
    wait_until("the floating IP on %s only" % owner, lambda: all(
        holds_floating_ip(h) == (h.name == owner) for h in site.hosts if h.alive()),
        timeout, step=0.1)


# ---- the app's clients, in gamma ----

class Writer:
    """kvclient.py write from gamma's network to the floating IP: keys whose
    PUT answered 200 (acknowledged by Sync) are listed in ACKS."""

    def __init__(self, site, prefix):
        self.gamma = site["gamma"]
        self.acks = os.path.join(site.base, "acks-" + prefix)
        self.proc = self.gamma.popen_on_network(
            sys.executable, KVCLIENT, "write", "--threads", "2", "--timeout", "3", self.acks,
            prefix, "http://%s:%d" % (FLOATING_IP, APP_PORT), stdout=subprocess.DEVNULL)

    def count(self):
        with contextlib.suppress(FileNotFoundError):
            return len(open(self.acks).read().splitlines())
        return 0

    def wait_more(self, n, timeout=30):
        have = self.count()
        wait_until("%d more acknowledged writes" % n, lambda: self.count() >= have + n,
                   timeout, step=0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)
        assert self.proc.returncode == 0, "the writer failed (%s)" % self.proc.returncode
        return self.count()

    def check(self, host):
        """Every acknowledged key reads back from host's app."""
        p = self.gamma.popen_on_network(
            sys.executable, KVCLIENT, "check", "--timeout", "5", self.acks,
            "http://%s:%d" % (host.address, APP_PORT), stdout=subprocess.PIPE, text=True)
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, "acknowledged writes lost on %s:\n%s" % (host.name, out)
        print(out.strip())


# ---- the scenarios ----

def boots_isolated_and_the_unit_is_sound():
    """A host boots systemd on its own root (boot.py refuses any other);
    the installed unit passes systemd-analyze verify and stays within its
    exposure score; a broken configuration fails `systemctl start` with
    the reason in `journalctl -u`; the catalog explains events (-x)."""
    refused = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount", "--propagation", "private", "--",
         sys.executable, os.path.join(HERE, "boot.py"), "/", "/nonexistent-upper", "0:0",
         "--", "/bin/true"], capture_output=True, text=True, timeout=30)
    assert refused.returncode == 1 and "refusing to boot" in refused.stderr, refused
    with site_of([("alpha", False)]) as site:
        alpha = site["alpha"]
        r = alpha.run("systemd-analyze", "verify", "checksyncd.service", check=False)
        assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), \
            "systemd-analyze verify:\n%s%s" % (r.stdout, r.stderr)
        r = alpha.run("systemd-analyze", "security", "--no-pager", "checksyncd.service",
                      check=False)
        m = re.search(r"Overall exposure level for checksyncd.service: ([0-9.]+)", r.stdout)
        assert m, r.stdout + r.stderr
        print("systemd-analyze security: exposure %s (at most %.1f)" % (m.group(1), MAX_EXPOSURE))
        assert float(m.group(1)) <= MAX_EXPOSURE, r.stdout
        alpha.run("journalctl", "--update-catalog")  # what the package's trigger does

        # A key that does not exist: --check-config in ExecStartPre refuses.
        cfg = config(site, alpha)
        alpha.run("mv", "/etc/checksync/alpha.key", "/etc/checksync/alpha.key.off")
        r = alpha.systemctl("start", "checksyncd", check=False)
        assert r.returncode != 0, "checksyncd started without its key"
        # Restart=on-failure tries again every RestartSec until the start limit.
        assert alpha.show("Result") == "exit-code", alpha.show("Result")
        logged = alpha.run("journalctl", "-u", "checksyncd", "--no-pager", "-o", "cat").stdout
        assert cfg["tls"]["key"] in logged, "the journal does not name the missing key:\n" + logged

        alpha.run("mv", "/etc/checksync/alpha.key.off", "/etc/checksync/alpha.key")
        alpha.systemctl("stop", "checksyncd")
        alpha.systemctl("reset-failed", "checksyncd", check=False)
        alpha.systemctl("start", "checksyncd")
        started = event(alpha, "started")
        assert started["CHECKSYNC_NODE"] == "alpha", started
        explained = alpha.run("journalctl", "-x", "-u", "checksyncd", "--no-pager",
                              "CHECKSYNC_EVENT=started").stdout
        assert "Subject: checksyncd started on alpha" in explained, explained
        assert alpha.show("StatusText").startswith("backup"), alpha.show("StatusText")
        # The app inherits the daemon's seccomp filters, and an image of a
        # process with filters is refused: the unit must install none.
        status = alpha.run("cat", "/proc/%s/status" % alpha.show("MainPID")).stdout
        assert re.search(r"^Seccomp:\s+0$", status, re.M), "seccomp filters:\n" + status
        alpha.systemctl("stop", "checksyncd")
        event(alpha, "stopping")
        assert alpha.show("ActiveState") == "inactive", alpha.show("ActiveState")
        assert alpha.show("Result") == "success", alpha.show("Result")


def operators_see_a_failover_in_the_journal():
    """Three hosts, `systemctl start checksyncd` on each: alpha promotes and
    serves kvserver, the floating IP comes to it, clients write through it;
    `systemctl reload` applies a change; alpha's host dies: beta promotes,
    restores the app, takes the floating IP and serves every acknowledged
    write; alpha's host boots again and rejoins as a backup; `systemctl
    stop` on beta hands the app back to alpha. All of it read back with
    journalctl and checksyncctl in the hosts."""
    with site_of(THREE, app=True) as site:
        alpha, beta = site["alpha"], site["beta"]
        start_all(site)
        promoted = event(alpha, "promoted")
        event(alpha, "app_serving")
        wait_floating_ip(site, "alpha")
        writer = Writer(site, "w")
        writer.wait_more(30)

        text = open(alpha.path("/etc/checksync.json")).read()
        alpha.write("/etc/checksync.json", text.replace('"timeout_ms": 5000', '"timeout_ms": 4000'))
        alpha.systemctl("reload", "checksyncd")
        reloaded = event(alpha, "config_reloaded")
        print("reload: %s" % reloaded["MESSAGE"])

        t_crash = time.time()
        alpha.crash()
        p = event(beta, "promoted")
        assert int(p["CHECKSYNC_TERM"]) > int(promoted["CHECKSYNC_TERM"]), (p, promoted)
        assert int(p["__REALTIME_TIMESTAMP"]) > t_crash * 1e6, p
        done = event(beta, "restore_done")
        print("beta: %s %s" % (done["MESSAGE"], done.get("CHECKSYNC_PATH_REASON", "")))
        event(beta, "app_serving")
        wait_floating_ip(site, "beta")
        # Beta serves every acknowledged write; new ones wait for a backup
        # (checkpoint.sync "backups": no backup up, no acknowledgement).
        writer.check(beta)
        seen = beta.run("journalctl", "--no-pager", "-o", "cat", "CHECKSYNC_EVENT=promoted").stdout
        assert "beta promoted to primary in term %s" % p["CHECKSYNC_TERM"] in seen, seen
        print("journalctl CHECKSYNC_EVENT=promoted on beta: %s" % seen.strip())

        # alpha's host comes back (its disk kept /var/lib/checksync): the
        # operator starts checksyncd, alpha joins as beta's backup, and
        # writes are acknowledged again.
        site.boot(["alpha"])
        alpha.systemctl("start", "checksyncd")
        wait_until("alpha a backup of beta", lambda: alpha.role()[0] == "backup" and (
            alpha.status() or {}).get("primary") == "beta", 30, step=0.2)
        writer.wait_more(20, timeout=60)
        out = beta.run("checksyncctl", "status").stdout
        assert re.search(r"^alpha\s+backup\s+up", out, re.M), out

        # Maintenance on beta: `systemctl stop` hands the app to alpha first.
        beta.systemctl("stop", "checksyncd")
        assert beta.show("Result") == "success", beta.show("Result")
        # (alpha's journal is of its second boot: the first one's was in /run.)
        back = event(alpha, "promoted")
        assert int(back["CHECKSYNC_TERM"]) > int(p["CHECKSYNC_TERM"]), back
        wait_until("alpha's restored app serving", lambda: (alpha.status() or {}).get(
            "app", {}).get("state") == "serving", 30, step=0.2)
        wait_until("alpha to take the floating IP", lambda: holds_floating_ip(alpha), 20,
                   step=0.1)
        # The stopped daemon ran the notify hook of its demotion before it
        # exited: beta gave the address up.
        assert not holds_floating_ip(beta), "beta still holds %s after systemctl stop" % FLOATING_IP
        acked = writer.stop()
        writer.check(alpha)
        print("%d acknowledged writes served by beta, then by alpha; beta restored "
              "generation %s in %s ms" % (acked, done["CHECKSYNC_GENERATION"],
                                         done["CHECKSYNC_DURATION_MS"]))


def watchdog_restarts_a_stopped_daemon():
    """The primary's checksyncd is stopped with SIGSTOP. Its lease runs out,
    so beta promotes and serves; alpha's app cannot acknowledge a write
    (Sync needs the stopped daemon). After WatchdogSec systemd kills
    alpha's daemon (SIGABRT, then the unit's processes with it, app
    included) and restarts it; alpha rejoins as a backup of beta's term,
    releases the floating IP, and every acknowledged write is on beta."""
    with site_of(THREE, app=True) as site:
        alpha, beta = site["alpha"], site["beta"]
        start_all(site)
        event(alpha, "app_serving")
        wait_floating_ip(site, "alpha")
        writer = Writer(site, "wd")
        writer.wait_more(20)
        main_pid = alpha.show("MainPID")
        app_pid = alpha.status()["app"]["pid"]
        t_stop = time.monotonic()
        alpha.systemctl("kill", "--kill-who=main", "--signal=SIGSTOP", "checksyncd")

        event(beta, "promoted")
        event(beta, "app_serving")
        said = wait_until("systemd's watchdog timeout in alpha's journal", lambda: re.search(
            r"^checksyncd.service: Watchdog timeout.*$", alpha.run(
                "journalctl", "-u", "checksyncd", "--no-pager", "-o", "cat").stdout, re.M),
            WATCHDOG_S + 10, step=0.2)
        print("alpha's journal: %s" % said.group(0))
        waited = time.monotonic() - t_stop
        # The daemon pings every WatchdogSec/2, so the last ping came at most
        # that long before the stop.
        assert WATCHDOG_S / 2 - 0.5 <= waited, "watchdog fired after %.1f s" % waited
        wait_until("alpha's checksyncd restarted", lambda: alpha.show("NRestarts") == "1" and
                   alpha.show("ActiveState") == "active", 60, step=0.2)
        assert alpha.show("MainPID") != main_pid
        wait_until("alpha a backup of beta", lambda: (alpha.status() or {}).get(
            "primary") == "beta" and alpha.role()[0] == "backup", 30, step=0.2)
        gone = alpha.run("kill", "-0", str(app_pid), check=False)
        assert gone.returncode != 0, "alpha's old app (pid %d) still runs" % app_pid
        wait_floating_ip(site, "beta")
        writer.wait_more(10)
        acked = writer.stop()
        writer.check(beta)
        print("watchdog after %.1f s; %d acknowledged writes served by beta" % (waited, acked))


def the_package_installs_and_starts():
    """The Debian package ($CS_DEB, made by scripts/build-deb; skipped
    without it) installed with dpkg -i on three fresh hosts: nothing starts
    by itself; with certificates and /etc/checksync.json in place,
    `systemctl start checksyncd` forms the cluster."""
    deb = os.environ.get("CS_DEB")
    if not deb:
        print("SKIP: set CS_DEB to a .deb made by scripts/build-deb")
        sys.exit(77)
    with syshost.Site(build_dir(), THREE, meson_install=False) as site:
        site.boot()
        for h in site.hosts:
            shutil.copy(deb, h.path("/root/checksync.deb"))
            h.run("dpkg", "-i", "/root/checksync.deb", timeout=120)
            assert h.show("UnitFileState") == "disabled", h.show("UnitFileState")
            assert h.show("ActiveState") == "inactive", h.show("ActiveState")
            assert h.run("getent", "group", "checksync", check=False).returncode == 0
            site.install_certs(h)
        configure(site)
        start_all(site)
        promoted = event(site["alpha"], "promoted")
        print("package %s: %s" % (os.path.basename(deb), promoted["MESSAGE"]))
        for h in site.hosts:
            h.systemctl("stop", "checksyncd")
            assert h.show("Result") == "success", (h.name, h.show("Result"))


SCENARIOS = {f.__name__: f for f in (boots_isolated_and_the_unit_is_sound,
                                     operators_see_a_failover_in_the_journal,
                                     watchdog_restarts_a_stopped_daemon,
                                     the_package_installs_and_starts)}


def main():
    harness.run(SCENARIOS, enter=syshost.reexec_private)


if __name__ == "__main__":
    main()
