/* SPDX-License-Identifier: Apache-2.0 */
/* config: the AUDIT_* variables. */
#include "config.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "store.h"

const char AUDIT_ENV_HELP[] =
    "  AUDIT_CHAIN                chain name [a-z0-9_.-]{1,64} (default: default)\n"
    "  AUDIT_PRIVATE_KEY_V<n>     signing key version n (PEM PKCS#8 or base64 seed); _FILE too\n"
    "  AUDIT_PRIVATE_KEY          unversioned key, version v0\n"
    "  AUDIT_PUBLIC_KEY_V<n>      retired version: public key only\n"
    "  AUDIT_ACTIVE_KEY_VERSION   signing version (default: highest private key)\n"
    "  AUDIT_BATCH_MAX            requests per compare-and-set (default: 256)\n"
    "  AUDIT_WAIT_REPLICAS        WAIT for n replicas after an append (default: 0)\n"
    "  AUDIT_WAIT_TIMEOUT         how long to WAIT (default: 500ms)\n"
    "  AUDIT_DEDUP_WINDOW         how long an event_id is remembered (default: 24h)\n"
    "  AUDIT_CHECKPOINT_INTERVAL  signed checkpoint cadence, 0 disables (default: 60s)\n"
    "  AUDIT_ORIGIN               checkpoint origin (default: warden-audit/<chain>)\n"
    "  AUDIT_STATE_DIR            directory keeping the highest entry seen, across restarts\n"
    "                             (default: unset, memory only)\n"
    "  AUDIT_CHECKPOINT_WITNESS_DIR  directory receiving every signed checkpoint as a file\n"
    "                             (default: unset)\n"
    "\nFlags:\n"
    "  --accept-chain             go on with the chain Redis shows (after restoring an older\n"
    "                             backup), recording audit.chain_accepted in it\n"
    "\nCommands:\n"
    "  warden-auditd keygen       print a new PEM private key and its base64 public key\n"
    "  warden-auditd pubkeys      print the keyring (as GET /v1/keys) of the keys set\n";

static int chain_ok(const char *s)
{
    return audit_chain_valid(s);
}

static int origin_ok(const char *s)
{
    return audit_origin_valid(s);
}

static int absolute_path(const char *s)
{
    return s[0] == '/';
}

static int writable_dir(const char *s)
{
    struct stat st;
    return s[0] == '/' && stat(s, &st) == 0 && S_ISDIR(st.st_mode) && access(s, W_OK | X_OK) == 0;
}

void audit_config_load(struct audit_config *conf, struct cfg *c)
{
    conf->chain = cfg_str(c, "AUDIT_CHAIN", "default", chain_ok, "[a-z0-9_.-]{1,64}");
    snprintf(conf->origin, sizeof(conf->origin), "warden-audit/%s", conf->chain);
    const char *origin =
        cfg_str(c, "AUDIT_ORIGIN", conf->origin, origin_ok, "[A-Za-z0-9._/-]{1,128}");
    snprintf(conf->origin, sizeof(conf->origin), "%s", origin);
    conf->state_dir = cfg_str(c, "AUDIT_STATE_DIR", NULL, absolute_path, "an absolute path");
    conf->witness_dir = cfg_str(c, "AUDIT_CHECKPOINT_WITNESS_DIR", NULL, writable_dir,
                                "an absolute path to a directory this user can write");
    conf->batch_max = (int)cfg_int(c, "AUDIT_BATCH_MAX", 256, 1, 4096);
    conf->wait_replicas = (int)cfg_int(c, "AUDIT_WAIT_REPLICAS", 0, 0, 100);
    conf->wait_timeout_ms = cfg_duration_ms(c, "AUDIT_WAIT_TIMEOUT", "500ms", 1, 60000);
    conf->dedup_window_ms =
        cfg_duration_ms(c, "AUDIT_DEDUP_WINDOW", "24h", 1000, 365LL * 24 * 3600 * 1000);
    conf->checkpoint_interval_ms =
        cfg_duration_ms(c, "AUDIT_CHECKPOINT_INTERVAL", "60s", 0, 7LL * 24 * 3600 * 1000);
    if (conf->checkpoint_interval_ms > 0 && conf->checkpoint_interval_ms < 1000)
        cfg_fail(c, "AUDIT_CHECKPOINT_INTERVAL=%lldms: must be 0 or at least 1s",
                 (long long)conf->checkpoint_interval_ms);
}
