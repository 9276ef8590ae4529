/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of auditd's signing keys: every way a key loads (PEM and seed, from
 * the variable or *_FILE, the unversioned v0, retired public keys), which version is
 * active, `auditd keygen`, the refusals; private key bytes never reach the log, Redis or
 * --check-config; the head/log check at startup and, when Redis was away then, before
 * the first append. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>

#include "test_auditd_util.h"

/* An Ed25519 key made once by `openssl genpkey -algorithm ed25519` (seed in hex below). */
static const char PEM_KEY[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MC4CAQAwBQYDK2VwBCIEIPaH3bmjikVdBhdU3LtZ/IpUH768yHUoRVWZi7zwuqDf\n"
                              "-----END PRIVATE KEY-----\n";
static const char PEM_SEED_HEX[] =
    "f687ddb9a38a455d061754dcbb59fc8a541fbebcc875284555998bbcf0baa0df";

static struct th_redis redis;
static char tmp[256];

static int setup(void **state)
{
    (void)state;
    return th_tmpdir(tmp, sizeof(tmp)) == 0 && th_redis_start(&redis, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    th_redis_stop(&redis);
    return 0;
}

/* The base64 public key of a base64 seed. */
static void seed_pk(const char *seed64, char pk64[48])
{
    uint8_t seed[32], pk[32], sk[64];
    assert_int_equal(crypto_unb64(seed64, strlen(seed64), seed, 32), 32);
    crypto_ed25519_from_seed(seed, pk, sk);
    crypto_b64(pk, 32, pk64, 48);
}

/* The public key openssl derives from a PEM private key file, as base64. */
static void openssl_pk(const char *pem_file, char pk64[48])
{
    const char *argv[] = {"openssl", "pkey", "-in", pem_file, "-pubout", NULL};
    char *pub = NULL, err[128];
    uint8_t pk[32];
    assert_int_equal(th_run("/usr/bin/openssl", argv, NULL, &pub, NULL, 10000), 0);
    assert_int_equal(crypto_ed25519_pk_parse(pub, pk, err, sizeof(err)), 0);
    crypto_b64(pk, 32, pk64, 48);
    free(pub);
}

/* `auditd pubkeys` with env: exit status, and the keyring it printed in *doc. */
static int pubkeys(const char *const *env, json_t **doc, char **err)
{
    const char *argv[] = {"auditd", "pubkeys", NULL};
    char *out = NULL;
    int st = th_run(th_bin("bin/auditd"), argv, env, &out, err, 10000);
    if (doc)
        *doc = out ? json_loads(out, 0, NULL) : NULL;
    free(out);
    return st;
}

static json_t *key_of(json_t *doc, const char *version)
{
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(doc, "keys"), i, k)
    {
        if (strcmp(json_string_value(json_object_get(k, "version")), version) == 0)
            return k;
    }
    return NULL;
}

static void assert_key(json_t *doc, const char *version, const char *pk64, int signing)
{
    json_t *k = key_of(doc, version);
    if (!k)
        fail_msg("no key %s", version);
    assert_string_equal(json_string_value(json_object_get(k, "public_key")), pk64);
    assert_string_equal(json_string_value(json_object_get(k, "algorithm")), "Ed25519");
    assert_int_equal(json_is_true(json_object_get(k, "signing")), signing);
    assert_true(json_is_null(json_object_get(k, "first_seq")));
}

/* PEM from the variable, seed from a file, the unversioned key as v0, a retired public
 * key; the highest private version is active unless AUDIT_ACTIVE_KEY_VERSION says. */
static void test_key_sources(void **state)
{
    (void)state;
    char pem_file[320], seed_file[320], v0pk[48], v1pk[48], v2pk[48], rogue[48];
    char v0[96], v1[400], v2[400], v4[96];
    json_t *doc = NULL;
    snprintf(pem_file, sizeof(pem_file), "%s/v1.pem", tmp);
    snprintf(seed_file, sizeof(seed_file), "%s/v2.seed", tmp);
    au_write(pem_file, PEM_KEY);
    au_write(seed_file, SEED_V2 "\n");
    openssl_pk(pem_file, v1pk);
    seed_pk(SEED_V2, v2pk);
    seed_pk(SEED_V1, v0pk);
    seed_pk(SEED_ROGUE, rogue);
    snprintf(v0, sizeof(v0), "AUDIT_PRIVATE_KEY=%s", SEED_V1);
    snprintf(v1, sizeof(v1), "AUDIT_PRIVATE_KEY_V1=%s", PEM_KEY);
    snprintf(v2, sizeof(v2), "AUDIT_PRIVATE_KEY_V2_FILE=%s", seed_file);
    snprintf(v4, sizeof(v4), "AUDIT_PUBLIC_KEY_V4=%s", rogue);
    const char *env[] = {v0, v1, v2, v4, NULL};
    assert_int_equal(pubkeys(env, &doc, NULL), 0);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "keys")), 4);
    assert_key(doc, "v0", v0pk, 1);
    assert_key(doc, "v1", v1pk, 1);
    assert_key(doc, "v2", v2pk, 1);
    assert_key(doc, "v4", rogue, 0); /* public only: listed, never active */
    assert_string_equal(json_string_value(json_object_get(doc, "active")), "v2");
    json_decref(doc);
    /* Held back. */
    const char *held[] = {v1, v2, "AUDIT_ACTIVE_KEY_VERSION=v1", NULL};
    assert_int_equal(pubkeys(held, &doc, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "active")), "v1");
    json_decref(doc);
    /* A retired key given as a PEM public key (openssl pkey -pubout). */
    const char *pub_argv[] = {"openssl", "pkey", "-in", pem_file, "-pubout", NULL};
    char *pub_pem = NULL, v5[400];
    assert_int_equal(th_run("/usr/bin/openssl", pub_argv, NULL, &pub_pem, NULL, 10000), 0);
    snprintf(v5, sizeof(v5), "AUDIT_PUBLIC_KEY_V5=%s", pub_pem);
    free(pub_pem);
    const char *pem_pub[] = {KEY_V2_ENV, v5, NULL};
    assert_int_equal(pubkeys(pem_pub, &doc, NULL), 0);
    assert_key(doc, "v5", v1pk, 0);
    assert_string_equal(json_string_value(json_object_get(doc, "active")), "v2");
    json_decref(doc);
    /* A PEM file from `openssl genpkey` and the seed in the variable work too. */
    char v1f[400];
    snprintf(v1f, sizeof(v1f), "AUDIT_PRIVATE_KEY_V1_FILE=%s", pem_file);
    const char *other[] = {v1f, KEY_V2_ENV, NULL};
    assert_int_equal(pubkeys(other, &doc, NULL), 0);
    assert_key(doc, "v1", v1pk, 1);
    assert_key(doc, "v2", v2pk, 1);
    json_decref(doc);
}

