-- SPDX-License-Identifier: Apache-2.0
-- idem_complete: store the response of the work a lease holder finished.
-- KEYS[1] = idem:<scope>:<key>
-- ARGV[1] = lease_token   ARGV[2] = status   ARGV[3] = headers (canonical JSON text)
-- ARGV[4] = body          ARGV[5] = body_encoding ("utf8" | "base64")
-- Reply: {"completed", expires_in_ms} | {"lease_lost"} | {"not_found"}
-- Completing again with the same token and the same response is "completed" again; the
-- TTL set at creation is left as it is.

local key = KEYS[1]
local rec = redis.call('HMGET', key, 'state', 'lease_token', 'status', 'headers', 'body',
    'body_encoding')
if not rec[1] then
    return {'not_found'}
end
if rec[2] ~= ARGV[1] then
    return {'lease_lost'}
end
local pttl = redis.call('PTTL', key)
if pttl < 0 then pttl = 0 end
if rec[1] == 'completed' then
    if rec[3] == ARGV[2] and rec[4] == ARGV[3] and rec[5] == ARGV[4] and rec[6] == ARGV[5] then
        return {'completed', pttl}
    end
    return {'lease_lost'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', key, 'state', 'completed', 'status', ARGV[2], 'headers', ARGV[3],
    'body', ARGV[4], 'body_encoding', ARGV[5], 'completed_ms', string.format('%d', now))
return {'completed', pttl}
