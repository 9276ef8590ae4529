/* SPDX-License-Identifier: Apache-2.0 */
/* handlers: ratelimitd's HTTP API (docs/api/ratelimitd.md). Handlers parse and validate
 * the request, call the limiter and render the answer with its RateLimit headers; bad input
 * never reaches the limiter. */
#ifndef RATELIMITD_HANDLERS_H
#define RATELIMITD_HANDLERS_H

#include "limiter.h"
#include "rules.h"
#include "shared/http.h"
#include "shared/jsonv.h"

struct rl_api {
    struct rl_limiter *limiter;
    struct rl_rules_holder *rules;
};

void rl_handle_check(struct http_req *r, void *ctx);   /* POST /v1/check */
void rl_handle_peek(struct http_req *r, void *ctx);    /* POST /v1/peek */
void rl_handle_reset(struct http_req *r, void *ctx);   /* POST /v1/reset */
void rl_handle_rules(struct http_req *r, void *ctx);   /* GET /v1/rules */
void rl_handle_breaker(struct http_req *r, void *ctx); /* GET and POST /v1/breaker */

/* Parsing of one check object {"rule","key"[,"cost"]} against a rule set, shared by the
 * handlers and the fuzz harness. allow_cost: whether "cost" may appear. On failure returns
 * -1 with status (400 or 404), code and detail set (field names the bad member). */
struct rl_parse_error {
    int status;
    const char *code;
    char field[48];
    char detail[160];
};
int rl_parse_check(const json_t *obj, const struct rl_ruleset *set, int allow_cost,
                   struct rl_check *out, struct rl_parse_error *err);
/* A whole /v1/check body: a single check or {"checks": [...]}. Returns the number of checks
 * (1..RL_BATCH_MAX) with *batch set when it was the array form, or -1 with err set. */
int rl_parse_check_body(const json_t *body, const struct rl_ruleset *set, struct rl_check *out,
                        int *batch, struct rl_parse_error *err);

/* A POST /v1/breaker body: {"action": "reset" | "force_open" | "disable"}. Returns the
 * action, or -1 with e set for a 400 invalid_request. */
enum rl_breaker_action { RL_BREAKER_RESET, RL_BREAKER_FORCE_OPEN, RL_BREAKER_DISABLE };
int rl_parse_breaker(const json_t *body, struct jv_error *e);

#endif