/* Each refusal exits 2 with a line naming the variable, never the key text. */
static void test_key_refusals(void **state)
{
    (void)state;
    char pem_file[320], both_file[400], *err = NULL;
    snprintf(pem_file, sizeof(pem_file), "%s/both.pem", tmp);
    au_write(pem_file, PEM_KEY);
    snprintf(both_file, sizeof(both_file), "AUDIT_PRIVATE_KEY_V1_FILE=%s", pem_file);
    const char *both[] = {KEY_V1_ENV, both_file, NULL};
    assert_int_equal(pubkeys(both, NULL, &err), 2);
    assert_non_null(strstr(err, "AUDIT_PRIVATE_KEY_V1"));
    assert_null(strstr(err, SEED_V1));
    free(err);
    const char *not_active[] = {KEY_V1_ENV, "AUDIT_ACTIVE_KEY_VERSION=v3", NULL};
    assert_int_equal(pubkeys(not_active, NULL, &err), 2);
    assert_non_null(strstr(err, "AUDIT_ACTIVE_KEY_VERSION=v3"));
    free(err);
    const char *mismatch[] = {KEY_V1_ENV, "AUDIT_PUBLIC_KEY_V1=" SEED_V2, NULL};
    assert_int_equal(pubkeys(mismatch, NULL, &err), 2);
    assert_non_null(strstr(err, "AUDIT_PUBLIC_KEY_V1"));
    free(err);
    /* A truncated key: refused, and the text is not echoed. */
    const char *bad[] = {"AUDIT_PRIVATE_KEY_V2=AgICAgICAgICAgICAgICAgICAgICAgIC", NULL};
    assert_int_equal(pubkeys(bad, NULL, &err), 2);
    assert_non_null(strstr(err, "AUDIT_PRIVATE_KEY_V2"));
    assert_non_null(strstr(err, "auditd keygen"));
    assert_null(strstr(err, "AgICAgICAgICAgICAgICAgICAgICAgIC"));
    free(err);
    /* No key at all: the daemon does not start and says how to make one. */
    char url[160];
    snprintf(url, sizeof(url), "REDIS_URL=%s", redis.url);
    const char *none[] = {url, "LISTEN_ADDR=127.0.0.1:0", NULL};
    const char *run[] = {"auditd", NULL};
    assert_int_equal(th_run(th_bin("bin/auditd"), run, none, NULL, &err, 10000), 2);
    assert_non_null(strstr(err, "no signing key"));
    assert_non_null(strstr(err, "auditd keygen"));
    free(err);
    assert_int_equal(th_redis_int(&redis, "DBSIZE"), 0);
}

