/* SPDX-License-Identifier: Apache-2.0 */
/* config: tokend's own configuration (the TOKEN_* variables of tokend.md). */
#ifndef TOKEND_CONFIG_H
#define TOKEND_CONFIG_H

#include <stdint.h>

#include "fingerprint.h"
#include "shared/config.h"
#include "token.h"

struct tok_config {
    struct tok_keys keys;
    int64_t idle_ttl_ms;
    int64_t absolute_ttl_ms;
    int64_t grace_ms; /* 0: no grace window */
    enum tok_ua_policy ua_policy;
    enum tok_tls_policy tls_policy;
    int revoke_on_mismatch;
    long long max_families;
};

/* Read every TOKEN_* variable from c; a bad value is recorded in c (cfg_failed) for
 * app_config_done() to report. Returns 0, or -1 when something was bad. */
int tok_config_load(struct tok_config *conf, struct cfg *c);
void tok_config_free(struct tok_config *conf); /* wipes the keys */

/* For --help. */
extern const char TOK_ENV_HELP[];

#endif
