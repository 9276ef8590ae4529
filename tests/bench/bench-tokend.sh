#!/bin/sh
# tokend's part of `make bench`: issue, refresh and introspect driven by wrk (keep-alive,
# 50 connections), beside redis-benchmark running the refresh script by EVALSHA on an
# unknown family at the same concurrency, in the same run. Prints a markdown table.
set -eu
BUILD=${1:-build}
SECS=${BENCH_SECONDS:-8}
CONNS=50
. tools/scratch-redis.sh
dir=$(mktemp -d)
tpid=""
cleanup() {
    [ -n "$tpid" ] && kill "$tpid" 2>/dev/null && wait "$tpid" 2>/dev/null
    scratch_redis_stop
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
scratch_redis_start "$dir" --maxmemory-policy noeviction || { echo "cannot start redis-server" >&2; exit 1; }
rport=$REDIS_PORT
port=$((REDIS_PORT + 1))

TOKEN_HASH_KEY=$(head -c 32 /dev/urandom | base64) REDIS_URL="redis://127.0.0.1:$rport/0" \
    LISTEN_ADDR="127.0.0.1:$port" LOG_LEVEL=warn HTTP_THREADS=${HTTP_THREADS:-0} "$BUILD/bin/tokend" >"$dir/tokend.log" 2>&1 &
tpid=$!
for _i in $(seq 50); do curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break; sleep 0.1; done

UA='Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36'
# Tokens for refresh and introspect: each wrk connection refreshes its own chain.
issue_n() {
    for i in $(seq "$1"); do
        curl -fs -H 'Content-Type: application/json' "http://127.0.0.1:$port/v1/tokens" \
            -d "{\"user_id\":\"bench-$i\",\"device_id\":\"d-1\",\"user_agent\":\"$UA\"}" |
            sed 's/.*"refresh_token":"\([^"]*\)".*/\1/'
        echo
    done
}
issue_n 200 >"$dir/tokens"

cat >"$dir/common.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
ua = "$UA"
function done(summary, latency, requests)
    local errors = summary.errors.status + summary.errors.connect + summary.errors.read +
        summary.errors.write + summary.errors.timeout
    io.write(string.format("RESULT %.0f %.3f %.3f %d\n", summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
-- Each thread takes its own slice of the pre-issued tokens.
local counter = 0
function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
end
function load_tokens()
    local t = {}
    local i = 0
    for line in io.lines("$dir/tokens") do
        if i % 2 == id then t[#t + 1] = line end
        i = i + 1
    end
    return t
end
LUA
cat >"$dir/issue.lua" <<'LUA'
function request()
    return wrk.format(nil, "/v1/tokens", nil, string.format(
        '{"user_id":"u-%d","device_id":"d-1","user_agent":"%s"}', math.random(1, 1e9), ua))
end
LUA
cat >"$dir/refresh.lua" <<'LUA'
-- A queue of live tokens: a request takes one, its response gives back the successor.
local queue
function init(args) queue = load_tokens() end
function request()
    local tok = table.remove(queue, 1)
    return wrk.format(nil, "/v1/tokens/refresh", nil, string.format(
        '{"refresh_token":"%s","device_id":"d-1","user_agent":"%s"}', tok, ua))
end
function response(status, headers, body)
    local tok = body:match('"refresh_token":"([^"]+)"')
    if tok then queue[#queue + 1] = tok end
end
LUA
cat >"$dir/introspect.lua" <<'LUA'
local tokens
function init(args) tokens = load_tokens() end
function request()
    return wrk.format(nil, "/v1/tokens/introspect", nil,
        string.format('{"token":"%s"}', tokens[math.random(#tokens)]))
end
LUA

run_wrk() { # run_wrk NAME
    cat "$dir/common.lua" "$dir/$1.lua" >"$dir/run-$1.lua"
    wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$dir/run-$1.lua" "http://127.0.0.1:$port" 2>&1 |
        awk '/^RESULT/ {print $2, $3, $4, $5}'
}

sha=$(redis-cli -p "$rport" SCRIPT LOAD "$(cat lua-scripts/token_refresh.lua)")
# Baseline: the refresh script on an unknown family (lookup and refusal: Redis alone).
rb=$(redis-benchmark -p "$rport" -c "$CONNS" -n 300000 --csv EVALSHA "$sha" 2 \
    "tok:{bench}:f" "tok:{bench}:used" h "" d-1 uah Chrome 120 "" fp upgrade soft reject \
    h1 sealed 10000 60000 | tail -1 | tr -d '"')
rb_rps=$(echo "$rb" | cut -d, -f2)
rb_p50=$(echo "$rb" | cut -d, -f5)
rb_p99=$(echo "$rb" | cut -d, -f7)

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "redis: $(redis-server --version | cut -d' ' -f3); tokend HTTP_THREADS=${HTTP_THREADS:-0}; wrk -t2 -c$CONNS, ${SECS}s per endpoint"
echo
echo "| endpoint | req/s | p50 ms | p99 ms | errors | / baseline |"
echo "|---|---|---|---|---|---|"
printf '| baseline: redis-benchmark EVALSHA token_refresh (unknown family) | %.0f | %s | %s | 0 | 1.00 |\n' \
    "$rb_rps" "$rb_p50" "$rb_p99"
for ep in issue refresh introspect; do
    set -- $(run_wrk "$ep")
    awk -v n="$ep" -v rps="$1" -v p50="$2" -v p99="$3" -v err="$4" -v base="$rb_rps" \
        'BEGIN {printf "| %s | %s | %s | %s | %s | %.2f |\n", n, rps, p50, p99, err, rps / base}'
done
echo
echo "tokend peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$tpid/status)"
