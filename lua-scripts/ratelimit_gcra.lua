-- SPDX-License-Identifier: Apache-2.0
-- ratelimit_gcra: one GCRA decision (token bucket of capacity burst, refilling at limit per
-- period), on the Redis clock. The key holds the theoretical arrival time (tat, in us).
-- KEYS[1] = ratelimit:<region>:<rule>:<key> (a hash; field tat)
-- ARGV[1] = period in us, ARGV[2] = limit, ARGV[3] = burst, ARGV[4] = cost,
-- ARGV[5] = 1 to consume, 0 to peek (decide for this cost, store nothing)
-- Reply: {allowed (0|1), remaining, reset_after_us, retry_after_us}
-- A denial consumes nothing (cost is all or nothing); the key expires once full again.

local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = period / limit
local tolerance = interval * burst
-- Times near 1.7e15 us carry ~0.25 us of float rounding and tat is stored in whole us:
-- allow 1 us of slack so that exactly `burst` fits and counts do not lose one to rounding.
local slack = 1

local tat = tonumber(redis.call('HGET', KEYS[1], 'tat'))
if not tat or tat < now then
    tat = now
end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance
if allow_at > now + slack then
    local remaining = math.floor((now - (tat - tolerance) + slack) / interval)
    if remaining < 0 then
        remaining = 0
    end
    return {0, remaining, math.ceil(tat - now), math.ceil(allow_at - now)}
end
if ARGV[5] == '1' then
    redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', new_tat))
    redis.call('PEXPIRE', KEYS[1], math.ceil((new_tat - now) / 1000))
else
    new_tat = tat
end
local remaining = math.floor((now - (new_tat - tolerance) + slack) / interval)
return {1, remaining, math.ceil(new_tat - now), 0}
