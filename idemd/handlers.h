/* SPDX-License-Identifier: Apache-2.0 */
/* handlers: idemd's HTTP handlers — parse the body (request.c), call the store (store.c),
 * render the answer of the contract (docs/api/idemd.md) — and its route table. A handler
 * never blocks: it suspends its request, sends its script on its loop's Redis client and
 * returns; the reply renders the answer on the same loop and resumes the request. Each
 * loop's data (app_worker_data) is its struct idem_worker. */
#ifndef IDEMD_HANDLERS_H
#define IDEMD_HANDLERS_H

#include "config.h"
#include "shared/app.h"
#include "shared/http.h"
#include "shared/metrics.h"
#include "store.h"
#include "wait.h"

struct idem_ctx {
    const struct idem_config *conf;
    struct idem_store *store;
    struct idem_wait_set *waits; /* the parked claims of every loop */
    struct metric *claims;       /* idemd_claims_total{outcome} */
    struct metric *completions;  /* idemd_completions_total{outcome} */
    struct metric *releases;     /* idemd_releases_total */
    struct metric *extensions;   /* idemd_lease_extensions_total */
};

/* Register idemd's metric families on m into ctx. */
void idem_handlers_metrics(struct idem_ctx *ctx, struct metrics *m);

/* Register idemd's routes (POST /v1/claim, /v1/complete, /v1/release, /v1/extend,
 * /v1/checkpoint, GET /v1/record) on a, each handler getting ctx. */
void idem_routes(struct app *a, struct idem_ctx *ctx);

/* One worker loop's own state, made by idem_worker_start on its thread. */
struct idem_worker {
    struct idem_store_loop *store;
    struct idem_waiters *waiters;
};

/* app_on_worker's hooks (ctx: the struct idem_ctx). The start aborts when the loop's state
 * cannot be made: a worker cannot serve without it. */
void *idem_worker_start(struct loop *l, void *ctx);
void idem_worker_stop(void *worker, void *ctx);

/* The answer of a claim that waited (idem_wait_answer_fn; arg is the struct idem_ctx). */
void idem_answer_waited_claim(struct http_req *r, const struct idem_claim_in *in,
                              enum rreply_class cls, const struct idem_result *res, void *arg);

#endif
