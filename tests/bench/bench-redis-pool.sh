#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make bench-redis-pool: EVALSHA through the pool at 80 and 160 threads, beside
# redis-benchmark running the same script at the same concurrency, in the same run.
set -eu
BUILD=${1:-build}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
. tools/scratch-redis.sh
dir=$(mktemp -d)
trap 'scratch_redis_stop; rm -rf "$dir"' EXIT INT TERM
scratch_redis_start "$dir" || { echo "cannot start redis-server" >&2; exit 1; }
port=$REDIS_PORT

sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat tests/lua/test_incr.lua)")
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "redis: $(redis-server --version | cut -d' ' -f3), ${SECONDS_PER_RUN}s per run, random keys bench:0..99999"
echo
echo "| concurrency | pool req/s | pool p50 ms | pool p99 ms | errors | redis-benchmark req/s | rb p50 ms | rb p99 ms | pool / redis-benchmark |"
echo "|---|---|---|---|---|---|---|---|---|"
for c in 80 160; do
    pool=$("$BUILD/tests/bench/bench_pool" "redis://127.0.0.1:$port/0" "$c" "$SECONDS_PER_RUN")
    n=$(echo "$pool" | cut -d, -f2 | awk -v s="$SECONDS_PER_RUN" '{printf "%d", $1 * s}')
    rb=$(redis-benchmark -p "$port" -c "$c" -n "$n" -r 100000 --csv \
        EVALSHA "$sha" 1 "bench:__rand_int__" 1 | tail -1 | tr -d '"')
    rb_rps=$(echo "$rb" | cut -d, -f2); rb_p50=$(echo "$rb" | cut -d, -f5); rb_p99=$(echo "$rb" | cut -d, -f7)
    echo "$pool" | awk -F, -v rps="$rb_rps" -v p50="$rb_p50" -v p99="$rb_p99" \
        '{printf "| %s | %s | %s | %s | %s | %.0f | %s | %s | %.2f |\n", $1, $2, $3, $4, $5, rps, p50, p99, $2 / rps}'
done
