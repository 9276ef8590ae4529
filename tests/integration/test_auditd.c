/* Integration tests of auditd over real sockets against a private redis-server: the API,
 * bad input leaving the chain untouched, an independent signature check with openssl, key
 * loading and refusal to start, Redis down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_auditd_util.h"

static struct th_redis redis;
static struct th_proc daemon_;
static char tmp[256];

static int setup(void **state)
{
    (void)state;
    const char *env[] = {KEY_V1_ENV, NULL};
    if (th_tmpdir(tmp, sizeof(tmp)) != 0 || th_redis_start(&redis, NULL) != 0)
        return -1;
    return au_start(&daemon_, &redis, env);
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&daemon_, SIGTERM, 5000);
    th_redis_stop(&redis);
    return 0;
}

static long long head_seq(void)
{
    return th_redis_int(&redis, "HGET audit:{default}:head seq");
}

static void test_append_and_read(void **state)
{
    (void)state;
    json_t *a = NULL, *b = NULL, *j;
    int port = daemon_.port;
    assert_int_equal(au_post(port, "/v1/events",
                             "{\"actor\":\"user:42\",\"action\":\"token.revoke\","
                             "\"outcome\":\"success\",\"event_id\":\"ev-1\"}",
                             &a),
                     201);
    long long seq = json_integer_value(json_object_get(a, "seq"));
    assert_int_equal(seq, 2); /* seq 1 is v1's audit.key_activated */
    assert_string_equal(json_string_value(json_object_get(a, "key_version")), "v1");
    /* The same event_id again: 200 with the entry already appended, nothing new. */
    assert_int_equal(au_post(port, "/v1/events",
                             "{\"actor\":\"user:42\",\"action\":\"token.revoke\","
                             "\"event_id\":\"ev-1\"}",
                             &b),
                     200);
    assert_true(json_equal(a, b));
    assert_int_equal(head_seq(), 2);
    json_decref(b);
    assert_int_equal(au_post(port, "/v1/events/batch",
                             "{\"events\":[{\"actor\":\"a\",\"action\":\"x\"},{\"actor\":\"b\","
                             "\"action\":\"y\",\"metadata\":{\"k\":[1,2]}}]}",
                             &b),
                     201);
    assert_int_equal(json_array_size(json_object_get(b, "entries")), 2);
    assert_int_equal(json_integer_value(
                         json_object_get(json_array_get(json_object_get(b, "entries"), 1), "seq")),
                     4);
    json_decref(b);
    j = au_get(port, "/v1/events?from_seq=2&limit=2");
    assert_non_null(j);
    json_t *e0 = json_array_get(json_object_get(j, "entries"), 0);
    assert_string_equal(json_string_value(json_object_get(e0, "hash")),
                        json_string_value(json_object_get(a, "hash")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(e0, "event"), "event_id")), "ev-1");
    assert_int_equal(json_integer_value(json_object_get(j, "next_from_seq")), 4);
    json_decref(j);
    j = au_get(port, "/v1/events?from_seq=4&limit=10");
    assert_true(json_is_null(json_object_get(j, "next_from_seq")));
    json_decref(j);
    j = au_get(port, "/v1/head");
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 4);
    json_decref(j);
    struct th_resp r;
    assert_int_equal(th_http(port, "GET", "/v1/events/99", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "not_found"));
    th_resp_free(&r);
    json_decref(a);
}

/* Signature checked by an independent implementation: openssl pkeyutl -verify -rawin over
 * the raw 32-byte SHA-256 of the body, with the public key from /v1/keys. */
static void test_openssl_verifies_signature(void **state)
{
    (void)state;
    char path[320], pub[320], hashf[320], sigf[320];
    uint8_t der[44] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
    au_post(daemon_.port, "/v1/events", "{\"actor\":\"o\",\"action\":\"openssl.check\"}", NULL);
    json_t *keys = au_get(daemon_.port, "/v1/keys");
    json_t *e = au_get(daemon_.port, "/v1/events/1");
    assert_non_null(keys);
    assert_non_null(e);
    const char *pk64 = json_string_value(
        json_object_get(json_array_get(json_object_get(keys, "keys"), 0), "public_key"));
    assert_int_equal(crypto_unb64(pk64, strlen(pk64), der + 12, 32), 32);
    snprintf(path, sizeof(path), "%s/pub.der", tmp);
    snprintf(pub, sizeof(pub), "%s/pub.pem", tmp);
    snprintf(hashf, sizeof(hashf), "%s/hash.bin", tmp);
    snprintf(sigf, sizeof(sigf), "%s/sig.bin", tmp);
    FILE *f = fopen(path, "wb");
    fwrite(der, 1, sizeof(der), f);
    fclose(f);
    uint8_t md[32], sig[64];
    const char *body = json_string_value(json_object_get(e, "body"));
    const char *s64 = json_string_value(json_object_get(e, "signature"));
    crypto_sha256(body, strlen(body), md);
    assert_int_equal(crypto_unb64(s64, strlen(s64), sig, 64), 64);
    f = fopen(hashf, "wb");
    fwrite(md, 1, 32, f);
    fclose(f);
    f = fopen(sigf, "wb");
    fwrite(sig, 1, 64, f);
    fclose(f);
    const char *conv[] = {"openssl", "pkey", "-pubin", "-inform", "DER",
                          "-in",     path,   "-out",   pub,       NULL};
    assert_int_equal(th_run("/usr/bin/openssl", conv, NULL, NULL, NULL, 10000), 0);
    const char *ver[] = {"openssl", "pkeyutl", "-verify", "-pubin",   "-inkey", pub,
                         "-rawin",  "-in",     hashf,     "-sigfile", sigf,     NULL};
    char *out = NULL;
    assert_int_equal(th_run("/usr/bin/openssl", ver, NULL, &out, NULL, 10000), 0);
    assert_non_null(strstr(out, "Signature Verified Successfully"));
    free(out);
    md[0] ^= 1; /* and a wrong hash fails */
    f = fopen(hashf, "wb");
    fwrite(md, 1, 32, f);
    fclose(f);
    assert_int_not_equal(th_run("/usr/bin/openssl", ver, NULL, NULL, NULL, 10000), 0);
    json_decref(keys);
    json_decref(e);
}

