/* SPDX-License-Identifier: Apache-2.0 */
/* handlers: ratelimitd's HTTP API (docs/api/ratelimitd.md) and its route table. A handler
 * parses and validates the body (request.h), calls the limiter and renders the answer
 * with its RateLimit headers; bad input never reaches the limiter. */
#ifndef RATELIMITD_HANDLERS_H
#define RATELIMITD_HANDLERS_H

#include "limiter.h"
#include "rules.h"
#include "shared/app.h"

/* What the handlers work on; outlives app_run. */
struct rl_api {
    struct rl_limiter *limiter;
    struct rl_rules_holder *rules;
};

/* Register every route of ratelimitd: POST /v1/check, /v1/peek, /v1/reset, GET /v1/rules,
 * GET and (admin) POST /v1/breaker. */
void rl_handlers_route(struct app *a, struct rl_api *api);

#endif
