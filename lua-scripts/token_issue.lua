-- SPDX-License-Identifier: Apache-2.0
-- token_issue: create a tokend family at login, with its TTLs from Redis time.
-- KEYS[1] tok:{<family_id>}:f (hash; must not exist)
-- ARGV[1] user_id  ARGV[2] client_id  ARGV[3] scope  ARGV[4] device_id  ARGV[5] ua_hash
-- ARGV[6] ua product ("" = none)  ARGV[7] ua major  ARGV[8] tls ("" = absent)
-- ARGV[9] fingerprint (hex)  ARGV[10] hash of the first token  ARGV[11] idle ttl ms
-- ARGV[12] absolute ttl ms
-- Reply: {created_ms, ttl_ms} (integers); {0, 0} if the family id is taken (never, in
-- practice: it is 128 random bits).

if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local absolute = now + tonumber(ARGV[12])
local expires = math.min(now + tonumber(ARGV[11]), absolute)
redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'client_id', ARGV[2], 'scope', ARGV[3],
  'device_id', ARGV[4], 'ua_hash', ARGV[5], 'ua_product', ARGV[6], 'ua_major', ARGV[7],
  'tls', ARGV[8], 'fingerprint', ARGV[9], 'state', 'active', 'revoked_reason', '',
  'current', ARGV[10], 'parent', '', 'grace_until_ms', 0, 'created_ms', now,
  'absolute_expiry_ms', absolute, 'expires_ms', expires, 'last_used_ms', now, 'rotations', 0)
redis.call('PEXPIREAT', KEYS[1], expires)
return {now, expires - now}
