#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make restore-test: the DR drill end to end, and proof that it catches damage.
#   1. a "live" Redis from deploy/redis/redis.conf with the ACL file of gen-acl.sh, on a free
#      loopback port; the four daemons, each with its own ACL user; real data put in through
#      their APIs (two audit chains, idempotency records, token families, rate-limit keys);
#   2. backup.sh as the `backup` user, then restore-test.sh on it once one of its keys has
#      expired: must pass (in both output formats) and leave the live Redis alone;
#   3. damaged backups, each must fail and name the check that caught it: a key missing
#      (data); a truncated RDB (files, restore); a truncated RDB whose manifest was made from
#      the truncated file (restore); an audit entry edited in Redis before the backup (audit).
# Prints what it does and "restore drill: N assertions held" (exit 0), or what went wrong.
#   sh tests/ops/restore-drill.sh [BUILD]             (default: build) from this checkout
#   sh tests/ops/restore-drill.sh --installed PREFIX  from an installed tree (make install
#       DESTDIR=... PREFIX=/usr gives PREFIX=<DESTDIR>/usr): its warden-* programs, its
#       share/warden/redis files and share/warden/scripts; run from a scratch directory,
#       so nothing of the checkout can stand in for what the install lacks.
set -u
cd "$(dirname "$0")/../.." || exit 2
if [ "${1:-}" = --installed ]; then
    prefix=$(cd "${2:?--installed PREFIX}" && pwd) || exit 2
    bin=$prefix/bin
    ops=$prefix/share/warden/scripts
    redisdir=$prefix/share/warden/redis
else
    build=${1:-build}
    bin=$(cd "$build/bin" 2>/dev/null && pwd) || { echo "restore-drill: no $build/bin (make all)" >&2; exit 2; }
    ops=$(pwd)/deploy/scripts
    redisdir=$(pwd)/deploy/redis
