/* SPDX-License-Identifier: Apache-2.0 */
/* idemd: idempotency records — claim / replay / conflict decided by one atomic Lua
 * script per call, with leases and a 24 h record lifetime. Contract: docs/api/idemd.md. */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "handlers.h"
#include "shared/app.h"
#include "store.h"
#include "wait.h"

/* Shutdown begins: claims waiting on an in-flight key get their answer now (usually 409
 * with Retry-After, so the caller retries elsewhere) instead of holding the drain for up
 * to wait_ms; a claim that would wait from now on is answered at once. */
static void drain_waiters(void *arg)
{
    struct idem_ctx *ctx = arg;
    idem_wait_set_drain(ctx->waits);
}

int main(int argc, char **argv)
{
    struct idem_config conf;
    struct idem_ctx ctx = {0};
    struct app *a = app_create(&(struct app_spec){.name = "idemd",
                                                  .port = 8083,
                                                  .max_body = 2u << 20,
                                                  .summary = "idempotency records on Redis",
                                                  .env_help = IDEM_CONFIG_HELP,
                                                  .scripts = idem_store_scripts},
                               argc, argv);
    idem_config_load(&conf, app_cfg(a));
    app_config_done(a);

    ctx.conf = &conf;
    ctx.store = idem_store_create(&conf, app_rcl_config(a));
    if (ctx.store)
        ctx.waits = idem_wait_set_create(idem_answer_waited_claim, &ctx);
    if (!ctx.store || !ctx.waits) {
        fprintf(stderr, "idemd: out of memory\n");
        return 1;
    }
    idem_handlers_metrics(&ctx, app_metrics(a));
    idem_routes(a, &ctx);
    app_on_worker(a, idem_worker_start, idem_worker_stop, &ctx);
    app_on_drain(a, drain_waiters, &ctx);

    int rc = app_run(a);
    app_free(a);
    idem_wait_set_free(ctx.waits);
    idem_store_free(ctx.store);
    return rc;
}
