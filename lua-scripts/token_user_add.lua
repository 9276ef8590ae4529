-- SPDX-License-Identifier: Apache-2.0
-- token_user_add: index a new family under its user.
-- KEYS[1] tok:user:{<user_id>} (sorted set of family ids by creation ms)
-- ARGV[1] family id  ARGV[2] created ms  ARGV[3] key ttl ms
-- Reply: the number of ids now in the index (integer). Above TOKEN_MAX_FAMILIES_PER_USER
-- the caller enforces the cap: the index also holds revoked and expired families, and
-- only their own slots tell which are alive, so the eviction cannot happen here.

redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
-- The index outlives every family in it: extend, never shorten.
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return redis.call('ZCARD', KEYS[1])