/* `auditd keygen`: a PEM private key openssl reads, whose public key is the one printed;
 * the output loads as a key as it is (the public_key line after the PEM is ignored). */
static void test_keygen(void **state)
{
    (void)state;
    const char *argv[] = {"auditd", "keygen", NULL};
    char *out = NULL, *out2 = NULL, file[320], pk64[48], envk[400];
    json_t *doc = NULL;
    assert_int_equal(th_run(th_bin("bin/auditd"), argv, NULL, &out, NULL, 10000), 0);
    assert_int_equal(th_run(th_bin("bin/auditd"), argv, NULL, &out2, NULL, 10000), 0);
    assert_string_not_equal(out, out2); /* a new key each time */
    assert_int_equal(strncmp(out, "-----BEGIN PRIVATE KEY-----\n", 28), 0);
    const char *line = strstr(out, "\npublic_key: ");
    assert_non_null(line);
    char printed[48];
    snprintf(printed, sizeof(printed), "%.44s", line + 13);
    snprintf(file, sizeof(file), "%s/keygen.pem", tmp);
    au_write(file, out);
    openssl_pk(file, pk64);
    assert_string_equal(pk64, printed);
    snprintf(envk, sizeof(envk), "AUDIT_PRIVATE_KEY_V7_FILE=%s", file);
    const char *env[] = {envk, NULL};
    assert_int_equal(pubkeys(env, &doc, NULL), 0);
    assert_key(doc, "v7", printed, 1);
    json_decref(doc);
    free(out);
    free(out2);
}

/* The unversioned AUDIT_PRIVATE_KEY signs as v0. */
static void test_v0_signs(void **state)
{
    (void)state;
    struct th_proc p;
    json_t *j = NULL;
    const char *env[] = {"AUDIT_CHAIN=legacy", "AUDIT_PRIVATE_KEY=" SEED_V1, NULL};
    assert_int_equal(au_start(&p, &redis, env), 0);
    assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"a\"}", &j), 201);
    assert_string_equal(json_string_value(json_object_get(j, "key_version")), "v0");
    json_decref(j);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{legacy}:keys v0"), 1);
    th_proc_stop(&p, SIGTERM, 5000);
}

