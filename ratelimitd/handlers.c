/* SPDX-License-Identifier: Apache-2.0 */
/* handlers: request parsing, calls into the limiter, response rendering (see handlers.h). */
#include "handlers.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "shared/jsonv.h"

static int perr(struct rl_parse_error *err, int status, const char *code, const char *field,
                const char *detail)
{
    err->status = status;
    err->code = code;
    field = field ? field : "";
    /* Cut at a character boundary: the field goes into a JSON answer. */
    snprintf(err->field, sizeof(err->field), "%.*s",
             (int)jv_utf8_prefix(field, sizeof(err->field) - 1), field);
    snprintf(err->detail, sizeof(err->detail), "%s", detail);
    return -1;
}

static int key_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return 0;
    }
    return 1;
}

int rl_parse_check(const json_t *obj, const struct rl_ruleset *set, int allow_cost,
                   struct rl_check *out, struct rl_parse_error *err)
{
    static const char *const with_cost[] = {"rule", "key", "cost", NULL};
    static const char *const without_cost[] = {"rule", "key", NULL};
    struct jv_error e = {0};
    const char *name;
    long long cost = 1;
    if (!obj)
        return perr(err, 400, "invalid_json", NULL, "the body must be a JSON object");
    if (!json_is_object(obj))
        return perr(err, 400, "invalid_request", "checks", "each check must be an object");
    if (jv_only(obj, allow_cost ? with_cost : without_cost, &e) < 0 ||
        jv_string(obj, "rule", JV_REQUIRED, 1, RL_RULE_NAME_MAX, &name, NULL, &e) < 0 ||
        jv_string(obj, "key", JV_REQUIRED, 1, RL_KEY_MAX, &out->key, &out->key_len, &e) < 0)
        return perr(err, 400, "invalid_request", e.field, e.detail);
    if (!key_ok(out->key, out->key_len))
        return perr(err, 400, "invalid_request", "key", "must not contain control characters");
    out->rule = rl_ruleset_find(set, name);
    if (!out->rule)
        return perr(err, 404, "unknown_rule", "rule", "no rule by that name");
    long long max = rl_rule_max_cost(out->rule);
    if (allow_cost && jv_int(obj, "cost", JV_OPTIONAL, 1, max, &cost, &e) < 0)
        return perr(err, 400, "invalid_request", "cost", e.detail);
    out->cost = cost;
    return 0;
}

int rl_parse_check_body(const json_t *body, const struct rl_ruleset *set, struct rl_check *out,
                        int *batch, struct rl_parse_error *err)
{
    static const char *const batch_fields[] = {"checks", NULL};
    struct jv_error e = {0};
    json_t *arr;
    *batch = body && json_object_get(body, "checks") != NULL;
    if (!*batch)
        return rl_parse_check(body, set, 1, out, err) == 0 ? 1 : -1;
    if (jv_only(body, batch_fields, &e) < 0 ||
        jv_array(body, "checks", JV_REQUIRED, 1, RL_BATCH_MAX, &arr, &e) < 0)
        return perr(err, 400, "invalid_request", e.field, e.detail);
    size_t n = json_array_size(arr);
    for (size_t i = 0; i < n; i++) {
        if (rl_parse_check(json_array_get(arr, i), set, 1, &out[i], err) < 0) {
            char field[sizeof(err->field)];
            memcpy(field, err->field, sizeof(field));
            /* Known member names are short ("rule", "key", "cost"); an unknown one is cut,
             * at a character boundary so the answer stays valid JSON. */
            snprintf(err->field, sizeof(err->field), "checks[%zu].%.*s", i,
                     (int)jv_utf8_prefix(field, 16), field);
            return -1;
        }
    }
    return (int)n;
}

static void reply_parse_error(struct http_req *r, const struct rl_parse_error *err)
{
    json_t *ext = err->field[0] ? json_pack("{s:s}", "field", err->field) : NULL;
    http_problem_ext(r, err->status, err->code, ext, "%s", err->detail);
}

static long long us_to_ms(int64_t us)
{
    return us <= 0 ? 0 : (long long)((us + 999) / 1000);
}

