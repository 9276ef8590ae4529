#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make bench: every daemon's benchmark (tests/bench/bench-<daemon>.sh), each of which
# starts its own Redis and daemon and prints its table beside a same-run baseline.
set -eu
BUILD=${1:-build}
found=0
for b in tests/bench/bench-*.sh; do
    [ "$b" = tests/bench/bench-redis-pool.sh ] && continue
    [ -f "$b" ] || continue
    found=1
    echo "## $(basename "$b" .sh | sed 's/^bench-//')"
    sh "$b" "$BUILD"
    echo
done
[ "$found" = 1 ] || echo "no daemon benchmark yet; see make bench-redis-pool"
