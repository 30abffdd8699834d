#!/usr/bin/env python3
"""daemon/journal.c against stderr and against a real systemd-journald.

Usage: test_journal.py JOURNAL_EMIT CATALOG
 1. Outside the journal (JOURNAL_STREAM unset, or naming another stream),
    each event is exactly one stderr line with its fields.
 2. The MESSAGE_IDs of the code and of systemd/checksync.catalog agree, and
    the catalog compiles (journalctl --update-catalog in a temporary root).
 3. With a private journald (tests/lib/journald.py) and stderr being the
    stream named by JOURNAL_STREAM, events become structured entries, read
    back with journalctl."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
import journald  # noqa: E402

EMIT, CATALOG = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
failures = []


def check(cond, what, detail=""):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}\n{detail}", file=sys.stderr)


def code_ids():
    out = subprocess.run([EMIT, "list"], capture_output=True, text=True, check=True).stdout
    return dict(line.split() for line in out.splitlines())


def test_stderr():
    for stream in (None, "1:1"):
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        if stream:
            env["JOURNAL_STREAM"] = stream      # someone else's stream: not ours
        r = subprocess.run([EMIT, "auto"], capture_output=True, text=True, env=env)
        lines = r.stderr.splitlines()
        check(r.returncode == 0 and len(lines) == 5, f"five stderr lines (JOURNAL_STREAM={stream})", r.stderr)
        if len(lines) != 5:
            continue
        p = lines[0]
        check("journal_emit: alpha promoted to primary in term 5: lease of beta expired" in p
              and "event=promoted" in p and "node=alpha" in p and "peer=beta" in p and "role=primary" in p
              and "term=5" in p and 'reason="lease of beta expired"' in p, "promoted line", p)
        check("fence hook for beta succeeded in 37 ms" in lines[1] and "duration_ms=37" in lines[1]
              and "role=backup" in lines[1] and "term=4" in lines[1], "defaults from state, duration", lines[1])
        check("warning: peer gamma is down" in lines[2], "priority shown", lines[2])
        check("notify hook: moved ip?to alpha?" in lines[3], "control characters kept off the line", lines[3])
        check(lines[4].endswith("warning: cannot open /etc/checksync/ca.pem: No such file or directory"),
              "errno message", lines[4])


def test_catalog():
    ids = code_ids()
    with open(CATALOG) as f:
        cat = re.findall(r"^-- ([0-9a-f]{32})$", f.read(), re.M)
    check(len(ids) >= 17 and len(set(ids.values())) == len(ids), "one distinct id per event kind", repr(ids))
    check(sorted(cat) == sorted(ids.values()), "catalog ids == code ids",
          f"code only: {set(ids.values()) - set(cat)}\ncatalog only: {set(cat) - set(ids.values())}")
    root = tempfile.mkdtemp(prefix="cs-test-catalog-")
    try:
        d = os.path.join(root, "usr/lib/systemd/catalog")
        os.makedirs(d)
        shutil.copy(CATALOG, d)
        r = subprocess.run(["journalctl", "--root", root, "--update-catalog"], capture_output=True, text=True)
        check(r.returncode == 0 and not r.stderr.strip(), "catalog compiles", r.stderr)
        r = subprocess.run(["journalctl", "--root", root, "--list-catalog"], capture_output=True, text=True)
        listed = {line.split()[0] for line in r.stdout.splitlines()}
        check(listed == set(ids.values()), "every id listed by journalctl", r.stdout + r.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_journald():
    ids = code_ids()
    with journald.Journald() as j, tempfile.TemporaryFile() as err:
        # stderr is a file here; JOURNAL_STREAM naming it makes "auto" pick
        # the journal, as under systemd with StandardError=journal.
        st = os.fstat(err.fileno())
        env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        r = subprocess.run([EMIT, "auto"], stderr=err, env=env)
        err.seek(0)
        check(r.returncode == 0 and err.read() == b"", "nothing on stderr when it is the journal")
        got = j.wait_for("CHECKSYNC_EVENT=promoted")
        check(len(got) == 1, "one promoted entry", repr(got))
        if got:
            e = got[0]
            want = {"MESSAGE_ID": ids["promoted"], "CHECKSYNC_EVENT": "promoted", "CHECKSYNC_NODE": "alpha",
                    "CHECKSYNC_PEER": "beta", "CHECKSYNC_TERM": "5", "CHECKSYNC_ROLE": "primary",
                    "CHECKSYNC_REASON": "lease of beta expired", "PRIORITY": "5",
                    "SYSLOG_IDENTIFIER": "journal_emit",
                    "MESSAGE": "alpha promoted to primary in term 5: lease of beta expired"}
            check(all(e.get(k) == v for k, v in want.items()), "promoted fields",
                  json.dumps({k: e.get(k) for k in want}, indent=1))
        got = j.wait_for("CHECKSYNC_EVENT=fence_hook_ok")
        check(len(got) == 1 and got[0].get("CHECKSYNC_DURATION_MS") == "37"
              and got[0].get("MESSAGE_ID") == ids["fence_hook_ok"] and got[0].get("CHECKSYNC_TERM") == "4",
              "duration and term from state", repr(got))
        got = j.wait_for("SYSLOG_IDENTIFIER=journal_emit", "PRIORITY=4", count=2)
        plain = [e for e in got if "CHECKSYNC_EVENT" not in e]
        check(len(plain) == 1 and plain[0].get("ERRNO") == "2" and plain[0].get("CHECKSYNC_NODE") == "alpha"
              and plain[0].get("MESSAGE") == "cannot open /etc/checksync/ca.pem: No such file or directory",
              "plain warning with ERRNO", repr(got))
        check(not j.query("SYSLOG_IDENTIFIER=journal_emit", "PRIORITY=7"), "debug dropped")
        if failures:
            j.print_tail()
        # journald gone (its socket still there): entries fall back to stderr.
        j.proc.terminate()
        j.proc.wait(timeout=30)
        r = subprocess.run([EMIT, "journal"], capture_output=True, text=True)
        check(r.returncode == 0 and len(r.stderr.splitlines()) == 5 and "event=promoted" in r.stderr,
              "stderr when journald refuses", r.stderr)


def main():
    journald.reexec_in_mount_namespace()
    test_stderr()
    test_catalog()
    test_journald()
    print("FAIL: " + ", ".join(failures) if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