/* The forms a secret could take in a log line, a Redis command or --check-config. */
static void secret_forms(const uint8_t seed[32], char forms[4][140])
{
    char hex[65];
    crypto_b64(seed, 32, forms[0], 140);
    crypto_hex(seed, 32, hex);
    snprintf(forms[1], 140, "%s", hex);
    /* redis-cli MONITOR shows bytes that are not printable as \xNN */
    forms[2][0] = '\0';
    for (int i = 0; i < 8; i++)
        snprintf(forms[2] + strlen(forms[2]), 140 - strlen(forms[2]), "\\x%02x", seed[i]);
    snprintf(forms[3], 140, "%.40s", hex + 24);
}

static void assert_no_secret(const char *where, const char *text, char forms[4][140])
{
    for (int i = 0; i < 4; i++)
        if (forms[i][0] && strstr(text, forms[i]))
            fail_msg("%s contains a private key (form %d)", where, i);
}

/* Everything auditd sends Redis (seen by MONITOR), everything it logs at debug level and
 * its --check-config output: none holds a private key, in any form. */
static void test_secrets_stay_private(void **state)
{
    (void)state;
    struct th_proc mon, p;
    char port[16], pem_file[320], cp_file[320], v2[400], forms1[4][140], forms2[4][140];
    uint8_t seed1[32], seed2[32];
    crypto_unb64(SEED_V1, strlen(SEED_V1), seed1, 32);
    crypto_unhex(PEM_SEED_HEX, 64, seed2, 32);
    secret_forms(seed1, forms1);
    secret_forms(seed2, forms2);
    snprintf(forms2[3], 140, "%.40s", PEM_KEY + 28 + 24); /* the PEM's base64 of the seed */
    snprintf(pem_file, sizeof(pem_file), "%s/mon.pem", tmp);
    au_write(pem_file, PEM_KEY);
    snprintf(v2, sizeof(v2), "AUDIT_PRIVATE_KEY_V2_FILE=%s", pem_file);
    snprintf(port, sizeof(port), "%d", redis.port);
    const char *margv[] = {"redis-cli", "-p", port, "monitor", NULL};
    assert_int_equal(th_proc_start(&mon, "/usr/bin/redis-cli", margv, NULL, 0), 0);
    usleep(300000);
    const char *env[] = {"AUDIT_CHAIN=secret",           KEY_V1_ENV,        v2,
                         "AUDIT_CHECKPOINT_INTERVAL=1s", "LOG_LEVEL=debug", NULL};
    assert_int_equal(au_start(&p, &redis, env), 0);
    assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"a\"}", NULL),
                     201);
    assert_int_equal(au_post(p.port, "/v1/events/batch",
                             "{\"events\":[{\"actor\":\"u\",\"action\":\"b\"},"
                             "{\"actor\":\"u\",\"action\":\"c\"}]}",
                             NULL),
                     201);
    snprintf(cp_file, sizeof(cp_file), "%s/mon-cp.txt", tmp);
    assert_int_equal(au_get_file(p.port, "/v1/checkpoint", cp_file), 0);
    usleep(1500000); /* a periodic checkpoint too */
    th_proc_stop(&p, SIGTERM, 5000);
    usleep(200000);
    th_proc_stop(&mon, SIGTERM, 2000);
    char *log = th_proc_log(&mon);
    assert_non_null(log);
    assert_non_null(strstr(log, "EVALSHA")); /* MONITOR saw the appends */
    assert_non_null(strstr(log, "audit:{secret}:checkpoints"));
    assert_no_secret("what auditd sent Redis", log, forms1);
    assert_no_secret("what auditd sent Redis", log, forms2);
    free(log);
    log = th_proc_log(&p);
    assert_non_null(strstr(log, "\"msg\":\"request\"")); /* it logged everything, at debug level */
    assert_no_secret("auditd's log", log, forms1);
    assert_no_secret("auditd's log", log, forms2);
    free(log);
    char *out = NULL;
    const char *argv[] = {"auditd", "--check-config", NULL};
    assert_int_equal(th_run(th_bin("bin/auditd"), argv, env, &out, NULL, 10000), 0);
    assert_non_null(strstr(out, "AUDIT_PRIVATE_KEY_V1=<set"));
    assert_no_secret("--check-config", out, forms1);
    assert_no_secret("--check-config", out, forms2);
    free(out);
}

