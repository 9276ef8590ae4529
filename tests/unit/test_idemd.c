/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of idemd's request parsing, Redis key building and configuration (no
 * network): every field's bounds, the fingerprint of a request, replay-header filtering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../idemd/config.h"
#include "../../idemd/request.h"
#include "../../idemd/store.h"

static struct idem_config conf;

static int setup(void **state)
{
    char err[128];
    (void)state;
    memset(&conf, 0, sizeof(conf));
    conf.ttl_ms = 86400000;
    conf.lease_default_ms = 30000;
    conf.lease_max_ms = 600000;
    conf.takeover = 1;
    conf.max_response = 16;
    return idem_config_parse_headers(&conf, "Location,ETag,Content-Type", err, sizeof(err));
}

static json_t *js(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

/* The body parsed last: the parsers borrow strings from it, so it lives until the next. */
static json_t *last_body;
/* The last parse error: e.field may point into it (an unknown member's name), so it outlives
 * the call like last_body. */
static struct jv_error last_error;

/* Parse a claim body; returns the parser's result, field of the error in *field. */
static int claim(const char *text, struct idem_claim_in *in, const char **field)
{
    json_decref(last_body);
    last_body = js(text);
    last_error = (struct jv_error){0};
    int rc = idem_parse_claim(last_body, &conf, in, &last_error);
    *field = last_error.field;
    return rc;
}

static void test_redis_key_plain_and_escaped(void **state)
{
    char out[IDEM_RKEY_MAX];
    (void)state;
    assert_int_equal(idem_redis_key("tenant-a", "8e03-40d5", 9, out, sizeof(out)), 0);
    assert_string_equal(out, "idem:tenant-a:8e03-40d5");
    /* Braces cannot form a hash tag; '%' is escaped too, so the mapping is one-to-one. */
    assert_int_equal(idem_redis_key("s", "a{b}%c d:e", 10, out, sizeof(out)), 0);
    assert_string_equal(out, "idem:s:a%7Bb%7D%25c d:e");
    assert_int_equal(idem_redis_key("s", "%7B", 3, out, sizeof(out)), 0);
    assert_string_equal(out, "idem:s:%257B");
    assert_null(strchr(out, '{'));
    assert_int_equal(idem_redis_key("s", "{{{{", 4, out, 10), -1); /* does not fit */
}

static void test_ref_bounds(void **state)
{
    struct idem_ref ref;
    struct jv_error e = {0};
    char key[257];
    (void)state;
    memset(key, 'k', sizeof(key));
    key[256] = '\0';
    assert_int_equal(idem_ref_set(&ref, "s", key, 255, &e), 0);
    assert_int_equal(idem_ref_set(&ref, "s", key, 256, &e), -1);
    assert_string_equal(e.field, "key");
    assert_int_equal(idem_ref_set(&ref, "s", "", 0, &e), -1);
    assert_int_equal(idem_ref_set(&ref, "s", "a\nb", 3, &e), -1);
    assert_int_equal(idem_ref_set(&ref, "a:b", "k", 1, &e), -1);
    assert_string_equal(e.field, "scope");
    assert_int_equal(idem_ref_set(&ref, "a b", "k", 1, &e), -1);
    assert_int_equal(idem_ref_set(&ref, "{a}", "k", 1, &e), -1);
    assert_int_equal(idem_ref_set(&ref, "", "k", 1, &e), -1);
    assert_int_equal(idem_ref_set(&ref, NULL, "k", 1, &e), -1);
    char scope[130];
    memset(scope, 's', sizeof(scope));
    scope[128] = '\0';
    assert_int_equal(idem_ref_set(&ref, scope, "k", 1, &e), 0);
    scope[128] = 's';
    scope[129] = '\0';
    assert_int_equal(idem_ref_set(&ref, scope, "k", 1, &e), -1);
}

static void test_claim_fingerprint_given(void **state)
{
    struct idem_claim_in in;
    const char *field;
    (void)state;
    assert_int_equal(
        claim("{\"scope\":\"t\",\"key\":\"k\",\"fingerprint\":\"ab-_9\"}", &in, &field), 0);
    assert_string_equal(in.fingerprint, "ab-_9");
    assert_int_equal(in.lease_ms, 30000);
    assert_int_equal(in.wait_ms, 0);
    assert_string_equal(in.attempt_id, "");
    assert_string_equal(in.ref.rkey, "idem:t:k");
    assert_int_equal(claim("{\"scope\":\"t\",\"key\":\"k\",\"fingerprint\":\"a b\"}", &in, &field),
                     IDEM_BAD);
    assert_string_equal(field, "fingerprint");
    assert_int_equal(claim("{\"scope\":\"t\",\"key\":\"k\",\"fingerprint\":7}", &in, &field),
                     IDEM_BAD);
}

/* hex SHA-256 of method "\n" path "\n" body (values from sha256sum). */
static void test_claim_fingerprint_from_request(void **state)
{
    struct idem_claim_in in;
    const char *field;
    (void)state;
    assert_int_equal(claim("{\"scope\":\"t\",\"key\":\"k\",\"request\":{\"method\":\"POST\","
                           "\"path\":\"/charges\",\"body\":\"{\\\"amount\\\":42}\"}}",
                           &in, &field),
                     0);
    assert_string_equal(in.fingerprint,
                        "a9c4e64be86af54a75e056a25995e667b96484a587781295c96c9cc7df641e29");
    assert_int_equal(
        claim("{\"scope\":\"t\",\"key\":\"k\",\"request\":{\"method\":\"GET\",\"path\":\"/x\"}}",
              &in, &field),
        0);
    assert_string_equal(in.fingerprint,
                        "78f6984cf034d0964e414aa00902f98bfe91246efecc7404c74904c894252a78");
    assert_int_equal(
        claim("{\"scope\":\"t\",\"key\":\"k\",\"request\":{\"path\":\"/x\"}}", &in, &field),
        IDEM_BAD);
    assert_string_equal(field, "request");
    assert_int_equal(claim("{\"scope\":\"t\",\"key\":\"k\",\"request\":\"GET /x\"}", &in, &field),
                     IDEM_BAD);
}

static void test_claim_exactly_one_fingerprint(void **state)
{
    struct idem_claim_in in;
    const char *field;
    (void)state;
    assert_int_equal(claim("{\"scope\":\"t\",\"key\":\"k\"}", &in, &field), IDEM_BAD);
    assert_string_equal(field, "fingerprint");
    assert_int_equal(claim("{\"scope\":\"t\",\"key\":\"k\",\"fingerprint\":\"a\",\"request\":"
                           "{\"method\":\"GET\",\"path\":\"/\"}}",
                           &in, &field),
                     IDEM_BAD);
    assert_string_equal(field, "fingerprint");
}

static void test_claim_numbers_and_attempt(void **state)
{
    struct idem_claim_in in;
    const char *field;
    (void)state;
    const char *base = "{\"scope\":\"t\",\"key\":\"k\",\"fingerprint\":\"f\",";
    char buf[256];
    snprintf(buf, sizeof(buf), "%s\"lease_ms\":1000,\"wait_ms\":10000,\"attempt_id\":\"a.1\"}",
             base);
    assert_int_equal(claim(buf, &in, &field), 0);
    assert_int_equal(in.lease_ms, 1000);
    assert_int_equal(in.wait_ms, 10000);
    assert_string_equal(in.attempt_id, "a.1");
    const char *bad[][2] = {
        {"\"lease_ms\":999}", "lease_ms"},      {"\"lease_ms\":600001}", "lease_ms"},
        {"\"lease_ms\":\"5\"}", "lease_ms"},    {"\"wait_ms\":10001}", "wait_ms"},
        {"\"wait_ms\":-1}", "wait_ms"},         {"\"attempt_id\":\"a b\"}", "attempt_id"},
        {"\"attempt_id\":\"\"}", "attempt_id"}, {"\"extra\":1}", "extra"},
        {"\"lease_ms\":1e3}", "lease_ms"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf), "%s%s", base, bad[i][0]);
        assert_int_equal(claim(buf, &in, &field), IDEM_BAD);
        assert_string_equal(field, bad[i][1]);
    }
}

