#!/usr/bin/env python3
"""`meson install` puts every file in its FHS place.

Installs the build tree into a temporary DESTDIR and compares the file list
with the one expected from the build's own directory options (so it holds
for --prefix=/usr, as packages build, and for the default /usr/local), then
checks what a list cannot show: modes, the library's soname and symlinks,
the pkg-config file, no build-tree RUNPATH, the paths compiled into the
daemon and the tool, and that a program builds and runs against the
installed header and library alone. Usage:
    test_install.py BUILDDIR"""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from checks import check, finish  # noqa: E402

BUILD = sys.argv[1]


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300, **kw)


def options():
    r = run("meson", "introspect", BUILD, "--buildoptions")
    opts = {o["name"]: o["value"] for o in json.loads(r.stdout)}
    prefix = opts["prefix"]
    dirs = {"prefix": prefix}
    for name in ("bindir", "sbindir", "libdir", "libexecdir", "includedir", "datadir",
                 "mandir", "sysconfdir"):
        dirs[name] = os.path.join(prefix, opts[name])  # absolute values stay absolute
    return dirs


def systemd_dir(var, default):
    r = run("pkg-config", f"--variable={var}", "systemd")
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else default


def expected(d):
    lib, share = d["libdir"], d["datadir"]
    files = {
        f"{d['sbindir']}/checksyncd": 0o755,
        f"{d['bindir']}/checksync": 0o755,
        f"{d['bindir']}/checksyncctl": 0o755,
        f"{d['libexecdir']}/checksync-restore": 0o755,
        f"{lib}/libchecksync.so.0.1.0": 0o755,
        f"{lib}/libchecksync.so.0": None,  # symlinks
        f"{lib}/libchecksync.so": None,
        f"{lib}/libchecksync.a": 0o644,
        f"{lib}/pkgconfig/checksync.pc": 0o644,
        f"{d['includedir']}/checksync.h": 0o644,
        f"{systemd_dir('systemdsystemunitdir', '/lib/systemd/system')}/checksyncd.service": 0o644,
        f"{systemd_dir('sysusersdir', '/usr/lib/sysusers.d')}/checksync.conf": 0o644,
        f"{systemd_dir('tmpfilesdir', '/usr/lib/tmpfiles.d')}/checksync.conf": 0o644,
        f"{systemd_dir('catalogdir', '/usr/lib/systemd/catalog')}/checksync.catalog": 0o644,
        f"{d['sysconfdir']}/checksync.json": 0o644,
        f"{d['sysconfdir']}/checksync/notify.sh": 0o755,
        f"{d['sysconfdir']}/checksync/fence.sh": 0o755,
        f"{share}/doc/checksync/examples/checksync.json": 0o644,
        f"{share}/doc/checksync/examples/notify.sh": 0o644,
        f"{share}/doc/checksync/examples/fence.sh": 0o644,
        f"{d['mandir']}/man1/checksync.1": 0o644,
        f"{d['mandir']}/man3/libchecksync.3": 0o644,
        f"{d['mandir']}/man5/checksync.json.5": 0o644,
        f"{d['mandir']}/man8/checksyncd.8": 0o644,
        f"{d['mandir']}/man8/checksyncctl.8": 0o644,
    }
    for name in ("checksync.go", "sync.go", "restore.go", "shim.c", "shim.h", "shim_api.h",
                 "link_dlsym.go", "link_static.go"):
        files[f"{share}/gocode/src/checksync/{name}"] = 0o644
    return files


def installed(dest):
    out = set()
    for root, _, names in os.walk(dest):
        for n in names:
            out.add("/" + os.path.relpath(os.path.join(root, n), dest))
    return out


