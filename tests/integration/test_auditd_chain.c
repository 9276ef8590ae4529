/* Integration tests of auditd's chain guarantees: tampering edited directly in Redis is
 * caught by audit-verify (exit 1/2, right seq) and /v1/verify; a truncated tail is caught
 * against a kept checkpoint; key rotation; periodic checkpoints across instances. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../auditd/entry.h"
#include "test_auditd_util.h"

#define CHAIN_LEN 20

static struct th_redis redis;
static struct th_proc daemon_;
static char tmp[256], keys_file[320];

struct stored {
    long long seq;
    char *body, hash[65], sig[96];
};
static struct stored saved[CHAIN_LEN + 1];
static int nsaved;

static int setup(void **state)
{
    (void)state;
    const char *env[] = {"AUDIT_CHAIN=t", KEY_V1_ENV, NULL};
    if (th_tmpdir(tmp, sizeof(tmp)) != 0 || th_redis_start(&redis, NULL) != 0 ||
        au_start(&daemon_, &redis, env) != 0)
        return -1;
    snprintf(keys_file, sizeof(keys_file), "%s/keys.json", tmp);
    for (int i = 0; i < CHAIN_LEN - 1; i++)
        au_post(daemon_.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"a\"}", NULL);
    if (au_get_file(daemon_.port, "/v1/keys", keys_file) != 0)
        return -1;
    /* Keep the good chain to restore it before each tamper case. */
    redisReply *r = th_redis_cmd(&redis, "XRANGE audit:{t}:log - +");
    for (size_t i = 0; r && i < r->elements && i < CHAIN_LEN; i++) {
        redisReply *f = r->element[i]->element[1];
        saved[i].seq = atoll(r->element[i]->element[0]->str);
        saved[i].body = strdup(f->element[1]->str);
        snprintf(saved[i].hash, sizeof(saved[i].hash), "%s", f->element[3]->str);
        snprintf(saved[i].sig, sizeof(saved[i].sig), "%s", f->element[5]->str);
        nsaved++;
    }
    freeReplyObject(r);
    return nsaved == CHAIN_LEN ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&daemon_, SIGTERM, 5000);
    th_redis_stop(&redis);
    for (int i = 0; i < nsaved; i++)
        free(saved[i].body);
    return 0;
}

/* Write entries (a possibly edited copy of saved) back as the log, and the head. */
static void write_log(struct stored *e, int n, long long head, const char *head_hash)
{
    freeReplyObject(th_redis_cmd(&redis, "DEL audit:{t}:log"));
    for (int i = 0; i < n; i++) {
        if (!e[i].body)
            continue;
        freeReplyObject(th_redis_cmd(&redis, "XADD audit:{t}:log %lld-0 body %s hash %s sig %s",
                                     e[i].seq, e[i].body, e[i].hash, e[i].sig));
    }
    freeReplyObject(th_redis_cmd(&redis, "HSET audit:{t}:head seq %lld hash %s", head, head_hash));
}

static struct stored *copy_chain(void)
{
    struct stored *c = calloc(CHAIN_LEN, sizeof(*c));
    for (int i = 0; i < CHAIN_LEN; i++) {
        c[i] = saved[i];
        c[i].body = strdup(saved[i].body);
    }
    return c;
}

static void free_chain(struct stored *c)
{
    for (int i = 0; i < CHAIN_LEN; i++)
        free(c[i].body);
    free(c);
}

/* audit-verify against Redis: exit status and summary line. */
static int verify_redis(const char *expect, char **out)
{
    const char *args[] = {"--redis",   redis.url, "--chain",
                          "t",         "--keys",  keys_file,
                          "--threads", "2",       expect ? "--expect" : NULL,
                          expect,      NULL};
    return au_verify(args, out);
}

static void assert_verify(int want_status, const char *want_line, const char *expect)
{
    char *out = NULL;
    int st = verify_redis(expect, &out);
    if (st != want_status || !out || !strstr(out, want_line))
        fail_msg("audit-verify: exit %d, %s (wanted %d, %s)", st, out ? out : "", want_status,
                 want_line);
    free(out);
}

