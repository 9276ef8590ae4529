#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# restore-test.sh — the DR drill: prove that a backup made by backup.sh restores into a
# working warden. It never touches the live Redis: it loads a copy of the backup's RDB into
# a scratch redis-server on a free loopback port and checks, in order:
#   files        every file listed in manifest.json is there with its SHA-256
#   restore      the RDB loads into redis-server
#   data         key counts per prefix match the manifest (keys without a TTL exactly;
#                keys with one within what may have expired since, from the TTL profile)
#   audit        every chain passes audit-verify and its head equals the manifest's
#   idempotency  every idem:* record parses and carries a TTL
#   tokens       every family has its fields and a TTL; used sets and user indexes have a
#                TTL, and every used set belongs to an existing family
#   write        a scratch key is written, read back, deleted and confirmed gone
#   scripts      every lua-scripts/*.lua loads (SHA-1 as the file's) and runs on scratch keys
#   app:<daemon> each daemon starts against the restored copy on a free port, /ready is
#                200 and one real operation succeeds: a rate-limit check; claim and complete;
#                issue and refresh; append an event to every chain, which then still verifies
# Prints a report (or, with --json, one JSON document), exits 0 only if every check passed
# (1 otherwise, 2 on bad usage), and removes every process and temp dir it made on any exit.
#
#   restore-test.sh [--json] [--keys KEYRING] [--bin DIR] [--scripts DIR] BACKUP_DIR
#     --keys     the auditors' keyring.json (public keys; required when there are chains)
#     --bin      where the daemons and audit-verify are (default: build/bin of this
#                checkout if built, else where $PATH finds warden-auditd)
#     --scripts  the Lua scripts (default: lua-scripts/ of this checkout, or of the
#                installed tree: /usr/share/warden/lua-scripts)
# Runs from a checkout (deploy/scripts/) or from an installed system
# (/usr/share/warden/scripts/, from make install or the Debian package).
# Needs redis-server, redis-cli, jq, curl. No production secret is needed: auditd signs the
# drill's events with a throw-away key of a new version, tokend uses a throw-away hash key.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/common.sh"
if [ -f "$here/scratch-redis.sh" ]; then . "$here/scratch-redis.sh"; else . "$repo/tools/scratch-redis.sh"; fi
. "$here/restore-checks.sh"

usage() {
    echo "usage: restore-test.sh [--json] [--keys KEYRING] [--bin DIR] [--scripts DIR] BACKUP_DIR" >&2
    exit 2
}
json=0
keyring=
bin=
if [ -d "$repo/lua-scripts" ]; then scripts=$repo/lua-scripts; else scripts=$here/../lua-scripts; fi
backup=
while [ $# -gt 0 ]; do
    case $1 in
    --json) json=1 ;;
    --keys) [ $# -ge 2 ] || usage; keyring=$2; shift ;;
    --bin) [ $# -ge 2 ] || usage; bin=$2; shift ;;
    --scripts) [ $# -ge 2 ] || usage; scripts=$2; shift ;;
    -h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) usage ;;
    *) [ -z "$backup" ] || usage; backup=$1 ;;
    esac
    shift
done
[ -n "$backup" ] || usage
[ -d "$backup" ] || { echo "restore-test: $backup is not a directory" >&2; exit 2; }
if [ -z "$bin" ]; then
    if [ -x "$repo/build/bin/auditd" ]; then
        bin=$repo/build/bin
    else
        bin=$(dirname "$(command -v warden-auditd || echo ./x)")
    fi
fi
for tool in redis-server redis-cli jq curl sha256sum sha1sum; do
    command -v "$tool" >/dev/null 2>&1 || { echo "restore-test: $tool not found" >&2; exit 2; }
done
[ -z "$keyring" ] || jq -e '.keys | type == "array"' "$keyring" >/dev/null 2>&1 ||
    { echo "restore-test: $keyring is not a keyring (a JSON object with \"keys\")" >&2; exit 2; }

unset REDISCLI_AUTH # whatever the caller's shell holds is for another Redis
tmp=$(mktemp -d "${TMPDIR:-/tmp}/warden-restore.XXXXXX") || exit 2
chmod 700 "$tmp"
pids=
cleanup() {
    trap - EXIT
    trap '' INT TERM HUP # a second signal must not cut the cleanup short
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    scratch_redis_stop
    rm -rf "$tmp"
}
trap 'cleanup' EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM HUP

# ---- the report ---------------------------------------------------------------------------
: >"$tmp/results"
# record NAME pass|fail|not_run DETAIL
record() {
    _d=$(printf '%s' "$3" | tr '\t\n' '  ')
    printf '%s\t%s\t%s\n' "$1" "$2" "$_d" >>"$tmp/results"
    if [ "$json" = 0 ]; then
        case $2 in pass) _s=PASS ;; fail) _s=FAIL ;; *) _s=SKIP ;; esac
        printf '  %s  %-20s %s\n' "$_s" "$1" "$_d"
    fi
}
# The verdict: 0 only if every check passed. A check that could not run is no pass.
report() {
    if [ "$json" = 1 ]; then
        jq -R -s --arg backup "$backup" '
            [split("\n")[] | select(length > 0) | split("\t")
             | {name: .[0], ok: (.[1] == "pass"), status: .[1], detail: .[2]}] as $c
            | {ok: ($c | all(.ok)), backup: $backup, checks: $c,
               failed: [$c[] | select(.status == "fail") | .name],
               not_run: [$c[] | select(.status == "not_run") | .name]}' "$tmp/results"
    else
        _f=$(awk -F '\t' '$2 == "fail" { printf "%s%s", s, $1; s = ", " }' "$tmp/results")
        _n=$(awk -F '\t' '$2 == "not_run" { printf "%s%s", s, $1; s = ", " }' "$tmp/results")
        if [ -z "$_f$_n" ]; then
            echo "restore-test: PASS ($(wc -l <"$tmp/results" | tr -d ' ') checks)"
        else
            echo "restore-test: FAIL (failed: ${_f:-none}${_n:+; not run: $_n})"
        fi
    fi
    [ "$(cut -f2 "$tmp/results" | sort -u)" = pass ]
}
# not_run NAME...: the checks that cannot run once the backup did not load
not_run() { for n in "$@"; do record "$n" not_run "not run: $why"; done; }

[ "$json" = 1 ] || echo "restore-test: $backup"
manifest=$backup/manifest.json
if ! jq -e '.format == 1 and (.files | type == "object")' "$manifest" >/dev/null 2>&1; then
    record files fail "manifest.json is missing or not a backup.sh manifest"
    why="no manifest"
    not_run restore data audit idempotency tokens write scripts app
    report
    exit $?
fi
check_files
if check_restore; then
    check_data
    check_audit
    check_idempotency
    check_tokens
    check_write
    check_scripts
    check_apps
else
    why="the backup did not load"
    not_run data audit idempotency tokens write scripts app
fi
report
