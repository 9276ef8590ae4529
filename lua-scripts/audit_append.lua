-- SPDX-License-Identifier: Apache-2.0
-- audit_append: append a batch of prepared entries to a chain and their hashes to its Merkle
-- tree, compare-and-set on its head.
-- KEYS[1] = audit:{c}:head  KEYS[2] = audit:{c}:log  KEYS[3] = audit:{c}:ids (zset id -> ms)
-- KEYS[4] = audit:{c}:idseq (hash id -> seq)  KEYS[5] = audit:{c}:keys (hash version -> seq)
-- KEYS[5+i] = the tile key of the i-th tile append, audit:{c}:tile:<level>:<index>
-- ARGV[1] = expected head seq  ARGV[2] = expected head hash  ARGV[3] = dedup window ms
-- ARGV[4] = key version of the batch  ARGV[5] = "1" if entry 1 is its audit.key_activated
-- ARGV[6] = floor seq  ARGV[7] = floor hash: the highest entry the calling instance has
--           seen ("0" and 64 zeros: none); the chain must still hold it
-- ARGV[8] = floor root: hex of the tree's root at the floor seq ("": not known); a tree
--           smaller than the floor, or with another root at its size, is refused too
-- ARGV[9] = n entries  ARGV[10] = t tile appends
-- ARGV[11] = expected tree size  ARGV[12] = the tree's frontier after the batch (raw)
-- ARGV[13] = the tree's root after the batch (hex)  ARGV[14] = the tree's size after it
-- then n times: event_id ("" for none), body, hash, sig
-- then t times: the length in bytes the tile must have, the hashes to append to it
-- The leaves appended are those of the entries after the expected tree size: a chain from
-- before the tree catches up with n = 0 (up to its head), then a batch adds its own; after
-- a batch (n > 0) the tree has exactly as many leaves as the chain has entries.
-- Reply: {"ok", last_seq}
--      | {"conflict", head_seq, head_hash, tsize, root, frontier} (head or tree moved on)
--      | {"duplicate", index1, seq1, index2, seq2, ...} (1-based indexes into the batch)
--      | {"need_activation"} | {"activated"} | {"broken", head_seq, last_log_id}
--      | {"rolled_back", head_seq, head_hash}  (the head or the tree is below the floor)
--      | {"diverged", head_seq, head_hash}     (another hash or root at the floor's seq)
--      | {"tree_broken", i, length}           (tile append i does not fit the stored tile;
--                                              i = 0: the new tree size does not fit)
-- Nothing is written unless the reply is "ok": every check runs before the first write,
-- because Redis does not roll a script back. The tree's hashes are computed by the caller
-- (no SHA-256 here); what makes it one tree is that they go in with this compare-and-set.

local head = redis.call('HMGET', KEYS[1], 'seq', 'hash', 'tsize', 'root', 'frontier')
local head_seq = tonumber(head[1] or '0')
local head_hash = head[2] or string.rep('0', 64)
local tsize = tonumber(head[3] or '0')
local root = head[4] or ''
-- The floor first: a chain that lost (FLUSHALL, a Redis restarted empty, an older backup)
-- or replaced what the caller already saw must not be appended to, even when the head is
-- the one the caller expects. Checked here, in the same call, so it costs no round trip.
local floor_seq = tonumber(ARGV[6])
if floor_seq > 0 then
    if head_seq < floor_seq then
        return {'rolled_back', head_seq, head_hash}
    end
    local at = head_hash
    if head_seq > floor_seq then
        at = nil
        local e = redis.call('XRANGE', KEYS[2], floor_seq .. '-0', floor_seq .. '-0')
        local f = (e[1] and e[1][2]) or {}
        for i = 1, #f - 1, 2 do
            if f[i] == 'hash' then at = f[i + 1] end
        end
    end
    if at ~= ARGV[7] then
        return {'diverged', head_seq, head_hash}
    end
    -- The tree: at least as large, and the same root where it has the floor's size (the
    -- caller checks the root at the floor's size of a larger tree: guard.h).
    if ARGV[8] ~= '' then
        if tsize < floor_seq then
            return {'rolled_back', head_seq, head_hash}
        end
        if tsize == floor_seq and root ~= ARGV[8] then
            return {'diverged', head_seq, head_hash}
        end
    end
end
if head_seq ~= tonumber(ARGV[1]) or head_hash ~= ARGV[2] or tsize ~= tonumber(ARGV[11]) then
    return {'conflict', head[1] or '0', head_hash, head[3] or '', root, head[5] or ''}
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local last_id = (last[1] and last[1][1]) or '0-0'
local want_id = head_seq > 0 and (head_seq .. '-0') or '0-0'
if last_id ~= want_id then
    return {'broken', head_seq, last_id}
end
local n = tonumber(ARGV[9])
local tiles = tonumber(ARGV[10])
local new_tsize = tonumber(ARGV[14])
if new_tsize < tsize or new_tsize > head_seq + n or (n > 0 and new_tsize ~= head_seq + n) then
    return {'tree_broken', 0, new_tsize}
end
local tile_base = 15 + n * 4
for i = 1, tiles do
    local len = redis.call('STRLEN', KEYS[5 + i])
    if len ~= tonumber(ARGV[tile_base + (i - 1) * 2]) then
        return {'tree_broken', i, len}
    end
end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[3])
local dups = {}
for i = 1, n do
    local id = ARGV[15 + (i - 1) * 4]
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
if n > 0 and ARGV[5] == '1' and known then
    return {'activated'}
end
if n > 0 and ARGV[5] ~= '1' and not known then
    return {'need_activation'}
end

local seq = head_seq
local hash = head_hash
for i = 1, n do
    local base = 15 + (i - 1) * 4
    seq = seq + 1
    hash = ARGV[base + 2]
    redis.call('XADD', KEYS[2], seq .. '-0', 'body', ARGV[base + 1], 'hash', hash,
        'sig', ARGV[base + 3])
    if ARGV[base] ~= '' then
        redis.call('ZADD', KEYS[3], now_ms, ARGV[base])
        redis.call('HSET', KEYS[4], ARGV[base], seq)
    end
end
for i = 1, tiles do
    redis.call('APPEND', KEYS[5 + i], ARGV[tile_base + (i - 1) * 2 + 1])
end
if n > 0 then
    redis.call('HSETNX', KEYS[5], ARGV[4], head_seq + 1)
end
redis.call('HSET', KEYS[1], 'seq', seq, 'hash', hash, 'tsize', new_tsize, 'root', ARGV[13],
    'frontier', ARGV[12])
-- Forget a bounded number of event ids older than the window on every append.
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now_ms - window, 'LIMIT', 0, 64)
for _, id in ipairs(old) do
    redis.call('ZREM', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
end
return {'ok', seq}
