-- SPDX-License-Identifier: Apache-2.0
-- idem_checkpoint: the holder saves a recovery point for whoever takes the key over.
-- KEYS[1] = idem:<scope>:<key>
-- ARGV[1] = lease_token   ARGV[2] = checkpoint (<= 256 bytes, checked by the daemon)
-- Reply: {"saved"} | {"lease_lost"} | {"not_found"}

local rec = redis.call('HMGET', KEYS[1], 'state', 'lease_token')
if not rec[1] then
    return {'not_found'}
end
if rec[1] ~= 'in_progress' or rec[2] ~= ARGV[1] then
    return {'lease_lost'}
end
redis.call('HSET', KEYS[1], 'checkpoint', ARGV[2])
return {'saved'}
