-- SPDX-License-Identifier: Apache-2.0
-- token_revoke: revoke a tokend family, by one of its tokens or by its id.
-- KEYS[1] tok:{<family_id>}:f   KEYS[2] tok:{<family_id>}:used   (one slot)
-- ARGV[1] "token" (ARGV[2]/[3] must be a hash the family has had) or "family"
-- ARGV[2] hash under TOKEN_HASH_KEY, or ""  ARGV[3] hash under the previous key, or ""
-- ARGV[4] user id the family must belong to, or "" for any  ARGV[5] reason
-- Reply: 1 if this call revoked an active family, else 0 (unknown, already revoked,
-- another user's, or a token it never had).

local v = redis.call('HMGET', KEYS[1], 'state', 'user_id', 'current', 'parent')
if v[1] ~= 'active' then return 0 end
if ARGV[4] ~= '' and v[2] ~= ARGV[4] then return 0 end
if ARGV[1] == 'token' then
  local function known(h)
    return h ~= '' and (h == v[3] or h == v[4] or redis.call('SISMEMBER', KEYS[2], h) == 1)
  end
  if not known(ARGV[2]) and not known(ARGV[3]) then return 0 end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'state', 'revoked', 'revoked_reason', ARGV[5], 'revoked_ms', now)
redis.call('HDEL', KEYS[1], 'grace_successor')
return 1