static int complete(const char *text, struct idem_lease_in *in, const char **field)
{
    json_decref(last_body);
    last_body = js(text);
    last_error = (struct jv_error){0};
    int rc = idem_parse_complete(last_body, &conf, in, &last_error);
    *field = last_error.field;
    return rc;
}

/* Only replay headers are kept, in their configured spelling, as sorted compact JSON. */
static void test_complete_headers_filtered(void **state)
{
    struct idem_lease_in in;
    const char *field;
    (void)state;
    assert_int_equal(complete("{\"scope\":\"t\",\"key\":\"k\",\"lease_token\":\"x\",\"status\":201,"
                              "\"headers\":{\"location\":\"/c/1\",\"Set-Cookie\":\"s=1\","
                              "\"X-Other\":\"1\",\"etag\":\"\\\"v1\\\"\"}}",
                              &in, &field),
                     0);
    assert_string_equal(in.headers_json, "{\"ETag\":\"\\\"v1\\\"\",\"Location\":\"/c/1\"}");
    assert_int_equal(in.status, 201);
    idem_lease_in_clear(&in);
    assert_int_equal(
        complete("{\"scope\":\"t\",\"key\":\"k\",\"lease_token\":\"x\",\"status\":200}", &in,
                 &field),
        0);
    assert_string_equal(in.headers_json, "{}");
    assert_string_equal(in.body_encoding, "utf8");
    idem_lease_in_clear(&in);
    const char *bad[] = {
        "{\"Location\":1}",
        "{\"Location\":\"a\\r\\nSet-Cookie: x\"}",
        "{\"Location\":\"a\",\"location\":\"b\"}",
        "{\"Bad Name\":\"a\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf),
                 "{\"scope\":\"t\",\"key\":\"k\",\"lease_token\":\"x\",\"status\":200,"
                 "\"headers\":%s}",
                 bad[i]);
        assert_int_equal(complete(buf, &in, &field), IDEM_BAD);
        assert_string_equal(field, "headers");
        idem_lease_in_clear(&in);
    }
}

