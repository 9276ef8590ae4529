/* SPDX-License-Identifier: Apache-2.0 */
/* handlers: ratelimitd's routes — parse the body (request.c), call the limiter, render the
 * answer (see handlers.h). */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "request.h"
#include "shared/jsonv.h"

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

/* Render the decisions: one object for a single check, {allowed, results} for a batch. */
static void reply_decision(struct http_req *r, const struct rl_api *api,
                           const struct rl_check *checks, const struct rl_result *res, size_t n,
                           int batch, int consume)
{
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

/* A check or a peek, from its parsing to its answer (which may wait for Redis). */
struct decision_call {
    struct http_req *r;
    const struct rl_api *api;
    struct rl_ruleset *set; /* holds the rules the checks point into */
    size_t n;
    int batch, consume;
    struct rl_check checks[RL_BATCH_MAX];
    struct rl_result out[RL_BATCH_MAX];
    struct rl_pending pending;
};

static void decision_free(struct decision_call *dc)
{
    rl_ruleset_unref(dc->set);
    free(dc);
}

/* The limiter's done function: on r's loop, once Redis has answered. */
static void decision_done(void *arg)
{
    struct decision_call *dc = arg;
    struct http_req *r = dc->r;
    reply_decision(r, dc->api, dc->checks, dc->out, dc->n, dc->batch, dc->consume);
    decision_free(dc);
    http_resume(r);
}

/* Answer now when the deny cache or the breaker decided, else suspend until Redis has. */
static void decide(struct decision_call *dc)
{
    struct http_req *r = dc->r;
    if (rl_limiter_check(app_worker_data(r), app_rclient(r), &dc->pending, dc->checks, dc->n,
                         dc->consume, dc->out, decision_done, dc) == 0) {
        http_suspend(r);
        return;
    }
    reply_decision(r, dc->api, dc->checks, dc->out, dc->n, dc->batch, dc->consume);
    decision_free(dc);
}

static struct decision_call *decision_new(struct http_req *r, const struct rl_api *api, int consume)
{
    struct decision_call *dc = malloc(sizeof(*dc));
    if (!dc) {
        http_problem(r, 500, "internal", "out of memory");
        return NULL;
    }
    dc->r = r;
    dc->api = api;
    dc->set = rl_rules_current(api->rules);
    dc->consume = consume;
    dc->batch = 0;
    dc->n = 1;
    return dc;
}

static void handle_check(struct http_req *r, void *ctx)
{
    struct rl_parse_error err;
    struct decision_call *dc = decision_new(r, ctx, 1);
    if (!dc)
        return;
    int n = rl_parse_check_body(http_json(r), dc->set, dc->checks, &dc->batch, &err);
    if (n < 0) {
        reply_parse_error(r, &err);
        decision_free(dc);
        return;
    }
    dc->n = (size_t)n;
    decide(dc);
}

static void handle_peek(struct http_req *r, void *ctx)
{
    struct rl_parse_error err;
    struct decision_call *dc = decision_new(r, ctx, 0);
    if (!dc)
        return;
    if (rl_parse_check(http_json(r), dc->set, 0, &dc->checks[0], &err) < 0) {
        reply_parse_error(r, &err);
        decision_free(dc);
        return;
    }
    decide(dc);
}

static void reply_reset(struct http_req *r, enum rreply_class cls)
{
    if (cls == RREPLY_OK)
        http_reply_json(r, 200, json_pack("{s:b}", "reset", 1));
    else if (cls == RREPLY_UNAVAILABLE)
        http_unavailable(r);
    else
        http_problem(r, 500, "internal", "unexpected answer from Redis");
}

/* A reset waiting for Redis and the other workers. */
struct reset_call {
    struct http_req *r;
    struct rl_ruleset *set;
};

/* The limiter's done function: usually on r's loop, possibly on another worker's. */
static void reset_done(void *arg, enum rreply_class cls)
{
    struct reset_call *rc = arg;
    struct http_req *r = rc->r;
    reply_reset(r, cls);
    rl_ruleset_unref(rc->set);
    free(rc);
    http_resume(r);
}

static void handle_reset(struct http_req *r, void *ctx)
{
    struct rl_api *api = ctx;
    struct rl_check check;
    struct rl_parse_error err;
    enum rreply_class now;
    struct reset_call *rc = malloc(sizeof(*rc));
    if (!rc) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    *rc = (struct reset_call){.r = r, .set = rl_rules_current(api->rules)};
    if (rl_parse_check(http_json(r), rc->set, 0, &check, &err) < 0) {
        reply_parse_error(r, &err);
    } else if (rl_limiter_reset(app_worker_data(r), app_rclient(r), check.rule, check.key,
                                check.key_len, reset_done, rc, &now) == 0) {
        http_suspend(r);
        return;
    } else {
        reply_reset(r, now);
    }
    rl_ruleset_unref(rc->set);
    free(rc);
}

static void handle_rules(struct http_req *r, void *ctx)
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

static void handle_breaker(struct http_req *r, void *ctx)
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

void rl_handlers_route(struct app *a, struct rl_api *api)
{
    app_route(a, "POST", "/v1/check", handle_check, api, 0);
    app_route(a, "POST", "/v1/peek", handle_peek, api, 0);
    app_route(a, "POST", "/v1/reset", handle_reset, api, 0);
    app_route(a, "GET", "/v1/rules", handle_rules, api, 0);
    app_route(a, "GET", "/v1/breaker", handle_breaker, api, 0);
    app_route(a, "POST", "/v1/breaker", handle_breaker, api, HTTP_ADMIN);
}
