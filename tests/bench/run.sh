#!/bin/sh
# Runs the checkpoint/restore benchmark (docs/testing-cr.md): heaps of 64 MiB,
# 1 GiB and 4 GiB (skipped when memory or disk is short) with 1% and 10% of
# pages dirtied between checkpoints. As root.
#   tests/bench/run.sh [BUILD_DIR] [--sizes 64,1024] [--dirty 10,100] [--rounds N]
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$src/build
case "${1:-}" in
"" | -*) ;;
*) build=$1; shift ;;
esac
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" "$src" >/dev/null
fi
meson compile -C "$build" >/dev/null
exec python3 "$src/tests/bench/cr_bench.py" --build-root "$build" "$@"