static void test_complete_status_body_limits(void **state)
{
    struct idem_lease_in in;
    const char *field;
    (void)state;
    const char *pre = "{\"scope\":\"t\",\"key\":\"k\",\"lease_token\":\"x\",";
    const char *cases[][3] = {
        {"\"status\":99}", "-1", "status"},
        {"\"status\":600}", "-1", "status"},
        {"\"status\":\"200\"}", "-1", "status"},
        {"\"body\":\"x\"}", "-1", "status"},
        {"\"status\":200,\"body\":\"0123456789abcdef\"}", "0", NULL},
        {"\"status\":200,\"body\":\"0123456789abcdefg\"}", "-2", "body"},
        {"\"status\":200,\"body_encoding\":\"base64\",\"body\":\"AAECAwQFBgcICQoLDA0ODw==\"}", "0",
         NULL},
        {"\"status\":200,\"body_encoding\":\"base64\",\"body\":\"AAECAwQFBgcICQoLDA0ODxA=\"}", "-2",
         "body"},
        {"\"status\":200,\"body_encoding\":\"base64\",\"body\":\"!!\"}", "-1", "body"},
        {"\"status\":200,\"body_encoding\":\"hex\"}", "-1", "body_encoding"},
        {"\"status\":200,\"body\":5}", "-1", "body"},
        {"\"status\":200,\"lease_token\":5}", "-1", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s%s", pre, cases[i][0]);
        json_t *j = json_loads(buf, JSON_REJECT_DUPLICATES, NULL);
        if (!j) /* duplicate lease_token: the HTTP layer refuses it as invalid_json */
            continue;
        json_decref(j);
        int rc = complete(buf, &in, &field);
        assert_int_equal(rc, atoi(cases[i][1]));
        if (cases[i][2])
            assert_string_equal(field, cases[i][2]);
        idem_lease_in_clear(&in);
    }
}

static void test_lease_calls(void **state)
{
    struct idem_lease_in in;
    struct jv_error e = {0};
    (void)state;
    json_t *j = js("{\"scope\":\"t\",\"key\":\"k\",\"lease_token\":\"\"}");
    assert_int_equal(idem_parse_release(j, &in, &e), 0); /* any string: lease_lost later */
    assert_int_equal(in.lease_token_len, 0);
    json_decref(j);
    j = js("{\"scope\":\"t\",\"key\":\"k\"}");
    assert_int_equal(idem_parse_release(j, &in, &e), IDEM_BAD);
    assert_string_equal(e.field, "lease_token");
    json_decref(j);
    j = js("{\"scope\":\"t\",\"key\":\"k\",\"lease_token\":\"x\",\"lease_ms\":2000}");
    assert_int_equal(idem_parse_extend(j, &conf, &in, &e), 0);
    assert_int_equal(in.lease_ms, 2000);
    json_decref(j);
    j = js("{\"scope\":\"t\",\"key\":\"k\",\"lease_token\":\"x\",\"lease_ms\":0}");
    assert_int_equal(idem_parse_extend(j, &conf, &in, &e), IDEM_BAD);
    json_decref(j);
    char big[400];
    snprintf(big, sizeof(big),
             "{\"scope\":\"t\",\"key\":\"k\",\"lease_token\":\"x\",\"checkpoint\":\"%0257d\"}", 0);
    j = js(big);
    assert_int_equal(idem_parse_checkpoint(j, &in, &e), IDEM_BAD);
    assert_string_equal(e.field, "checkpoint");
    json_decref(j);
    j = js(
        "{\"scope\":\"t\",\"key\":\"k\",\"lease_token\":\"x\",\"checkpoint\":\"charge_created\"}");
    assert_int_equal(idem_parse_checkpoint(j, &in, &e), 0);
    assert_int_equal(in.checkpoint_len, 14);
    json_decref(j);
}

static void test_config_headers(void **state)
{
    struct idem_config c;
    char err[128];
    (void)state;
    assert_int_equal(idem_config_parse_headers(&c, "Location,X-A", err, sizeof(err)), 0);
    assert_int_equal(c.n_replay_headers, 2);
    assert_string_equal(idem_config_replay_header(&c, "x-a"), "X-A");
    assert_null(idem_config_replay_header(&c, "ETag"));
    assert_int_equal(idem_config_parse_headers(&c, "Location,set-cookie", err, sizeof(err)), -1);
    assert_int_equal(idem_config_parse_headers(&c, "Location,,ETag", err, sizeof(err)), -1);
    assert_int_equal(idem_config_parse_headers(&c, "Bad Name", err, sizeof(err)), -1);
}

static void test_config_load(void **state)
{
    struct idem_config c;
    (void)state;
    setenv("IDEM_TTL", "1h", 1);
    setenv("IDEM_ON_LEASE_EXPIRY", "block", 1);
    struct cfg *cf = cfg_create();
    idem_config_load(&c, cf);
    assert_false(cfg_failed(cf));
    assert_int_equal(c.ttl_ms, 3600000);
    assert_int_equal(c.takeover, 0);
    assert_int_equal(c.lease_default_ms, 30000);
    assert_int_equal(c.lease_max_ms, 600000);
    assert_int_equal(c.max_response, 1 << 20);
    assert_int_equal(c.wait_timeout_ms, 500);
    assert_int_equal(c.n_replay_headers, 6);
    cfg_free(cf);
    setenv("IDEM_ON_LEASE_EXPIRY", "maybe", 1);
    cf = cfg_create();
    idem_config_load(&c, cf);
    assert_true(cfg_failed(cf));
    assert_non_null(strstr(cfg_errstr(cf), "IDEM_ON_LEASE_EXPIRY"));
    cfg_free(cf);
    unsetenv("IDEM_ON_LEASE_EXPIRY");
    setenv("IDEM_LEASE_TTL", "20m", 1);
    cf = cfg_create();
    idem_config_load(&c, cf);
    assert_true(cfg_failed(cf));
    assert_non_null(strstr(cfg_errstr(cf), "IDEM_LEASE_TTL"));
    cfg_free(cf);
    unsetenv("IDEM_LEASE_TTL");
    unsetenv("IDEM_TTL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_key_plain_and_escaped),
        cmocka_unit_test(test_ref_bounds),
        cmocka_unit_test(test_claim_fingerprint_given),
        cmocka_unit_test(test_claim_fingerprint_from_request),
        cmocka_unit_test(test_claim_exactly_one_fingerprint),
        cmocka_unit_test(test_claim_numbers_and_attempt),
        cmocka_unit_test(test_complete_headers_filtered),
        cmocka_unit_test(test_complete_status_body_limits),
        cmocka_unit_test(test_lease_calls),
        cmocka_unit_test(test_config_headers),
        cmocka_unit_test(test_config_load),
    };
    int rc = cmocka_run_group_tests(tests, setup, NULL);
    json_decref(last_body);
    return rc;
}
