#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# tokend's part of `make bench`: issue, refresh and introspect driven by wrk (keep-alive,
# 50 connections), beside redis-benchmark running the refresh script by EVALSHA on an
# unknown family at the same concurrency, in the same run. Prints a markdown table.
set -eu
BUILD=${1:-build}
. tests/bench/lib.sh
bench_redis
bench_daemon tokend TOKEN_HASH_KEY="$(head -c 32 /dev/urandom | base64)"
port=$PORT
rport=$RPORT

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

cat >>"$dir/common.lua" <<LUA
ua = "$UA"
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

sha=$(redis-cli -p "$rport" SCRIPT LOAD "$(cat lua-scripts/token_refresh.lua)")
# Baseline: the refresh script on an unknown family (lookup and refusal: Redis alone).
rb=$(redis-benchmark -p "$rport" -c "$CONNS" -n 300000 --csv EVALSHA "$sha" 2 \
    "tok:{bench}:f" "tok:{bench}:used" h "" d-1 uah Chrome 120 "" fp upgrade soft reject \
    h1 sealed 10000 60000 | tail -1 | tr -d '"')
rb_rps=$(echo "$rb" | cut -d, -f2)
rb_p50=$(echo "$rb" | cut -d, -f5)
rb_p99=$(echo "$rb" | cut -d, -f7)

bench_machine
echo
echo "| endpoint | req/s | p50 ms | p99 ms | errors | / baseline |"
echo "|---|---|---|---|---|---|"
printf '| baseline: redis-benchmark EVALSHA token_refresh (unknown family) | %.0f | %s | %s | 0 | 1.00 |\n' \
    "$rb_rps" "$rb_p50" "$rb_p99"
for ep in issue refresh introspect; do
    set -- $(bench_wrk "$ep")
    awk -v n="$ep" -v rps="$1" -v p50="$2" -v p99="$3" -v err="$(($4 + $5))" -v base="$rb_rps" \
        'BEGIN {printf "| %s | %s | %s | %s | %s | %.2f |\n", n, rps, p50, p99, err, rps / base}'
done
echo
echo "tokend peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$DAEMON_PID/status)"
echo
bench_cpu_table