/* /v1/verify reports the same first bad seq and reason. */
static void assert_api_verify(long long bad_seq, const char *reason)
{
    json_t *j = NULL;
    assert_int_equal(au_post(daemon_.port, "/v1/verify", "{\"from_seq\":1,\"to_seq\":null}", &j),
                     200);
    assert_false(json_is_true(json_object_get(j, "ok")));
    assert_int_equal(json_integer_value(json_object_get(j, "first_bad_seq")), bad_seq);
    assert_string_equal(json_string_value(json_object_get(j, "reason")), reason);
    json_decref(j);
}

static void test_intact_chain_verifies(void **state)
{
    (void)state;
    char line[160], file[320], *out = NULL;
    write_log(saved, CHAIN_LEN, CHAIN_LEN, saved[CHAIN_LEN - 1].hash);
    snprintf(line, sizeof(line), "OK: %d entries, seq 1..%d, head %s", CHAIN_LEN, CHAIN_LEN,
             saved[CHAIN_LEN - 1].hash);
    assert_verify(0, line, NULL);
    json_t *j = NULL;
    au_post(daemon_.port, "/v1/verify", "{}", &j);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_int_equal(json_integer_value(json_object_get(j, "checked")), CHAIN_LEN);
    json_decref(j);
    /* The export file verifies the same way. */
    snprintf(file, sizeof(file), "%s/export.jsonl", tmp);
    const char *exp[] = {"audit-export", "--redis", redis.url, "--chain", "t", NULL};
    assert_int_equal(th_run(th_bin("bin/audit-export"), exp, NULL, &out, NULL, 20000), 0);
    au_write(file, out);
    free(out);
    const char *args[] = {"--file", file, "--keys", keys_file, "--json", NULL};
    assert_int_equal(au_verify(args, &out), 0);
    assert_non_null(strstr(out, "\"ok\":true"));
    free(out);
}

static void test_one_byte_changed(void **state)
{
    (void)state;
    struct stored *c = copy_chain();
    char *p = strstr(c[6].body, "\"actor\":\"u\"");
    p[9] = 'v'; /* seq 7: actor "v" */
    write_log(c, CHAIN_LEN, CHAIN_LEN, c[CHAIN_LEN - 1].hash);
    assert_verify(1, "TAMPERED at seq 7: hash_mismatch", NULL);
    assert_api_verify(7, "hash_mismatch");
    free_chain(c);
}

static void test_deleted_entry(void **state)
{
    (void)state;
    write_log(saved, CHAIN_LEN, CHAIN_LEN, saved[CHAIN_LEN - 1].hash);
    freeReplyObject(th_redis_cmd(&redis, "XDEL audit:{t}:log 9-0"));
    assert_verify(1, "TAMPERED at seq 9: gap", NULL);
    assert_api_verify(9, "gap");
}

static void test_swapped_entries(void **state)
{
    (void)state;
    struct stored *c = copy_chain(), t;
    t = c[10];
    c[10] = c[11];
    c[11] = t;
    c[10].seq = 11;
    c[11].seq = 12;
    write_log(c, CHAIN_LEN, CHAIN_LEN, c[CHAIN_LEN - 1].hash);
    assert_verify(1, "TAMPERED at seq 11", NULL);
    free_chain(c);
}

/* Entry 14 rewritten and re-signed with a key the keyring does not hold. */
static void test_resigned_unknown_key(void **state)
{
    (void)state;
    struct stored *c = copy_chain();
    struct audit_entry e = {0};
    json_t *event = NULL;
    uint8_t seed[32], pk[32], sk[64];
    crypto_unb64(SEED_ROGUE, strlen(SEED_ROGUE), seed, 32);
    crypto_ed25519_from_seed(seed, pk, sk);
    assert_int_equal(
        audit_body_parse(c[13].body, strlen(c[13].body), &e.seq, e.prev, e.ts, e.kv, &event), 0);
    snprintf(e.kv, sizeof(e.kv), "v9");
    assert_int_equal(audit_entry_seal(&e, event, sk), 0);
    free(c[13].body);
    c[13].body = strdup(e.body);
    snprintf(c[13].hash, sizeof(c[13].hash), "%s", e.hash);
    snprintf(c[13].sig, sizeof(c[13].sig), "%s", e.sig);
    write_log(c, CHAIN_LEN, CHAIN_LEN, c[CHAIN_LEN - 1].hash);
    assert_verify(2, "UNVERIFIABLE at seq 14: unknown_key", NULL);
    assert_api_verify(14, "unknown_key");
    audit_entry_clear(&e);
    json_decref(event);
    free_chain(c);
}

