#!/bin/sh
# ratelimitd's part of `make bench`: POST /v1/check on random keys and on one hot,
# already-denied key (wrk, keep-alive, 50 connections), beside redis-benchmark running the
# same GCRA script by EVALSHA at the same concurrency and a bare HTTP hello (GET /health)
# of the same HTTP layer, all in one run; then the decision latency while Redis hangs
# (SIGSTOP). Prints a markdown table.
set -eu
BUILD=${1:-build}
SECS=${BENCH_SECONDS:-8}
CONNS=50
. tools/scratch-redis.sh
dir=$(mktemp -d)
rpid=""
cleanup() {
    [ -n "${REDIS_PID:-}" ] && kill -CONT "$REDIS_PID" 2>/dev/null || true
    [ -n "$rpid" ] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
    scratch_redis_stop
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
scratch_redis_start "$dir" --maxmemory-policy noeviction || { echo "cannot start redis-server" >&2; exit 1; }
rport=$REDIS_PORT

# bench: never denies (random keys measure the Redis path); hot: one request per hour.
cat >"$dir/rules.json" <<'JSON'
{"rules": [
  {"name": "bench", "limit": 1000000000, "period": "1s", "on_redis_failure": "local"},
  {"name": "hot", "limit": 1, "period": "1h", "on_redis_failure": "local"}
]}
JSON
# A port below the ephemeral range, retried if something already holds it.
for _try in 1 2 3 4 5 6 7 8 9 10; do
    port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 12000 ))
    REDIS_URL="redis://127.0.0.1:$rport/0" LISTEN_ADDR="127.0.0.1:$port" LOG_LEVEL=warn \
        CLOUD_RUN_REGION=bench RATELIMIT_RULES_FILE="$dir/rules.json" \
        HTTP_THREADS=${HTTP_THREADS:-0} "$BUILD/bin/ratelimitd" >"$dir/ratelimitd.log" 2>&1 &
    rpid=$!
    for _i in $(seq 50); do
        curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break 2
        kill -0 "$rpid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; rpid=""
done
[ -n "$rpid" ] || { echo "cannot start ratelimitd" >&2; cat "$dir/ratelimitd.log" >&2; exit 1; }

cat >"$dir/common.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
        summary.errors.timeout
    io.write(string.format("RESULT %.0f %.3f %.3f %d %d %.3f\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
        latency:percentile(99) / 1000, errors, summary.errors.status, latency.max / 1000))
end
LUA
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
function done(summary, latency, requests)
    io.write(string.format("RESULT %.0f %.3f %.3f %d %d %.3f\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
        latency:percentile(99) / 1000, summary.errors.connect + summary.errors.read +
        summary.errors.write + summary.errors.timeout, summary.errors.status, latency.max / 1000))
end
LUA

run_wrk() { # run_wrk SCRIPT PATH SECONDS
    if [ "$1" = hello ]; then cp "$dir/hello.lua" "$dir/run.lua"
    else cat "$dir/common.lua" "$dir/$1.lua" >"$dir/run.lua"; fi
    wrk -t2 -c"$CONNS" -d"$3s" --timeout 5s -s "$dir/run.lua" "http://127.0.0.1:$port$2" 2>&1 |
        tee "$dir/wrk-$1.out" | awk '/^RESULT/ {print $2, $3, $4, $5, $6, $7}'
}

row() { # row NAME BASELINE_RPS rps p50 p99 errors non2xx max
    awk -v n="$1" -v base="$2" -v rps="$3" -v p50="$4" -v p99="$5" -v err="$6" -v st="$7" \
        'BEGIN {printf "| %s | %s | %s | %s | %s | %s | %.2f |\n", n, rps, p50, p99, err, st, rps / base}'
}

# Baseline 1: the same GCRA script by EVALSHA on random keys, same concurrency.
sha=$(redis-cli -p "$rport" SCRIPT LOAD "$(cat lua-scripts/ratelimit_gcra.lua)")
rb=$(redis-benchmark -p "$rport" -c "$CONNS" -n 300000 -r 1000000 --csv EVALSHA "$sha" 1 \
    "ratelimit:bench:bench:k__rand_int__" 1000000 1000000000 1000000000 1 1 | tail -1 | tr -d '"')
rb_rps=$(echo "$rb" | cut -d, -f2); rb_p50=$(echo "$rb" | cut -d, -f5); rb_p99=$(echo "$rb" | cut -d, -f7)
# Baseline 2: a bare HTTP hello of the same HTTP layer (no JSON body, no Redis).
set -- $(run_wrk hello /health "$SECS")
if [ $# -lt 6 ]; then
    echo "wrk failed:" >&2; cat "$dir/wrk-hello.out" "$dir/ratelimitd.log" >&2; exit 1
fi
hello_rps=$1; hello="$*"
# The hot key: deny it once so that the deny cache answers from then on.
curl -fs -o /dev/null -H 'Content-Type: application/json' "http://127.0.0.1:$port/v1/check" \
    -d '{"rule":"hot","key":"203.0.113.1"}'
random=$(run_wrk random "" "$SECS")
hot=$(run_wrk hot /v1/check "$SECS")
rss=$(awk '/VmHWM/ {print $2, $3}' /proc/$rpid/status)

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1 /proc/loadavg)"
echo "redis: $(redis-server --version | cut -d' ' -f3); ratelimitd HTTP_THREADS=${HTTP_THREADS:-0}; wrk -t2 -c$CONNS, ${SECS}s per run"
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
opening=$(run_wrk random "" 4)
opened=$(run_wrk random "" 4)
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
