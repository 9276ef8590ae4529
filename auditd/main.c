/* SPDX-License-Identifier: Apache-2.0 */
/* auditd: a tamper-evident, hash-chained, signed audit log in Redis. main() reads like a
 * table of contents: configuration, keys, the appender, the checkpointer, the routes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accept.h"
#include "appender.h"
#include "checkpointer.h"
#include "config.h"
#include "handlers.h"
#include "keyring.h"
#include "shared/app.h"
#include "shared/log.h"
#include "store.h"

static const char *const AUDIT_FLAGS[] = {"--accept-chain", NULL};

struct auditd {
    struct audit_config conf;
    struct audit_keys keys;
    struct audit_keyring *kr;
    struct audit_guard *guard;
    int accept_chain; /* --accept-chain */
    struct rcl_config rconf;
    struct audit_appender *appender;
    struct audit_checkpointer *checkpointer;
    struct audit_ctx ctx;
};

/* The Redis settings of the daemon's own loops (the appender, the checkpointer, startup):
 * the common ones, on a connection or two of their own. */
static void redis_client_config(struct app *a, struct rcl_config *rc)
{
    *rc = *app_rcl_config(a);
    rc->loops = 1;
    rc->pool_size = 2;
    rc->min_idle = 1;
}

/* `auditd keygen`: a new private key (PEM) and its public key (base64). */
static int cmd_keygen(void)
{
    uint8_t pk[CRYPTO_ED25519_PK_LEN], *sk = crypto_secret_alloc(CRYPTO_ED25519_SK_LEN);
    char pem[256], pk64[48];
    if (!sk)
        return 1;
    crypto_ed25519_keygen(pk, sk);
    int rc = crypto_ed25519_seed_to_pem(sk, pem, sizeof(pem));
    crypto_secret_free(sk);
    if (rc != 0)
        return 1;
    crypto_b64(pk, sizeof(pk), pk64, sizeof(pk64));
    printf("%s", pem);
    printf("public_key: %s\n", pk64);
    crypto_wipe(pem, sizeof(pem));
    return 0;
}

/* `auditd pubkeys`: the keyring (as GET /v1/keys) of the keys in the environment. */
static int cmd_pubkeys(struct app *a, struct auditd *d)
{
    audit_config_load(&d->conf, app_cfg(a));
    d->kr = audit_keyring_from_env(app_cfg(a), d->conf.origin, 0);
    if (!d->kr || cfg_failed(app_cfg(a))) {
        fprintf(stderr, "%s\n", d->kr ? cfg_errstr(app_cfg(a)) : "out of memory");
        return 2;
    }
    json_t *doc = audit_keyring_json(d->kr, NULL);
    char *text = json_dumps(doc, JSON_INDENT(2));
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(doc);
    return 0;
}

/* Refuse to start over a chain whose head and log disagree; a Redis that is down now is
 * checked by the appender's first commit instead. */
static int check_chain(struct auditd *d)
{
    char err[160];
    int rc = audit_appender_check(d->appender, err, sizeof(err));
    if (rc == -1) {
        log_critical(NULL, "refusing to start: audit chain is inconsistent", LF_S("detail", err),
                     LF_S("chain", d->conf.chain));
        fprintf(stderr, "auditd: refusing to start: %s (chain %s)\n", err, d->conf.chain);
        return -1;
    }
    if (rc == -2)
        log_warn(NULL, "redis unavailable at startup: chain check deferred");
    return 0;
}

/* What this instance remembers against what Redis shows now. A chain that does not hold it
 * is not fatal at startup (Redis may be the one to fix, or the operator accepts it over
 * the admin API): the guard logs it, appends are refused and /ready says so. The state
 * file is written here, so an unwritable AUDIT_STATE_DIR stops the start. */
static int check_floor(struct auditd *d)
{
    enum audit_verdict v;
    struct audit_db db;
    char err[200];
    enum rreply_class c = RREPLY_UNAVAILABLE;
    if (audit_db_open(&db, &d->rconf, err, sizeof(err)) == 0) {
        c = audit_guard_check(d->guard, &db, &d->keys, &v, NULL);
        audit_db_close(&db);
    }
    if (c != RREPLY_OK)
        log_warn(NULL, "redis unavailable at startup: checked on the first append");
    if (audit_guard_sync(d->guard) != 0) {
        fprintf(stderr, "auditd: AUDIT_STATE_DIR=%s: cannot write the state file (see the log)\n",
                d->conf.state_dir);
        return -1;
    }
    return 0;
}

/* --accept-chain: the operator restored an older backup on purpose; record it in the chain
 * before serving. Needs Redis: without it nothing would be accepted, so the start fails. */
static int accept_at_start(struct auditd *d)
{
    struct audit_acceptance acc;
    enum audit_append_status st = audit_appender_accept(d->appender, "--accept-chain", &acc);
    if (st == AUDIT_APPEND_OK) {
        audit_entry_clear(&acc.entry);
        return 0;
    }
    fprintf(stderr, "auditd: --accept-chain: %s; nothing accepted\n",
            st == AUDIT_APPEND_BROKEN  ? "the chain head and log disagree"
            : st == AUDIT_APPEND_STATE ? "AUDIT_STATE_DIR cannot be written"
                                       : "Redis unavailable");
    return -1;
}

