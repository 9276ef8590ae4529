/* SPDX-License-Identifier: Apache-2.0 */
/* config: ratelimitd's own variables (CLOUD_RUN_REGION, RATELIMIT_*, BREAKER_*), read and
 * validated at startup. The rules file itself is parsed by rules.c. */
#ifndef RATELIMITD_CONFIG_H
#define RATELIMITD_CONFIG_H

#include <stddef.h>

#include "breaker.h"
#include "shared/config.h"

#define RL_REGION_MAX 63

struct rl_config {
    char region[RL_REGION_MAX + 1]; /* CLOUD_RUN_REGION */
    const char *rules_file;         /* RATELIMIT_RULES_FILE; NULL: the built-in default rule */
    long long instances;            /* RATELIMIT_INSTANCES */
    size_t local_max_keys;          /* RATELIMIT_LOCAL_MAX_KEYS */
    int shadow;                     /* RATELIMIT_SHADOW */
    struct rl_brk_config breaker;   /* BREAKER_* */
};

/* Read every variable from c; a bad value is recorded in c (cfg_failed) for
 * app_config_done() to report. rules_file points into c's storage. */
void rl_config_load(struct rl_config *conf, struct cfg *c);

/* For --help. */
extern const char RL_ENV_HELP[];

#endif
