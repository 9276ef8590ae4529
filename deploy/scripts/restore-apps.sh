# SPDX-License-Identifier: Apache-2.0
# Sourced by restore-checks.sh: the application checks — each daemon started against the
# restored copy on a free loopback port, /ready 200, one real operation.

# start_daemon NAME [NAME=value...]: start bin/NAME against the scratch copy with only the
# given settings (none of the caller's environment) and the flags in $daemon_flags, wait
# for /health. Sets DAEMON_PID and DAEMON_PORT; returns 1 (log in $tmp/NAME.log) if it
# does not come up.
start_daemon() {
    _d=$1
    _exe=$(warden_bin "$bin" "$_d")
    shift
    [ -x "$_exe" ] || { echo "$_exe: not found" >"$tmp/$_d.log"; return 1; }
    for _try in 1 2 3; do
        DAEMON_PORT=$(free_port) || return 1
        # shellcheck disable=SC2086 # $daemon_flags: no word, or flags without spaces
        env -i PATH="$PATH" LISTEN_ADDR="127.0.0.1:$DAEMON_PORT" REDIS_URL_FILE="$tmp/redis-url" \
            SHUTDOWN_TIMEOUT=2s LOG_LEVEL=warn "$@" "$_exe" ${daemon_flags:-} >"$tmp/$_d.log" 2>&1 &
        DAEMON_PID=$!
        pids="$pids $DAEMON_PID"
        for _i in $(seq 50); do
            kill -0 "$DAEMON_PID" 2>/dev/null || break
            if [ "$(http GET /health)" = 200 ]; then
                sleep 0.05
                # still alive: the answer was ours, not another server's on that port
                kill -0 "$DAEMON_PID" 2>/dev/null && return 0
            fi
            sleep 0.1
        done
        stop_daemon
    done
    return 1
}

stop_daemon() {
    kill "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
    pids=$(echo "$pids" | tr ' ' '\n' | grep -vx "$DAEMON_PID" | tr '\n' ' ')
}

