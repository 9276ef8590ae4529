-- SPDX-License-Identifier: Apache-2.0
-- idemd under soak: claim a fresh key then complete it (most), claim then release,
-- replay a completed key, read a record.
expect = {
    claim = {[201] = true},
    complete = {[200] = true},
    claimrel = {[201] = true},
    release = {[200] = true},
    replay = {[200] = true},
    record = {[200] = true},
}
local pending = {} -- the complete or release a claim's 201 calls for
local completed = {} -- keys to replay (the last 100)

local function claim_body(key)
    return '{"scope":"soak","key":"' .. key .. '","fingerprint":"f"}'
end

function request()
    local next_req = table.remove(pending, 1)
    if next_req then return next_req end
    local r = math.random(100)
    if r <= 10 and #completed > 0 then
        local key = completed[math.random(#completed)]
        return (req("POST", "/v1/claim", claim_body(key), "replay"))
    elseif r <= 15 and #completed > 0 then
        local key = completed[math.random(#completed)]
        return (req("GET", "/v1/record?scope=soak&key=" .. key, nil, "record"))
    end
    local op = r <= 25 and "claimrel" or "claim"
    -- The key is "k-<suffix>" of this very request: its answer finds it again.
    local key = "k-" .. id .. "-" .. (n + 1)
    return (req("POST", "/v1/claim", claim_body(key), op))
end

function response(status, headers, body)
    local op, suffix = check(status, headers)
    local key = "k-" .. (suffix or "")
    if op == "complete" and status == 200 then -- only now can it be replayed
        completed[#completed + 1] = key
        if #completed > 100 then table.remove(completed, 1) end
        return
    end
    local tok = body:match('"lease_token":"([^"]+)"')
    if status ~= 201 or not tok then return end
    if op == "claim" then
        pending[#pending + 1] = (req("POST", "/v1/complete", '{"scope":"soak","key":"' .. key ..
            '","lease_token":"' .. tok .. '","status":201,"body":"{\\"id\\":42}"}', "complete",
            suffix))
    elseif op == "claimrel" then
        pending[#pending + 1] = (req("POST", "/v1/release", '{"scope":"soak","key":"' .. key ..
            '","lease_token":"' .. tok .. '"}', "release", suffix))
    end
end