static void expect_400(const char *path, const char *body, const char *code)
{
    struct th_resp r;
    long long before = head_seq(), len = th_redis_int(&redis, "XLEN audit:{default}:log");
    assert_int_equal(th_post_json(daemon_.port, path, body, &r), 0);
    if (r.status != 400 || !strstr(r.body, code))
        fail_msg("%s %.60s: %d %s", path, body, r.status, r.body);
    th_resp_free(&r);
    assert_int_equal(head_seq(), before);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{default}:log"), len);
}

static void test_bad_input_leaves_chain_untouched(void **state)
{
    (void)state;
    expect_400("/v1/events", "{\"action\":\"a\"}", "invalid_request");
    expect_400("/v1/events", "{\"actor\":\"u\"}", "invalid_request");
    expect_400("/v1/events", "{\"actor\":\"u\",\"action\":\"a\",\"x\":1}", "invalid_request");
    expect_400("/v1/events", "{\"actor\":\"u\",\"action\":\"a\",\"metadata\":{\"p\":1.5}}",
               "invalid_request");
    expect_400("/v1/events",
               "{\"actor\":\"u\",\"action\":\"a\",\"metadata\":{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":"
               "{\"f\":{\"g\":{\"h\":{\"i\":1}}}}}}}}}}",
               "invalid_request");
    expect_400("/v1/events", "{\"actor\":\"auditd\",\"action\":\"a\"}", "invalid_request");
    expect_400("/v1/events", "{\"actor\":\"u\",\"action\":\"audit.key_activated\"}",
               "invalid_request");
    expect_400("/v1/events", "{\"actor\":\"u\",", "invalid_json");
    expect_400("/v1/events/batch", "{\"events\":[]}", "invalid_request");
    expect_400("/v1/events/batch",
               "{\"events\":[{\"actor\":\"u\",\"action\":\"a\"},{\"actor\":1}]}",
               "events[1].actor");
    /* metadata above 16 KiB, and a 1,001-event batch */
    size_t cap = 1100 * 40;
    char *big = malloc(cap);
    int n = snprintf(big, cap, "{\"actor\":\"u\",\"action\":\"a\",\"metadata\":{\"x\":\"");
    memset(big + n, 'x', 17000);
    snprintf(big + n + 17000, cap - (size_t)n - 17000, "\"}}");
    expect_400("/v1/events", big, "invalid_request");
    n = snprintf(big, cap, "{\"events\":[");
    for (int i = 0; i < 1001; i++)
        n += snprintf(big + n, cap - (size_t)n, "%s{\"actor\":\"u\",\"action\":\"a\"}",
                      i ? "," : "");
    snprintf(big + n, cap - (size_t)n, "]}");
    expect_400("/v1/events/batch", big, "invalid_request");
    free(big);
}