/* A valid chain whose tail was cut off: fine on its own, caught against a checkpoint. */
static void test_truncated_tail_against_checkpoint(void **state)
{
    (void)state;
    char cp[320];
    write_log(saved, CHAIN_LEN, CHAIN_LEN, saved[CHAIN_LEN - 1].hash);
    snprintf(cp, sizeof(cp), "%s/checkpoint.txt", tmp);
    assert_int_equal(au_get_file(daemon_.port, "/v1/checkpoint", cp), 0);
    assert_verify(0, "OK: 20 entries", cp);
    write_log(saved, CHAIN_LEN - 3, CHAIN_LEN - 3, saved[CHAIN_LEN - 4].hash);
    assert_verify(0, "OK: 17 entries", NULL);
    assert_verify(2, "UNVERIFIABLE at seq 18: truncated", cp);
    /* A checkpoint signed by a key outside the keyring is refused (usage/I-O error). */
    FILE *f = fopen(cp, "r+");
    fseek(f, -5, SEEK_END);
    fputc('A', f);
    fclose(f);
    assert_verify(3, "", cp);
}

static void test_rotation(void **state)
{
    (void)state;
    struct th_proc p;
    char ring[320], ring1[320], doc[512], *out = NULL;
    const char *v1[] = {"AUDIT_CHAIN=rot", KEY_V1_ENV, NULL};
    const char *v12[] = {"AUDIT_CHAIN=rot", KEY_V1_ENV, KEY_V2_ENV, NULL};
    assert_int_equal(au_start(&p, &redis, v1), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"r1\"}", NULL),
                         201);
    snprintf(ring1, sizeof(ring1), "%s/ring1.json", tmp);
    assert_int_equal(au_get_file(p.port, "/v1/keys", ring1), 0);
    th_proc_stop(&p, SIGTERM, 5000);
    assert_int_equal(au_start(&p, &redis, v12), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"r2\"}", NULL),
                         201);
    json_t *keys = au_get(p.port, "/v1/keys");
    assert_string_equal(json_string_value(json_object_get(keys, "active")), "v2");
    json_t *k2 = json_array_get(json_object_get(keys, "keys"), 1);
    assert_int_equal(json_integer_value(json_object_get(k2, "first_seq")), 7);
    json_t *e7 = au_get(p.port, "/v1/events/7");
    assert_string_equal(json_string_value(json_object_get(json_object_get(e7, "event"), "action")),
                        "audit.key_activated");
    json_decref(e7);
    snprintf(ring, sizeof(ring), "%s/ring.json", tmp);
    char *text = json_dumps(keys, 0);
    au_write(ring, text);
    free(text);
    json_decref(keys);
    th_proc_stop(&p, SIGTERM, 5000);
    const char *both[] = {"--redis", redis.url, "--chain", "rot", "--keys", ring, NULL};
    assert_int_equal(au_verify(both, &out), 0);
    assert_non_null(strstr(out, "OK: 12 entries"));
    free(out);
    const char *only1[] = {"--redis", redis.url, "--chain", "rot", "--keys", ring1, NULL};
    assert_int_equal(au_verify(only1, &out), 2);
    assert_non_null(strstr(out, "UNVERIFIABLE at seq 7: unknown_key"));
    free(out);
    /* Retire v1 for signing, keep its public key: still listed, not signing. */
    char pub1[96];
    json_t *r1 = json_load_file(ring1, 0, NULL);
    snprintf(pub1, sizeof(pub1), "AUDIT_PUBLIC_KEY_V1=%s",
             json_string_value(
                 json_object_get(json_array_get(json_object_get(r1, "keys"), 0), "public_key")));
    json_decref(r1);
    const char *retired[] = {"AUDIT_CHAIN=rot", pub1, KEY_V2_ENV, NULL};
    assert_int_equal(au_start(&p, &redis, retired), 0);
    keys = au_get(p.port, "/v1/keys");
    json_t *k1 = json_array_get(json_object_get(keys, "keys"), 0);
    assert_string_equal(json_string_value(json_object_get(k1, "version")), "v1");
    assert_false(json_is_true(json_object_get(k1, "signing")));
    assert_int_equal(json_integer_value(json_object_get(k1, "first_seq")), 1);
    json_decref(keys);
    assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"r3\"}", NULL),
                     201);
    json_t *e13 = au_get(p.port, "/v1/events/13"); /* no second activation of v2 */
    assert_string_equal(json_string_value(json_object_get(json_object_get(e13, "event"), "action")),
                        "r3");
    json_decref(e13);
    th_proc_stop(&p, SIGTERM, 5000);
    (void)doc;
}

