#!/bin/sh
# The agent's libc wrappers' cost per call (tests/bench/sleep_cost.c):
# without the agent, with it preloaded but inactive (no CHECKSYNC_DIR), and
# active (CHECKSYNC_DIR, no periodic checkpoint), interleaved N times so
# load on the machine touches all three alike.
#
#   tests/bench/sleep_cost.sh BUILD [N]
set -eu
build=${1:?usage: sleep_cost.sh BUILD [N]}
n=${2:-3}
bin=$build/tests/bench/sleep-cost
lib=$build/agent/capture/libchecksync.so
dir=$(mktemp -d /tmp/sleep-cost-XXXXXX)
trap 'rm -rf "$dir"' EXIT
i=0
while [ "$i" -lt "$n" ]; do
	echo "plain    $("$bin")"
	echo "inactive $(LD_PRELOAD=$lib "$bin")"
	echo "active   $(LD_PRELOAD=$lib CHECKSYNC_DIR=$dir CHECKSYNC_INTERVAL_MS=0 "$bin")"
	i=$((i + 1))
done
