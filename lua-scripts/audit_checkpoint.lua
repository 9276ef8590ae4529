-- SPDX-License-Identifier: Apache-2.0
-- audit_checkpoint: store a signed checkpoint, at most one per interval across instances.
-- KEYS[1] = audit:{c}:checkpoints (stream; entry id = start of the interval, in ms)
-- ARGV[1] = interval ms  ARGV[2] = head seq  ARGV[3] = head hash  ARGV[4] = signed note
-- Reply: {"stored", interval_start_ms} | {"exists", interval_start_ms}
-- The interval comes from Redis's clock, so instances on different hosts agree on it.

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local slot = now_ms - (now_ms % interval)
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] then
    local last_ms = tonumber(string.match(last[1][1], '^(%d+)'))
    if last_ms >= slot then
        return {'exists', slot}
    end
end
redis.call('XADD', KEYS[1], slot .. '-0', 'seq', ARGV[2], 'hash', ARGV[3], 'note', ARGV[4])
return {'stored', slot}
