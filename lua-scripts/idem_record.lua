-- SPDX-License-Identifier: Apache-2.0
-- idem_record: what a record says, without its lease token or stored body.
-- KEYS[1] = idem:<scope>:<key>
-- ARGV: none
-- Reply: {"not_found"} | {"found", state, fingerprint, created_ms, lease_left_ms,
--   status (-1: none), has_checkpoint 0|1, checkpoint, claims, expires_in_ms,
--   completed_ms (-1: none)}
-- Read-only; times are Redis's own.

local key = KEYS[1]
local rec = redis.call('HMGET', key, 'state', 'fingerprint', 'created_ms', 'lease_expires_ms',
    'status', 'checkpoint', 'claims', 'completed_ms')
if not rec[1] then
    return {'not_found'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pttl = redis.call('PTTL', key)
if pttl < 0 then pttl = 0 end
local left = tonumber(rec[4]) - now
if left < 0 then left = 0 end
return {'found', rec[1], rec[2], tonumber(rec[3]), left, tonumber(rec[5] or '-1'),
    rec[6] and 1 or 0, rec[6] or '', tonumber(rec[7]), pttl, tonumber(rec[8] or '-1')}
