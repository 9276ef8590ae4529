-- audit_append: append a batch of prepared entries to a chain, compare-and-set on its head.
-- KEYS[1] = audit:{c}:head  KEYS[2] = audit:{c}:log  KEYS[3] = audit:{c}:ids (zset id -> ms)
-- KEYS[4] = audit:{c}:idseq (hash id -> seq)  KEYS[5] = audit:{c}:keys (hash version -> seq)
-- ARGV[1] = expected head seq  ARGV[2] = expected head hash  ARGV[3] = dedup window ms
-- ARGV[4] = key version of the batch  ARGV[5] = "1" if entry 1 is its audit.key_activated
-- ARGV[6] = n, then n times: event_id ("" for none), body, hash, sig
-- Reply: {"ok", last_seq} | {"conflict", head_seq, head_hash}
--      | {"duplicate", index1, seq1, index2, seq2, ...} (1-based indexes into the batch)
--      | {"need_activation"} | {"activated"} | {"broken", head_seq, last_log_id}
-- Nothing is written unless the reply is "ok": every check runs before the first write,
-- because Redis does not roll a script back.

local head = redis.call('HMGET', KEYS[1], 'seq', 'hash')
local head_seq = tonumber(head[1] or '0')
local head_hash = head[2] or string.rep('0', 64)
if head_seq ~= tonumber(ARGV[1]) or head_hash ~= ARGV[2] then
    return {'conflict', head_seq, head_hash}
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local last_id = (last[1] and last[1][1]) or '0-0'
local want_id = head_seq > 0 and (head_seq .. '-0') or '0-0'
if last_id ~= want_id then
    return {'broken', head_seq, last_id}
end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[3])
local n = tonumber(ARGV[6])
local dups = {}
for i = 1, n do
    local id = ARGV[7 + (i - 1) * 4]
    if id ~= '' then
        local at = redis.call('ZSCORE', KEYS[3], id)
        local seq = redis.call('HGET', KEYS[4], id)
        if at and seq and tonumber(at) > now_ms - window then
            dups[#dups + 1] = i
            dups[#dups + 1] = tonumber(seq)
        end
    end
end
if #dups > 0 then
    table.insert(dups, 1, 'duplicate')
    return dups
end
local known = redis.call('HEXISTS', KEYS[5], ARGV[4]) == 1
if ARGV[5] == '1' and known then
    return {'activated'}
end
if ARGV[5] ~= '1' and not known then
    return {'need_activation'}
end

local seq = head_seq
local hash = head_hash
for i = 1, n do
    local base = 7 + (i - 1) * 4
    seq = seq + 1
    hash = ARGV[base + 2]
    redis.call('XADD', KEYS[2], seq .. '-0', 'body', ARGV[base + 1], 'hash', hash,
        'sig', ARGV[base + 3])
    if ARGV[base] ~= '' then
        redis.call('ZADD', KEYS[3], now_ms, ARGV[base])
        redis.call('HSET', KEYS[4], ARGV[base], seq)
    end
end
redis.call('HSETNX', KEYS[5], ARGV[4], head_seq + 1)
redis.call('HSET', KEYS[1], 'seq', seq, 'hash', hash)
-- Forget a bounded number of event ids older than the window on every append.
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now_ms - window, 'LIMIT', 0, 64)
for _, id in ipairs(old) do
    redis.call('ZREM', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
end
return {'ok', seq}
