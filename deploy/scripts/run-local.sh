#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make run: a private Redis and every built daemon on its default port, with a working
# demo configuration. Data and logs live in .run/ (ignored by git). Ctrl-C stops all.
set -eu
BUILD=${1:-build}
cd "$(dirname "$0")/../.."
. tools/scratch-redis.sh

run=.run
mkdir -p "$run/redis" "$run/secrets"
chmod 700 "$run/secrets"
pids=""
cleanup() {
    trap - EXIT INT TERM
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    scratch_redis_stop
    echo "stopped."
}
trap cleanup EXIT INT TERM

scratch_redis_start "$run/redis" --appendonly yes --maxmemory-policy noeviction ||
    { echo "cannot start redis-server" >&2; exit 1; }
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

start() { # start DAEMON PORT
    [ -x "$BUILD/bin/$1" ] || return 0
    env LISTEN_ADDR="127.0.0.1:$2" $(demo_env "$1") "$BUILD/bin/$1" >"$run/$1.log" 2>&1 &
    pids="$pids $!"
    for _i in $(seq 50); do
        curl -fs "http://127.0.0.1:$2/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    printf '%-12s http://127.0.0.1:%s   (log: %s/%s.log)\n' "$1" "$2" "$run" "$1"
    started=1
}

started=0
start ratelimitd 8081
start auditd 8082
start idemd 8083
start tokend 8084
[ "$started" = 1 ] || echo "no daemon is built yet: only Redis is running."
echo
echo "try:  curl -s http://127.0.0.1:8083/ready"
echo "Ctrl-C stops everything."
wait
