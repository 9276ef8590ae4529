#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Write a Redis ACL file for warden: one user per daemon, limited to its key prefix and to
# exactly the commands it sends, plus three users for people and jobs:
#   auditor  read-only on audit:* (audit-verify, audit-export)
#   audittrim  audit-trim, the retention job: reads like the auditor, and removes entries
#            and tiles through audit_trim.lua once the chain records the trim
#   backup   no keys at all: BGSAVE, INFO, CONFIG GET (deploy/scripts/backup.sh)
#   admin    everything, for operators (failover, ACL changes); not for any daemon or job
# Passwords are generated here (32 random bytes, hex) and never leave OUT_DIR:
#   OUT_DIR/users.acl            the ACL file (SHA-256 of each password only), for `aclfile`
#   OUT_DIR/<user>.password      the password
#   OUT_DIR/<user>.redis-url     redis://<user>:<password>@ADDR/0, for REDIS_URL_FILE
# all mode 0600 in a 0700 directory. Nothing secret is committed: OUT_DIR must not exist
# yet, so passwords are never overwritten by mistake (rotation: docs/operations.md).
#
#   deploy/redis/gen-acl.sh OUT_DIR [HOST:PORT]     (HOST:PORT default 127.0.0.1:6379)
set -eu
usage() { echo "usage: gen-acl.sh OUT_DIR [HOST:PORT]" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
out=$1
addr=${2:-127.0.0.1:6379}
case $addr in *:[0-9]*) ;; *) usage ;; esac
if [ -e "$out" ]; then
    echo "gen-acl: $out exists; choose a new directory (existing passwords are kept)" >&2
    exit 1
fi
umask 077
mkdir -p "$out"

pw() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

# Every daemon's connection pool: AUTH and SELECT on connect, PING and SCRIPT EXISTS/LOAD
# for /ready, EVALSHA for its scripts, INFO at startup (the maxmemory-policy check).
pool="+auth +select +ping +info +script|load +script|exists +evalsha"

# Per daemon: its key pattern, then the commands its scripts call (Redis checks those
# against the same user) and those it sends itself. tests/integration/test_ops_acl.c
# derives these lists from lua-scripts/ and the daemons' sources and fails on any
# difference, in either direction.
rules() {
    case $1 in
    # ratelimit_gcra, ratelimit_sliding; DEL for POST /v1/reset
    ratelimitd) echo "~ratelimit:* $pool +hget +hmget +hset +pexpire +time +del" ;;
    # idem_*.lua; WAIT when IDEM_WAIT_REPLICAS > 0
    idemd) echo "~idem:* $pool +hmget +hset +hincrby +pexpire +pttl +del +time +wait" ;;
    # audit_append (APPEND and STRLEN for the Merkle tree's tiles), audit_checkpoint; HMGET,
    # XRANGE, XREVRANGE, HGETALL, GETRANGE for reads and the startup check; WAIT when
    # AUDIT_WAIT_REPLICAS > 0. No DEL, XDEL or XTRIM: auditd cannot remove what it wrote.
    auditd) echo "~audit:* $pool +hget +hmget +hset +hsetnx +hdel +hexists +hgetall" \
        "+xadd +xrange +xrevrange +zadd +zrem +zscore +zrangebyscore +time +wait" \
        "+append +strlen +getrange" ;;
    # token_*.lua; ZRANGE, ZREM, HMGET for the sessions list
    tokend) echo "~tok:* $pool +exists +hmget +hset +hdel +hincrby +pexpire +pexpireat" \
        "+pttl +sadd +sismember +zadd +zcard +zrange +zrem +time" ;;
    # what audit-verify and audit-export read
    auditor) echo "~audit:* +auth +select +ping +hget +hmget +hgetall +xrange +xrevrange" \
        "+getrange" ;;
    # audit-trim: what it reads to check the tree (as the auditor), then audit_trim.lua
    # (XRANGE, XTRIM, DEL, HGET, HSET). The only user besides admin that removes audit keys,
    # and only of the log, the tiles and the trim record: head, keys and checkpoints are
    # read-only to it.
    audittrim) echo "%R~audit:* %RW~audit:*:log %RW~audit:*:tile:* %RW~audit:*:trim +auth" \
        "+select +ping +hget +hmget +xrange +xrevrange +getrange +evalsha +script|load" \
        "+xtrim +del +hset" ;;
    # backup.sh; no key access at all
    backup) echo "+auth +ping +info +bgsave +config|get" ;;
    admin) echo "~* &* +@all" ;;
    esac
}

{
    echo "user default off resetkeys resetchannels -@all"
    for u in ratelimitd idemd auditd tokend auditor audittrim backup admin; do
        p=$(pw)
        printf '%s\n' "$p" >"$out/$u.password"
        printf 'redis://%s:%s@%s/0\n' "$u" "$p" "$addr" >"$out/$u.redis-url"
        echo "user $u reset on #$(printf '%s' "$p" | sha256sum | cut -c1-64) $(rules "$u")"
    done
} >"$out/users.acl"
echo "wrote $out/users.acl and, per user, <user>.password and <user>.redis-url"
