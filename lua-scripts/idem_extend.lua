-- SPDX-License-Identifier: Apache-2.0
-- idem_extend: heartbeat; the holder's lease runs lease_ms from now (capped at the
-- record's own expiry).
-- KEYS[1] = idem:<scope>:<key>
-- ARGV[1] = lease_token   ARGV[2] = lease_ms
-- Reply: {"extended", lease_left_ms} | {"lease_lost"} | {"not_found"}

local key = KEYS[1]
local rec = redis.call('HMGET', key, 'state', 'lease_token')
if not rec[1] then
    return {'not_found'}
end
if rec[1] ~= 'in_progress' or rec[2] ~= ARGV[1] then
    return {'lease_lost'}
end
local pttl = redis.call('PTTL', key)
if pttl < 0 then pttl = 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local left = math.min(tonumber(ARGV[2]), pttl)
redis.call('HSET', key, 'lease_expires_ms', string.format('%d', now + left))
return {'extended', left}
