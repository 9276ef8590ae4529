-- SPDX-License-Identifier: Apache-2.0
-- auditd under soak: append single events (some retried with the same event_id), batches
-- of 10, read the head, single entries and pages.
expect = {
    event = {[201] = true},
    retry = {[200] = true},
    batch = {[201] = true},
    head = {[200] = true},
    entry = {[200] = true},
    page = {[200] = true},
}
local max_seq = 0
local appended = {} -- event ids already in the chain (the last 100)

local function event(eid)
    return '{"actor":"user:' .. math.random(1, 1000) .. '","action":"token.refresh",' ..
        '"outcome":"success","resource":"family:abc","event_id":"' .. eid ..
        '","metadata":{"ip":"10.0.0.7","count":' .. math.random(1, 100) .. '}}'
end

function request()
    local r = math.random(100)
    if r <= 55 then
        return (req("POST", "/v1/events", event("e-" .. id .. "-" .. (n + 1)), "event"))
    elseif r <= 60 and #appended > 0 then
        return (req("POST", "/v1/events", event(appended[math.random(#appended)]), "retry"))
    elseif r <= 70 then
        local evs = {}
        for i = 1, 10 do
            evs[i] = '{"actor":"svc:soak","action":"job.step","metadata":{"i":' .. i .. '}}'
        end
        return (req("POST", "/v1/events/batch", '{"events":[' .. table.concat(evs, ",") .. ']}',
            "batch"))
    elseif r <= 80 or max_seq == 0 then
        return (req("GET", "/v1/head", nil, "head"))
    elseif r <= 90 then
        return (req("GET", "/v1/events/" .. math.random(1, max_seq), nil, "entry"))
    end
    return (req("GET", "/v1/events?from_seq=" .. math.random(1, max_seq) .. "&limit=20", nil,
        "page"))
end

function response(status, headers, body)
    local op, suffix = check(status, headers)
    local seq = tonumber(body:match('"seq":(%d+)'))
    if seq and seq > max_seq then max_seq = seq end
    if op == "event" and status == 201 then
        appended[#appended + 1] = "e-" .. suffix
        if #appended > 100 then table.remove(appended, 1) end
    end
end
