-- SPDX-License-Identifier: Apache-2.0
-- idem_release: the holder gives the key up (its work failed in a way safe to retry).
-- KEYS[1] = idem:<scope>:<key>
-- ARGV[1] = lease_token
-- Reply: {"released"} | {"lease_lost"} | {"not_found"}
-- A completed record is never released: its lease ended with the completion.

local rec = redis.call('HMGET', KEYS[1], 'state', 'lease_token')
if not rec[1] then
    return {'not_found'}
end
if rec[1] ~= 'in_progress' or rec[2] ~= ARGV[1] then
    return {'lease_lost'}
end
redis.call('DEL', KEYS[1])
return {'released'}