/* Head and log disagree in other ways than the head running ahead: a head hash that is
 * not the last entry's, a log without a head. Refused at startup, naming it. */
static void test_refuses_other_mismatches(void **state)
{
    (void)state;
    struct th_proc p;
    char url[160], *err = NULL;
    const char *env[] = {"AUDIT_CHAIN=mm", KEY_V1_ENV, NULL};
    assert_int_equal(au_start(&p, &redis, env), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"a\"}", NULL),
                         201);
    th_proc_stop(&p, SIGTERM, 5000);
    freeReplyObject(th_redis_cmd(&redis, "HSET audit:{mm}:head hash %s", ZERO_HASH));
    snprintf(url, sizeof(url), "REDIS_URL=%s", redis.url);
    const char *run_env[] = {url, "AUDIT_CHAIN=mm", KEY_V1_ENV, "LISTEN_ADDR=127.0.0.1:0", NULL};
    const char *argv[] = {"auditd", NULL};
    assert_int_equal(th_run(th_bin("bin/auditd"), argv, run_env, NULL, &err, 10000), 2);
    assert_non_null(strstr(err, "refusing to start"));
    assert_non_null(strstr(err, "hash differs from the hash of entry 4"));
    free(err);
    freeReplyObject(th_redis_cmd(&redis, "DEL audit:{mm}:head"));
    assert_int_equal(th_run(th_bin("bin/auditd"), argv, run_env, NULL, &err, 10000), 2);
    assert_non_null(strstr(err, "head says seq 0 but the log ends at seq 4"));
    free(err);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{mm}:log"), 4);
}

/* Redis frozen while auditd starts: it starts, and checks the chain before its first
 * append — a broken chain then gets 503 chain_broken and nothing is written. */
static void test_check_deferred_while_redis_away(void **state)
{
    (void)state;
    struct th_proc p;
    struct th_resp r;
    freeReplyObject(
        th_redis_cmd(&redis, "XADD audit:{late}:log 1-0 body x hash %s sig y", ZERO_HASH));
    freeReplyObject(
        th_redis_cmd(&redis, "HSET audit:{late}:head seq 1 hash %s",
                     "1111111111111111111111111111111111111111111111111111111111111111"));
    const char *env[] = {"AUDIT_CHAIN=late", KEY_V1_ENV, NULL};
    th_redis_pause(&redis);
    int started = au_start(&p, &redis, env);
    th_redis_resume(&redis);
    assert_int_equal(started, 0);
    assert_int_equal(th_post_json(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"a\"}", &r),
                     0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "chain_broken"));
    th_resp_free(&r);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{late}:log"), 1);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{late}:head seq"), 1);
    assert_true(th_proc_log_contains(&p, "chain is inconsistent"));
    th_proc_stop(&p, SIGTERM, 5000);
}

