#!/bin/sh
# checksync fence hook (hooks.fence), required in a cluster of two voters.
# Before a backup promotes without a majority, checksyncd runs
#     fence.sh PEER TERM
# and promotes only if it exits 0. Exit 0 ONLY when PEER is certainly not
# running the application any more (powered off, its service stopped, or
# cut off from clients and storage). When in doubt, fail: a failed fence
# means no failover (logged as fence_hook_failed, retried), which is safe;
# a false success can mean two primaries.
#
# This example supports two methods, chosen in /etc/default/checksync-fence:
#   FENCE_METHOD=ipmi  FENCE_IPMI_<peer>=host FENCE_IPMI_USER=... FENCE_IPMI_PASS_FILE=...
#   FENCE_METHOD=ssh   FENCE_SSH_<peer>=root@host   (stops checksyncd there;
#                      only proves anything if that host is reachable)
set -eu
FENCE_METHOD=none
[ -r /etc/default/checksync-fence ] && . /etc/default/checksync-fence

peer=$1 term=$2
# Peer names are [A-Za-z0-9._-]; make a variable-name suffix of them.
key=$(printf '%s' "$peer" | tr -c 'A-Za-z0-9' '_')
target() { eval "printf '%s' \"\${$1_$key:-}\""; }

case $FENCE_METHOD in
ipmi)
	host=$(target FENCE_IPMI)
	[ -n "$host" ] || { echo "no FENCE_IPMI_$key for $peer"; exit 1; }
	ipmitool -I lanplus -H "$host" -U "$FENCE_IPMI_USER" -f "$FENCE_IPMI_PASS_FILE" chassis power off
	# Power off is asynchronous: confirm it.
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		if ipmitool -I lanplus -H "$host" -U "$FENCE_IPMI_USER" -f "$FENCE_IPMI_PASS_FILE" \
			chassis power status | grep -q 'is off'; then
			echo "$peer powered off (term $term)"
			exit 0
		fi
		sleep 1
	done
	echo "$peer did not report power off"
	exit 1
	;;
ssh)
	dest=$(target FENCE_SSH)
	[ -n "$dest" ] || { echo "no FENCE_SSH_$key for $peer"; exit 1; }
	ssh -o BatchMode=yes -o ConnectTimeout=5 "$dest" systemctl kill --signal=KILL checksyncd.service
	echo "checksyncd killed on $peer (term $term)"
	exit 0
	;;
*)
	echo "no fencing configured (FENCE_METHOD=$FENCE_METHOD): refusing to fence $peer"
	exit 1
	;;
esac
