# SPDX-License-Identifier: Apache-2.0
# Sourced by tests/bench/bench-<daemon>.sh (after setting BUILD): a private Redis, the
# daemon under test on a free port, and wrk runs that report one line of numbers.
#   bench_redis [redis-server args]   start Redis; sets RPORT (and REDIS_PID)
#   bench_daemon NAME [VAR=value...]  start $BUILD/bin/NAME against it; sets PORT, DAEMON_PID
#   bench_wrk SCRIPT [PATH] [SECONDS] [NAME]
#                                     run wrk with $dir/common.lua + $dir/SCRIPT.lua; prints
#                                     "req/s p50_ms p99_ms transport_errors non2xx max_ms"
#                                     and notes the CPU each process spent on the run (under
#                                     NAME, one word, default SCRIPT)
#   bench_c1 SCRIPT [PATH]            one connection, one request at a time (4 s): prints
#                                     the p50 in ms
#   bench_c1_table                    markdown: the c=1 rows added with bench_c1_row NAME
#                                     DAEMON_P50 REDIS_BENCHMARK_P50
#   bench_cpu_table                   markdown: CPU microseconds per request of the daemon,
#                                     Redis and wrk for every bench_wrk run so far
#   bench_machine                     one line: cores, CPU, Redis version, load
. tools/scratch-redis.sh
SECS=${BENCH_SECONDS:-8}
CONNS=50
dir=$(mktemp -d)
DAEMON_PID=""
bench_cleanup() {
    [ -n "${REDIS_PID:-}" ] && kill -CONT "$REDIS_PID" 2>/dev/null || true
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    scratch_redis_stop
    rm -rf "$dir"
}
trap bench_cleanup EXIT INT TERM

bench_redis() {
    scratch_redis_start "$dir" --maxmemory-policy noeviction "$@" ||
        { echo "cannot start redis-server" >&2; exit 1; }
    RPORT=$REDIS_PORT
}

bench_daemon() {
    _name=$1; shift
    for _try in 1 2 3 4 5 6 7 8 9 10; do
        PORT=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 12000 ))
        env REDIS_URL="redis://127.0.0.1:$RPORT/0" LISTEN_ADDR="127.0.0.1:$PORT" LOG_LEVEL=warn \
            HTTP_THREADS="${HTTP_THREADS:-0}" "$@" "$BUILD/bin/$_name" >"$dir/$_name.log" 2>&1 &
        DAEMON_PID=$!
        for _i in $(seq 50); do
            curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && return 0
            kill -0 "$DAEMON_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$DAEMON_PID" 2>/dev/null || true; wait "$DAEMON_PID" 2>/dev/null || true
        DAEMON_PID=""
    done
    echo "cannot start $_name:" >&2; cat "$dir/$_name.log" >&2; exit 1
}

cat >"$dir/common.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
        summary.errors.timeout
    io.write(string.format("RESULT %.0f %.3f %.3f %d %d %.3f %d\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
        latency:percentile(99) / 1000, errors, summary.errors.status, latency.max / 1000,
        summary.requests))
end
LUA

# CPU time (user + system, in clock ticks) a process has used so far; 0 if it is gone.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}

bench_wrk() {
    cat "$dir/common.lua" "$dir/$1.lua" >"$dir/run-$1.lua"
    _d0=$(cpu_ticks "$DAEMON_PID"); _r0=$(cpu_ticks "$REDIS_PID")
    wrk -t2 -c"$CONNS" -d"${3:-$SECS}s" --timeout 5s -s "$dir/run-$1.lua" \
        "http://127.0.0.1:$PORT${2:-}" >"$dir/wrk-$1.out" 2>&1
    _d1=$(cpu_ticks "$DAEMON_PID"); _r1=$(cpu_ticks "$REDIS_PID")
    # This runs in a command substitution, so the children's times are wrk's alone (times
    # itself must run in this shell, not in another substitution).
    times >"$dir/times"
    _wrk=$(tail -1 "$dir/times" | awk '{ n = 0; for (i = 1; i <= 2; i++) { split($i, t, "m")
        n += t[1] * 60 + t[2] } print n }')
    awk -v name="${4:-$1}" -v d="$((_d1 - _d0))" -v r="$((_r1 - _r0))" -v w="$_wrk" \
        -v hz="$(getconf CLK_TCK)" '/^RESULT/ && $8 > 0 {
            printf "%s %d %.1f %.1f %.1f\n", name, $8, d * 1e6 / hz / $8, r * 1e6 / hz / $8,
                w * 1e6 / $8 }' "$dir/wrk-$1.out" >>"$dir/cpu.txt"
    awk '/^RESULT/ {print $2, $3, $4, $5, $6, $7}' "$dir/wrk-$1.out"
}

bench_c1() {
    cat "$dir/common.lua" "$dir/$1.lua" >"$dir/run-$1.lua"
    wrk -t1 -c1 -d4s --timeout 5s -s "$dir/run-$1.lua" "http://127.0.0.1:$PORT${2:-}" 2>&1 |
        awk '/^RESULT/ {print $3}'
}

bench_c1_row() {
    echo "$1 $2 $3" >>"$dir/c1.txt"
}

bench_c1_table() {
    echo "One connection, one request at a time (wrk -t1 -c1), beside redis-benchmark -c 1"
    echo "running the same script:"
    echo
    echo "| run | daemon p50 ms | redis-benchmark -c 1 p50 ms | ratio |"
    echo "|---|---|---|---|"
    awk '{ printf "| %s | %s | %s | %.2f |\n", $1, $2, $3, $2 / $3 }' "$dir/c1.txt"
}

bench_cpu_table() {
    echo "CPU per request (user + system microseconds; the machine has $(nproc) cores, so"
    echo "$(nproc) s of CPU per second is the ceiling the three processes share):"
    echo
    echo "| run | requests | daemon µs | Redis µs | wrk µs | total µs | CPU-bound ceiling req/s |"
    echo "|---|---|---|---|---|---|---|"
    awk -v cores="$(nproc)" '{ t = $3 + $4 + $5
        printf "| %s | %d | %.1f | %.1f | %.1f | %.1f | %.0f |\n", $1, $2, $3, $4, $5, t,
            cores * 1e6 / t }' "$dir/cpu.txt"
}

bench_machine() {
    echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "redis: $(redis-server --version | cut -d' ' -f3); HTTP_THREADS=${HTTP_THREADS:-0}; wrk -t2 -c$CONNS, ${SECS}s per run"
}
