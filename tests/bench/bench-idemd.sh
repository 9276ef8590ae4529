#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# idemd's part of `make bench`: claim→complete on fresh keys and replay of a completed key,
# driven by wrk (keep-alive, 50 connections), beside redis-benchmark running
# idem_claim.lua by EVALSHA at the same concurrency, in the same run. Prints a markdown
# table (docs/benchmarks.md keeps the last one).
set -eu
BUILD=${1:-build}
. tests/bench/lib.sh
bench_redis
bench_daemon idemd
port=$PORT
rport=$RPORT

# The completed key that replay asks for.
tok=$(curl -fs -H 'Content-Type: application/json' "http://127.0.0.1:$port/v1/claim" \
    -d '{"scope":"bench","key":"done","fingerprint":"f"}' | sed 's/.*"lease_token":"\([^"]*\)".*/\1/')
curl -fs -H 'Content-Type: application/json' "http://127.0.0.1:$port/v1/complete" \
    -d "{\"scope\":\"bench\",\"key\":\"done\",\"lease_token\":\"$tok\",\"status\":201,\"headers\":{\"Location\":\"/charges/42\"},\"body\":\"{\\\"id\\\":42}\"}" >/dev/null

# A claim on a fresh key; its 201 queues the complete of that key, which any connection
# sends next. The key rides in X-Request-ID, which idemd echoes, to pair it with the token.
cat >"$dir/claim_complete.lua" <<'LUA'
local pending = {}
local n = 0
local counter = 0
function setup(thread) -- keys are unique per wrk thread: k-<thread>-<n>
    thread:set("id", counter)
    counter = counter + 1
end
function request()
    local c = table.remove(pending, 1)
    if c then return wrk.format(nil, "/v1/complete", nil, c) end
    n = n + 1
    local key = string.format("k-%d-%d", id, n)
    return wrk.format(nil, "/v1/claim",
        {["Content-Type"] = "application/json", ["X-Request-ID"] = key},
        '{"scope":"bench","key":"' .. key .. '","fingerprint":"f"}')
end
function response(status, headers, body)
    local tok = body:match('"lease_token":"([^"]+)"')
    local key = headers["X-Request-ID"] or headers["X-Request-Id"]
    if status == 201 and tok and key then
        pending[#pending + 1] = '{"scope":"bench","key":"' .. key .. '","lease_token":"' ..
            tok .. '","status":201,"body":"{\\"id\\":42}"}'
    end
end
LUA
cat >"$dir/replay.lua" <<'LUA'
wrk.path = "/v1/claim"
wrk.body = '{"scope":"bench","key":"done","fingerprint":"f"}'
LUA

sha=$(redis-cli -p "$rport" SCRIPT LOAD "$(cat lua-scripts/idem_claim.lua)")
baseline() { # baseline KEY [CONNS REQUESTS]: redis-benchmark EVALSHA idem_claim → "rps p50 p99"
    redis-benchmark -p "$rport" -c "${2:-$CONNS}" -n "${3:-300000}" -r 1000000000 --csv EVALSHA "$sha" 1 \
        "$1" f tok 30000 86400000 takeover "" | tail -1 | tr -d '"' |
        awk -F, '{print $2, $5, $7}'
}
bench_machine
echo
echo "| endpoint | req/s | p50 ms | p99 ms | errors | / baseline |"
echo "|---|---|---|---|---|---|"
# Each endpoint right after its own baseline, so both see the same machine load.
row() { # row LABEL RPS P50 P99 TRANSPORT_ERRORS NON2XX BASE_RPS
    awk -v n="$1" -v rps="$2" -v p50="$3" -v p99="$4" -v err="$(($5 + $6))" -v base="$7" \
        'BEGIN {printf "| %s | %.0f | %s | %s | %s | %.2f |\n", n, rps, p50, p99, err, rps / base}'
}
set -- $(baseline "idem:bench:done")
rb=$1
row "baseline: redis-benchmark EVALSHA idem_claim on the completed key" "$1" "$2" "$3" 0 0 "$rb"
set -- $(bench_wrk replay)
row "replay (POST /v1/claim on the completed key)" "$1" "$2" "$3" "$4" "$5" "$rb"
set -- $(baseline "idem:bench:done" 1 20000)
bench_c1_row "replay" "$(bench_c1 replay)" "$2"
set -- $(baseline "idem:bench:rb-__rand_int__")
rb=$1
row "baseline: redis-benchmark EVALSHA idem_claim on fresh keys" "$1" "$2" "$3" 0 0 "$rb"
set -- $(bench_wrk claim_complete)
row "claim→complete on fresh keys (both requests counted)" "$1" "$2" "$3" "$4" "$5" "$rb"
echo
echo "idemd peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$DAEMON_PID/status)"
echo
bench_c1_table
echo
bench_cpu_table