def check_list(dest, d, want):
    got = installed(dest)
    gopkg = f"{d['datadir']}/gocode/src/checksync/"
    missing = sorted(set(want) - got)
    # The Go package may grow files; anything else unexpected is a stray.
    extra = sorted(p for p in got - set(want) if not p.startswith(gopkg))
    check(not missing, "every file installed", "missing:\n  " + "\n  ".join(missing))
    check(not extra, "nothing else installed", "unexpected:\n  " + "\n  ".join(extra))
    check(not any(p.endswith("_test.go") for p in got), "no Go tests installed")
    for path, mode in want.items():
        full = dest + path
        if mode is None or not os.path.exists(full):
            continue
        got_mode = stat.S_IMODE(os.lstat(full).st_mode)
        check(got_mode == mode, f"{path} has mode {mode:o}", f"found {got_mode:o}")


def check_library(dest, d):
    lib = dest + d["libdir"]
    check(os.readlink(f"{lib}/libchecksync.so") == "libchecksync.so.0",
          "libchecksync.so -> libchecksync.so.0")
    check(os.readlink(f"{lib}/libchecksync.so.0") == "libchecksync.so.0.1.0",
          "libchecksync.so.0 -> libchecksync.so.0.1.0")
    dyn = run("readelf", "-d", f"{lib}/libchecksync.so.0.1.0").stdout
    check("Library soname: [libchecksync.so.0]" in dyn, "soname libchecksync.so.0", dyn)
    pc = open(f"{lib}/pkgconfig/checksync.pc").read()
    check(f"prefix={d['prefix']}" in pc and "-lchecksync" in pc,
          "checksync.pc names the prefix and -lchecksync", pc)
    for exe in (f"{d['sbindir']}/checksyncd", f"{d['bindir']}/checksync",
                f"{d['bindir']}/checksyncctl", f"{d['libdir']}/libchecksync.so.0.1.0"):
        dyn = run("readelf", "-d", dest + exe).stdout
        check("RUNPATH" not in dyn and "RPATH" not in dyn, f"{exe} has no build-tree RUNPATH",
              dyn)


def check_paths(dest, d):
    """The daemon runs the installed tool; the tool runs the installed
    restorer and preloads the installed library."""
    def strings(path):
        return run("strings", dest + path).stdout

    check(f"{d['bindir']}/checksync" in strings(f"{d['sbindir']}/checksyncd"),
          "checksyncd looks for the tool in bindir")
    tool = strings(f"{d['bindir']}/checksync")
    check(d["libexecdir"] in tool, "checksync looks for checksync-restore in libexecdir")
    check(d["libdir"] in tool, "checksync looks for libchecksync.so in libdir")
    r = run(dest + f"{d['sbindir']}/checksyncd", "--version")
    check(r.returncode == 0 and "checksyncd" in r.stdout, "installed checksyncd runs", r.stderr)


def check_link(dest, d, tmp):
    """A program built against the installed files alone (header, -l, the
    shared library at run time) sees no agent without CHECKSYNC_DIR."""
    src = os.path.join(tmp, "uses.c")
    exe = os.path.join(tmp, "uses")
    with open(src, "w") as f:
        f.write("#include <stdio.h>\n#include <checksync.h>\n"
                "int main(void) { printf(\"%d\\n\", cs_enabled()); return 0; }\n")
    lib = dest + d["libdir"]
    r = run("cc", "-o", exe, src, f"-I{dest}{d['includedir']}", f"-L{lib}", "-lchecksync")
    check(r.returncode == 0, "a program compiles against the installed header and library",
          r.stderr)
    if r.returncode == 0:
        env = dict(os.environ, LD_LIBRARY_PATH=lib)
        env.pop("CHECKSYNC_DIR", None)
        r = run(exe, env=env)
        check(r.returncode == 0 and r.stdout.strip() == "0", "it runs on the installed library",
              r.stdout + r.stderr)


def main():
    tmp = tempfile.mkdtemp(prefix="cs-test-install-")
    dest = os.path.join(tmp, "root")
    try:
        r = run("meson", "install", "-C", BUILD, "--destdir", dest, "--no-rebuild", "--quiet")
        check(r.returncode == 0, "meson install succeeds", r.stdout + r.stderr)
        if r.returncode == 0:
            d = options()
            check_list(dest, d, expected(d))
            check_library(dest, d)
            check_paths(dest, d)
            check_link(dest, d, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish("install")


if __name__ == "__main__":
    main()
