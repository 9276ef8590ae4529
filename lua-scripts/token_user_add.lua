-- token_user_add: index a new family under its user and enforce the per-user cap.
-- KEYS[1] tok:user:{<user_id>} (sorted set of family ids by creation ms)
-- ARGV[1] family id  ARGV[2] created ms  ARGV[3] max families  ARGV[4] key ttl ms
-- Reply: array of the family ids evicted from the index (oldest first), for the caller
-- to revoke (reason cap); their keys live in other slots.

redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
local max = tonumber(ARGV[3])
local evicted = {}
if n > max then
  evicted = redis.call('ZRANGE', KEYS[1], 0, n - max - 1)
  redis.call('ZREM', KEYS[1], unpack(evicted))
end
-- The index outlives every family in it: extend, never shorten.
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return evicted
