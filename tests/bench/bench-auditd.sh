#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# auditd's part of `make bench`: appends/s with 50 connections (single events, and batches
# of 100) beside redis-benchmark running XADD at the same concurrency, and beside the same
# appends by auditd as it was before the Merkle tree (built from git in this run: the
# tree's upkeep, measured both ways); proof latency on the long chain; audit-verify
# entries/s on it with 1 and 2 threads; beside the single-core libsodium Ed25519 sign and
# verify rates, all measured in the same run. Prints markdown tables (docs/benchmarks.md
# keeps the last ones). AUDIT_BENCH_ENTRIES sets the chain length; AUDIT_BENCH_BASE the
# git revision of the "before" auditd (default: the parent of the commit that brought the
# tree into audit_append.lua; without git, that comparison is left out and says so).
set -eu
BUILD=${1:-build}
SECS=${BENCH_SECONDS:-8}
CONNS=50
ENTRIES=${AUDIT_BENCH_ENTRIES:-1000000}
. tools/scratch-redis.sh
dir=$(mktemp -d)
apid=""
cleanup() {
    [ -n "$apid" ] && kill "$apid" 2>/dev/null && wait "$apid" 2>/dev/null
    scratch_redis_stop
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM
scratch_redis_start "$dir" --maxmemory-policy noeviction || { echo "cannot start redis-server" >&2; exit 1; }
rport=$REDIS_PORT

# Single-core libsodium rates: the ceiling of one signing appender and of one verify thread.
cat >"$dir/rate.c" <<'C'
#include <sodium.h>
#include <stdio.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(void) {
    unsigned char pk[32], sk[64], md[32] = {1}, sig[64]; long n; double t0;
    if (sodium_init() < 0) return 1;
    crypto_sign_keypair(pk, sk);
    for (n = 0, t0 = now(); now() - t0 < 2.0; n++) crypto_sign_detached(sig, NULL, md, 32, sk);
    printf("%.0f ", n / (now() - t0));
    for (n = 0, t0 = now(); now() - t0 < 2.0; n++) if (crypto_sign_verify_detached(sig, md, 32, pk) != 0) return 1;
    printf("%.0f ", n / (now() - t0));
    unsigned char body[301] = {0}, h[32];
    for (n = 0, t0 = now(); now() - t0 < 1.0; n++) { body[0] = (unsigned char)n; crypto_hash_sha256(h, body, 301); }
    printf("%.3f\n", (now() - t0) / n * 1e6);
    return 0;
}
C
cc -O2 -o "$dir/rate" "$dir/rate.c" -lsodium
rates=$("$dir/rate")
sign_rate=$(echo "$rates" | cut -d' ' -f1)
verify_rate=$(echo "$rates" | cut -d' ' -f2)
sha_c_us=$(echo "$rates" | cut -d' ' -f3)
# The same leaf hash (0x00 || a 300-byte body) in Lua inside Redis, as the append script
# would have to run it without the appender's help: tests/bench/sha256.lua, 1000 times.
leaf=$(head -c 301 /dev/zero | tr '\0' 'a')
t0=$(date +%s%N)
lua_digest=$(redis-cli -p "$rport" --eval tests/bench/sha256.lua , "$leaf" 1000)
t1=$(date +%s%N)
sha_lua_us=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1000 / 1000 }')
[ "$lua_digest" = "$(printf '%s' "$leaf" | sha256sum | cut -c1-64)" ] ||
    { echo "sha256.lua gives $lua_digest: wrong" >&2; exit 1; }

# The auditd of before the tree, from git, for the same appends.
base_bin=""
base_ref=${AUDIT_BENCH_BASE:-}
if [ -z "$base_ref" ] && command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1; then
    first=$(git log --reverse --format=%H -G "tile" -- lua-scripts/audit_append.lua | head -1)
    [ -n "$first" ] && base_ref="$first^"
fi
if [ -n "$base_ref" ] && mkdir -p "$dir/base" && git archive "$base_ref" | tar -x -C "$dir/base" &&
    make -C "$dir/base" -j2 build/bin/auditd >"$dir/base-build.log" 2>&1; then
    base_bin=$dir/base/build/bin/auditd