fi
. "$ops/common.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/warden-drill.XXXXXX") || exit 2
cd "$tmp" || exit 2
pids=
redis_pid=
cleanup() {
    trap - EXIT
    trap '' INT TERM # a second signal must not cut the cleanup short
    for p in $pids $redis_pid; do kill "$p" 2>/dev/null; done
    for p in $pids $redis_pid; do wait "$p" 2>/dev/null; done
    if [ -n "${KEEP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi # KEEP=1: to look
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

held=0
failed=0
assert() { # assert DESCRIPTION COMMAND...
    _what=$1
    shift
    if "$@"; then
        held=$((held + 1))
        echo "  ok    $_what"
    else
        failed=$((failed + 1))
        echo "  FAIL  $_what"
    fi
}
die() { echo "restore-drill: $*" >&2; exit 1; }

# ---- 1. the live Redis, as production runs it ----------------------------------------------
start_live() {
    for _try in 1 2 3 4 5; do
        port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
        acl=$tmp/acl-$_try
        sh "$redisdir/gen-acl.sh" "$acl" "127.0.0.1:$port" >/dev/null || return 1
        mkdir -p "$tmp/live"
        redis-server "$redisdir/redis.conf" --port "$port" --dir "$tmp/live" \
            --aclfile "$acl/users.acl" --logfile "$tmp/live/redis.log" --daemonize no &
        redis_pid=$!
        for _i in $(seq 50); do
            kill -0 "$redis_pid" 2>/dev/null || break
            if admin INFO server 2>/dev/null | grep -q "^process_id:$redis_pid"; then return 0; fi
            sleep 0.1
        done
        kill "$redis_pid" 2>/dev/null
        wait "$redis_pid" 2>/dev/null
        redis_pid=
    done
    return 1
}
admin() { redis-cli --no-auth-warning -u "$(cat "$acl/admin.redis-url")" "$@"; }

# start_daemon VAR NAME NAME=value...: start NAME with its own ACL user on a free port
# (retried if another process takes the port first), wait for /ready; the port goes to VAR.
start_daemon() {
    _var=$1
    _d=$2
    shift 2
    for _try in 1 2 3 4 5; do
        _p=$(free_port) || return 1
        env -i PATH="$PATH" LISTEN_ADDR="127.0.0.1:$_p" REDIS_URL_FILE="$acl/$_d.redis-url" "$@" \
            "$(warden_bin "$bin" "$_d")" >"$tmp/$_d-$_p.log" 2>&1 &
        _pid=$!
        pids="$pids $_pid"
        for _i in $(seq 50); do
            kill -0 "$_pid" 2>/dev/null || break
            if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$_p/ready")" = 200 ] &&
                kill -0 "$_pid" 2>/dev/null; then
                eval "$_var=$_p"
                return 0
            fi
            sleep 0.1
        done
        kill "$_pid" 2>/dev/null
    done
    cat "$tmp/$_d-$_p.log" >&2
    return 1
}
post() { # post PORT PATH JSON → status; body in $tmp/body
    curl -s -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: application/json' -d "$3" \
        "http://127.0.0.1:$1$2"
}
field() { jq -r "$1" "$tmp/body"; }
jqt() { jq -e "$@" >/dev/null 2>&1; } # jqt FILTER FILE: is it true?
echo "restore drill: live Redis from deploy/redis/redis.conf with per-daemon ACL users"
start_live || die "cannot start redis-server with deploy/redis/redis.conf: $(tail -n 3 "$tmp/live/redis.log")"
"$(warden_bin "$bin" auditd)" keygen | sed '/^public_key:/d' >"$tmp/audit-v1.pem"
env -i AUDIT_PRIVATE_KEY_V1_FILE="$tmp/audit-v1.pem" "$(warden_bin "$bin" auditd)" pubkeys >"$tmp/keyring.json" ||
    die "auditd pubkeys failed"
head -c 32 /dev/urandom | base64 >"$tmp/token-hash-key"
# "brief" keys expire 8 s after their check: the backup (taken well within that, even on a
# loaded machine) holds one that is gone by the restore, which waits for it to lapse.
printf '{"rules":[{"name":"drill","limit":100,"period":"1h"},{"name":"brief","limit":1,"period":"8s"}]}\n' \
    >"$tmp/rules.json"
start_daemon rl ratelimitd "RATELIMIT_RULES_FILE=$tmp/rules.json" || die "ratelimitd does not start"
start_daemon id idemd || die "idemd does not start"
start_daemon tk tokend "TOKEN_HASH_KEY_FILE=$tmp/token-hash-key" || die "tokend does not start"
start_daemon au auditd "AUDIT_PRIVATE_KEY_V1_FILE=$tmp/audit-v1.pem" || die "auditd does not start"
start_daemon au2 auditd AUDIT_CHAIN=payments "AUDIT_PRIVATE_KEY_V1_FILE=$tmp/audit-v1.pem" ||
    die "auditd (chain payments) does not start"

echo "restore drill: real data through the daemons"
ok=0
for i in 1 2 3 4 5 6; do
    [ "$(post "$au" /v1/events "{\"actor\":\"user:$i\",\"action\":\"drill.event\"}")" = 201 ] && ok=$((ok + 1))
done
for i in 1 2; do
    [ "$(post "$au2" /v1/events "{\"actor\":\"svc:$i\",\"action\":\"payment.settle\"}")" = 201 ] && ok=$((ok + 1))
done
for i in 1 2 3 4; do
    [ "$(post "$rl" /v1/check "{\"rule\":\"drill\",\"key\":\"client-$i\"}")" = 200 ] && ok=$((ok + 1))
done
brief_at=$(date +%s)
[ "$(post "$rl" /v1/check '{"rule":"brief","key":"client-1"}')" = 200 ] && ok=$((ok + 1))
for i in 1 2 3; do
    [ "$(post "$id" /v1/claim "{\"scope\":\"drill\",\"key\":\"order-$i\",\"fingerprint\":\"f$i\"}")" = 201 ] || continue
    lease=$(field .lease_token)
    [ "$i" = 3 ] && { ok=$((ok + 1)); continue; } # order-3 stays in progress
    [ "$(post "$id" /v1/complete "{\"scope\":\"drill\",\"key\":\"order-$i\",\"lease_token\":\"$lease\",\"status\":201,\"headers\":{\"Location\":\"/orders/$i\"},\"body\":\"{}\"}")" = 200 ] && ok=$((ok + 1))
done
ua='"device_id":"d-1","user_agent":"Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0 Safari/537.36"'
for u in alice bob carol; do
    [ "$(post "$tk" /v1/tokens "{\"user_id\":\"$u\",\"client_id\":\"web\",$ua}")" = 201 ] && ok=$((ok + 1))
    token=$(field .refresh_token)
    family=$(field .family_id)
done
[ "$(post "$tk" /v1/tokens/refresh "{\"refresh_token\":\"$token\",$ua}")" = 200 ] && ok=$((ok + 1))
[ "$(post "$tk" /v1/tokens/revoke "{\"family_id\":\"$family\"}")" = 200 ] && ok=$((ok + 1))
assert "21 writes through the daemons' APIs succeeded ($ok)" [ "$ok" = 21 ]
denials=$(admin ACL LOG)
assert "no ACL denial on the live Redis while the daemons worked $(echo $denials)" [ -z "$denials" ]

echo "restore drill: backup.sh as the backup user"
backup() { # backup OUTDIR → prints the backup dir
    sh "$ops/backup.sh" -u "$(cat "$acl/backup.redis-url")" -o "$1"
}
good=$(backup "$tmp/backups") || die "backup.sh failed"
assert "the backup has dump.rdb, the AOF directory and manifest.json" \
    eval '[ -f "$good/dump.rdb" ] && [ -d "$good/appendonly" ] && [ -f "$good/manifest.json" ]'
assert "the manifest counts 2 audit chains, 3 idempotency records and the token keys" \
    jqt '(.audit_heads | keys) == ["default", "payments"] and .audit_heads.default.seq >= 6
           and .keys.idem == 3 and .keys.ratelimit == 5 and .keys.tok == 7' "$good/manifest.json"

restore() { # restore BACKUP [--json] → exit status; output in $tmp/out
    sh "$ops/restore-test.sh" --keys "$tmp/keyring.json" --bin "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
}
restore_fails() { # restore_fails BACKUP: restore-test.sh --json on it must exit non-zero
    restore "$1" --json
    _st=$?
    assert "exits non-zero ($_st)" [ "$_st" != 0 ]
}
failed_checks() { jq -r '"failed: " + (.failed | join(" ")) + "; not run: " + (.not_run | join(" "))' "$tmp/out"; }
check_state() { jq -r --arg n "$1" '[.checks[] | select(.name == $n) | .ok] | all' "$tmp/out"; }

echo "restore drill: restore-test.sh on the good backup (once its brief rate-limit key expired)"
# The manifest check above saw the brief key (ratelimit 5); by now it has lapsed.
while [ "$(date +%s)" -le $((brief_at + 9)) ]; do sleep 0.5; done
restore "$good"
status=$?
sed 's/^/    | /' "$tmp/out"
assert "the good backup passes (exit 0)" [ "$status" = 0 ]
assert "the report ends with PASS" grep -q '^restore-test: PASS' "$tmp/out"
assert "the expired rate-limit key is allowed for, not reported lost" \
    grep -q 'ratelimit 4 (5 at the backup; 4..5 possible after TTLs)' "$tmp/out"
restore "$good" --json
assert "--json: ok is true, nothing failed, 13 checks ran" \
    jqt '.ok == true and .failed == [] and (.checks | length) == 13' "$tmp/out"
assert "the live Redis was not touched: none of the drill's keys are in it" \
    [ -z "$(admin --scan --pattern '*restore-drill*'; admin --scan --pattern 'restore-test:*')" ]

echo "restore drill: a key missing from the backup (the manifest counts one more)"
cp -R "$good" "$tmp/missing"
jq '.keys.idem += 1 | .ttl.idem.expiring[17] += 1' "$good/manifest.json" >"$tmp/missing/manifest.json"
restore_fails "$tmp/missing"
assert "names data as failed ($(failed_checks))" \
    eval '[ "$(failed_checks)" = "failed: data; not run: " ]'

echo "restore drill: a truncated RDB"
cp -R "$good" "$tmp/truncated"
size=$(wc -c <"$good/dump.rdb")
head -c $((size / 2)) "$good/dump.rdb" >"$tmp/truncated/dump.rdb"
restore_fails "$tmp/truncated"
assert "names files and restore as failed ($(failed_checks))" \
    eval '[ "$(check_state files)" = false ] && [ "$(check_state restore)" = false ]'

echo "restore drill: a truncated RDB that was hashed as it is (the manifest agrees with it)"
sha=$(sha256sum "$tmp/truncated/dump.rdb" | cut -c1-64)
jq --arg s "$sha" '.files["dump.rdb"] = $s' "$good/manifest.json" >"$tmp/truncated/manifest.json"
restore_fails "$tmp/truncated"
assert "files pass, restore fails: the load itself caught it ($(failed_checks))" \
    eval '[ "$(check_state files)" = true ] && [ "$(check_state restore)" = false ]'

echo "restore drill: the payments chain trimmed (audit-export --tiles, audit-trim), then backed up"
curl -s -o "$tmp/payments-cp.txt" "http://127.0.0.1:$au2/v1/checkpoint"
env -i PATH="$PATH" REDIS_URL="$(cat "$acl/auditor.redis-url")" "$(warden_bin "$bin" audit-export)" \
    --chain payments --tiles "$tmp/payments-archive" --checkpoint "$tmp/payments-cp.txt" >/dev/null
assert "audit-export --tiles wrote the archive as the auditor" [ -f "$tmp/payments-archive/checkpoint" ]
env -i PATH="$PATH" REDIS_URL="$(cat "$acl/audittrim.redis-url")" "$(warden_bin "$bin" audit-trim)" \
    --chain payments --tiles "$tmp/payments-archive" --keys "$tmp/keyring.json" --before-seq 3 \
    --auditd "http://127.0.0.1:$au2" >"$tmp/trim.out" 2>&1
assert "audit-trim removed seq 1..2 as the audittrim user ($(cat "$tmp/trim.out"))" \
    grep -q '^trimmed chain payments before seq 3: 2 entries' "$tmp/trim.out"
trimmed=$(backup "$tmp/backups-trimmed") || die "backup.sh failed"
restore "$trimmed" --json
assert "a backup of the trimmed chain passes ($(failed_checks))" \
    jqt '.ok == true and .failed == []' "$tmp/out"

echo "restore drill: an audit entry edited in Redis before the backup"
edited=$(admin EVAL "
    local e = redis.call('XRANGE', KEYS[1], '-', '+')
    redis.call('DEL', KEYS[1])
    local n = 0
    for _, x in ipairs(e) do
        local f = x[2]
        local body, c = string.gsub(f[2], '\"user:3\"', '\"user:9\"')
        f[2] = body
        n = n + c
        redis.call('XADD', KEYS[1], x[1], unpack(f))
    end
    return n" 1 'audit:{default}:log')
assert "one entry's body was edited in place ($edited)" [ "$edited" = 1 ]
tampered=$(backup "$tmp/backups-tampered") || die "backup.sh failed"
restore_fails "$tampered"
assert "names audit as failed ($(failed_checks))" [ "$(check_state audit)" = false ]
assert "audit's detail points at the edited entry" \
    jqt '.checks[] | select(.name == "audit") | .detail | test("default: audit-verify exit 1")' "$tmp/out"
assert "the other checks still pass (data, idempotency, tokens, scripts)" \
    eval '[ "$(check_state data)" = true ] && [ "$(check_state idempotency)" = true ] &&
          [ "$(check_state tokens)" = true ] && [ "$(check_state scripts)" = true ]'

echo
if [ "$failed" = 0 ]; then
    echo "restore drill: $held assertions held"
else
    echo "restore drill: $failed of $((held + failed)) assertions FAILED"
fi
[ "$failed" = 0 ]
