/* SPDX-License-Identifier: Apache-2.0 */
/* request: parsing and validation of ratelimitd's request bodies, against the rule set in
 * force. Bad input never gets past these functions; they are shared by the handlers and
 * the fuzz harness. Pure functions of their arguments, thread-safe. */
#ifndef RATELIMITD_REQUEST_H
#define RATELIMITD_REQUEST_H

#include <jansson.h>

#include "limiter.h"
#include "rules.h"
#include "shared/jsonv.h"

/* Why a body was refused: status (400 or 404), a stable code, the member at fault (may be
 * empty) and a human detail. */
struct rl_parse_error {
    int status;
    const char *code;
    char field[48];
    char detail[160];
};

/* One check object {"rule","key"[,"cost"]} against a rule set. allow_cost: whether "cost"
 * may appear. Returns 0 with out filled (rule and key borrowed from set and obj), or -1
 * with err set (field names the bad member). */
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
