#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make soak: the four daemons at once, each under steady load from its own wrk (realistic
# operations, tests/soak/<daemon>.lua) against one private Redis, for SOAK_SECONDS (600).
# Every SOAK_SAMPLE seconds (5) it records each daemon's VmRSS and open descriptors. After
# the warm-up (SOAK_WARMUP seconds, default the first fifth of the run: 120 of 600; long
# enough for glibc's per-thread caches to fill, see docs/reliability.md):
#   growth = (last RSS sample - RSS sample at the end of the warm-up) / that sample
# and the run fails if, for any daemon, growth reaches 5%, the descriptors end above their
# warm-up count (+2 for Redis connections being replaced at that moment), a response had
# an unexpected status or the transport failed, the daemon logged at error level or worse,
# or it died. Prints a markdown table (docs/reliability.md keeps the last one). POSIX sh.
set -eu
BUILD=${1:-build}
SECS=${SOAK_SECONDS:-600}
SAMPLE=${SOAK_SAMPLE:-5}
WARMUP=${SOAK_WARMUP:-$((SECS / 5))}
CONNS=${SOAK_CONNECTIONS:-8}
DELAY_MS=${SOAK_DELAY_MS:-10}
DAEMONS="ratelimitd idemd tokend auditd"
MAX_GROWTH_PCT=5

