#!/bin/bash
# Builds one libFuzzer target with clang and runs it for a bounded time.
# The project compiler is gcc, so the fuzzer is compiled here, into the
# build directory, rather than by meson.
#
# usage: run-fuzzer.sh CLANG NAME OUTDIR SECONDS SEED_DIR INCLUDE_DIR SOURCE... [-- LINK_ARG...]
#
# Exits non-zero if the target does not build or libFuzzer finds a crash,
# a leak, undefined behaviour or a timeout; the input that did it is kept as
# OUTDIR/NAME-crash-* (and printed in hex by libFuzzer).
set -eu
clang=$1 name=$2 out=$3 secs=$4 seeds=$5 inc=$6
shift 6
sources="" links=""
while [ $# -gt 0 ]; do
	if [ "$1" = "--" ]; then
		shift
		links="$*"
		break
	fi
	sources="$sources $1"
	shift
done
mkdir -p "$out"
bin="$out/fuzz-$name"

# Compiling with three instrumentations takes minutes on a loaded machine:
# rebuild only when a source, a header next to one, or this script is newer.
stale() {
	[ -x "$bin" ] || return 0
	for s in "$0" $sources; do
		for f in "$s" "$(dirname "$s")"/*.h; do
			[ -e "$f" ] && [ "$f" -nt "$bin" ] && return 0
		done
	done
	return 1
}
if stale; then
	# shellcheck disable=SC2086 # word splitting of the lists is intended
	"$clang" -std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-Wall -Wextra -Werror -Wno-missing-field-initializers \
		-I"$inc" $sources -o "$bin.tmp" $links
	mv "$bin.tmp" "$bin"
fi
# New inputs go to a scratch corpus, never into the committed seeds.
work=$(mktemp -d "$out/corpus-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
echo "fuzzing $name for $secs s (seeds: $seeds)"
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2560 -max_len=16384 \
	-print_final_stats=1 -artifact_prefix="$out/$name-" "$work" "$seeds"
