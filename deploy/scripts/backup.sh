#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Back up warden's Redis: BGSAVE, wait for it, copy the RDB (and the AOF directory when
# there is one) into OUT/<UTC timestamp>/, then write manifest.json describing exactly what
# the copied RDB holds: key counts per prefix (with a profile of their TTLs, so that keys
# expiring after the backup are not mistaken for lost ones), the head (seq, hash) of every
# audit chain, and the SHA-256 of every file copied.
#
# The manifest is measured on the copy, not on the live Redis (which keeps changing after
# the snapshot): the copy is loaded into a private redis-server on a free loopback port,
# counted, and stopped. The host needs memory for that second copy for a few seconds.
# Run it on the Redis host (it copies Redis's data directory) as a user that can read it.
# The Redis user needs only PING, INFO, BGSAVE and CONFIG GET (`backup` from gen-acl.sh).
#
#   backup.sh [-u REDIS_URL] [-o OUT]     (defaults: redis://127.0.0.1:6379/0, ./backups)
#   REDISCLI_AUTH may carry the password instead of putting it in the URL.
# Prints the new backup's directory. Exits non-zero, leaving no partial backup, on failure.
set -eu
# A backup holds what Redis holds (idempotency leases and stored responses, sealed grace
# successors): readable by this user only.
umask 077
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
if [ -f "$here/scratch-redis.sh" ]; then . "$here/scratch-redis.sh"; else . "$here/../../tools/scratch-redis.sh"; fi

url=redis://127.0.0.1:6379/0
out=./backups
while getopts u:o: opt; do
    case $opt in
    u) url=$OPTARG ;;
    o) out=$OPTARG ;;
    *) echo "usage: backup.sh [-u REDIS_URL] [-o OUT]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { echo "usage: backup.sh [-u REDIS_URL] [-o OUT]" >&2; exit 2; }

tmp=
dest=
done_ok=
cleanup() {
    trap '' INT TERM # a second signal must not cut the cleanup short
    scratch_redis_stop
    [ -n "$tmp" ] && rm -rf "$tmp"
    if [ -z "$done_ok" ] && [ -n "$dest" ]; then rm -rf "$dest"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail() { echo "backup: $*" >&2; exit 1; }

live() { redis-cli --no-auth-warning -u "$url" "$@"; }
info_field() { live INFO persistence | tr -d '\r' | sed -n "s/^$1://p"; }

# rdb_saves counts finished snapshots: wait until it passes its value from before ours
# started (LASTSAVE has only one-second resolution). SCHEDULE: if an AOF rewrite is
# running, the snapshot starts as soon as it ends instead of being refused.
before=$(info_field rdb_saves)
[ -n "$before" ] || fail "cannot read INFO persistence from Redis (URL, password, ACL?)"
if [ "$(info_field rdb_bgsave_in_progress)" != 1 ]; then
    reply=$(live BGSAVE SCHEDULE)
    case $reply in
    "Background saving started" | "Background saving scheduled") ;;
    *) fail "BGSAVE refused: $reply" ;;
    esac
fi
i=0
until [ "$(info_field rdb_bgsave_in_progress)" = 0 ] && [ "$(info_field rdb_saves)" -gt "$before" ]; do
    i=$((i + 1))
    [ "$i" -lt 6000 ] || fail "BGSAVE did not finish within 10 minutes"
    sleep 0.1
done
[ "$(info_field rdb_last_bgsave_status)" = ok ] || fail "BGSAVE failed (see the Redis log)"

dir=$(live CONFIG GET dir | sed -n 2p)
rdb=$(live CONFIG GET dbfilename | sed -n 2p)
aofdir=$(live CONFIG GET appenddirname | sed -n 2p)
port=$(live CONFIG GET port | sed -n 2p)
dest="$out/$(date -u +%Y%m%dT%H%M%SZ)"
[ ! -e "$dest" ] || fail "$dest exists already"
mkdir -p "$dest"
# Redis replaces the RDB by rename, so cp reads one whole snapshot even if a newer one
# lands meanwhile; the manifest below describes whichever one was copied.
cp "$dir/$rdb" "$dest/dump.rdb" || fail "cannot copy $dir/$rdb"
if [ -n "$aofdir" ] && [ -d "$dir/$aofdir" ]; then
    cp -R "$dir/$aofdir" "$dest/appendonly" || fail "cannot copy $dir/$aofdir"
fi

# The manifest, measured on a private copy (password set over the connection, so it never
# appears in ps; the copy is a hard link where possible: the scratch Redis never writes it).
unset REDISCLI_AUTH # the live Redis's; done with it
tmp=$(mktemp -d "${TMPDIR:-/tmp}/warden-backup.XXXXXX")
ln "$dest/dump.rdb" "$tmp/dump.rdb" 2>/dev/null || cp "$dest/dump.rdb" "$tmp/dump.rdb"
scratch_redis_start "$tmp" --dbfilename dump.rdb >>"$tmp/stdout" 2>&1 ||
    fail "the copied RDB does not load into redis-server: $(tail -n 3 "$tmp/redis.log" 2>/dev/null)"
scratch_protect || fail "cannot set a password on the scratch Redis"
census_wait_loaded -p "$REDIS_PORT" || fail "the copied RDB did not finish loading"
census=$(census_json -p "$REDIS_PORT") || fail "cannot count the keys of the copy"
case $census in "{"*"}") ;; *) fail "cannot count the keys of the copy: $census" ;; esac
version=$(redis-cli -p "$REDIS_PORT" INFO server | tr -d '\r' | sed -n 's/^redis_version://p')
scratch_redis_stop

# The files first, so the manifest lists exactly what was copied (and not itself).
files=$(cd "$dest" && find . -type f | sed 's|^\./||' | sort)
{
    printf '{"format": 1, "created_at": "%s", "source": "%s:%s", "redis_version": "%s",\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(uname -n)" "$port" "$version"
    printf ' "rdb": "dump.rdb", "aof_dir": %s,\n' \
        "$([ -d "$dest/appendonly" ] && echo '"appendonly"' || echo null)"
    # the census object's members (keys, ttl, audit_heads, time_ms), inline
    census=${census#\{}
    printf ' %s,\n' "${census%\}}"
    printf ' "files": {'
    sep=""
    for f in $files; do
        printf '%s\n   "%s": "%s"' "$sep" "$f" "$(sha256sum "$dest/$f" | cut -c1-64)"
        sep=","
    done
    printf '}}\n'
} >"$tmp/manifest.json"
mv "$tmp/manifest.json" "$dest/manifest.json" || fail "cannot write $dest/manifest.json"
done_ok=1
echo "$dest"
