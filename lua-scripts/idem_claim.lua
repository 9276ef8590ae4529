-- SPDX-License-Identifier: Apache-2.0
-- idem_claim: claim an idempotency key, or say why not, in one atomic step.
-- KEYS[1] = idem:<scope>:<key>  (the record, a hash; nothing else is touched)
-- ARGV[1] = fingerprint of the request
-- ARGV[2] = a new lease token (random, chosen by the daemon)
-- ARGV[3] = lease_ms        ARGV[4] = record TTL in ms (set at creation only)
-- ARGV[5] = "takeover" | "block" (what a claim after a lease ran out gets)
-- ARGV[6] = attempt_id ("" when none)
-- Reply, by first element:
--   {"claimed"|"recovered", lease_token, lease_left_ms, expires_in_ms, recovered 0|1,
--    has_checkpoint 0|1, checkpoint}
--   {"replay", status, headers_json, body, body_encoding, completed_ms, expires_in_ms}
--   {"in_progress", lease_left_ms, expires_in_ms}
--   {"blocked", expires_in_ms}
--   {"mismatch"}

local key = KEYS[1]
local fp, token, lease_ms, ttl_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local mode, attempt = ARGV[5], ARGV[6]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function s(n) return string.format('%d', n) end

local rec = redis.call('HMGET', key, 'state', 'fingerprint', 'lease_token', 'lease_expires_ms',
    'attempt_id', 'checkpoint', 'claims')
if not rec[1] then
    -- A fresh record: its TTL starts now and is never extended afterwards.
    local lease_end = now + math.min(lease_ms, ttl_ms)
    redis.call('HSET', key, 'state', 'in_progress', 'fingerprint', fp, 'lease_token', token,
        'lease_expires_ms', s(lease_end), 'created_ms', s(now), 'attempt_id', attempt,
        'claims', '1')
    redis.call('PEXPIRE', key, ttl_ms)
    return {'claimed', token, lease_end - now, ttl_ms, 0, 0, ''}
end

-- The fingerprint comes first: a different request never learns anything else.
if rec[2] ~= fp then
    return {'mismatch'}
end
local pttl = redis.call('PTTL', key)
if pttl < 0 then pttl = 0 end
if rec[1] == 'completed' then
    local done = redis.call('HMGET', key, 'status', 'headers', 'body', 'body_encoding',
        'completed_ms')
    return {'replay', tonumber(done[1]), done[2], done[3], done[4], tonumber(done[5]), pttl}
end

-- In flight. A lease never runs past the record's own expiry.
local lease_end = tonumber(rec[4])
local new_end = now + math.min(lease_ms, pttl)
local has_cp = rec[6] and 1 or 0
if attempt ~= '' and attempt == rec[5] then
    -- The holder retrying a claim whose answer it lost: its own lease back, renewed.
    redis.call('HSET', key, 'lease_expires_ms', s(new_end))
    local recovered = tonumber(rec[7]) > 1 and 1 or 0
    return {'claimed', rec[3], new_end - now, pttl, recovered, has_cp, rec[6] or ''}
end
if lease_end > now then
    return {'in_progress', lease_end - now, pttl}
end
if mode ~= 'takeover' then
    return {'blocked', pttl}
end
redis.call('HSET', key, 'lease_token', token, 'lease_expires_ms', s(new_end),
    'attempt_id', attempt)
redis.call('HINCRBY', key, 'claims', 1)
return {'recovered', token, new_end - now, pttl, 1, has_cp, rec[6] or ''}