/* Each AUDIT_* variable with a bad value: exit 2, one line naming it and the value. */
static void test_bad_settings(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"AUDIT_CHAIN=Bad", "AUDIT_CHAIN"},
        {"AUDIT_CHAIN=a{b}", "AUDIT_CHAIN"},
        {"AUDIT_ORIGIN=has space", "AUDIT_ORIGIN"},
        {"AUDIT_BATCH_MAX=0", "AUDIT_BATCH_MAX"},
        {"AUDIT_WAIT_REPLICAS=-1", "AUDIT_WAIT_REPLICAS"},
        {"AUDIT_WAIT_TIMEOUT=5", "AUDIT_WAIT_TIMEOUT"},
        {"AUDIT_DEDUP_WINDOW=0s", "AUDIT_DEDUP_WINDOW"},
        {"AUDIT_CHECKPOINT_INTERVAL=500ms", "AUDIT_CHECKPOINT_INTERVAL"},
        {"AUDIT_CHECKPOINT_INTERVAL=soon", "AUDIT_CHECKPOINT_INTERVAL"},
        {"AUDIT_PUBLIC_KEY_V2_FILE=/x", "AUDIT_PUBLIC_KEY_V2_FILE: not a key version"},
        {"AUDIT_PRIVATE_KEY_V0=" SEED_V2, "AUDIT_PRIVATE_KEY_V0: not a key version"},
        {"AUDIT_PRIVATE_KEY_V01=" SEED_V2, "AUDIT_PRIVATE_KEY_V01: not a key version"},
        {"AUDIT_PRIVATE_KEY_V1000=" SEED_V1, "AUDIT_PRIVATE_KEY_V1000: not a key version"},
    };
    const char *argv[] = {"auditd", "--check-config", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *err = NULL;
        const char *env[] = {bad[i][0], KEY_V1_ENV, NULL};
        int st = th_run(th_bin("bin/auditd"), argv, env, NULL, &err, 10000);
        if (st != 2 || !err || !strstr(err, bad[i][1]))
            fail_msg("%s: exit %d, %s", bad[i][0], st, err ? err : "");
        free(err);
    }
}

/* AUDIT_BATCH_MAX=1: one request per compare-and-set even under concurrency (the
 * activation entry rides with the first); AUDIT_CHECKPOINT_INTERVAL=0: none stored;
 * AUDIT_ORIGIN names the checkpoints and changes the key id; AUDIT_DEDUP_WINDOW: an id
 * older than it is appended again. */
struct bm_client {
    int port, ok;
};

static void *bm_main(void *arg)
{
    struct bm_client *c = arg;
    for (int i = 0; i < 10; i++)
        c->ok += au_post(c->port, "/v1/events", "{\"actor\":\"u\",\"action\":\"bm\"}", NULL) == 201;
    return NULL;
}

static void test_settings_take_effect(void **state)
{
    (void)state;
    struct th_proc p;
    struct bm_client c[20];
    pthread_t t[20];
    const char *env[] = {"AUDIT_CHAIN=bm",
                         KEY_V1_ENV,
                         "AUDIT_BATCH_MAX=1",
                         "AUDIT_CHECKPOINT_INTERVAL=0",
                         "AUDIT_ORIGIN=example.com/audit",
                         "AUDIT_DEDUP_WINDOW=1s",
                         NULL};
    assert_int_equal(au_start(&p, &redis, env), 0);
    for (int i = 0; i < 20; i++) {
        c[i] = (struct bm_client){.port = p.port};
        assert_int_equal(pthread_create(&t[i], NULL, bm_main, &c[i]), 0);
    }
    for (int i = 0; i < 20; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].ok, 10);
    }
    assert_int_equal(au_metric(p.port, "auditd_append_batch_size_count "), 200);
    assert_int_equal(au_metric(p.port, "auditd_append_batch_size_sum "), 201);
    /* a client's own batch is one compare-and-set whatever AUDIT_BATCH_MAX says */
    assert_int_equal(
        au_post(p.port, "/v1/events/batch",
                "{\"events\":[{\"actor\":\"u\",\"action\":\"x\"},"
                "{\"actor\":\"u\",\"action\":\"y\"},{\"actor\":\"u\",\"action\":\"z\"}]}",
                NULL),
        201);
    assert_int_equal(au_metric(p.port, "auditd_append_batch_size_count "), 201);
    struct th_resp r;
    assert_int_equal(th_http(p.port, "GET", "/v1/checkpoint", NULL, NULL, 0, &r), 0);
    assert_int_equal(strncmp(r.body, "example.com/audit\n204\n", 22), 0);
    assert_non_null(strstr(r.body, "\n\n\xe2\x80\x94 example.com/audit "));
    th_resp_free(&r);
    json_t *keys = au_get(p.port, "/v1/keys");
    uint8_t pre[64], md[32], pk[32];
    char id[9];
    const char *pk64 = json_string_value(
        json_object_get(json_array_get(json_object_get(keys, "keys"), 0), "public_key"));
    crypto_unb64(pk64, strlen(pk64), pk, 32);
    /* The signed-note key hash: SHA-256 of origin, "\n", the Ed25519 byte 0x01, the key. */
    static const uint8_t note_prefix[19] = "example.com/audit\n\x01";
    memcpy(pre, note_prefix, sizeof(note_prefix));
    memcpy(pre + sizeof(note_prefix), pk, 32);
    crypto_sha256(pre, sizeof(note_prefix) + 32, md);
    crypto_hex(md, 4, id);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(keys, "keys"), 0), "key_id")),
                        id);
    json_decref(keys);
    const char *ev = "{\"actor\":\"u\",\"action\":\"w\",\"event_id\":\"win-1\"}";
    json_t *a = NULL, *b = NULL;
    assert_int_equal(au_post(p.port, "/v1/events", ev, &a), 201);
    assert_int_equal(au_post(p.port, "/v1/events", ev, NULL), 200);
    usleep(1200000);
    assert_int_equal(au_post(p.port, "/v1/events", ev, &b), 201);
    assert_int_not_equal(json_integer_value(json_object_get(a, "seq")),
                         json_integer_value(json_object_get(b, "seq")));
    json_decref(a);
    json_decref(b);
    th_proc_stop(&p, SIGTERM, 5000);
    assert_int_equal(th_redis_int(&redis, "EXISTS audit:{bm}:checkpoints"), 0);
}

