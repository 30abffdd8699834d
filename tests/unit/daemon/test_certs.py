#!/usr/bin/env python3
"""Certificates for mutual TLS, from `checksyncctl certs` to `checksyncd
--check-config`.

A CA and host certificates are made with the real checksyncctl; their modes,
names and signatures are read back with the openssl CLI. Then checksyncd
--check-config is given a good set, and one broken set per refusal it must
explain (expired, not yet valid, wrong name, mismatched key, foreign CA,
unparsable or missing file), each made on purpose with the openssl CLI or the
new command. Every refusal must name the file and the reason, and only that
problem. Usage:
    test_certs.py CHECKSYNCCTL CHECKSYNCD"""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from checks import check, finish  # noqa: E402

CTL, DAEMON = sys.argv[1], sys.argv[2]


def run(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def openssl(*args):
    r = run("openssl", *args)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr}")
    return r.stdout


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_make(pki):
    r = run(CTL, "certs", "init", pki)
    check(r.returncode == 0, "certs init succeeds", r.stderr)
    for host in ("alpha", "beta"):
        r = run(CTL, "certs", "issue", pki, host)
        check(r.returncode == 0, f"certs issue {host} succeeds", r.stderr)
    for name, want in (("ca.key", 0o600), ("ca.pem", 0o644), ("alpha.key", 0o600),
                       ("alpha.pem", 0o644)):
        got = mode(os.path.join(pki, name))
        check(got == want, f"{name} has mode {want:o}", f"found {got:o}")
    text = openssl("x509", "-in", f"{pki}/alpha.pem", "-noout", "-subject", "-ext",
                   "subjectAltName,basicConstraints,extendedKeyUsage")
    check("CN = alpha" in text, "alpha.pem has CN alpha", text)
    check("DNS:alpha" in text, "alpha.pem has DNS subjectAltName alpha", text)
    check("CA:FALSE" in text, "alpha.pem is not a CA", text)
    check("TLS Web Client Authentication" in text and "TLS Web Server Authentication" in text,
          "alpha.pem serves both ends of a mutual link", text)
    ca = openssl("x509", "-in", f"{pki}/ca.pem", "-noout", "-ext", "basicConstraints")
    check("CA:TRUE" in ca, "ca.pem is a CA", ca)
    key = openssl("pkey", "-in", f"{pki}/alpha.key", "-noout", "-text")
    check("prime256v1" in key or "P-256" in key, "alpha.key is EC P-256", key)
    r = run("openssl", "verify", "-CAfile", f"{pki}/ca.pem", f"{pki}/alpha.pem")
    check(r.returncode == 0, "openssl verify accepts alpha.pem under ca.pem", r.stdout + r.stderr)

    before = open(f"{pki}/alpha.pem").read()
    r = run(CTL, "certs", "issue", pki, "alpha")
    check(r.returncode == 1 and "already exists" in r.stderr, "an existing key is never replaced",
          r.stderr)
    check(open(f"{pki}/alpha.pem").read() == before, "alpha.pem unchanged after the refusal")
    r = run(CTL, "certs", "issue", pki, "../evil")
    check(r.returncode == 2 and "not a node name" in r.stderr, "a path is not a host name", r.stderr)
    r = run(CTL, "certs", "issue", os.path.join(pki, "nowhere"), "gamma")
    check(r.returncode == 1 and "certs init" in r.stderr, "issue without a CA says to init",
          r.stderr)


def write_config(d, node, ca, cert, key):
    path = os.path.join(d, f"checksync-{len(os.listdir(d))}.json")
    cfg = {
        "node": node, "cluster": "kv", "listen": "127.0.0.1:7400",
        "peers": [{"name": "alpha", "address": "127.0.0.1:7400"},
                  {"name": "beta", "address": "127.0.0.2:7400"},
                  {"name": "gamma", "address": "127.0.0.3:7400", "witness": True}],
        "tls": {"ca": ca, "cert": cert, "key": key},
        "state_dir": d,
    }
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def check_config(d, node, ca, cert, key):
    path = write_config(d, node, ca, cert, key)
    return path, run(DAEMON, "--check-config", "-c", path)


