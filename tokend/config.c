/* SPDX-License-Identifier: Apache-2.0 */
/* config: reading and validating tokend's TOKEN_* variables. */
#include "config.h"

#include <string.h>

const char TOK_ENV_HELP[] =
    "  TOKEN_HASH_KEY / _FILE           base64 of >= 32 random bytes (required)\n"
    "  TOKEN_HASH_KEY_PREVIOUS / _FILE  the key before a rotation (optional)\n"
    "  TOKEN_IDLE_TTL                   14d    family expires when unused this long\n"
    "  TOKEN_ABSOLUTE_TTL               90d    family expires this long after login\n"
    "  TOKEN_REUSE_GRACE                10s    concurrent-refresh window; 0 disables\n"
    "  TOKEN_FP_UA                      upgrade  strict | upgrade\n"
    "  TOKEN_FP_TLS                     soft   ignore | soft | strict\n"
    "  TOKEN_ON_FP_MISMATCH             reject reject | revoke\n"
    "  TOKEN_MAX_FAMILIES_PER_USER      100\n";

int tok_config_load(struct tok_config *conf, struct cfg *c)
{
    static const char *const ua[] = {"strict", "upgrade", NULL};
    static const char *const tls[] = {"ignore", "soft", "strict", NULL};
    static const char *const onmis[] = {"reject", "revoke", NULL};
    const int64_t day = 86400000;
    char err[160];

    memset(conf, 0, sizeof(*conf));
    const char *key = cfg_secret(c, "TOKEN_HASH_KEY");
    const char *prev = cfg_secret(c, "TOKEN_HASH_KEY_PREVIOUS");
    conf->idle_ttl_ms = cfg_duration_ms(c, "TOKEN_IDLE_TTL", "14d", 1000, 3650 * day);
    conf->absolute_ttl_ms = cfg_duration_ms(c, "TOKEN_ABSOLUTE_TTL", "90d", 1000, 3650 * day);
    conf->grace_ms = cfg_duration_ms(c, "TOKEN_REUSE_GRACE", "10s", 0, 300000);
    conf->ua_policy =
        cfg_enum(c, "TOKEN_FP_UA", "upgrade", ua) == 0 ? TOK_UA_STRICT : TOK_UA_UPGRADE;
    conf->tls_policy = (enum tok_tls_policy)cfg_enum(c, "TOKEN_FP_TLS", "soft", tls);
    conf->revoke_on_mismatch = cfg_enum(c, "TOKEN_ON_FP_MISMATCH", "reject", onmis) == 1;
    conf->max_families = cfg_int(c, "TOKEN_MAX_FAMILIES_PER_USER", 100, 1, 100000);
    if (cfg_failed(c))
        return -1;
    if (!key) {
        cfg_fail(c,
                 "TOKEN_HASH_KEY: not set (allowed: base64 of >= %d random bytes, or "
                 "TOKEN_HASH_KEY_FILE naming a file holding it)",
                 TOK_KEY_MIN);
        return -1;
    }
    if (tok_keys_load(&conf->keys, key, prev, err, sizeof(err)) != 0) {
        cfg_fail(c, "%s", err);
        return -1;
    }
    return 0;
}

void tok_config_free(struct tok_config *conf)
{
    tok_keys_free(&conf->keys);
}