static long long ms_to_s(long long ms)
{
    return (ms + 999) / 1000;
}

/* One result object, rendered by hand: every string in it (rule name, region, source) is
 * from a fixed safe alphabet, so no escaping is needed, and this skips a dozen allocations
 * on the hottest path (a cached denial). Returns the length written (truncated at size). */
static size_t render_result(char *buf, size_t size, const struct rl_limiter *l,
                            const struct rl_check *c, const struct rl_result *res)
{
    char would[32] = "";
    if (res->shadow)
        snprintf(would, sizeof(would), ",\"would_allow\":%s", res->d.allowed ? "true" : "false");
    int n = snprintf(buf, size,
                     "{\"allowed\":%s,\"rule\":\"%s\",\"limit\":%lld,\"remaining\":%lld,"
                     "\"reset_after_ms\":%lld,\"retry_after_ms\":%lld,\"region\":\"%s\","
                     "\"source\":\"%s\",\"shadow\":%s%s}",
                     res->allowed ? "true" : "false", c->rule->name, c->rule->limit,
                     res->d.remaining, us_to_ms(res->d.reset_after_us),
                     res->d.allowed ? 0 : us_to_ms(res->d.retry_after_us), rl_limiter_region(l),
                     rl_source_name(res->source), res->shadow ? "true" : "false", would);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* RateLimit-Policy and RateLimit (IETF draft; a list for a batch) and Retry-After. */
static void add_headers(struct http_req *r, const struct rl_check *checks,
                        const struct rl_result *res, size_t n, int denied)
{
    char policy[RL_BATCH_MAX * 100], state[RL_BATCH_MAX * 100];
    size_t pl = 0, sl = 0;
    policy[0] = state[0] = '\0'; /* not `= ""`: that would zero both arrays per request */
    long long retry_ms = 0;
    for (size_t i = 0; i < n; i++) {
        const struct rl_rule *rule = checks[i].rule;
        const char *sep = i ? ", " : "";
        /* Clamped: snprintf returns what it would have written, and a sum past the end
         * would turn the next size into a huge one. */
        if (pl < sizeof(policy))
            pl += (size_t)snprintf(policy + pl, sizeof(policy) - pl, "%s\"%s\";q=%lld;w=%lld", sep,
                                   rule->name, rule->limit, ms_to_s(rule->period_ms));
        if (sl < sizeof(state))
            sl += (size_t)snprintf(state + sl, sizeof(state) - sl, "%s\"%s\";r=%lld;t=%lld", sep,
                                   rule->name, res[i].d.remaining,
                                   ms_to_s(us_to_ms(res[i].d.reset_after_us)));
        if (!res[i].allowed && us_to_ms(res[i].d.retry_after_us) > retry_ms)
            retry_ms = us_to_ms(res[i].d.retry_after_us);
    }
    http_add_header(r, "RateLimit-Policy", policy);
    http_add_header(r, "RateLimit", state);
    if (denied) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%lld", ms_to_s(retry_ms) > 0 ? ms_to_s(retry_ms) : 1);
        http_add_header(r, "Retry-After", ra);
    }
}

/* Decide and render: one object for a single check, {allowed, results} for a batch. */
static void decide_and_reply(struct http_req *r, struct rl_api *api, const struct rl_check *checks,
                             size_t n, int batch, int consume)
{
    struct rl_result res[RL_BATCH_MAX];
    rl_limiter_check(api->limiter, checks, n, consume, res);
    int all = 1;
    for (size_t i = 0; i < n; i++)
        all &= res[i].allowed;
    char body[RL_BATCH_MAX * 512];
    size_t len = 0;
    if (batch)
        len = (size_t)snprintf(body, sizeof(body), "{\"allowed\":%s,\"results\":[",
                               all ? "true" : "false");
    for (size_t i = 0; i < n; i++) {
        if (i)
            body[len++] = ',';
        len += render_result(body + len, sizeof(body) - len - 3, api->limiter, &checks[i], &res[i]);
    }
    if (batch)
        len += (size_t)snprintf(body + len, sizeof(body) - len, "]}");
    int denied = consume && !all;
    add_headers(r, checks, res, n, denied);
    http_reply_raw(r, denied ? 429 : 200, "application/json", body, len);
}

