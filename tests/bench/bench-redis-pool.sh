#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make bench-redis-pool: the non-blocking Redis client (one event loop, one connection)
# keeping N EVALSHA commands in flight, beside redis-benchmark running the same script at
# the same concurrency in the same run — N connections with one command each (-c N), and
# one connection with N pipelined (-c 1 -P N) — with the CPU each side spends per command.
set -eu
BUILD=${1:-build}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
. tools/scratch-redis.sh
dir=$(mktemp -d)
trap 'scratch_redis_stop; rm -rf "$dir"' EXIT INT TERM
scratch_redis_start "$dir" || { echo "cannot start redis-server" >&2; exit 1; }
port=$REDIS_PORT
rpid=$(redis-cli -p "$port" INFO server | tr -d '\r' | sed -n 's/^process_id://p')

# CPU seconds (user + system) of a process, from /proc/<pid>/stat.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat tests/lua/test_incr.lua)")
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "redis: $(redis-server --version | cut -d' ' -f3), ${SECONDS_PER_RUN}s per run, random keys bench:0..99999"
echo
echo "| in flight | run | req/s | p50 ms | p99 ms | errors | commands per write | client CPU µs/cmd | Redis CPU µs/cmd | / redis-benchmark -c N |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for n in 1 50 200; do
    r0=$(cpu_s "$rpid")
    out=$("$BUILD/tests/bench/bench_client" "redis://127.0.0.1:$port/0" "$n" "$SECONDS_PER_RUN")
    r1=$(cpu_s "$rpid")
    total=$(echo "$out" | awk -F, -v s="$SECONDS_PER_RUN" '{printf "%d", $2 * s}')
    rb() { # rb ARGS...: one redis-benchmark run; prints rps,p50,p99,redis_cpu_us_per_cmd
        a=$(cpu_s "$rpid")
        line=$(redis-benchmark -p "$port" -n "$total" -r 100000 --csv "$@" \
            EVALSHA "$sha" 1 "bench:__rand_int__" 1 | tail -1 | tr -d '"')
        b=$(cpu_s "$rpid")
        echo "$line" | awk -F, -v a="$a" -v b="$b" -v n="$total" \
            '{printf "%s,%s,%s,%.2f", $2, $5, $7, (b - a) * 1e6 / n}'
    }
    plain=$(rb -c "$n")
    piped=$(rb -c 1 -P "$n")
    plain_rps=$(echo "$plain" | cut -d, -f1)
    echo "$out" | awk -F, -v a="$r0" -v b="$r1" -v base="$plain_rps" -v s="$SECONDS_PER_RUN" \
        '{printf "| %s | client | %s | %s | %s | %s | %s | %s | %.2f | %.2f |\n", $1, $2, $3, $4, $5, $6, $7, (b - a) * 1e6 / ($2 * s), $2 / base}'
    echo "$plain" | awk -F, -v n="$n" \
        '{printf "| %s | redis-benchmark -c %s | %.0f | %s | %s | 0 | 1 | | %s | 1.00 |\n", n, n, $1, $2, $3, $4}'
    echo "$piped" | awk -F, -v n="$n" -v base="$plain_rps" \
        '{printf "| %s | redis-benchmark -c 1 -P %s | %.0f | %s | %s | 0 | %s | | %s | %.2f |\n", n, n, $1, $2, $3, n, $4, $1 / base}'
done