. tools/scratch-redis.sh
dir=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    scratch_redis_stop
    # SOAK_KEEP=DIR keeps the samples, wrk outputs and daemon logs there.
    [ -n "${SOAK_KEEP:-}" ] && mkdir -p "$SOAK_KEEP" && cp "$dir"/*.samples "$dir"/*.wrk \
        "$dir"/*.log "$SOAK_KEEP"/ 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for d in $DAEMONS; do
    [ -x "$BUILD/bin/$d" ] || { echo "soak: $BUILD/bin/$d is missing (make all)" >&2; exit 2; }
done
scratch_redis_start "$dir" --maxmemory-policy noeviction ||
    { echo "soak: cannot start redis-server" >&2; exit 1; }

cat >"$dir/rules.json" <<'JSON'
{"rules": [
  {"name": "soak", "limit": 1000, "period": "1s"},
  {"name": "hot", "limit": 5, "period": "1s"},
  {"name": "window", "algorithm": "sliding_window", "limit": 20, "period": "1s"}
]}
JSON

# start_daemon NAME VAR=value...: on a free port, until /ready answers; sets port_NAME and
# pid_NAME.
start_daemon() {
    _name=$1; shift
    for _try in 1 2 3 4 5 6 7 8 9 10; do
        _port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 12000 ))
        env REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" LISTEN_ADDR="127.0.0.1:$_port" \
            LOG_LEVEL=warn "$@" "$BUILD/bin/$_name" >"$dir/$_name.log" 2>&1 &
        _pid=$!
        for _i in $(seq 50); do
            if curl -fs "http://127.0.0.1:$_port/ready" >/dev/null 2>&1; then
                pids="$pids $_pid"
                eval "port_$_name=$_port pid_$_name=$_pid"
                return 0
            fi
            kill -0 "$_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$_pid" 2>/dev/null || true; wait "$_pid" 2>/dev/null || true
    done
    echo "soak: cannot start $_name:" >&2; cat "$dir/$_name.log" >&2; exit 1
}

start_daemon ratelimitd CLOUD_RUN_REGION=soak RATELIMIT_RULES_FILE="$dir/rules.json"
start_daemon idemd
start_daemon tokend TOKEN_HASH_KEY="$(head -c 32 /dev/urandom | base64)"
start_daemon auditd AUDIT_PRIVATE_KEY_V1="$(head -c 32 /dev/urandom | base64)"

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
for d in $DAEMONS; do
    { echo "soak_delay_ms = $DELAY_MS"; cat tests/soak/common.lua "tests/soak/$d.lua"; } \
        >"$dir/$d.lua"
    eval "port=\$port_$d"
    wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 5s -s "$dir/$d.lua" "http://127.0.0.1:$port" \
        >"$dir/$d.wrk" 2>&1 &
    pids="$pids $!"
    eval "wrk_$d=$!"
done

# sample T: one line "T rss_kib fds" per daemon into $dir/<daemon>.samples.
sample() {
    for d in $DAEMONS; do
        eval "p=\$pid_$d"
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        fds=$(ls "/proc/$p/fd" 2>/dev/null | wc -l)
        echo "$1 ${rss:-0} $fds" >>"$dir/$d.samples"
    done
}
# The last sample is taken while the load still runs (after it, wrk's connections close).
t0=$(date +%s)
elapsed=0
while [ $((elapsed + SAMPLE)) -lt "$SECS" ]; do
    sample "$elapsed"
    sleep "$SAMPLE"
    elapsed=$(( $(date +%s) - t0 ))
done
sample "$elapsed"
for d in $DAEMONS; do
    eval "w=\$wrk_$d"
    wait "$w" || true
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "run: $started, ${SECS}s, the four daemons at once on one Redis $(redis-server --version | cut -d' ' -f3);" \
    "wrk -t1 -c$CONNS per daemon, ${DELAY_MS} ms between requests on a connection;" \
    "warm-up ${WARMUP}s, a sample every ${SAMPLE}s; load $load_start at the start, $load_end at the end"
echo
echo "| daemon | requests | req/s | p50 ms | p99 ms | errors | RSS after warm-up MiB | RSS at end MiB | growth | fds after warm-up / max / end |"
echo "|---|---|---|---|---|---|---|---|---|---|"
fail=0
for d in $DAEMONS; do
    eval "p=\$pid_$d"
    alive=yes
    kill -0 "$p" 2>/dev/null || alive=no
    set -- $(awk '/^RESULT/ {print $2, $3, $4, $5, $6, $7, $8}' "$dir/$d.wrk")
    if [ $# -lt 7 ]; then
        echo "soak: no result from wrk for $d:" >&2; cat "$dir/$d.wrk" >&2
        fail=1
        continue
    fi
    reqs=$1 rps=$2 transport=$3 unexpected=$4 p50=$5 p99=$6 first_bad=$7
    logged=$(grep -c '"level":"\(error\|critical\)"' "$dir/$d.log" || true)
    # The warm-up sample: the first one taken at or after the end of the warm-up.
    set -- $(awk -v w="$WARMUP" '$1 >= w && !s {s = 1; print $2, $3} END {}' "$dir/$d.samples")
    rss_w=$1 fds_w=$2
    set -- $(tail -1 "$dir/$d.samples" | awk '{print $2, $3}')
    rss_e=$1 fds_e=$2
    fds_max=$(awk -v w="$WARMUP" '$1 >= w && $3 > m {m = $3} END {print m + 0}' "$dir/$d.samples")
    growth=$(awk -v a="$rss_w" -v b="$rss_e" 'BEGIN {printf "%.2f", (b - a) * 100 / a}')
    awk -v d="$d" -v n="$reqs" -v r="$rps" -v p50="$p50" -v p99="$p99" -v e="$((transport + unexpected))" \
        -v a="$rss_w" -v b="$rss_e" -v g="$growth" -v fw="$fds_w" -v fm="$fds_max" -v fe="$fds_e" \
        'BEGIN {printf "| %s | %d | %.0f | %s | %s | %d | %.1f | %.1f | %+.2f%% | %d / %d / %d |\n",
            d, n, r, p50, p99, e, a / 1024, b / 1024, g, fw, fm, fe}'
    why=""
    [ "$alive" = yes ] || why="$why died;"
    [ "$transport" -eq 0 ] || why="$why $transport transport errors;"
    [ "$unexpected" -eq 0 ] || why="$why $unexpected unexpected statuses (first: $first_bad);"
    [ "$logged" -eq 0 ] || why="$why $logged log lines at error level or worse;"
    awk -v g="$growth" -v m="$MAX_GROWTH_PCT" 'BEGIN {exit !(g >= m)}' &&
        why="$why RSS grew $growth%;"
    [ "$fds_e" -le $((fds_w + 2)) ] || why="$why descriptors $fds_w -> $fds_e;"
    if [ -n "$why" ]; then
        echo "$d:$why" >>"$dir/breaches"
        fail=1
    fi
done
if [ "$fail" -ne 0 ]; then
    echo
    echo "soak: FAILED"
    [ -f "$dir/breaches" ] && cat "$dir/breaches"
    for d in $DAEMONS; do
        if grep -q '"level":"\(error\|critical\)"' "$dir/$d.log"; then
            echo "--- $d log (error lines, first 5):"
            grep '"level":"\(error\|critical\)"' "$dir/$d.log" | head -5
        fi
    done
    exit 1
fi
echo
echo "soak: passed (growth < $MAX_GROWTH_PCT%, descriptors flat, no errors)"
