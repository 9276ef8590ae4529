# SPDX-License-Identifier: Apache-2.0
# Sourced by restore-test.sh: one function per check. Each calls `record NAME pass|fail
# DETAIL`. They share: $backup $manifest $tmp $bin $scripts $keyring, and after
# check_restore the scratch Redis ($REDIS_PORT, REDISCLI_AUTH) and $restored (its census).

rc() { redis-cli -p "$REDIS_PORT" "$@"; }
now_ms() { date +%s%3N; }

# ---- files: every file of the manifest, with its SHA-256 -------------------------------
check_files() {
    _bad=
    _n=0
    for _f in $(jq -r '.files | keys[]' "$manifest"); do
        _n=$((_n + 1))
        _want=$(jq -r --arg f "$_f" '.files[$f]' "$manifest")
        if [ ! -f "$backup/$_f" ]; then
            _bad="$_bad $_f: missing;"
        elif [ "$(sha256sum "$backup/$_f" | cut -c1-64)" != "$_want" ]; then
            _bad="$_bad $_f: SHA-256 differs;"
        fi
    done
    for _f in $(cd "$backup" && find . -type f ! -name manifest.json | sed 's|^\./||'); do
        jq -e --arg f "$_f" '.files | has($f)' "$manifest" >/dev/null || _bad="$_bad $_f: not in the manifest;"
    done
    jq -e '.files | has("dump.rdb")' "$manifest" >/dev/null || _bad="$_bad dump.rdb: not in the manifest;"
    if [ -z "$_bad" ]; then
        record files pass "$_n files, each with the SHA-256 of the manifest"
    else
        record files fail "${_bad# }"
    fi
}

# ---- restore: a copy of the RDB into a scratch redis-server ---------------------------------
check_restore() {
    mkdir -p "$tmp/redis"
    cp "$backup/dump.rdb" "$tmp/redis/dump.rdb" 2>/dev/null || {
        record restore fail "cannot copy dump.rdb"
        return 1
    }
    load_ms=$(now_ms)
    # redis-server prints its RDB check to stdout when a load fails: keep it out of the report
    if ! scratch_redis_start "$tmp/redis" --dbfilename dump.rdb >>"$tmp/redis/stdout" 2>&1; then
        record restore fail "redis-server refuses dump.rdb: $(grep -v '^$' "$tmp/redis/redis.log" | tail -n 1 | cut -c1-200)"
        return 1
    fi
    if ! scratch_protect || ! census_wait_loaded -p "$REDIS_PORT"; then
        record restore fail "dump.rdb did not finish loading: $(tail -n 1 "$tmp/redis/redis.log")"
        return 1
    fi
    restored=$(census_json -p "$REDIS_PORT")
    case $restored in "{"*"}") ;; *) record restore fail "cannot read the restored data: $restored"; return 1 ;; esac
    record restore pass "dump.rdb ($(wc -c <"$tmp/redis/dump.rdb" | tr -d ' ') bytes) loaded into a scratch redis-server on 127.0.0.1:$REDIS_PORT in $(($(now_ms) - load_ms)) ms"
    printf 'redis://:%s@127.0.0.1:%s/0\n' "$REDISCLI_AUTH" "$REDIS_PORT" >"$tmp/redis-url"
}

