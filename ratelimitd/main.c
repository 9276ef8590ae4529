/* SPDX-License-Identifier: Apache-2.0 */
/* ratelimitd: per-region rate limiting on Redis, with a circuit breaker and fallbacks.
 * Reads its configuration, builds the limiter and the rules, serves the API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "limiter.h"
#include "rules.h"
#include "scripts.h"
#include "shared/app.h"
#include "shared/log.h"

static const char ENV_HELP[] =
    "  CLOUD_RUN_REGION              region name, part of every key (default: default)\n"
    "  RATELIMIT_RULES_FILE          JSON rules file, reloaded on SIGHUP (default: one rule\n"
    "                                `default`, 100 per 1s, gcra)\n"
    "  RATELIMIT_INSTANCES           instances sharing the limits (default: 1)\n"
    "  RATELIMIT_LOCAL_MAX_KEYS      bound on the local fallback and deny cache (100000)\n"
    "  RATELIMIT_SHADOW              decide and count, but always allow (false)\n"
    "  BREAKER_FAILURE_THRESHOLD     consecutive failures that open the breaker (5)\n"
    "  BREAKER_OPEN_DURATION         first open period (5s)\n"
    "  BREAKER_OPEN_MAX              cap of the doubling open period (60s)\n"
    "  BREAKER_HALF_OPEN_MAX_PROBES  requests at Redis at once while half-open (1)\n";

static const struct script *const RL_SCRIPTS[] = {&script_ratelimit_gcra, &script_ratelimit_sliding,
                                                  NULL};

struct rl_daemon {
    struct rl_api api;
    const char *rules_file; /* NULL: the built-in default rule */
};

static int region_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > RL_REGION_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

static void read_config(struct cfg *c, struct rl_config *rc, const char **rules_file)
{
    const char *region = cfg_str(c, "CLOUD_RUN_REGION", "default", region_ok, "[a-z0-9-]{1,63}");
    snprintf(rc->region, sizeof(rc->region), "%s", region);
    *rules_file = cfg_str(c, "RATELIMIT_RULES_FILE", NULL, NULL, NULL);
    rc->instances = cfg_int(c, "RATELIMIT_INSTANCES", 1, 1, 100000);
    rc->local_max_keys = (size_t)cfg_int(c, "RATELIMIT_LOCAL_MAX_KEYS", 100000, 1, 100000000);
    rc->shadow = cfg_bool(c, "RATELIMIT_SHADOW", 0);
    rc->breaker.failure_threshold = (int)cfg_int(c, "BREAKER_FAILURE_THRESHOLD", 5, 1, 1000000);
    rc->breaker.open_ms = cfg_duration_ms(c, "BREAKER_OPEN_DURATION", "5s", 1, INT32_MAX);
    rc->breaker.open_max_ms = cfg_duration_ms(c, "BREAKER_OPEN_MAX", "60s", 1, INT32_MAX);
    rc->breaker.half_open_max_probes =
        (int)cfg_int(c, "BREAKER_HALF_OPEN_MAX_PROBES", 1, 1, 100000);
    if (rc->breaker.open_max_ms < rc->breaker.open_ms)
        cfg_fail(c, "BREAKER_OPEN_MAX=%lldms: must not be below BREAKER_OPEN_DURATION",
                 (long long)rc->breaker.open_max_ms);
}

static struct rl_ruleset *load_rules(const char *path, char *err, size_t errsize)
{
    return path ? rl_rules_load_file(path, err, errsize) : rl_rules_default();
}

/* SIGHUP: parse the file again; a bad file is refused and the running rules stay. */
static void reload_rules(void *arg)
{
    struct rl_daemon *d = arg;
    char err[256];
    if (!d->rules_file) {
        log_info(NULL, "rules reload: no RATELIMIT_RULES_FILE, nothing to reload");
        return;
    }
    struct rl_ruleset *next = rl_rules_load_file(d->rules_file, err, sizeof(err));
    if (!next) {
        log_error(NULL, "rules reload refused; the previous rules stay",
                  LF_S("file", d->rules_file), LF_S("error", err));
        return;
    }
    size_t count = next->count;
    rl_rules_swap(d->api.rules, next);
    rl_limiter_rules_changed(d->api.limiter);
    log_info(NULL, "rules reloaded", LF_S("file", d->rules_file), LF_I("rules", count));
}

static void add_routes(struct app *a, struct rl_api *api)
{
    app_route(a, "POST", "/v1/check", rl_handle_check, api, 0);
    app_route(a, "POST", "/v1/peek", rl_handle_peek, api, 0);
    app_route(a, "POST", "/v1/reset", rl_handle_reset, api, 0);
    app_route(a, "GET", "/v1/rules", rl_handle_rules, api, 0);
    app_route(a, "GET", "/v1/breaker", rl_handle_breaker, api, 0);
    app_route(a, "POST", "/v1/breaker", rl_handle_breaker, api, HTTP_ADMIN);
}

int main(int argc, char **argv)
{
    struct rl_daemon d = {0};
    struct rl_config rc = {0};
    char err[256];
    struct app *a = app_create(&(struct app_spec){.name = "ratelimitd",
                                                  .port = 8081,
                                                  .command_timeout_ms = 50,
                                                  .pool_timeout_ms = 20,
                                                  .connect_timeout_ms = 50,
                                                  .summary = "per-region rate limiting on Redis",
                                                  .env_help = ENV_HELP,
                                                  .scripts = RL_SCRIPTS},
                               argc, argv);
    read_config(app_cfg(a), &rc, &d.rules_file);
    struct rl_ruleset *rules = NULL;
    if (!cfg_failed(app_cfg(a)) && !(rules = load_rules(d.rules_file, err, sizeof(err))))
        cfg_fail(app_cfg(a), "RATELIMIT_RULES_FILE=%s: %s", d.rules_file, err);
    app_config_done(a);
    d.api.rules = rl_rules_holder_create(rules);
    d.api.limiter = rl_limiter_create(&rc, app_redis(a), app_metrics(a), err, sizeof(err));
    if (!d.api.rules || !d.api.limiter) {
        fprintf(stderr, "ratelimitd: %s\n", d.api.limiter ? "out of memory" : err);
        return 2;
    }
    add_routes(a, &d.api);
    app_on_reload(a, reload_rules, &d);
    int rc_exit = app_run(a);
    rl_limiter_free(d.api.limiter);
    rl_rules_holder_free(d.api.rules);
    app_free(a);
    return rc_exit;
}
