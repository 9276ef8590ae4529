# SPDX-License-Identifier: Apache-2.0
# Sourced by backup.sh and restore-test.sh (and the drill of make restore-test).
#
# warden_bin DIR NAME: the program NAME in DIR as installed (DIR/warden-NAME, from make
# install or the package) or else as built (DIR/NAME, build/bin of a checkout).
warden_bin() {
    if [ -x "$1/warden-$2" ]; then echo "$1/warden-$2"; else echo "$1/$2"; fi
}
#
# What a Redis holds, measured the same way by both, so that a restored copy can be compared
# with the manifest of its backup:
#
# census_json REDIS-CLI-ARGS...: one JSON object on stdout —
#   {"time_ms": Redis clock when the census ended,
#    "keys": {"ratelimit": n, "idem": n, "audit": n, "tok": n, "other": n},
#    "ttl": {<prefix>: {"none": keys without a TTL,
#                       "expiring": [32 counts: [1] TTL <= 1 s, [b] 2^(b-2) s < TTL <= 2^(b-1) s,
#                                    the last one also everything longer]}},
#    "audit_heads": {<chain>: {"seq": n, "hash": "..."}}}
# It runs as one Lua script that SCANs the whole keyspace, so it blocks that Redis while it
# runs: only ever point it at a private copy, never at the live Redis.

CENSUS_LUA='
local known = {ratelimit = true, idem = true, audit = true, tok = true}
local keys, ttl, heads = {}, {}, {}
for _, p in ipairs({"ratelimit", "idem", "audit", "tok", "other"}) do
    local e = {}
    for b = 1, 32 do e[b] = 0 end
    keys[p] = 0
    ttl[p] = {none = 0, expiring = e}
end
local cursor = "0"
repeat
    local r = redis.call("SCAN", cursor, "COUNT", 1000)
    cursor = r[1]
    for _, k in ipairs(r[2]) do
        local p = string.match(k, "^([^:]*):")
        if not known[p] then p = "other" end
        keys[p] = keys[p] + 1
        local ms = redis.call("PTTL", k)
        if ms < 0 then
            ttl[p].none = ttl[p].none + 1
        else
            local b, upper = 1, 1000
            while ms > upper and b < 32 do b, upper = b + 1, upper * 2 end
            ttl[p].expiring[b] = ttl[p].expiring[b] + 1
        end
        local chain = string.match(k, "^audit:{(.+)}:head$")
        if chain then
            local h = redis.call("HMGET", k, "seq", "hash")
            heads[chain] = {seq = tonumber(h[1]) or 0, hash = h[2] or ""}
        end
    end
until cursor == "0"
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return cjson.encode({time_ms = now, keys = keys, ttl = ttl, audit_heads = heads})
'

census_json() {
    redis-cli --no-auth-warning "$@" EVAL "$CENSUS_LUA" 0
}

# census_wait_loaded REDIS-CLI-ARGS...: wait (up to 10 minutes) until that Redis has
# finished loading its data set. Returns 1 if it never does or stops answering.
census_wait_loaded() {
    _i=0
    while [ "$_i" -lt 6000 ]; do
        _l=$(redis-cli --no-auth-warning "$@" INFO persistence 2>/dev/null | tr -d '\r' |
            sed -n 's/^loading://p')
        [ "$_l" = 0 ] && return 0
        [ -n "$_l" ] || return 1
        _i=$((_i + 1))
        sleep 0.1
    done
    return 1
}

# scratch_protect: give the scratch Redis of tools/scratch-redis.sh (REDIS_PORT) a random
# password, so that no other local user can read the copy it holds. The password travels
# on stdin, never on a command line (ps), and is exported as REDISCLI_AUTH for every later
# redis-cli call of this shell. Returns 1 if Redis refuses it.
scratch_protect() {
    _pw=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
    _r=$(printf '%s' "$_pw" | env -u REDISCLI_AUTH redis-cli -p "$REDIS_PORT" -x CONFIG SET requirepass)
    [ "$_r" = OK ] || return 1
    REDISCLI_AUTH=$_pw
    export REDISCLI_AUTH
}

# free_port: a loopback TCP port nothing listens on, below the kernel's ephemeral range (so
# no outgoing connection holds it). Checked with a connect (curl's exit 7: refused), so a
# caller must still retry if its server then fails to bind.
free_port() {
    _low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    for _t in 1 2 3 4 5 6 7 8 9 10; do
        _p=$((10000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % (_low - 10000)))
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$_p/"
        [ $? -eq 7 ] && { echo "$_p"; return 0; }
    done
    return 1
}
