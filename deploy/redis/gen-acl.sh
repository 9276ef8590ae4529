#!/bin/sh
# Write a Redis ACL file for warden: one user per daemon, limited to its key prefix and
# the commands it uses, plus `admin` for backups and operations. Passwords are generated
# here (32 random bytes, hex) and written beside the ACL file as <user>.password (mode
# 0600), for the daemons' REDIS_URL_FILE / credentials. Nothing secret is committed.
#
#   deploy/redis/gen-acl.sh OUT_DIR      → OUT_DIR/users.acl, OUT_DIR/<user>.password
set -eu
out=${1:?usage: gen-acl.sh OUT_DIR}
mkdir -p "$out"
umask 077

pw() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

# Commands every daemon needs: the pool's handshake and health checks, script loading,
# and INFO (for the maxmemory-policy check at startup).
common="+ping +auth +hello +select +client|setname +info +script|load +script|exists +evalsha +eval"

# Per daemon: key pattern and the commands it runs outside its scripts. Commands called
# from inside a Lua script are checked against the same user, so they are listed too.
ratelimitd="~ratelimit:* $common +hgetall +hmget +hset +get +set +pexpire +pttl +del +incrby +time"
idemd="~idem:* $common +hgetall +hmget +hget +hset +hsetnx +hincrby +del +exists +pexpire +pexpireat +pttl +time +wait"
auditd="~audit:* $common +xadd +xrange +xrevrange +xlen +hget +hgetall +hset +hsetnx +zadd +zscore +zremrangebyscore +time +wait"
tokend="~tok:* $common +hgetall +hmget +hget +hset +hdel +sadd +sismember +scard +smembers +zadd +zrem +zrange +zcard +zrangebyscore +zremrangebyrank +del +exists +pexpire +pexpireat +pttl +time +unlink"

{
    echo "user default off"
    for u in ratelimitd idemd auditd tokend; do
        p=$(pw)
        printf '%s' "$p" > "$out/$u.password"
        eval "rules=\$$u"
        echo "user $u on #$(printf '%s' "$p" | sha256sum | cut -c1-64) resetkeys $rules"
    done
    p=$(pw)
    printf '%s' "$p" > "$out/admin.password"
    # admin: backups (BGSAVE, LASTSAVE, INFO, CONFIG GET dir), restore checks, DBSIZE, SCAN.
    echo "user admin on #$(printf '%s' "$p" | sha256sum | cut -c1-64) ~* &* +@all"
} > "$out/users.acl"
echo "wrote $out/users.acl and one .password file per user"
