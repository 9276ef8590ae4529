/* SPDX-License-Identifier: Apache-2.0 */
/* config: ratelimitd's variables (see config.h). */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

const char RL_ENV_HELP[] =
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

void rl_config_load(struct rl_config *conf, struct cfg *c)
{
    const char *region = cfg_str(c, "CLOUD_RUN_REGION", "default", region_ok, "[a-z0-9-]{1,63}");
    snprintf(conf->region, sizeof(conf->region), "%s", region);
    conf->rules_file = cfg_str(c, "RATELIMIT_RULES_FILE", NULL, NULL, NULL);
    conf->instances = cfg_int(c, "RATELIMIT_INSTANCES", 1, 1, 100000);
    conf->local_max_keys = (size_t)cfg_int(c, "RATELIMIT_LOCAL_MAX_KEYS", 100000, 1, 100000000);
    conf->shadow = cfg_bool(c, "RATELIMIT_SHADOW", 0);
    conf->breaker.failure_threshold = (int)cfg_int(c, "BREAKER_FAILURE_THRESHOLD", 5, 1, 1000000);
    conf->breaker.open_ms = cfg_duration_ms(c, "BREAKER_OPEN_DURATION", "5s", 1, INT32_MAX);
    conf->breaker.open_max_ms = cfg_duration_ms(c, "BREAKER_OPEN_MAX", "60s", 1, INT32_MAX);
    conf->breaker.half_open_max_probes =
        (int)cfg_int(c, "BREAKER_HALF_OPEN_MAX_PROBES", 1, 1, 100000);
    if (conf->breaker.open_max_ms < conf->breaker.open_ms)
        cfg_fail(c, "BREAKER_OPEN_MAX=%lldms: must not be below BREAKER_OPEN_DURATION",
                 (long long)conf->breaker.open_max_ms);
}