/* AUDIT_WAIT_REPLICAS with a real replica: the 201 says it acknowledged. */
static void test_wait_for_replica(void **state)
{
    (void)state;
    struct th_redis replica;
    struct th_proc p;
    char port[16];
    snprintf(port, sizeof(port), "%d", redis.port);
    const char *extra[] = {"--replicaof", "127.0.0.1", port, NULL};
    assert_int_equal(th_redis_start(&replica, extra), 0);
    for (int i = 0; i < 100 && th_redis_int(&redis, "EVAL %s 0",
                                            "return redis.call('INFO','replication'):find("
                                            "'state=online', 1, true) and 1 or 0") != 1;
         i++)
        usleep(100000);
    const char *env[] = {"AUDIT_CHAIN=repl", KEY_V1_ENV, "AUDIT_WAIT_REPLICAS=1", NULL};
    assert_int_equal(au_start(&p, &redis, env), 0);
    json_t *j = NULL;
    assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"r\"}", &j), 201);
    assert_int_equal(json_integer_value(json_object_get(j, "replicas_acked")), 1);
    json_decref(j);
    assert_int_equal(au_post(p.port, "/v1/events/batch",
                             "{\"events\":[{\"actor\":\"u\",\"action\":\"r\"}]}", &j),
                     201);
    assert_int_equal(json_integer_value(json_object_get(j, "replicas_acked")), 1);
    json_decref(j);
    assert_int_equal(th_redis_int(&replica, "XLEN audit:{repl}:log"), 3);
    th_proc_stop(&p, SIGTERM, 5000);
    th_redis_stop(&replica);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_sources),
        cmocka_unit_test(test_key_refusals),
        cmocka_unit_test(test_keygen),
        cmocka_unit_test(test_v0_signs),
        cmocka_unit_test(test_secrets_stay_private),
        cmocka_unit_test(test_refuses_other_mismatches),
        cmocka_unit_test(test_check_deferred_while_redis_away),
        cmocka_unit_test(test_bad_settings),
        cmocka_unit_test(test_settings_take_effect),
        cmocka_unit_test(test_wait_for_replica),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
