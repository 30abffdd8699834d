#!/bin/sh
# The shipped systemd files are valid: the unit passes `systemd-analyze
# verify` with no warning (unknown keys only warn, so any output fails), the
# sysusers and tmpfiles files apply cleanly. Everything happens in a
# temporary root: the unit's binaries are stand-ins there, the host is not
# touched. Usage: test_systemd.sh SYSTEMD_DIR
set -eu
src=$(cd "$1" && pwd)
root=$(mktemp -d /tmp/cs-test-systemd-XXXXXX)
trap 'rm -rf "$root"' EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$root/usr/sbin" "$root/bin" "$root/lib/systemd" "$root/etc/systemd/system" \
	"$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" "$root/etc/checksync"
printf '#!/bin/sh\nexit 0\n' > "$root/usr/sbin/checksyncd"
chmod 755 "$root/usr/sbin/checksyncd"
cp /bin/kill /bin/systemd-tmpfiles "$root/bin/"
cp -a /lib/systemd/system "$root/lib/systemd/"
cp "$src/checksyncd.service" "$root/etc/systemd/system/"
out=$(systemd-analyze verify --man=no --root="$root" checksyncd.service 2>&1) || fail "verify: $out"
[ -z "$out" ] || fail "verify printed: $out"
grep -q '^Type=notify$' "$src/checksyncd.service" || fail "not Type=notify"
grep -q '^WatchdogSec=' "$src/checksyncd.service" || fail "no WatchdogSec"

touch "$root/etc/passwd" "$root/etc/group" "$root/etc/shadow" "$root/etc/gshadow"
cp "$src/checksync.sysusers" "$root/usr/lib/sysusers.d/checksync.conf"
out=$(systemd-sysusers --root="$root" 2>&1) || fail "sysusers: $out"
grep -q '^checksync:' "$root/etc/group" || fail "sysusers made no checksync group"

cp "$src/checksync.tmpfiles" "$root/usr/lib/tmpfiles.d/checksync.conf"
mkdir -p "$root/run" "$root/var/lib"
out=$(systemd-tmpfiles --root="$root" --create checksync.conf 2>&1) || fail "tmpfiles: $out"
[ -z "$out" ] || fail "tmpfiles printed: $out"
gid=$(awk -F: '$1 == "checksync" { print $3 }' "$root/etc/group")
[ "$(stat -c '%a %u %g' "$root/run/checksync")" = "750 0 $gid" ] || fail "/run/checksync: $(stat -c '%a %u %g' "$root/run/checksync")"
[ "$(stat -c '%a' "$root/var/lib/checksync")" = 700 ] || fail "/var/lib/checksync mode"
echo ok
