#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make run: a private Redis and every built daemon, with a working demo configuration.
# Ports PORT_BASE+1..+4 (ratelimitd, auditd, idemd, tokend; PORT_BASE defaults to 8080, so
# 8081..8084). Data and logs live in RUN_DIR (default .run/, ignored by git). A daemon that
# cannot listen (the port is taken) stops everything with one line saying which and why
# (exit 1). Ctrl-C stops everything and exits 0.
#   sh deploy/scripts/run-local.sh [BUILD]        (PORT_BASE, RUN_DIR from the environment)
set -eu
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
. tools/scratch-redis.sh

base=${PORT_BASE:-8080}
case $base in '' | *[!0-9]*) echo "run: PORT_BASE=$base is not a port number" >&2; exit 2 ;; esac
[ "$base" -ge 1 ] && [ "$base" -le 65530 ] ||
    { echo "run: PORT_BASE=$base: must be 1..65530" >&2; exit 2; }
run=${RUN_DIR:-.run}
mkdir -p "$run/redis" "$run/secrets"
chmod 700 "$run/secrets"
pids=""
status=0
cleanup() {
    trap - EXIT INT TERM
    trap '' INT TERM # a second Ctrl-C must not cut the cleanup short
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    scratch_redis_stop
    echo "stopped."
    exit "$status"
}
# Ctrl-C is how make run is meant to end: a clean stop, exit 0.
trap 'status=0; cleanup' INT TERM
trap cleanup EXIT

scratch_redis_start "$run/redis" --appendonly yes --maxmemory-policy noeviction ||
    { echo "run: cannot start redis-server" >&2; status=1; exit 1; }
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
echo "redis        $REDIS_URL (data in $run/redis)"

# demo_env DAEMON: print the demo settings of a daemon, one NAME=value a line.
demo_env() {
    case $1 in
    tokend) # a generated demo hash key, kept across runs so demo tokens stay valid
        [ -s "$run/secrets/token_hash_key" ] ||
            (umask 077 && head -c 32 /dev/urandom | base64 >"$run/secrets/token_hash_key")
        echo "TOKEN_HASH_KEY_FILE=$run/secrets/token_hash_key" ;;
    idemd) # the documented defaults, spelled out (no secret needed)
        echo "IDEM_TTL=24h"; echo "IDEM_LEASE_TTL=30s"; echo "IDEM_ON_LEASE_EXPIRY=takeover" ;;
    ratelimitd) # demo rules: login (gcra, local fallback), api (sliding window, open)
        echo "CLOUD_RUN_REGION=local-dev"; echo "RATELIMIT_RULES_FILE=ratelimitd/demo-rules.json" ;;
    auditd) # a generated demo signing key (v1), kept across runs so the demo chain verifies
        [ -s "$run/secrets/audit_v1.pem" ] ||
            (umask 077 && "$BUILD/bin/auditd" keygen | sed '/^public_key:/d' >"$run/secrets/audit_v1.pem")
        echo "AUDIT_PRIVATE_KEY_V1_FILE=$run/secrets/audit_v1.pem" ;;
    *) ;;
    esac
}

# start DAEMON PORT: start it and wait until it answers /health *and* is still running
# (a /health answer from another program on a taken port is not ours); if it exits
# first, stop everything with the reason from its log.
start() {
    [ -x "$BUILD/bin/$1" ] || return 0
    # shellcheck disable=SC2046 # one NAME=value a word
    env LISTEN_ADDR="127.0.0.1:$2" $(demo_env "$1") "$BUILD/bin/$1" >"$run/$1.log" 2>&1 &
    _pid=$!
    pids="$pids $_pid"
    for _i in $(seq 100); do
        if ! kill -0 "$_pid" 2>/dev/null; then
            _why=$(sed -n 's/.*"error":"\([^"]*\)".*/\1/p' "$run/$1.log" | tail -n 1)
            echo "run: $1: ${_why:-it exited at start on 127.0.0.1:$2, see $run/$1.log}" \
                "(another make run? try: make run PORT_BASE=$((base + 1000)))" >&2
            status=1
            exit 1
        fi
        if curl -fs --max-time 1 "http://127.0.0.1:$2/health" >/dev/null 2>&1; then
            sleep 0.1
            kill -0 "$_pid" 2>/dev/null && break
        fi
        sleep 0.1
    done
    printf '%-12s http://127.0.0.1:%s   (log: %s/%s.log)\n' "$1" "$2" "$run" "$1"
    started=1
}

started=0
start ratelimitd $((base + 1))
start auditd $((base + 2))
start idemd $((base + 3))
start tokend $((base + 4))
[ "$started" = 1 ] || echo "no daemon is built yet: only Redis is running."
echo
echo "try:  curl -s http://127.0.0.1:$((base + 3))/ready"
echo "Ctrl-C stops everything."
# Until Ctrl-C (the trap exits 0), or until a daemon dies on its own (exit 1).
while :; do
    for p in $pids; do
        kill -0 "$p" 2>/dev/null || { echo "run: a daemon exited; see $run/*.log" >&2; status=1; exit 1; }
    done
    sleep 1 &
    wait $! || true
done
