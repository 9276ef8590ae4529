# SPDX-License-Identifier: Apache-2.0
# Sourced by the scripts that need a private Redis (run-local, bench, restore-test).
# scratch_redis_start DIR [redis-server args...]: start redis-server on a free loopback
# port with its data in DIR; sets REDIS_PORT and REDIS_PID. Returns 1 if it cannot.
scratch_redis_start() {
    _dir=$(cd "$1" && pwd); shift  # absolute: Redis chdirs into --dir
    for _try in 1 2 3 4 5 6 7 8 9 10; do
        _port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 ))
        redis-server --port "$_port" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$_dir" --daemonize no --logfile "$_dir/redis.log" "$@" &
        _pid=$!
        for _i in $(seq 50); do
            kill -0 "$_pid" 2>/dev/null || break
            # Make sure the Redis answering is ours, not another one on that port.
            if redis-cli -p "$_port" INFO server 2>/dev/null | grep -q "^process_id:$_pid"; then
                REDIS_PORT=$_port; REDIS_PID=$_pid
                return 0
            fi
            sleep 0.1
        done
        kill "$_pid" 2>/dev/null || true
        wait "$_pid" 2>/dev/null || true
    done
    return 1
}

# scratch_redis_stop: stop the Redis started above.
scratch_redis_stop() {
    [ -n "${REDIS_PID:-}" ] || return 0
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=
}