/* /ready (on a worker loop: it must not wait): what the guard has seen, and it looks at
 * Redis again in the background, so that a chain lost, or restored, while nobody appends
 * shows on the next /ready. */
static int chain_ready(void *arg, char *reason, size_t size)
{
    struct auditd *d = arg;
    audit_checkpointer_look(d->checkpointer);
    if (!audit_guard_refusing(d->guard, NULL, 0))
        return 0;
    snprintf(reason, size, "chain_broken");
    return 1;
}

static void on_shutdown(void *arg)
{
    struct auditd *d = arg;
    audit_checkpointer_stop(d->checkpointer);
    d->checkpointer = NULL;
    audit_appender_free(d->appender); /* flushes what is queued */
    d->appender = NULL;
}

static int start(struct app *a, struct auditd *d)
{
    struct audit_appender_config ac = {.batch_max = d->conf.batch_max,
                                       .dedup_window_ms = d->conf.dedup_window_ms,
                                       .wait_replicas = d->conf.wait_replicas,
                                       .wait_timeout_ms = d->conf.wait_timeout_ms};
    const struct audit_key *active = &d->kr->keys[d->kr->active];
    char err[4400];
    audit_keys_init(&d->keys, d->conf.chain);
    redis_client_config(a, &d->rconf);
    d->guard = audit_guard_create(d->conf.state_dir, d->conf.chain, d->conf.origin, app_metrics(a),
                                  err, sizeof(err));
    if (!d->guard) {
        fprintf(stderr, "auditd: %s\n", err);
        return -1;
    }
    metric_set(metric_with(metrics_gauge(app_metrics(a), "signing_key_info",
                                         "Active signing key version", "version"),
                           active->name),
               1);
    d->appender = audit_appender_create(&d->rconf, &d->keys, d->kr, d->guard, &ac, app_metrics(a),
                                        err, sizeof(err));
    if (!d->appender) {
        fprintf(stderr, "auditd: %s\n", err);
        return -1;
    }
    if (check_chain(d) != 0)
        return -1;
    if (d->accept_chain ? accept_at_start(d) != 0 : check_floor(d) != 0)
        return -1;
    struct audit_checkpointer_config cc = {.chain = d->conf.chain,
                                           .origin = d->conf.origin,
                                           .interval_ms = d->conf.checkpoint_interval_ms,
                                           .witness_dir = d->conf.witness_dir};
    d->checkpointer = audit_checkpointer_start(&d->rconf, &d->keys, active, d->guard, &cc,
                                               app_metrics(a), err, sizeof(err));
    if (!d->checkpointer) {
        fprintf(stderr, "auditd: %s\n", err);
        return -1;
    }
    d->ctx = (struct audit_ctx){.rconf = &d->rconf,
                                .keys = &d->keys,
                                .kr = d->kr,
                                .appender = d->appender,
                                .guard = d->guard,
                                .checkpointer = d->checkpointer,
                                .origin = d->conf.origin,
                                .wait_replicas = d->conf.wait_replicas};
    audit_routes(a, &d->ctx);
    app_on_ready(a, chain_ready, d);
    app_on_shutdown(a, on_shutdown, d);
    log_info(NULL, "signing with key", LF_S("version", active->name),
             LF_S("key_id", active->key_id), LF_S("chain", d->conf.chain));
    return 0;
}

int main(int argc, char **argv)
{
    static struct auditd d;
    int nargs, rc = 2;
    struct app *a = app_create(&(struct app_spec){.name = "auditd",
                                                  .port = 8082,
                                                  .max_body = 1024 * 1024,
                                                  .summary = "hash-chained, signed audit log",
                                                  .env_help = AUDIT_ENV_HELP,
                                                  .scripts = AUDIT_STORE_SCRIPTS,
                                                  .flags = AUDIT_FLAGS},
                               argc, argv);
    char **args = app_args(a, &nargs);
    int kept = 0;
    for (int i = 0; i < nargs; i++) /* the flag, wherever it is; commands stay in order */
        if (strcmp(args[i], "--accept-chain") == 0)
            d.accept_chain = 1;
        else
            args[kept++] = args[i];
    nargs = kept;
    if (nargs > 0) {
        if (strcmp(args[0], "keygen") == 0)
            rc = cmd_keygen();
        else if (strcmp(args[0], "pubkeys") == 0)
            rc = cmd_pubkeys(a, &d);
        else
            fprintf(stderr, "auditd: unknown command %s (keygen, pubkeys)\n", args[0]);
        audit_keyring_free(d.kr);
        app_free(a);
        return rc;
    }
    audit_config_load(&d.conf, app_cfg(a));
    d.kr = audit_keyring_from_env(app_cfg(a), d.conf.origin, 1);
    if (!d.kr) {
        fprintf(stderr, "auditd: out of memory\n");
        return 1;
    }
    app_config_done(a);
    rc = start(a, &d) == 0 ? app_run(a) : 2;
    on_shutdown(&d);
    app_free(a);
    audit_guard_free(d.guard);
    audit_keyring_free(d.kr);
    return rc;
}
