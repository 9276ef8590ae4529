-- SPDX-License-Identifier: Apache-2.0
-- ratelimit_sliding: one sliding-window decision (Cloudflare's estimate
-- prev * (period - elapsed) / period + current), on the Redis clock, both windows in one hash.
-- KEYS[1] = ratelimit:<region>:<rule>:<key> (a hash; fields w = window index, c = its count,
-- p = the previous window's count)
-- ARGV[1] = period in us, ARGV[2] = limit, ARGV[3] = cost, ARGV[4] = 1 to consume, 0 to peek
-- Reply: {allowed (0|1), remaining, reset_after_us, retry_after_us}

local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = math.floor(now / period)
local elapsed = now - window * period

local f = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w, cur, prev = tonumber(f[1]), tonumber(f[2]) or 0, tonumber(f[3]) or 0
if w ~= window then
    if w == window - 1 then
        prev = cur
    else
        prev = 0
    end
    cur = 0
end
local estimate = prev * (period - elapsed) / period + cur
local allowed = estimate + cost <= limit
if allowed and ARGV[4] == '1' then
    cur = cur + cost
    estimate = estimate + cost
    redis.call('HSET', KEYS[1], 'w', window, 'c', cur, 'p', prev)
    redis.call('PEXPIRE', KEYS[1], math.ceil((2 * period - elapsed) / 1000))
end
local remaining = math.floor(limit - estimate)
if remaining < 0 then
    remaining = 0
end
local reset_after = 0
if cur > 0 then
    reset_after = 2 * period - elapsed
elseif prev > 0 then
    reset_after = period - elapsed
end
if allowed then
    return {1, remaining, reset_after, 0}
end
-- Denied: how long until estimate + cost <= limit with no other traffic.
local retry
if cur + cost <= limit then
    retry = (period - elapsed) - (limit - cur - cost) * period / prev
else
    retry = period - elapsed
    if cur > limit - cost then
        retry = retry + period - (limit - cost) * period / cur
    end
end
return {0, remaining, reset_after, math.ceil(retry)}