static void test_checkpoint_endpoint(void **state)
{
    (void)state;
    struct th_resp r;
    char ct[64];
    assert_int_equal(th_http(daemon_.port, "GET", "/v1/checkpoint", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(th_header(&r, "Content-Type", ct, sizeof(ct)));
    assert_non_null(strstr(ct, "text/plain"));
    char want[64];
    snprintf(want, sizeof(want), "warden-audit/default\n%lld\n", head_seq());
    assert_int_equal(strncmp(r.body, want, strlen(want)), 0);
    assert_non_null(strstr(r.body, "\n\n\xe2\x80\x94 warden-audit/default "));
    th_resp_free(&r);
}

/* A PEM key made by openssl genpkey loads from *_FILE; `auditd pubkeys` shows the public
 * key openssl derives; no key at all refuses to start, saying how to make one. */
static void test_keys_pem_file_and_refusal(void **state)
{
    (void)state;
    char pem[320], envk[400], *out = NULL, *err = NULL;
    snprintf(pem, sizeof(pem), "%s/k.pem", tmp);
    const char *gen[] = {"openssl", "genpkey", "-algorithm", "ed25519", "-out", pem, NULL};
    assert_int_equal(th_run("/usr/bin/openssl", gen, NULL, NULL, NULL, 10000), 0);
    const char *pubout[] = {"openssl", "pkey", "-in", pem, "-pubout", NULL};
    char *pub_pem = NULL;
    assert_int_equal(th_run("/usr/bin/openssl", pubout, NULL, &pub_pem, NULL, 10000), 0);
    uint8_t pk[32];
    char errbuf[128], pk64[48];
    assert_int_equal(crypto_ed25519_pk_parse(pub_pem, pk, errbuf, sizeof(errbuf)), 0);
    crypto_b64(pk, 32, pk64, sizeof(pk64));
    snprintf(envk, sizeof(envk), "AUDIT_PRIVATE_KEY_V3_FILE=%s", pem);
    const char *env[] = {envk, NULL};
    const char *argv[] = {"auditd", "pubkeys", NULL};
    assert_int_equal(th_run(th_bin("bin/auditd"), argv, env, &out, NULL, 10000), 0);
    assert_non_null(strstr(out, pk64));
    assert_non_null(strstr(out, "\"v3\""));
    free(out);
    free(pub_pem);
    const char *run[] = {"auditd", NULL};
    const char *noenv[] = {"REDIS_URL=redis://127.0.0.1:1/0", NULL};
    assert_int_equal(th_run(th_bin("bin/auditd"), run, noenv, NULL, &err, 10000), 2);
    assert_non_null(strstr(err, "auditd keygen"));
    free(err);
    /* The running daemon never logged its key material. */
    assert_false(th_proc_log_contains(&daemon_, SEED_V1));
}

/* AUDIT_WAIT_REPLICAS: the 201 says how many replicas acknowledged (none here: the WAIT
 * times out after AUDIT_WAIT_TIMEOUT and the entry is appended all the same). */
static void test_wait_replicas(void **state)
{
    (void)state;
    struct th_proc p;
    json_t *j = NULL;
    const char *env[] = {"AUDIT_CHAIN=waitr", KEY_V1_ENV, "AUDIT_WAIT_REPLICAS=1",
                         "AUDIT_WAIT_TIMEOUT=50ms", NULL};
    assert_int_equal(au_start(&p, &redis, env), 0);
    assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"w\"}", &j), 201);
    assert_true(json_is_integer(json_object_get(j, "replicas_acked")));
    assert_int_equal(json_integer_value(json_object_get(j, "replicas_acked")), 0);
    json_decref(j);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{waitr}:head seq"), 2);
    th_proc_stop(&p, SIGTERM, 5000);
}

/* Head and log disagree: auditd refuses to start rather than start a new chain. */
static void test_refuses_inconsistent_chain(void **state)
{
    (void)state;
    char url[160], *err = NULL;
    freeReplyObject(
        th_redis_cmd(&redis, "HSET audit:{broken}:head seq 5 hash %s",
                     "00000000000000000000000000000000000000000000000000000000000000ff"));
    snprintf(url, sizeof(url), "REDIS_URL=%s", redis.url);
    const char *env[] = {url, "AUDIT_CHAIN=broken", KEY_V1_ENV, "LISTEN_ADDR=127.0.0.1:0", NULL};
    const char *argv[] = {"auditd", NULL};
    assert_int_equal(th_run(th_bin("bin/auditd"), argv, env, NULL, &err, 10000), 2);
    assert_non_null(strstr(err, "refusing to start"));
    free(err);
    assert_int_equal(th_redis_int(&redis, "EXISTS audit:{broken}:log"), 0);
}

/* Redis down: 503 backend_unavailable, nothing acknowledged; back up: appends resume on
 * the same chain. */
static void test_redis_down(void **state)
{
    (void)state;
    long long before = head_seq();
    struct th_resp r;
    th_redis_kill(&redis);
    assert_int_equal(
        th_post_json(daemon_.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"down\"}", &r), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "backend_unavailable"));
    th_resp_free(&r);
    assert_int_equal(th_redis_restart(&redis), 0);
    json_t *a = NULL;
    int st = -1;
    for (int i = 0; i < 20 && st != 201; i++) {
        st = au_post(daemon_.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"up\"}", &a);
        if (st != 201) {
            json_decref(a);
            a = NULL;
            usleep(100000);
        }
    }
    assert_int_equal(st, 201);
    json_decref(a);
    (void)before; /* a Redis without persistence restarts empty: the chain starts again */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_read),
        cmocka_unit_test(test_openssl_verifies_signature),
        cmocka_unit_test(test_bad_input_leaves_chain_untouched),
        cmocka_unit_test(test_checkpoint_endpoint),
        cmocka_unit_test(test_keys_pem_file_and_refusal),
        cmocka_unit_test(test_wait_replicas),
        cmocka_unit_test(test_refuses_inconsistent_chain),
        cmocka_unit_test(test_redis_down),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