/* --expect-head, --from-seq and the --json report of a failure. */
static void test_verify_options(void **state)
{
    (void)state;
    char head[96], wrong[96], *out = NULL;
    write_log(saved, CHAIN_LEN, CHAIN_LEN, saved[CHAIN_LEN - 1].hash);
    snprintf(head, sizeof(head), "10:%s", saved[9].hash);
    snprintf(wrong, sizeof(wrong), "10:%s", saved[8].hash);
    const char *good[] = {"--redis",    redis.url, "--chain",       "t",  "--keys", keys_file,
                          "--from-seq", "5",       "--expect-head", head, NULL};
    assert_int_equal(au_verify(good, &out), 0);
    assert_non_null(strstr(out, "OK: 16 entries, seq 5..20"));
    free(out);
    const char *bad[] = {"--redis", redis.url,       "--chain", "t",      "--keys",
                         keys_file, "--expect-head", wrong,     "--json", NULL};
    assert_int_equal(au_verify(bad, &out), 1);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_false(json_is_true(json_object_get(j, "ok")));
    assert_int_equal(json_integer_value(json_object_get(j, "first_bad_seq")), 10);
    assert_string_equal(json_string_value(json_object_get(j, "reason")), "head_mismatch");
    json_decref(j);
    free(out);
    const char *usage[] = {"--chain", "t", NULL}; /* neither --redis nor --file, no --keys */
    assert_int_equal(au_verify(usage, NULL), 3);
}

/* Two instances, a 1 s interval: checkpoints also when idle, at most one per interval. */
static void test_periodic_checkpoints(void **state)
{
    (void)state;
    struct th_proc a, b;
    const char *env[] = {"AUDIT_CHAIN=cp", KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=1s", NULL};
    assert_int_equal(au_start(&a, &redis, env), 0);
    assert_int_equal(au_start(&b, &redis, env), 0);
    int64_t t0 = th_now_ms();
    usleep(3200000);
    int64_t elapsed = th_now_ms() - t0;
    /* Every stored checkpoint was counted by exactly one instance (one may land between
     * the two reads, hence the bracket). */
    double before = au_metric(a.port, "auditd_checkpoints_total ") +
                    au_metric(b.port, "auditd_checkpoints_total ");
    long long n = th_redis_int(&redis, "XLEN audit:{cp}:checkpoints");
    double after = au_metric(a.port, "auditd_checkpoints_total ") +
                   au_metric(b.port, "auditd_checkpoints_total ");
    assert_true(n >= 2);
    assert_true(n <= elapsed / 1000 + 2);
    assert_true((long long)before <= n && n <= (long long)after);
    redisReply *r = th_redis_cmd(&redis, "XREVRANGE audit:{cp}:checkpoints + - COUNT 1");
    char cp[320];
    snprintf(cp, sizeof(cp), "%s/stored.txt", tmp);
    au_write(cp, r->element[0]->element[1]->element[5]->str);
    freeReplyObject(r);
    char ring[320], *out = NULL;
    snprintf(ring, sizeof(ring), "%s/cpring.json", tmp);
    assert_int_equal(au_get_file(a.port, "/v1/keys", ring), 0);
    th_proc_stop(&a, SIGTERM, 5000);
    th_proc_stop(&b, SIGTERM, 5000);
    const char *args[] = {"--redis", redis.url,  "--chain", "cp", "--keys",
                          ring,      "--expect", cp,        NULL};
    assert_int_equal(au_verify(args, &out), 0);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intact_chain_verifies),
        cmocka_unit_test(test_one_byte_changed),
        cmocka_unit_test(test_deleted_entry),
        cmocka_unit_test(test_swapped_entries),
        cmocka_unit_test(test_resigned_unknown_key),
        cmocka_unit_test(test_truncated_tail_against_checkpoint),
        cmocka_unit_test(test_verify_options),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_periodic_checkpoints),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
