#!/bin/sh
# checksync notify hook (hooks.notify). checksyncd runs it on every role
# change, in the background, with a timeout (hooks.timeout_ms), as
#     notify.sh EVENT ROLE TERM NODE
# EVENT is the journal event kind (demoted, fenced, role_changed, ...; a
# node that runs an app announces its promotion as app_serving, once the
# restored app answers, so clients move only to a host that serves;
# without an app it is promoted), ROLE the new role (primary, backup, witness, fenced), TERM the
# cluster term, NODE this node's name. Whatever it prints goes to the
# journal (CHECKSYNC_EVENT=notify_hook_output); its exit status is logged.
#
# This example moves a floating IP address with the primary role. Set
# FLOATING_IP and IFACE below (or in /etc/default/checksync-notify).
set -eu
FLOATING_IP=${FLOATING_IP:-}      # e.g. 10.77.0.100/24
IFACE=${IFACE:-eth0}
[ -r /etc/default/checksync-notify ] && . /etc/default/checksync-notify

event=$1 role=$2 term=$3 node=$4
echo "$node is $role in term $term ($event)"
[ -n "$FLOATING_IP" ] || exit 0

case $role in
primary)
	ip addr replace "$FLOATING_IP" dev "$IFACE"
	# Tell the neighbours the address moved (iputils-arping, if present).
	if command -v arping >/dev/null; then
		arping -c 3 -U -I "$IFACE" "${FLOATING_IP%/*}" >/dev/null 2>&1 || true
	fi
	echo "took $FLOATING_IP on $IFACE"
	;;
*)
	if ip addr show dev "$IFACE" | grep -qF " $FLOATING_IP "; then
		ip addr del "$FLOATING_IP" dev "$IFACE"
		echo "released $FLOATING_IP on $IFACE"
	fi
	;;
esac
