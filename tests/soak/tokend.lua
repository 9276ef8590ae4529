-- SPDX-License-Identifier: Apache-2.0
-- tokend under soak: log in (issue), refresh (the successor goes back in the queue),
-- introspect, list a user's sessions, revoke.
expect = {
    issue = {[201] = true},
    refresh = {[200] = true},
    introspect = {[200] = true},
    sessions = {[200] = true},
    revoke = {[200] = true},
}
local ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " ..
    "Chrome/120.0.0.0 Safari/537.36"
local live = {} -- tokens not yet refreshed or revoked
local users = {} -- recent user ids

function request()
    local r = math.random(100)
    if #live < 20 or r <= 10 then
        local user = "u-" .. id .. "-" .. (n + 1)
        users[#users + 1] = user
        if #users > 100 then table.remove(users, 1) end
        return (req("POST", "/v1/tokens", '{"user_id":"' .. user ..
            '","client_id":"web","device_id":"d-1","user_agent":"' .. ua .. '"}', "issue"))
    elseif r <= 65 then
        local tok = table.remove(live, 1)
        return (req("POST", "/v1/tokens/refresh", '{"refresh_token":"' .. tok ..
            '","device_id":"d-1","user_agent":"' .. ua .. '"}', "refresh"))
    elseif r <= 85 then
        local tok = live[math.random(#live)]
        return (req("POST", "/v1/tokens/introspect", '{"token":"' .. tok ..
            '","device_id":"d-1","user_agent":"' .. ua .. '"}', "introspect"))
    elseif r <= 92 then
        return (req("GET", "/v1/users/" .. users[math.random(#users)] .. "/sessions", nil,
            "sessions"))
    end
    local tok = table.remove(live, math.random(#live))
    return (req("POST", "/v1/tokens/revoke", '{"token":"' .. tok .. '"}', "revoke"))
end

function response(status, headers, body)
    check(status, headers)
    local tok = body:match('"refresh_token":"([^"]+)"')
    if tok then live[#live + 1] = tok end
end