fi

seed=$(head -c 32 /dev/urandom | base64)
# start_auditd BINARY CHAIN: auditd on a free port (retried if something took it meanwhile).
start_auditd() {
    for _try in 1 2 3 4 5; do
        port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 ))
        url="http://127.0.0.1:$port"
        REDIS_URL="redis://127.0.0.1:$rport/0" LISTEN_ADDR="127.0.0.1:$port" LOG_LEVEL=warn \
            AUDIT_CHAIN="$2" AUDIT_PRIVATE_KEY_V1="$seed" AUDIT_CHECKPOINT_INTERVAL=0 "$1" \
            >"$dir/auditd.log" 2>&1 &
        apid=$!
        for _i in $(seq 50); do curl -fs "$url/ready" >/dev/null 2>&1 && break; sleep 0.1; done
        kill -0 "$apid" 2>/dev/null && return 0
        wait "$apid" 2>/dev/null || true
        apid=""
    done
    echo "auditd did not start:" >&2; cat "$dir/auditd.log" >&2; exit 1
}
stop_auditd() { kill "$apid" && wait "$apid" 2>/dev/null || true; apid=""; }

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
cat >"$dir/single.lua" <<'LUA'
wrk.path = "/v1/events"
wrk.body = '{"actor":"user:42","action":"token.revoke","outcome":"success","resource":"family:abc"}'
LUA
batch=$(awk 'BEGIN { printf "{\"events\":["; for (i = 0; i < 100; i++) printf "%s{\"actor\":\"user:%d\",\"action\":\"token.revoke\",\"outcome\":\"success\"}", (i ? "," : ""), i; printf "]}" }')
printf 'wrk.path = "/v1/events/batch"\nwrk.body = [[%s]]\n' "$batch" >"$dir/batch.lua"

run_wrk() { # run_wrk NAME
    cat "$dir/common.lua" "$dir/$1.lua" >"$dir/run-$1.lua"
    wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$dir/run-$1.lua" "$url" 2>&1 | awk '/^RESULT/ {print $2, $3, $4, $5}'
}
rss() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$apid/status"; }

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "redis: $(redis-server --version | cut -d' ' -f3), ${SECS}s per run, $CONNS connections"
echo "libsodium single core: sign $sign_rate/s, verify $verify_rate/s (32-byte message)"
echo "a leaf hash (SHA-256 of 301 bytes): ${sha_c_us} us in C (libsodium), ${sha_lua_us} us in Lua inside Redis (tests/bench/sha256.lua)"
echo
# The tree's upkeep: the same appends with and without it, alternately, three times, each on a
# chain of its own in the same Redis.
if [ -n "$base_bin" ]; then
    echo "| workload | round | before the tree (appends/s) | with the tree (appends/s) | with / before |"
    echo "|---|---|---|---|---|"
    for round in 1 2 3; do
        for w in single batch; do
            start_auditd "$base_bin" "base$round$w"; b=$(run_wrk "$w"); stop_auditd
            start_auditd "$BUILD/bin/auditd" "tree$round$w"; t=$(run_wrk "$w"); stop_auditd
            m=1; [ "$w" = batch ] && m=100
            echo "$b $t" | awk -v w="$w" -v r="$round" -v m="$m" \
                '{printf "| %s | %d | %d | %d | %.2f |\n", (w == "single" ? "single events" : "batches of 100"), r, $1 * m, $5 * m, $5 / $1}'
        done
    done
    echo
else
    echo "(no auditd of before the tree: git or the revision $base_ref unavailable; upkeep not compared)"
    echo
fi
start_auditd "$BUILD/bin/auditd" default
single=$(run_wrk single)
batched=$(run_wrk batch)
n=$(echo "$single" | awk -v s="$SECS" '{printf "%d", $1 * s}')
# The baseline appends a body of an entry's size (no commas: redis-benchmark's CSV).
body=$(printf '%0250d' 0)
rb_rps=$(redis-benchmark -p "$rport" -c "$CONNS" -n "$n" --csv XADD bench:stream '*' body "$body" |
    tail -1 | awk -F'","' '{print $2}')