# http METHOD PATH [JSON]: the status code; the body lands in $tmp/body.
http() {
    if [ $# -ge 3 ]; then
        curl -s -o "$tmp/body" -w '%{http_code}' --max-time 10 -X "$1" \
            -H 'Content-Type: application/json' -d "$3" "http://127.0.0.1:$DAEMON_PORT$2"
    else
        curl -s -o "$tmp/body" -w '%{http_code}' --max-time 10 -X "$1" "http://127.0.0.1:$DAEMON_PORT$2"
    fi
}
field() { jq -r "$1" "$tmp/body" 2>/dev/null; }

# ready: /ready answers 200 within 5 s.
ready() {
    for _i in $(seq 50); do
        [ "$(http GET /ready)" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}

# app_check NAME FN [NAME=value...]: start the daemon, wait for /ready, run FN (which sets
# app_detail and returns 0 or 1), record app:NAME.
app_check() {
    _a=$1
    _fn=$2
    _rn=app:${app_name:-$1}
    app_name=
    shift 2
    app_detail=
    if ! start_daemon "$_a" "$@"; then
        record "$_rn" fail "does not start: $(tail -n 2 "$tmp/$_a.log" | tr '\n' ' ' | cut -c1-200)"
        return
    fi
    if ! ready; then
        record "$_rn" fail "/ready is $(http GET /ready): $(head -c 200 "$tmp/body")"
    elif "$_fn"; then
        record "$_rn" pass "/ready 200; $app_detail"
    else
        record "$_rn" fail "/ready 200, but $app_detail"
    fi
    stop_daemon
}

op_ratelimitd() {
    _s=$(http POST /v1/check '{"rule":"default","key":"restore-drill"}')
    if [ "$_s" = 200 ] && [ "$(field .allowed)" = true ] && [ "$(field .source)" = redis ]; then
        app_detail="a rate-limit check was decided by Redis (remaining $(field .remaining))"
        return 0
    fi
    app_detail="POST /v1/check: $_s $(head -c 200 "$tmp/body")"
    return 1
}

op_idemd() {
    _key="restore-drill-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    _s=$(http POST /v1/claim "{\"scope\":\"restore-drill\",\"key\":\"$_key\",\"fingerprint\":\"drill\"}")
    _lease=$(field .lease_token)
    if [ "$_s" != 201 ] || [ "$(field .outcome)" != claimed ]; then
        app_detail="POST /v1/claim: $_s $(head -c 200 "$tmp/body")"
        return 1
    fi
    _s=$(http POST /v1/complete "{\"scope\":\"restore-drill\",\"key\":\"$_key\",\"lease_token\":\"$_lease\",\"status\":200,\"body\":\"drill\"}")
    if [ "$_s" != 200 ] || [ "$(field .outcome)" != completed ]; then
        app_detail="POST /v1/complete: $_s $(head -c 200 "$tmp/body")"
        return 1
    fi
    _s=$(http POST /v1/claim "{\"scope\":\"restore-drill\",\"key\":\"$_key\",\"fingerprint\":\"drill\"}")
    if [ "$_s" != 200 ] || [ "$(field .outcome)" != replay ] || [ "$(field .body)" != drill ]; then
        app_detail="the claim after complete: $_s $(head -c 200 "$tmp/body")"
        return 1
    fi
    app_detail="claimed, completed, and the next claim replayed the stored response"
    return 0
}

op_tokend() {
    _fp='"device_id":"restore-drill-device","user_agent":"restore-test/1.0"'
    _s=$(http POST /v1/tokens "{\"user_id\":\"restore-drill\",\"client_id\":\"drill\",$_fp}")
    _t=$(field .refresh_token)
    if [ "$_s" != 201 ] || [ -z "$_t" ]; then
        app_detail="POST /v1/tokens: $_s $(head -c 200 "$tmp/body")"
        return 1
    fi
    _s=$(http POST /v1/tokens/refresh "{\"refresh_token\":\"$_t\",$_fp}")
    if [ "$_s" != 200 ] || [ -z "$(field .refresh_token)" ] || [ "$(field .refresh_token)" = "$_t" ]; then
        app_detail="POST /v1/tokens/refresh: $_s $(head -c 200 "$tmp/body")"
        return 1
    fi
    app_detail="a token was issued and refreshed (rotated)"
    return 0
}

# auditd, once per chain, started as after a real restore: with --accept-chain (the restored
# chain is older than what production instances remember) and a state directory. The
# acceptance must be recorded on the restored head; then append an event and audit-verify
# the whole chain up to the new head with the auditors' keyring plus the drill key.
op_auditd() {
    _at=$(jq -r --arg c "$_chain" '.audit_heads[$c] // {seq: 0, hash: ("0" * 64)} | "\(.seq):\(.hash)"' "$manifest")
    http GET "/v1/events?from_seq=$((${_at%%:*} + 1))&limit=10" >/dev/null
    _acc=$(field '[.entries[].event | select(.action == "audit.chain_accepted")][0].metadata
        | "\(.accepted_seq):\(.accepted_hash) \(.via)"')
    if [ "$_acc" != "$_at --accept-chain" ]; then
        app_detail="chain $_chain: no audit.chain_accepted of the restored head $_at (found: $_acc)"
        return 1
    fi
    _s=$(http POST /v1/events '{"actor":"restore-test","action":"drill.append","outcome":"success"}')
    _seq=$(field .seq)
    if [ "$_s" != 201 ]; then
        app_detail="chain $_chain: POST /v1/events: $_s $(head -c 200 "$tmp/body")"
        return 1
    fi
    _head=$(http GET /v1/head >/dev/null && field '"\(.seq):\(.hash)"')
    _first=$(rc HGET "audit:{$_chain}:trim" first_seq) # trimmed: from where Redis holds it
    _v=$(audit_verify --chain "$_chain" --keys "$tmp/drill-keyring.json" --from-seq "${_first:-1}" \
        --json --expect-head "$_head" 2>"$tmp/verify.err")
    _rc=$?
    if [ "$_rc" != 0 ] || [ "${_head%%:*}" != "$_seq" ]; then
        app_detail="chain $_chain: appended seq $_seq, head $_head, audit-verify exit $_rc $(printf '%s' "$_v" | head -c 200)"
        return 1
    fi
    _kept=$(cat "$tmp/audit-state-$_chain"/audit-*.json 2>/dev/null | jq -r '"\(.seq):\(.hash)"')
    if [ "$_kept" != "$_head" ]; then
        app_detail="chain $_chain: the state file holds $_kept, not the head $_head"
        return 1
    fi
    app_detail="chain $_chain: --accept-chain recorded the restored head (seq ${_at%%:*}), appended seq $_seq, the chain still verifies"
    return 0
}

# The drill key: a new version above every one the chains or the keyring know, so it can
# never be mistaken for a production key; its public half joins the keyring for the check.
drill_key() {
    _max=0
    for _c in $(printf '%s' "$restored" | jq -r '.audit_heads | keys[]'); do
        for _v in $(rc HKEYS "audit:{$_c}:keys"); do
            _v=${_v#v}
            case $_v in '' | *[!0-9]*) continue ;; esac
            [ "$_v" -gt "$_max" ] && _max=$_v
        done
    done
    if [ -n "$keyring" ]; then
        for _v in $(jq -r '.keys[].version' "$keyring"); do
            _v=${_v#v}
            case $_v in '' | *[!0-9]*) continue ;; esac
            [ "$_v" -gt "$_max" ] && _max=$_v
        done
    fi
    drill_version=$((_max + 1))
    (umask 077 && "$(warden_bin "$bin" auditd)" keygen | sed '/^public_key:/d' >"$tmp/drill.pem") || return 1
    env -i PATH="$PATH" "AUDIT_PRIVATE_KEY_V${drill_version}_FILE=$tmp/drill.pem" "$(warden_bin "$bin" auditd)" pubkeys \
        >"$tmp/drill-pub.json" 2>/dev/null || return 1
    if [ -n "$keyring" ]; then
        jq -s '{keys: (.[0].keys + .[1].keys)}' "$keyring" "$tmp/drill-pub.json" >"$tmp/drill-keyring.json"
    else
        cp "$tmp/drill-pub.json" "$tmp/drill-keyring.json"
    fi
}

check_apps() {
    app_check ratelimitd op_ratelimitd CLOUD_RUN_REGION=restore-drill
    app_check idemd op_idemd
    head -c 32 /dev/urandom | base64 >"$tmp/token-hash-key"
    app_check tokend op_tokend "TOKEN_HASH_KEY_FILE=$tmp/token-hash-key"
    if [ ! -x "$(warden_bin "$bin" auditd)" ] || ! drill_key; then
        record app:auditd fail "cannot make a drill signing key with $(warden_bin "$bin" auditd)"
        return
    fi
    _chains=$(printf '%s' "$restored" | jq -r '.audit_heads | keys[]')
    for _chain in ${_chains:-default}; do
        app_name=auditd:$_chain
        mkdir -m 700 "$tmp/audit-state-$_chain"
        daemon_flags=--accept-chain
        app_check auditd op_auditd "AUDIT_CHAIN=$_chain" AUDIT_CHECKPOINT_INTERVAL=0 \
            "AUDIT_PRIVATE_KEY_V${drill_version}_FILE=$tmp/drill.pem" \
            "AUDIT_STATE_DIR=$tmp/audit-state-$_chain"
        daemon_flags=
    done
}