# ---- data: key counts per prefix against the manifest and its TTL profile --------------------
# A key with a TTL of t at the census may be gone by now. Bucket b holds TTLs in
# (2^(b-1) s, 2^b s] (b = 0: up to 1 s): certainly still there if its lower bound is past
# the time elapsed at this census, possibly there if its upper bound was past the time
# elapsed when the copy loaded. CLOCK_SKEW_S allows for the two hosts' clocks.
check_data() {
    _out=$(jq -n -r --argjson m "$(cat "$manifest")" --argjson r "$restored" \
        --argjson load "$load_ms" --argjson skew "${CLOCK_SKEW_S:-2}" '
        def lower(b): if b == 0 then 0 else pow(2; b - 1) end;
        def upper(b): if b == 31 then 1e18 else pow(2; b) end;
        (($load - $m.time_ms) / 1000) as $el | (($r.time_ms - $m.time_ms) / 1000) as $ec
        | [($m.keys + $r.keys) | keys[]] | unique | map(
            . as $p | ($m.ttl[$p] // {none: 0, expiring: []}) as $t | ($t.expiring) as $e
            | ($t.none + ([range(0; $e | length) | select(lower(.) >= $ec + $skew) | $e[.]] | add // 0)) as $min
            | ($t.none + ([range(0; $e | length) | select(upper(.) > $el - $skew) | $e[.]] | add // 0)) as $max
            | ($r.keys[$p] // 0) as $n | ($r.ttl[$p].none // 0) as $rn
            | {ok: ($n >= $min and $n <= $max and $rn == $t.none),
               text: (if $rn != $t.none then "\($p): \($rn) keys without a TTL, the manifest has \($t.none)"
                      elif $n < $min or $n > $max then "\($p): \($n) keys, expected \(if $min == $max then $min else "\($min)..\($max)" end) (the manifest has \($m.keys[$p] // 0))"
                      elif $min == $max then "\($p) \($n)"
                      else "\($p) \($n) (\($m.keys[$p] // 0) at the backup; \($min)..\($max) possible after TTLs)" end)})
        | (if all(.ok) then "pass" else "fail" end) + "\t"
          + (if all(.ok) then "key counts per prefix as in the manifest: " + (map(.text) | join(", "))
             else map(select(.ok | not) | .text) | join("; ") end)')
    record data "${_out%%	*}" "${_out#*	}"
}

# ---- audit: every chain verifies and ends at the manifest's head ------------------------------
# audit_verify ARGS...: audit-verify on the scratch copy as a read-only user that can read
# the audit keys and nothing else; its URL goes in REDIS_URL, never on the command line.
audit_verify() {
    REDIS_URL="redis://restore-verify:$verify_pw@127.0.0.1:$REDIS_PORT/0" "$(warden_bin "$bin" audit-verify)" "$@"
}
make_verify_user() {
    verify_pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    printf '>%s' "$verify_pw" | rc -x ACL SETUSER restore-verify on '~audit:*' +auth +select +ping \
        +hget +hmget +hgetall +xrange +xrevrange +getrange >/dev/null
}

check_audit() {
    make_verify_user
    _chains=$(jq -r '.audit_heads | keys[]' "$manifest")
    _now=$(printf '%s' "$restored" | jq -r '.audit_heads | keys[]')
    if [ "$_chains" != "$_now" ]; then
        record audit fail "chains restored: [$(echo $_now)], the manifest has [$(echo $_chains)]"
        return
    fi
    if [ -z "$_chains" ]; then
        record audit pass "no audit chain in this backup"
        return
    fi
    if [ -z "$keyring" ]; then
        record audit fail "$(echo "$_chains" | wc -l | tr -d ' ') chains to verify but no keyring: pass --keys keyring.json"
        return
    fi
    _bad=
    _ok=
    for _c in $_chains; do
        _want=$(jq -r --arg c "$_c" '.audit_heads[$c] | "\(.seq):\(.hash)"' "$manifest")
        _got=$(printf '%s' "$restored" | jq -r --arg c "$_c" '.audit_heads[$c] | "\(.seq):\(.hash)"')
        # A chain trimmed by audit-trim is verified from where Redis holds it (the entries
        # before are in the archive, checked apart with audit-verify --tiles).
        _first=$(rc HGET "audit:{$_c}:trim" first_seq)
        _v=$(audit_verify --chain "$_c" --keys "$keyring" --json --from-seq "${_first:-1}" \
            --expect-head "$_want" 2>"$tmp/verify.err")
        _rc=$?
        if [ "$_got" != "$_want" ]; then
            _bad="$_bad $_c: head ${_got%%:*}:${_got#*:} differs from the manifest's ${_want%%:*}:${_want#*:};"
        elif [ "$_rc" != 0 ]; then
            _bad="$_bad $_c: audit-verify exit $_rc $(printf '%s' "$_v" | jq -c '{first_bad_seq, reason}' 2>/dev/null || head -c 200 "$tmp/verify.err");"
        else
            _ok="$_ok $_c (seq ${_want%%:*})"
        fi
    done
    if [ -z "$_bad" ]; then
        record audit pass "audit-verify passes and the head equals the manifest's:$_ok"
    else
        record audit fail "${_bad# }"
    fi
}

# ---- idempotency: every record parses and carries a TTL ---------------------------------------
# Key names are printed as a short SHA-1: they hold callers' idempotency keys.
IDEM_LUA='
local n, bad, ex = 0, 0, {}
local function flag(k, why)
    bad = bad + 1
    if #ex < 5 then ex[#ex + 1] = "idem key " .. string.sub(redis.sha1hex(k), 1, 12) .. ": " .. why end
end
local function int(v) return v and string.match(v, "^%-?%d+$") ~= nil end
local cursor = "0"
repeat
    local r = redis.call("SCAN", cursor, "MATCH", "idem:*", "COUNT", 1000)
    cursor = r[1]
    for _, k in ipairs(r[2]) do
        n = n + 1
        local t = redis.call("TYPE", k).ok
        if t ~= "hash" then flag(k, "a " .. t .. ", not a hash") else
            local f = redis.call("HMGET", k, "state", "fingerprint", "lease_token", "created_ms",
                "lease_expires_ms", "claims", "status", "headers", "body_encoding", "completed_ms")
            local why
            if f[1] ~= "in_progress" and f[1] ~= "completed" then why = "state " .. tostring(f[1])
            elseif not f[2] or f[2] == "" then why = "no fingerprint"
            elseif not f[3] or f[3] == "" then why = "no lease_token"
            elseif not (int(f[4]) and int(f[5]) and int(f[6])) then why = "created_ms, lease_expires_ms or claims not an integer"
            elseif f[1] == "completed" then
                local s = tonumber(f[7])
                local ok, h = pcall(cjson.decode, f[8] or "")
                if not int(f[7]) or s < 100 or s > 599 then why = "status " .. tostring(f[7])
                elseif not ok or type(h) ~= "table" then why = "headers are not a JSON object"
                elseif f[9] ~= "utf8" and f[9] ~= "base64" then why = "body_encoding " .. tostring(f[9])
                elseif not int(f[10]) then why = "completed_ms not an integer"
                elseif redis.call("HEXISTS", k, "body") == 0 then why = "no body" end
            end
            if not why and redis.call("PTTL", k) < 0 then why = "no TTL" end
            if why then flag(k, why) end
        end
    end
until cursor == "0"
return n .. "\t" .. bad .. "\t" .. table.concat(ex, "; ")
'

# run_check NAME LUA WHAT: record NAME from a check script's "n<TAB>bad<TAB>examples".
run_check() {
    _r=$(rc EVAL "$2" 0 2>&1)
    _n=$(printf '%s' "$_r" | cut -f1)
    _b=$(printf '%s' "$_r" | cut -f2)
    case "$_n$_b" in
    '' | *[!0-9]*) record "$1" fail "the check did not run: $(printf '%s' "$_r" | head -c 200)" ;;
    *)
        if [ "$_b" = 0 ]; then
            record "$1" pass "$_n $3"
        else
            record "$1" fail "$_b of $_n keys are bad: $(printf '%s' "$_r" | cut -f3)"
        fi
        ;;
    esac
}

check_idempotency() {
    run_check idempotency "$IDEM_LUA" "records parse (state, fingerprint, lease, response) and carry a TTL"
}

# ---- tokens: families complete, used sets and user indexes consistent ------------------------
# The fields token_issue.lua writes; those that must not be empty; those that are numbers.
TOKENS_LUA='
local fields = {"user_id", "client_id", "scope", "device_id", "ua_hash", "ua_product", "ua_major",
    "tls", "fingerprint", "state", "revoked_reason", "current", "parent", "grace_until_ms",
    "created_ms", "absolute_expiry_ms", "expires_ms", "last_used_ms", "rotations"}
local filled = {user_id = 1, client_id = 1, device_id = 1, ua_hash = 1, fingerprint = 1, current = 1}
local number = {grace_until_ms = 1, created_ms = 1, absolute_expiry_ms = 1, expires_ms = 1,
    last_used_ms = 1, rotations = 1}
local n, bad, ex = 0, 0, {}
local function flag(k, why)
    bad = bad + 1
    if #ex < 5 then ex[#ex + 1] = k .. ": " .. why end
end
local function family(k)
    if redis.call("TYPE", k).ok ~= "hash" then return "not a hash" end
    local v = redis.call("HMGET", k, unpack(fields))
    for i, name in ipairs(fields) do
        if not v[i] then return "no " .. name end
        if filled[name] and v[i] == "" then return name .. " is empty" end
        if number[name] and not string.match(v[i], "^%d+$") then return name .. " is not a number" end
    end
    if v[10] ~= "active" and v[10] ~= "revoked" then return "state " .. v[10] end
end
local cursor = "0"
repeat
    local r = redis.call("SCAN", cursor, "MATCH", "tok:*", "COUNT", 1000)
    cursor = r[1]
    for _, k in ipairs(r[2]) do
        n = n + 1
        local fam, used, user = string.match(k, "^tok:{(.+)}:f$"), string.match(k, "^tok:{(.+)}:used$"),
            string.match(k, "^tok:user:{(.+)}$")
        local why
        if fam then why = family(k)
        elseif used then
            if redis.call("TYPE", k).ok ~= "set" then why = "not a set"
            elseif redis.call("EXISTS", "tok:{" .. used .. "}:f") == 0 then why = "used set of a family that does not exist" end
        elseif user then
            if redis.call("TYPE", k).ok ~= "zset" then why = "not a sorted set" end
        else why = "not a tokend key" end
        if not why and redis.call("PTTL", k) < 0 then why = "no TTL" end
        if why then flag(k, why) end
    end
until cursor == "0"
return n .. "\t" .. bad .. "\t" .. table.concat(ex, "; ")
'

check_tokens() {
    run_check tokens "$TOKENS_LUA" "token keys: families complete, used sets of existing families, all with a TTL"
}

# ---- write: write, read back, delete, confirm gone --------------------------------------------
check_write() {
    _k="restore-test:probe:$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    _v="written at $(now_ms)"
    _set=$(rc SET "$_k" "$_v")
    _get=$(rc GET "$_k")
    _del=$(rc DEL "$_k")
    _ex=$(rc EXISTS "$_k")
    if [ "$_set" = OK ] && [ "$_get" = "$_v" ] && [ "$_del" = 1 ] && [ "$_ex" = 0 ]; then
        record write pass "a scratch key was written, read back, deleted and is gone"
    else
        record write fail "SET: $_set, GET: ${_get:-nil}, DEL: $_del, EXISTS after DEL: $_ex"
    fi
}

# ---- scripts: every lua-scripts/*.lua loads and runs ------------------------------------------
# run_script NAME NKEYS KEYS... ARGS...: load it (Redis's SHA-1 must be the file's) and run it
# once; any reply but an error is a run.
run_script() {
    _name=$1
    shift
    echo "$_name" >>"$tmp/scripts.ran"
    _file=$scripts/$_name.lua
    [ -f "$_file" ] || { _sbad="$_sbad $_name: no such file;"; return; }
    _sha=$(rc -x SCRIPT LOAD <"$_file")
    if [ "$_sha" != "$(sha1sum "$_file" | cut -c1-40)" ]; then
        _sbad="$_sbad $_name: SCRIPT LOAD answered $(printf '%s' "$_sha" | head -c 100);"
        return
    fi
    _out=$(rc --no-raw EVALSHA "$_sha" "$@" 2>&1)
    case $_out in
    "(error)"*) _sbad="$_sbad $_name: $(printf '%s' "$_out" | head -c 160);" ;;
    *) _sok=$((_sok + 1)) ;;
    esac
}

# One run per script, in an order that makes each do real work (claim before complete, issue
# before refresh). A script added to lua-scripts/ without a line here fails the check.
drill_scripts() {
    k="restore-test:{drill}"
    z=0000000000000000000000000000000000000000000000000000000000000000
    run_script ratelimit_gcra 1 "$k:rl-gcra" 1000000 10 10 1 1
    run_script ratelimit_sliding 1 "$k:rl-sliding" 1000000 10 1 1
    run_script idem_claim 1 "$k:idem" fp-drill lease-drill 30000 60000 takeover attempt-drill
    run_script idem_checkpoint 1 "$k:idem" lease-drill step-1
    run_script idem_extend 1 "$k:idem" lease-drill 30000
    run_script idem_record 1 "$k:idem"
    run_script idem_complete 1 "$k:idem" lease-drill 200 '{}' drill utf8
    run_script idem_release 1 "$k:idem" lease-drill
    run_script audit_append 5 "$k:head" "$k:log" "$k:ids" "$k:idseq" "$k:keys" 0 "$z" 86400000 v1 0 \
        0 "$z" "" 0 0 0 "" "" 0
    run_script audit_trim 2 "$k:log" "$k:trim" 2 1
    run_script audit_checkpoint 1 "$k:checkpoints" 60000 0 "$z" drill-note
    run_script token_issue 1 "$k:f" user-drill web openid device-drill ua-hash "" "" "" fp-drill \
        hash-1 60000 120000
    run_script token_user_add 1 "$k:user" family-drill 1 100 60000
    run_script token_refresh 2 "$k:f" "$k:used" hash-1 "" device-drill ua-hash "" "" "" fp-drill \
        upgrade soft reject hash-2 sealed-2 0 60000
    run_script token_revoke 2 "$k:f" "$k:used" family "" "" "" drill
}

check_scripts() {
    _sbad=
    _sok=0
    : >"$tmp/scripts.ran"
    drill_scripts
    for _f in "$scripts"/*.lua; do
        [ -f "$_f" ] || continue
        _n=$(basename "$_f" .lua)
        grep -qx "$_n" "$tmp/scripts.ran" || _sbad="$_sbad $_n: no drill run for it in restore-checks.sh;"
    done
    # The scratch keys go again; nothing of the drill may stay behind.
    for _k in $(rc --scan --pattern 'restore-test:*'); do rc DEL "$_k" >/dev/null; done
    _left=$(rc --scan --pattern 'restore-test:*' | wc -l | tr -d ' ')
    [ "$_left" = 0 ] || _sbad="$_sbad $_left scratch keys could not be deleted;"
    if [ -z "$_sbad" ]; then
        record scripts pass "$_sok scripts loaded (SHA-1 as their files') and ran on scratch keys, which are gone again"
    else
        record scripts fail "${_sbad# }"
    fi
}

# ---- app: every daemon against the restored copy -----------------------------------------------
. "$here/restore-apps.sh"