echo "| workload | appends/s | req/s | p50 ms | p99 ms | errors | peak RSS MiB | redis-benchmark XADD/s | appends / XADD | appends / sign rate |"
echo "|---|---|---|---|---|---|---|---|---|---|"
echo "$single" | awk -v rb="$rb_rps" -v sr="$sign_rate" -v m="$(rss)" \
    '{printf "| single events | %d | %d | %s | %s | %d | %s | %.0f | %.2f | %.2f |\n", $1, $1, $2, $3, $4, m, rb, $1 / rb, $1 / sr}'
echo "$batched" | awk -v rb="$rb_rps" -v sr="$sign_rate" -v m="$(rss)" \
    '{printf "| batches of 100 | %d | %d | %s | %s | %d | %s | %.0f | %.2f | %.2f |\n", $1 * 100, $1, $2, $3, $4, m, rb, $1 * 100 / rb, $1 * 100 / sr}'

# A chain of $ENTRIES entries (the runs above count towards it), then audit-verify.
head_seq() { curl -fs "$url/v1/head" | sed 's/.*"seq":\([0-9]*\).*/\1/'; }
k=$(awk 'BEGIN { printf "{\"events\":["; for (i = 0; i < 1000; i++) printf "%s{\"actor\":\"user:%d\",\"action\":\"fill\"}", (i ? "," : ""), i; printf "]}" }')
printf '%s' "$k" >"$dir/fill.json"
have=$(head_seq)
if [ "$have" -lt "$ENTRIES" ]; then
    seq $(( (ENTRIES - have + 999) / 1000 )) | xargs -P 8 -I{} curl -fs -o /dev/null \
        -H 'Content-Type: application/json' --data-binary @"$dir/fill.json" "$url/v1/events/batch"
fi
curl -fs "$url/v1/keys" >"$dir/keys.json"
total=$(head_seq)

# Proof latency on the long chain: random leaves and sizes, 2 connections (latency, not
# queueing: the machine's cores), then 50 for the rate.
cat >"$dir/proofs.lua" <<LUA
wrk.method = "GET"
math.randomseed(os.time())
request = function()
    if math.random(2) == 1 then
        return wrk.format(nil, "/v1/proofs/inclusion?seq=" .. math.random($total) .. "&tree_size=$total")
    end
    return wrk.format(nil, "/v1/proofs/consistency?from=" .. math.random($total) .. "&to=$total")
end
LUA
run_get() { # run_get CONNECTIONS
    cat "$dir/common.lua" "$dir/proofs.lua" | sed '/^wrk.method = "POST"/d' >"$dir/run-proofs.lua"
    wrk -t2 -c"$1" -d"${SECS}s" -s "$dir/run-proofs.lua" "$url" 2>&1 | awk '/^RESULT/ {print $2, $3, $4, $5}'
}
echo
echo "| proofs on $total entries (inclusion and consistency, random) | connections | req/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|"
for c in 2 $CONNS; do
    run_get "$c" | awk -v c="$c" '{printf "| random leaves and sizes | %d | %d | %s | %s | %d |\n", c, $1, $2, $3, $4}'
done
echo
echo "| audit-verify | entries | seconds | entries/s | threads x verify rate | ratio |"
echo "|---|---|---|---|---|---|"
for t in 1 2; do
    t0=$(date +%s.%N)
    "$BUILD/bin/audit-verify" --redis "redis://127.0.0.1:$rport/0" --keys "$dir/keys.json" \
        --threads "$t" >"$dir/verify.out" || { cat "$dir/verify.out"; exit 1; }
    t1=$(date +%s.%N)
    awk -v n="$total" -v a="$t0" -v b="$t1" -v t="$t" -v vr="$verify_rate" \
        'BEGIN {s = b - a; printf "| %d thread%s | %d | %.2f | %.0f | %.0f | %.2f |\n", t, (t > 1 ? "s" : ""), n, s, n / s, t * vr, n / s / (t * vr)}'
done
