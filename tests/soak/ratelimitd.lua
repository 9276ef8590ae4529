-- SPDX-License-Identifier: Apache-2.0
-- ratelimitd under soak: single checks on many keys (allowed), on a hot key (mostly
-- denied, then answered from the deny cache), sliding-window checks, peeks and batches.
expect = {
    check = {[200] = true, [429] = true},
    window = {[200] = true, [429] = true},
    peek = {[200] = true},
    batch = {[200] = true, [429] = true},
}

function request()
    local r = math.random(100)
    local key = "k" .. math.random(1, 5000)
    if r <= 55 then
        return (req("POST", "/v1/check", '{"rule":"soak","key":"' .. key .. '"}', "check"))
    elseif r <= 70 then
        return (req("POST", "/v1/check", '{"rule":"hot","key":"203.0.113.7"}', "check"))
    elseif r <= 80 then
        return (req("POST", "/v1/check",
            '{"rule":"window","key":"w' .. math.random(1, 50) .. '"}', "window"))
    elseif r <= 90 then
        return (req("POST", "/v1/peek", '{"rule":"soak","key":"' .. key .. '"}', "peek"))
    end
    return (req("POST", "/v1/check", '{"checks":[{"rule":"soak","key":"' .. key ..
        '"},{"rule":"hot","key":"203.0.113.8"}]}', "batch"))
end

function response(status, headers, body)
    check(status, headers)
end
