-- SPDX-License-Identifier: Apache-2.0
-- Shared by the soak scripts (prepended to each). Every request names its operation in
-- X-Request-ID ("<op>-<thread>-<n>"), which the daemons echo; response() handlers call
-- check() to compare the status with the operation's expected ones (the table `expect`
-- of each script) and count anything else. done() prints one RESULT line.
local threads = {}
local counter = 0
function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

n = 0
unexpected = 0
first_bad = ""

-- A request for operation op; returns it and the suffix that makes it unique (or the
-- given suffix, to tie a follow-up request to the one it follows).
function req(method, path, body, op, suffix)
    n = n + 1
    suffix = suffix or (id .. "-" .. n)
    local headers = {["X-Request-ID"] = op .. "-" .. suffix}
    if body then headers["Content-Type"] = "application/json" end
    return wrk.format(method, path, headers, body), suffix
end

-- The operation and suffix of a response; counts it if its status is not expected.
function check(status, headers)
    local rid = headers["X-Request-ID"] or headers["X-Request-Id"] or ""
    local op, suffix = rid:match("^(%a+)%-(.+)$")
    local want = expect[op or "?"]
    if not (want and want[status]) then
        unexpected = unexpected + 1
        if first_bad == "" then first_bad = (op or "?") .. ":" .. status end
    end
    return op, suffix
end

-- Steady load: each connection waits this long between requests.
function delay()
    return soak_delay_ms
end

function done(summary, latency, requests)
    local bad, first = 0, "-"
    for _, t in ipairs(threads) do
        bad = bad + t:get("unexpected")
        local f = t:get("first_bad")
        if first == "-" and f ~= "" then first = f end
    end
    local e = summary.errors
    io.write(string.format("RESULT %d %.1f %d %d %.3f %.3f %s\n", summary.requests,
        summary.requests / (summary.duration / 1e6), e.connect + e.read + e.write + e.timeout,
        bad, latency:percentile(50) / 1000, latency:percentile(99) / 1000, first))
end