void rl_handle_check(struct http_req *r, void *ctx)
{
    struct rl_api *api = ctx;
    struct rl_check checks[RL_BATCH_MAX];
    struct rl_parse_error err;
    int batch = 0;
    struct rl_ruleset *set = rl_rules_current(api->rules);
    int n = rl_parse_check_body(http_json(r), set, checks, &batch, &err);
    if (n < 0)
        reply_parse_error(r, &err);
    else
        decide_and_reply(r, api, checks, (size_t)n, batch, 1);
    rl_ruleset_unref(set);
}

void rl_handle_peek(struct http_req *r, void *ctx)
{
    struct rl_api *api = ctx;
    struct rl_check check;
    struct rl_parse_error err;
    struct rl_ruleset *set = rl_rules_current(api->rules);
    if (rl_parse_check(http_json(r), set, 0, &check, &err) < 0)
        reply_parse_error(r, &err);
    else
        decide_and_reply(r, api, &check, 1, 0, 0);
    rl_ruleset_unref(set);
}

void rl_handle_reset(struct http_req *r, void *ctx)
{
    struct rl_api *api = ctx;
    struct rl_check check;
    struct rl_parse_error err;
    struct rl_ruleset *set = rl_rules_current(api->rules);
    if (rl_parse_check(http_json(r), set, 0, &check, &err) < 0)
        reply_parse_error(r, &err);
    else if (rl_limiter_reset(api->limiter, check.rule, check.key, check.key_len) != 0)
        http_unavailable(r);
    else
        http_reply_json(r, 200, json_pack("{s:b}", "reset", 1));
    rl_ruleset_unref(set);
}

void rl_handle_rules(struct http_req *r, void *ctx)
{
    struct rl_api *api = ctx;
    struct rl_ruleset *set = rl_rules_current(api->rules);
    json_t *arr = json_array();
    for (size_t i = 0; i < set->count; i++)
        json_array_append_new(arr, rl_rule_to_json(&set->rules[i]));
    rl_ruleset_unref(set);
    http_reply_json(
        r, 200, json_pack("{s:s, s:o}", "region", rl_limiter_region(api->limiter), "rules", arr));
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *breaker_json(struct rl_brk *b)
{
    struct rl_brk_snapshot s;
    rl_brk_snapshot(b, &s);
    /* open_until_ms is wall-clock epoch milliseconds, so a caller can read it. */
    json_t *until = s.state == RL_BRK_OPEN ? json_integer(wall_ms() + (s.open_until_ms - mono_ms()))
                                           : json_null();
    return json_pack("{s:s, s:i, s:o, s:i}", "state", rl_brk_state_name(s.state),
                     "consecutive_failures", s.consecutive_failures, "open_until_ms", until,
                     "half_open_in_flight", s.half_open_in_flight);
}

int rl_parse_breaker(const json_t *body, struct jv_error *e)
{
    static const char *const fields[] = {"action", NULL};
    static const char *const actions[] = {"reset", "force_open", "disable"};
    const char *action;
    if (jv_only(body, fields, e) < 0 ||
        jv_string(body, "action", JV_REQUIRED, 1, 32, &action, NULL, e) < 0)
        return -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(action, actions[i]) == 0)
            return i;
    return jv_fail(e, "action", "must be reset, force_open or disable");
}

void rl_handle_breaker(struct http_req *r, void *ctx)
{
    struct rl_api *api = ctx;
    struct rl_brk *b = rl_limiter_breaker(api->limiter);
    struct jv_error e = {0};
    if (strcmp(http_method(r), "GET") == 0) {
        http_reply_json(r, 200, breaker_json(b));
        return;
    }
    int action = rl_parse_breaker(http_json(r), &e);
    if (action < 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    if (action == RL_BREAKER_RESET)
        rl_brk_reset(b);
    else if (action == RL_BREAKER_FORCE_OPEN)
        rl_brk_force_open(b);
    else
        rl_brk_disable(b);
    http_reply_json(r, 200, breaker_json(b));
}
