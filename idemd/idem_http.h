/* SPDX-License-Identifier: Apache-2.0 */
/* idem_http: idemd's HTTP handlers — parse the body (idem_request), call the store
 * (idem_store), render the answer of the contract (docs/api/idemd.md). */
#ifndef IDEMD_IDEM_HTTP_H
#define IDEMD_IDEM_HTTP_H

#include "idem_config.h"
#include "idem_store.h"
#include "idem_wait.h"
#include "shared/http.h"
#include "shared/metrics.h"

struct idem_ctx {
    const struct idem_config *conf;
    struct idem_store *store;
    struct idem_waiter *waiter;
    struct metric *claims;      /* idemd_claims_total{outcome} */
    struct metric *completions; /* idemd_completions_total{outcome} */
    struct metric *releases;    /* idemd_releases_total */
    struct metric *extensions;  /* idemd_lease_extensions_total */
};

/* Register idemd's metric families on m into ctx. */
void idem_http_metrics(struct idem_ctx *ctx, struct metrics *m);

void idem_handle_claim(struct http_req *r, void *ctx);
void idem_handle_complete(struct http_req *r, void *ctx);
void idem_handle_release(struct http_req *r, void *ctx);
void idem_handle_extend(struct http_req *r, void *ctx);
void idem_handle_checkpoint(struct http_req *r, void *ctx);
void idem_handle_record(struct http_req *r, void *ctx);

/* The answer of a claim that waited (idem_wait_answer_fn; arg is the struct idem_ctx). */
void idem_answer_waited_claim(struct http_req *r, const struct idem_claim_in *in, int rc,
                              struct idem_result *res, void *arg);

#endif
