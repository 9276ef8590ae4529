-- SPDX-License-Identifier: Apache-2.0
-- token_refresh: one refresh of a tokend family, atomically: lookup, fingerprint policy,
-- rotation, grace window, reuse detection with family revocation (tokend.md steps 1-6).
-- KEYS[1] tok:{<family_id>}:f (hash)   KEYS[2] tok:{<family_id>}:used (set); one slot.
-- ARGV[1] hex HMAC of the presented secret under TOKEN_HASH_KEY
-- ARGV[2] the same under TOKEN_HASH_KEY_PREVIOUS, or ""
-- ARGV[3] device_id  ARGV[4] ua_hash  ARGV[5] ua product ("" = none)  ARGV[6] ua major
-- ARGV[7] tls fingerprint ("" = absent)  ARGV[8] presented fingerprint (hex)
-- ARGV[9] ua policy strict|upgrade  ARGV[10] tls policy ignore|soft|strict
-- ARGV[11] on mismatch reject|revoke
-- ARGV[12] successor hash  ARGV[13] successor, sealed  ARGV[14] grace ms (0 = none)
-- ARGV[15] idle ttl ms
-- Reply (array of strings; drift = comma list of components that differ, maybe ""):
--   {"ok", user_id, client_id, scope, ttl_ms, rebound "0"|"1", drift}
--   {"grace", user_id, client_id, scope, ttl_ms, sealed successor, drift}
--   {"mismatch", refused components, revoked "0"|"1", drift}
--   {"reused"}    the family has just been revoked (reason reuse)
--   {"invalid"}   unknown, expired or revoked family, or a hash it never had

local F = {'user_id', 'client_id', 'scope', 'device_id', 'ua_hash', 'ua_product', 'ua_major',
  'tls', 'state', 'current', 'parent', 'grace_until_ms', 'grace_successor', 'expires_ms',
  'absolute_expiry_ms'}
local v = redis.call('HMGET', KEYS[1], unpack(F))
local f = {}
for i, name in ipairs(F) do f[name] = v[i] end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if not f.state or f.state ~= 'active' then return {'invalid'} end
if now >= tonumber(f.absolute_expiry_ms) then return {'invalid'} end

local function is_presented(h)
  return h and h ~= '' and (h == ARGV[1] or (ARGV[2] ~= '' and h == ARGV[2]))
end

local function revoke(reason)
  redis.call('HSET', KEYS[1], 'state', 'revoked', 'revoked_reason', reason, 'revoked_ms', now)
  redis.call('HDEL', KEYS[1], 'grace_successor')
end

-- The fingerprint policy (mirrors tokend/fingerprint.c): device id exact; user agent by
-- hash, or under "upgrade" the same product at a major version >= the stored one; TLS
-- per its policy. Returns refused list, drift list, rebound flag.
local function check()
  local refused, drift, rebound = {}, {}, false
  if f.device_id ~= ARGV[3] then
    refused[#refused + 1] = 'device_id'; drift[#drift + 1] = 'device_id'
  end
  if f.ua_hash ~= ARGV[4] then
    drift[#drift + 1] = 'user_agent'
    if ARGV[9] == 'upgrade' and ARGV[5] ~= '' and ARGV[5] == f.ua_product and
        tonumber(ARGV[6]) >= tonumber(f.ua_major) then
      rebound = true
    else
      refused[#refused + 1] = 'user_agent'
    end
  end
  if ARGV[10] ~= 'ignore' and f.tls ~= ARGV[7] then
    drift[#drift + 1] = 'tls'
    if ARGV[10] == 'strict' then refused[#refused + 1] = 'tls' end
  end
  return refused, table.concat(drift, ','), rebound
end

local function refuse(refused, drift)
  local revoked = '0'
  if ARGV[11] == 'revoke' then revoke('mismatch'); revoked = '1' end
  return {'mismatch', table.concat(refused, ','), revoked, drift}
end

if is_presented(f.current) then
  local refused, drift, rebound = check()
  if #refused > 0 then return refuse(refused, drift) end
  local expires = math.min(now + tonumber(ARGV[15]), tonumber(f.absolute_expiry_ms))
  local grace = tonumber(ARGV[14])
  redis.call('SADD', KEYS[2], f.current)
  redis.call('HSET', KEYS[1], 'parent', f.current, 'current', ARGV[12], 'last_used_ms', now,
    'expires_ms', expires)
  if grace > 0 then
    redis.call('HSET', KEYS[1], 'grace_until_ms', now + grace, 'grace_successor', ARGV[13])
  else
    redis.call('HSET', KEYS[1], 'grace_until_ms', 0)
    redis.call('HDEL', KEYS[1], 'grace_successor')
  end
  if rebound then
    redis.call('HSET', KEYS[1], 'ua_hash', ARGV[4], 'ua_product', ARGV[5], 'ua_major', ARGV[6],
      'fingerprint', ARGV[8])
  end
  redis.call('HINCRBY', KEYS[1], 'rotations', 1)
  redis.call('PEXPIREAT', KEYS[1], expires)
  redis.call('PEXPIREAT', KEYS[2], expires)
  return {'ok', f.user_id, f.client_id, f.scope, tostring(expires - now),
    rebound and '1' or '0', drift}
end

if is_presented(f.parent) then
  if now < tonumber(f.grace_until_ms or '0') and f.grace_successor then
    local refused, drift = check()
    if #refused > 0 then return refuse(refused, drift) end
    return {'grace', f.user_id, f.client_id, f.scope, tostring(tonumber(f.expires_ms) - now),
      f.grace_successor, drift}
  end
  revoke('reuse')
  return {'reused'}
end

if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 or
    (ARGV[2] ~= '' and redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1) then
  revoke('reuse')
  return {'reused'}
end
return {'invalid'}
