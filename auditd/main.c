/* auditd: a tamper-evident, hash-chained, signed audit log in Redis. main() reads like a
 * table of contents: configuration, keys, the appender, the checkpointer, the routes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "appender.h"
#include "checkpointer.h"
#include "config.h"
#include "keyring.h"
#include "scripts.h"
#include "shared/app.h"
#include "shared/log.h"
#include "store.h"

static const struct script *const AUDIT_SCRIPTS[] = {&script_audit_append, &script_audit_checkpoint,
                                                     NULL};

struct auditd {
    struct audit_config conf;
    struct audit_keys keys;
    struct audit_keyring *kr;
    struct audit_appender *appender;
    struct audit_checkpointer *checkpointer;
    struct audit_api api;
};

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
    audit_keys_init(&d->keys, d->conf.chain);
    metric_set(metric_with(metrics_gauge(app_metrics(a), "signing_key_info",
                                         "Active signing key version", "version"),
                           active->name),
               1);
    d->appender = audit_appender_create(app_redis(a), &d->keys, d->kr, &ac, app_metrics(a));
    if (!d->appender || check_chain(d) != 0)
        return -1;
    d->checkpointer = audit_checkpointer_start(app_redis(a), &d->keys, active, d->conf.origin,
                                               d->conf.checkpoint_interval_ms, app_metrics(a));
    if (!d->checkpointer)
        return -1;
    d->api = (struct audit_api){.pool = app_redis(a),
                                .keys = &d->keys,
                                .kr = d->kr,
                                .appender = d->appender,
                                .origin = d->conf.origin,
                                .wait_replicas = d->conf.wait_replicas};
    audit_api_routes(a, &d->api);
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
                                                  .scripts = AUDIT_SCRIPTS},
                               argc, argv);
    char **args = app_args(a, &nargs);
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
    audit_keyring_free(d.kr);
    return rc;
}
