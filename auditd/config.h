/* SPDX-License-Identifier: Apache-2.0 */
/* config: auditd's own variables (AUDIT_*), read and validated at startup. The key
 * variables are read by keyring.c. */
#ifndef AUDIT_CONFIG_H
#define AUDIT_CONFIG_H

#include <stdint.h>

#include "shared/config.h"

struct audit_config {
    const char *chain;
    char origin[160];
    const char *state_dir;   /* NULL: the floor is kept in memory only */
    const char *witness_dir; /* NULL: signed checkpoints are not written out */
    int batch_max;
    int wait_replicas;
    int64_t wait_timeout_ms;
    int64_t dedup_window_ms;
    int64_t checkpoint_interval_ms;
};

/* Read everything; bad values are recorded in c (cfg_failed). */
void audit_config_load(struct audit_config *conf, struct cfg *c);

/* The --help text for these variables. */
extern const char AUDIT_ENV_HELP[];

#endif