def signed_by_cli(pki, d, name, start, end):
    """A certificate for alpha signed by PKI's CA with the openssl CLI and
    the given dates (YYYYMMDDHHMMSSZ), which `certs issue` never makes."""
    key, csr, cert = (os.path.join(d, f"{name}.{x}") for x in ("key", "csr", "pem"))
    conf = os.path.join(d, f"{name}.cnf")
    db = os.path.join(d, f"{name}-db")
    os.mkdir(db)
    open(os.path.join(db, "index.txt"), "w").close()
    with open(conf, "w") as f:
        f.write(f"[ca]\ndefault_ca = c\n[c]\ndatabase = {db}/index.txt\nnew_certs_dir = {db}\n"
                f"serial = {db}/serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n"
                "[p]\ncommonName = supplied\n[ext]\nsubjectAltName = DNS:alpha\n")
    with open(os.path.join(db, "serial"), "w") as f:
        f.write("1000\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-subj", "/CN=alpha", "-out", csr)
    openssl("ca", "-batch", "-notext", "-config", conf, "-cert", f"{pki}/ca.pem", "-keyfile",
            f"{pki}/ca.key", "-in", csr, "-out", cert, "-startdate", start, "-enddate", end,
            "-extensions", "ext", "-extfile", conf)
    return cert, key


def refused(d, what, args, *needles):
    """checksyncd --check-config refuses, and its only complaint has every
    needle (the file and the reason)."""
    path, r = check_config(d, *args)
    lines = r.stderr.strip().splitlines()
    check(r.returncode == 1, f"{what}: exit 1", f"rc {r.returncode}\n{r.stdout}{r.stderr}")
    check("ok" not in r.stdout, f"{what}: no ok", r.stdout)
    check(len(lines) == 1, f"{what}: exactly one problem", r.stderr)
    for n in needles:
        check(n in r.stderr, f"{what}: says {n!r}", r.stderr)


def test_check_config(pki, d):
    ca = f"{pki}/ca.pem"
    path, r = check_config(d, "alpha", ca, f"{pki}/alpha.pem", f"{pki}/alpha.key")
    check(r.returncode == 0 and r.stdout.strip() == f"{path}: ok",
          "check-config accepts the certificates certs made", r.stdout + r.stderr)

    cert, key = signed_by_cli(pki, d, "expired", "20200101000000Z", "20210101000000Z")
    refused(d, "expired", ("alpha", ca, cert, key), cert, "expired on 2021-01-01 00:00:00 UTC")
    cert, key = signed_by_cli(pki, d, "future", "20900101000000Z", "20910101000000Z")
    refused(d, "not yet valid", ("alpha", ca, cert, key), cert, "not valid yet",
            "2090-01-01 00:00:00 UTC")
    refused(d, "wrong name", ("alpha", ca, f"{pki}/beta.pem", f"{pki}/beta.key"),
            f"{pki}/beta.pem", "names beta, but this node is alpha")
    refused(d, "mismatched key", ("alpha", ca, f"{pki}/alpha.pem", f"{pki}/beta.key"),
            f"{pki}/beta.key", f"does not match certificate {pki}/alpha.pem")

    other = os.path.join(d, "other")
    run(CTL, "certs", "init", other)
    run(CTL, "certs", "issue", other, "alpha")
    refused(d, "foreign CA", ("alpha", ca, f"{other}/alpha.pem", f"{other}/alpha.key"),
            f"{other}/alpha.pem", f"not signed by the CA in {ca}")

    junk = os.path.join(d, "junk.pem")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    refused(d, "unparsable certificate", ("alpha", ca, junk, f"{pki}/alpha.key"), junk,
            "no PEM certificate in it")
    refused(d, "unparsable CA", ("alpha", junk, f"{pki}/alpha.pem", f"{pki}/alpha.key"), junk,
            "no PEM certificate in it")
    missing = os.path.join(d, "missing.key")
    refused(d, "missing key", ("alpha", ca, f"{pki}/alpha.pem", missing), missing,
            "cannot open it: No such file or directory")


def main():
    d = tempfile.mkdtemp(prefix="cs-test-certs-")
    try:
        pki = os.path.join(d, "pki", "nested")  # init makes parents too
        test_make(pki)
        test_check_config(pki, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    finish("certs")


if __name__ == "__main__":
    main()
