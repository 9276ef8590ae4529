/* SPDX-License-Identifier: Apache-2.0 */
/* tokend: refresh tokens bound to a stable client fingerprint, rotated atomically in Redis
 * with reuse detection (docs/api/tokend.md). */
#include <stdlib.h>

#include "config.h"
#include "handlers.h"
#include "service.h"
#include "shared/app.h"
#include "shared/crypto.h"
#include "store.h"

int main(int argc, char **argv)
{
    struct tok_config conf;
    struct tok_service svc;
    if (crypto_init() != 0)
        return 1;
    struct app *a = app_create(&(struct app_spec){.name = "tokend",
                                                  .port = 8084,
                                                  .summary = "refresh tokens with stable "
                                                             "fingerprints and reuse detection",
                                                  .env_help = TOK_ENV_HELP,
                                                  .scripts = TOK_STORE_SCRIPTS},
                               argc, argv);
    tok_config_load(&conf, app_cfg(a));
    app_config_done(a);
    tok_service_init(&svc, &conf, app_metrics(a));
    tok_routes(a, &svc);
    int rc = app_run(a);
    app_free(a);
    tok_config_free(&conf);
    return rc;
}
