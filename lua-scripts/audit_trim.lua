-- SPDX-License-Identifier: Apache-2.0
-- audit_trim: remove a chain's entries before a seq, and the Merkle tree's full tiles that lie
-- wholly before it, once the chain itself records the trim (audit-trim; an archive holds them).
-- KEYS[1] = audit:{c}:log  KEYS[2] = audit:{c}:trim (hash: first_seq, record_seq)
-- KEYS[3..] = tile keys to delete (the caller's choice: full tiles below the new first seq)
-- ARGV[1] = the first seq to keep, N  ARGV[2] = the seq of the audit.trimmed entry saying so
-- Reply: {"ok", entries_removed, tiles_removed} | {"unrecorded"} (no such entry: nothing done)
-- Idempotent: a trim cut short by a failure is run again whole.

local first = tonumber(ARGV[1])
local record = tonumber(ARGV[2])
-- The record must itself be kept, and say exactly this trim (canonical body: sorted keys,
-- so "before_seq" is followed by "," or "}").
if record < first then
    return {'unrecorded'}
end
local e = redis.call('XRANGE', KEYS[1], record .. '-0', record .. '-0')
local f = (e[1] and e[1][2]) or {}
local body = nil
for i = 1, #f - 1, 2 do
    if f[i] == 'body' then body = f[i + 1] end
end
if not body or not string.find(body, '"action":"audit.trimmed"', 1, true) or
        not string.find(body, '"before_seq":' .. first .. '[,}]') then
    return {'unrecorded'}
end
local removed = redis.call('XTRIM', KEYS[1], 'MINID', first .. '-0')
local tiles = 0
for i = 3, #KEYS do
    tiles = tiles + redis.call('DEL', KEYS[i])
end
local was = tonumber(redis.call('HGET', KEYS[2], 'first_seq') or '1')
if first > was then
    redis.call('HSET', KEYS[2], 'first_seq', first, 'record_seq', record)
end
return {'ok', removed, tiles}
