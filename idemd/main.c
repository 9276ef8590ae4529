/* SPDX-License-Identifier: Apache-2.0 */
/* idemd: idempotency records — claim / replay / conflict decided by one atomic Lua
 * script per call, with leases and a 24 h record lifetime. Contract: docs/api/idemd.md. */
#include <stdio.h>
#include <stdlib.h>

#include "idem_config.h"
#include "idem_http.h"
#include "idem_store.h"
#include "idem_wait.h"
#include "scripts.h"
#include "shared/app.h"

static const struct script *const idem_scripts[] = {
    &script_idem_claim,
    &script_idem_complete,
    &script_idem_release,
    &script_idem_extend,
    &script_idem_checkpoint,
    &script_idem_record,
    NULL,
};

#define IDEM_ENV_HELP                                                                              \
    "  IDEM_TTL                 record lifetime from creation (24h)\n"                             \
    "  IDEM_LEASE_TTL           default lease of a claim (30s)\n"                                  \
    "  IDEM_LEASE_MAX           longest lease a claim or extend may ask for (10m)\n"               \
    "  IDEM_ON_LEASE_EXPIRY     takeover | block (takeover)\n"                                     \
    "  IDEM_MAX_RESPONSE_BYTES  largest stored body (1MiB)\n"                                      \
    "  IDEM_REPLAY_HEADERS      response headers stored and replayed\n"                            \
    "  IDEM_WAIT_REPLICAS       replicas every write waits for (0)\n"                              \
    "  IDEM_WAIT_TIMEOUT        how long it waits for them (500ms)\n"

/* Shutdown begins: claims waiting on an in-flight key get their answer now (usually 409
 * with Retry-After, so the caller retries elsewhere) instead of holding the drain for up
 * to wait_ms. The waiter stays allocated, so a claim still arriving is answered at once. */
static void stop_waiter(void *arg)
{
    struct idem_ctx *ctx = arg;
    idem_waiter_stop(ctx->waiter);
}

int main(int argc, char **argv)
{
    struct idem_config conf;
    struct idem_ctx ctx = {0};
    struct app *a = app_create(&(struct app_spec){.name = "idemd",
                                                  .port = 8083,
                                                  .max_body = 2u << 20,
                                                  .summary = "idempotency records on Redis",
                                                  .env_help = IDEM_ENV_HELP,
                                                  .scripts = idem_scripts},
                               argc, argv);
    idem_config_load(&conf, app_cfg(a));
    app_config_done(a);

    ctx.conf = &conf;
    ctx.store = idem_store_create(&conf, app_redis(a));
    if (ctx.store)
        ctx.waiter = idem_waiter_create(ctx.store, idem_answer_waited_claim, &ctx);
    if (!ctx.store || !ctx.waiter) {
        fprintf(stderr, "idemd: out of memory\n");
        return 1;
    }
    idem_http_metrics(&ctx, app_metrics(a));
    app_route(a, "POST", "/v1/claim", idem_handle_claim, &ctx, 0);
    app_route(a, "POST", "/v1/complete", idem_handle_complete, &ctx, 0);
    app_route(a, "POST", "/v1/release", idem_handle_release, &ctx, 0);
    app_route(a, "POST", "/v1/extend", idem_handle_extend, &ctx, 0);
    app_route(a, "POST", "/v1/checkpoint", idem_handle_checkpoint, &ctx, 0);
    app_route(a, "GET", "/v1/record", idem_handle_record, &ctx, 0);
    app_on_drain(a, stop_waiter, &ctx);

    int rc = app_run(a);
    idem_waiter_free(ctx.waiter);
    app_free(a);
    idem_store_free(ctx.store);
    return rc;
}
