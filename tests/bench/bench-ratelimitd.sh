#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# ratelimitd's part of `make bench`: POST /v1/check on random keys and on one hot,
# already-denied key (wrk, keep-alive, 50 connections), beside redis-benchmark running the
# same GCRA script by EVALSHA at the same concurrency and a bare HTTP hello (GET /health)
# of the same HTTP layer, all in one run; then the decision latency while Redis hangs
# (SIGSTOP). Prints a markdown table.
set -eu
BUILD=${1:-build}
. tests/bench/lib.sh
bench_redis
rport=$RPORT

# bench: never denies (random keys measure the Redis path); hot: one request per hour.
cat >"$dir/rules.json" <<'JSON'
{"rules": [
  {"name": "bench", "limit": 1000000000, "period": "1s", "on_redis_failure": "local"},
  {"name": "hot", "limit": 1, "period": "1h", "on_redis_failure": "local"}
]}
JSON
bench_daemon ratelimitd CLOUD_RUN_REGION=bench RATELIMIT_RULES_FILE="$dir/rules.json"
port=$PORT

cat >"$dir/random.lua" <<'LUA'
function request()
    return wrk.format(nil, "/v1/check", nil,
        string.format('{"rule":"bench","key":"k%d"}', math.random(1, 1000000)))
end
LUA
cat >"$dir/hot.lua" <<'LUA'
wrk.body = '{"rule":"hot","key":"203.0.113.1"}'
LUA
cat >"$dir/hello.lua" <<'LUA'
wrk.method = "GET"
wrk.body = nil
LUA

row() { # row NAME BASELINE_RPS rps p50 p99 errors non2xx max
    awk -v n="$1" -v base="$2" -v rps="$3" -v p50="$4" -v p99="$5" -v err="$6" -v st="$7" \
        'BEGIN {printf "| %s | %s | %s | %s | %s | %s | %.2f |\n", n, rps, p50, p99, err, st, rps / base}'
}

# Baseline 1: the same GCRA script by EVALSHA on random keys, same concurrency.
sha=$(redis-cli -p "$rport" SCRIPT LOAD "$(cat lua-scripts/ratelimit_gcra.lua)")
gcra() { # gcra CONNS REQUESTS: redis-benchmark's CSV line
    redis-benchmark -p "$rport" -c "$1" -n "$2" -r 1000000 --csv EVALSHA "$sha" 1 \
        "ratelimit:bench:bench:k__rand_int__" 1000000 1000000000 1000000000 1 1 | tail -1 | tr -d '"'
}
rb=$(gcra "$CONNS" 300000)
rb_rps=$(echo "$rb" | cut -d, -f2); rb_p50=$(echo "$rb" | cut -d, -f5); rb_p99=$(echo "$rb" | cut -d, -f7)
# Baseline 2: a bare HTTP hello of the same HTTP layer (no JSON body, no Redis).
set -- $(bench_wrk hello /health)
if [ $# -lt 6 ]; then
    echo "wrk failed:" >&2; cat "$dir/wrk-hello.out" "$dir/ratelimitd.log" >&2; exit 1
fi
hello_rps=$1; hello="$*"
# The hot key: deny it once so that the deny cache answers from then on.
curl -fs -o /dev/null -H 'Content-Type: application/json' "http://127.0.0.1:$port/v1/check" \
    -d '{"rule":"hot","key":"203.0.113.1"}'
random=$(bench_wrk random)
hot=$(bench_wrk hot /v1/check)
bench_c1_row "/v1/check-random-keys" "$(bench_c1 random)" "$(gcra 1 20000 | cut -d, -f5)"
rss=$(awk '/VmHWM/ {print $2, $3}' /proc/$DAEMON_PID/status)

bench_machine
echo
echo "| run | req/s | p50 ms | p99 ms | errors | non-2xx | ratio |"
echo "|---|---|---|---|---|---|---|"
printf '| baseline: redis-benchmark EVALSHA ratelimit_gcra, random keys | %.0f | %s | %s | 0 | 0 | 1.00 |\n' \
    "$rb_rps" "$rb_p50" "$rb_p99"
set -- $hello; row "baseline: bare HTTP hello (GET /health)" "$hello_rps" "$@"
set -- $random; row "/v1/check random keys (/ redis-benchmark)" "$rb_rps" "$@"
set -- $hot; row "/v1/check hot denied key (/ HTTP hello)" "$hello_rps" "$@"

# Decision latency while Redis hangs: freeze it; the first run includes the requests that
# wait for the command timeout until the breaker opens, the second runs on an open breaker.
kill -STOP "$REDIS_PID"
opening=$(bench_wrk random "" 4 frozen-opening)
opened=$(bench_wrk random "" 4 frozen-open)
kill -CONT "$REDIS_PID"
echo
echo "Redis frozen (SIGSTOP), /v1/check random keys, breaker defaults, every answer by the local fallback:"
echo
echo "| run | req/s | p50 ms | p99 ms | errors | max ms |"
echo "|---|---|---|---|---|---|"
set -- $opening; echo "| first 4 s (breaker opening) | $1 | $2 | $3 | $4 | $6 |"
set -- $opened; echo "| next 4 s (breaker open) | $1 | $2 | $3 | $4 | $6 |"
echo
echo "ratelimitd peak RSS: $rss"
echo
bench_c1_table
echo
bench_cpu_table
