#!/bin/sh
# The Debian package builds from this tree (scripts/build-deb: dpkg-buildpackage
# -us -uc -b, then lintian with every remaining tag explained in
# debian/checksync.lintian-overrides), and holds what an operator needs:
# the programs, the unit and its sysusers/tmpfiles files applied by the
# maintainer scripts in that order, /etc files as conffiles, library
# dependencies; then dpkg -i on three hosts that boot systemd and
# `systemctl start checksyncd` (with $CS_BUILD_DIR). About 60 s; suite
# "package" (scripts/test runs it once).
# Usage: test_deb.sh SOURCE_ROOT
set -eu
src=$1
for tool in dpkg-buildpackage dh lintian; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool missing (scripts/install-deps)"; exit 77; }
done
out=$(mktemp -d /tmp/cs-test-deb-XXXXXX)
trap 'rm -rf "$out"' EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }

deb=$("$src/scripts/build-deb" "$out/debs") || fail "scripts/build-deb failed"
[ -f "$deb" ] || fail "no .deb: $deb"
files=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/sbin/checksyncd ./usr/bin/checksync ./usr/bin/checksyncctl \
	./usr/libexec/checksync-restore ./usr/lib/x86_64-linux-gnu/libchecksync.so.0.1.0 \
	./usr/include/checksync.h ./usr/lib/x86_64-linux-gnu/pkgconfig/checksync.pc \
	./lib/systemd/system/checksyncd.service ./usr/lib/systemd/catalog/checksync.catalog \
	./usr/lib/sysusers.d/checksync.conf ./usr/lib/tmpfiles.d/checksync.conf \
	./etc/checksync.json ./etc/checksync/fence.sh ./usr/share/man/man8/checksyncd.8.gz \
	./usr/share/gocode/src/checksync/checksync.go; do
	echo "$files" | grep -qx "$f" || fail "$f not in the package"
done
ctl=$out/control
dpkg-deb -e "$deb" "$ctl"
grep -qx /etc/checksync.json "$ctl/conffiles" || fail "/etc/checksync.json is not a conffile"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libevent libssl3 libjansson4 libsystemd0; do
	echo "$depends" | grep -q "$lib" || fail "Depends lacks $lib: $depends"
done
# The control group must exist before tmpfiles gives /run/checksync to it.
users=$(grep -n 'systemd-sysusers' "$ctl/postinst" | head -1 | cut -d: -f1)
tmpfiles=$(grep -n 'systemd-tmpfiles' "$ctl/postinst" | head -1 | cut -d: -f1)
[ -n "$users" ] && [ -n "$tmpfiles" ] && [ "$users" -lt "$tmpfiles" ] ||
	fail "postinst does not run sysusers before tmpfiles"
# Operators enable it once the config and certificates exist.
grep -q "deb-systemd-invoke start" "$ctl/postinst" && fail "postinst starts the daemon"
# Installed with dpkg -i on hosts that boot systemd, it starts a cluster
# (tests/systemd; the build's checksyncctl makes the certificates).
if [ -n "${CS_BUILD_DIR:-}" ]; then
	CS_DEB=$deb python3 "$src/tests/systemd/scenarios.py" the_package_installs_and_starts ||
		fail "the installed package does not start under systemd"
fi
echo "deb: $(basename "$deb") built, lintian clean, contents checked, started under systemd"
