/* SPDX-License-Identifier: Apache-2.0 */
/* ratelimitd: per-region rate limiting on Redis, with a circuit breaker and fallbacks.
 * Reads its configuration, builds the limiter and the rules, serves the API. */
#include <stdio.h>

#include "config.h"
#include "handlers.h"
#include "limiter.h"
#include "rules.h"
#include "shared/app.h"
#include "shared/log.h"
#include "store.h"

struct rl_daemon {
    struct rl_config conf;
    struct rl_api api;
};

static struct rl_ruleset *load_rules(const char *path, char *err, size_t errsize)
{
    return path ? rl_rules_load_file(path, err, errsize) : rl_rules_default();
}

/* SIGHUP: parse the file again; a bad file is refused and the running rules stay. */
static void reload_rules(void *arg)
{
    struct rl_daemon *d = arg;
    const char *file = d->conf.rules_file;
    char err[256];
    if (!file) {
        log_info(NULL, "rules reload: no RATELIMIT_RULES_FILE, nothing to reload");
        return;
    }
    struct rl_ruleset *next = rl_rules_load_file(file, err, sizeof(err));
    if (!next) {
        log_error(NULL, "rules reload refused; the previous rules stay", LF_S("file", file),
                  LF_S("error", err));
        return;
    }
    size_t count = next->count;
    rl_rules_swap(d->api.rules, next);
    rl_limiter_rules_changed(d->api.limiter);
    log_info(NULL, "rules reloaded", LF_S("file", file), LF_I("rules", count));
}

/* On each HTTP worker's thread before it serves: its deny cache (app_worker_data). */
static void *start_worker(struct loop *l, void *arg)
{
    struct rl_daemon *d = arg;
    return rl_worker_start(d->api.limiter, l);
}

int main(int argc, char **argv)
{
    struct rl_daemon d = {0};
    char err[256];
    struct app *a = app_create(&(struct app_spec){.name = "ratelimitd",
                                                  .port = 8081,
                                                  .command_timeout_ms = 50,
                                                  .pool_timeout_ms = 20,
                                                  .connect_timeout_ms = 50,
                                                  .summary = "per-region rate limiting on Redis",
                                                  .env_help = RL_ENV_HELP,
                                                  .scripts = RL_STORE_SCRIPTS},
                               argc, argv);
    rl_config_load(&d.conf, app_cfg(a));
    struct rl_ruleset *rules = NULL;
    if (!cfg_failed(app_cfg(a)) && !(rules = load_rules(d.conf.rules_file, err, sizeof(err))))
        cfg_fail(app_cfg(a), "RATELIMIT_RULES_FILE=%s: %s", d.conf.rules_file, err);
    app_config_done(a);

    d.api.rules = rl_rules_holder_create(rules);
    d.api.limiter =
        rl_limiter_create(&d.conf, app_rcl_config(a)->loops, app_metrics(a), err, sizeof(err));
    if (!d.api.rules || !d.api.limiter) {
        fprintf(stderr, "ratelimitd: %s\n", d.api.limiter ? "out of memory" : err);
        return 2;
    }
    app_on_worker(a, start_worker, NULL, &d);
    rl_handlers_route(a, &d.api);
    app_on_reload(a, reload_rules, &d);

    int status = app_run(a);
    rl_limiter_free(d.api.limiter);
    rl_rules_holder_free(d.api.rules);
    app_free(a);
    return status;
}
