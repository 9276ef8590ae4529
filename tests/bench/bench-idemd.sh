#!/bin/sh
# idemd's part of `make bench`: claim→complete on fresh keys and replay of a completed key,
# driven by wrk (keep-alive, 50 connections), beside redis-benchmark running
# idem_claim.lua by EVALSHA at the same concurrency, in the same run. Prints a markdown
# table (docs/benchmarks.md keeps the last one).
set -eu
BUILD=${1:-build}
SECS=${BENCH_SECONDS:-8}
CONNS=50
. tools/scratch-redis.sh
dir=$(mktemp -d)
ipid=""
cleanup() {
    [ -n "$ipid" ] && kill "$ipid" 2>/dev/null && wait "$ipid" 2>/dev/null
    scratch_redis_stop
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
scratch_redis_start "$dir" --maxmemory-policy noeviction || { echo "cannot start redis-server" >&2; exit 1; }
rport=$REDIS_PORT
port=$((REDIS_PORT + 1))

REDIS_URL="redis://127.0.0.1:$rport/0" LISTEN_ADDR="127.0.0.1:$port" LOG_LEVEL=warn \
    HTTP_THREADS=${HTTP_THREADS:-0} "$BUILD/bin/idemd" >"$dir/idemd.log" 2>&1 &
ipid=$!
ready=0
for _i in $(seq 50); do
    curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && { ready=1; break; }
    sleep 0.1
done
[ "$ready" = 1 ] || { echo "idemd did not become ready:" >&2; cat "$dir/idemd.log" >&2; exit 1; }

# The completed key that replay asks for.
tok=$(curl -fs -H 'Content-Type: application/json' "http://127.0.0.1:$port/v1/claim" \
    -d '{"scope":"bench","key":"done","fingerprint":"f"}' | sed 's/.*"lease_token":"\([^"]*\)".*/\1/')
curl -fs -H 'Content-Type: application/json' "http://127.0.0.1:$port/v1/complete" \
    -d "{\"scope\":\"bench\",\"key\":\"done\",\"lease_token\":\"$tok\",\"status\":201,\"headers\":{\"Location\":\"/charges/42\"},\"body\":\"{\\\"id\\\":42}\"}" >/dev/null

cat >"$dir/common.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
    local errors = summary.errors.status + summary.errors.connect + summary.errors.read +
        summary.errors.write + summary.errors.timeout
    io.write(string.format("RESULT %.0f %.3f %.3f %d\n", summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
LUA
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

run_wrk() { # run_wrk NAME
    cat "$dir/common.lua" "$dir/$1.lua" >"$dir/run-$1.lua"
    wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$dir/run-$1.lua" "http://127.0.0.1:$port" 2>&1 |
        awk '/^RESULT/ {print $2, $3, $4, $5}'
}

sha=$(redis-cli -p "$rport" SCRIPT LOAD "$(cat lua-scripts/idem_claim.lua)")
baseline() { # baseline KEY: redis-benchmark EVALSHA idem_claim → "rps p50 p99"
    redis-benchmark -p "$rport" -c "$CONNS" -n 300000 -r 1000000000 --csv EVALSHA "$sha" 1 \
        "$1" f tok 30000 86400000 takeover "" | tail -1 | tr -d '"' |
        awk -F, '{print $2, $5, $7}'
}
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "redis: $(redis-server --version | cut -d' ' -f3); idemd HTTP_THREADS=${HTTP_THREADS:-0}; wrk -t2 -c$CONNS, ${SECS}s per endpoint; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| endpoint | req/s | p50 ms | p99 ms | errors | / baseline |"
echo "|---|---|---|---|---|---|"
# Each endpoint right after its own baseline, so both see the same machine load.
row() { # row LABEL RPS P50 P99 ERRORS BASE_RPS
    awk -v n="$1" -v rps="$2" -v p50="$3" -v p99="$4" -v err="$5" -v base="$6" \
        'BEGIN {printf "| %s | %.0f | %s | %s | %s | %.2f |\n", n, rps, p50, p99, err, rps / base}'
}
set -- $(baseline "idem:bench:done")
rb=$1
row "baseline: redis-benchmark EVALSHA idem_claim on the completed key" "$1" "$2" "$3" 0 "$rb"
set -- $(run_wrk replay)
row "replay (POST /v1/claim on the completed key)" "$1" "$2" "$3" "$4" "$rb"
set -- $(baseline "idem:bench:rb-__rand_int__")
rb=$1
row "baseline: redis-benchmark EVALSHA idem_claim on fresh keys" "$1" "$2" "$3" 0 "$rb"
set -- $(run_wrk claim_complete)
row "claim→complete on fresh keys (both requests counted)" "$1" "$2" "$3" "$4" "$rb"
echo
echo "idemd peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$ipid/status)"
