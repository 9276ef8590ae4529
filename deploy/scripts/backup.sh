#!/bin/sh
# Back up warden's Redis: BGSAVE, wait for it, copy the RDB (and the AOF directory when
# there is one) into OUT/<UTC timestamp>/ with manifest.json: key counts per prefix,
# the head (seq, hash) of every audit chain, and the SHA-256 of every file copied.
# Run it on the Redis host (it copies Redis's data directory) as a user that can read it.
#
#   backup.sh [-u REDIS_URL] [-o OUT]     (defaults: redis://127.0.0.1:6379/0, ./backups)
#   REDISCLI_AUTH may carry the admin password instead of putting it in the URL.
set -eu
url=redis://127.0.0.1:6379/0
out=./backups
while getopts u:o: opt; do
    case $opt in
    u) url=$OPTARG ;;
    o) out=$OPTARG ;;
    *) echo "usage: backup.sh [-u REDIS_URL] [-o OUT]" >&2; exit 2 ;;
    esac
done
rc() { redis-cli --no-auth-warning -u "$url" "$@"; }
info_field() { rc INFO persistence | tr -d '\r' | sed -n "s/^$1://p"; }

# rdb_saves counts finished snapshots: wait until it passes its value from before ours
# started (LASTSAVE has only one-second resolution).
before=$(info_field rdb_saves)
[ "$(info_field rdb_bgsave_in_progress)" = 1 ] || rc BGSAVE >/dev/null
i=0
until [ "$(info_field rdb_bgsave_in_progress)" = 0 ] && [ "$(info_field rdb_saves)" -gt "$before" ]; do
    i=$((i + 1))
    [ "$i" -lt 6000 ] || { echo "backup: BGSAVE did not finish within 10 minutes" >&2; exit 1; }
    sleep 0.1
done
[ "$(info_field rdb_last_bgsave_status)" = ok ] || { echo "backup: BGSAVE failed" >&2; exit 1; }

dir=$(rc CONFIG GET dir | sed -n 2p)
rdb=$(rc CONFIG GET dbfilename | sed -n 2p)
aofdir=$(rc CONFIG GET appenddirname | sed -n 2p)
dest="$out/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$dest"
cp "$dir/$rdb" "$dest/dump.rdb"
if [ -n "$aofdir" ] && [ -d "$dir/$aofdir" ]; then
    cp -r "$dir/$aofdir" "$dest/appendonly"
fi

count() { rc --scan --pattern "$1" | wc -l | tr -d ' '; }
{
    printf '{\n  "created_at": "%s",\n  "keys": {' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    sep=""
    for prefix in ratelimit idem audit tok; do
        printf '%s"%s": %s' "$sep" "$prefix" "$(count "$prefix:*")"
        sep=", "
    done
    printf '},\n  "audit_heads": {'
    sep=""
    for head in $(rc --scan --pattern 'audit:{*}:head' | sort); do
        chain=$(echo "$head" | sed 's/^audit:{\(.*\)}:head$/\1/')
        seq=$(rc HGET "$head" seq)
        hash=$(rc HGET "$head" hash)
        printf '%s"%s": {"seq": %s, "hash": "%s"}' "$sep" "$chain" "${seq:-0}" "$hash"
        sep=", "
    done
    printf '},\n  "files": {'
    sep=""
    for f in $(cd "$dest" && find . -type f ! -name manifest.json | sed 's|^\./||' | sort); do
        printf '%s"%s": "%s"' "$sep" "$f" "$(sha256sum "$dest/$f" | cut -c1-64)"
        sep=", "
    done
    printf '}\n}\n'
} > "$dest/manifest.json"
echo "$dest"
