/* SPDX-License-Identifier: Apache-2.0 */
/* Standards where callers expect them: every 401 of tokend carries WWW-Authenticate
 * (RFC 9110), those about the refresh token as a Bearer invalid_token challenge (RFC 6750)
 * naming the problem's code; /v1/tokens/introspect and /v1/tokens/revoke take the
 * application/x-www-form-urlencoded bodies of RFC 7662 and RFC 7009 (token_type_hint
 * accepted and ignored) as well as JSON; audit-verify takes --keys more than once and merges the
 * keyrings (a chain signed by two key versions verifies only with both), refuses two
 * keyrings that disagree on a version, and answers -h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <string.h>

#include "test_ops_util.h"

#define KEY1 "AUDIT_PRIVATE_KEY_V1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define KEY2 "AUDIT_PRIVATE_KEY_V2=AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
#define KEY1_OTHER "AUDIT_PRIVATE_KEY_V1=AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="
#define HASH_KEY "TOKEN_HASH_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

static struct th_redis redis;
static char tmp[256];

static int setup(void **state)
{
    (void)state;
    if (th_tmpdir(tmp, sizeof(tmp)) != 0)
        return -1;
    return th_redis_start(&redis, NULL);
}

static int teardown(void **state)
{
    (void)state;
    th_redis_stop(&redis);
    return 0;
}

static void expect_challenge(struct th_resp *r, const char *code)
{
    char h[256], want[160];
    assert_int_equal(r->status, 401);
    if (!th_header(r, "WWW-Authenticate", h, sizeof(h)))
        fail_msg("401 %s without WWW-Authenticate", code);
    snprintf(want, sizeof(want),
             "Bearer realm=\"tokend\", error=\"invalid_token\", error_description=\"%s\"", code);
    assert_string_equal(h, want);
    th_resp_free(r);
}

static void test_tokend_401s_carry_www_authenticate(void **state)
{
    (void)state;
    struct th_proc d = {0};
    struct th_resp r = {0};
    const char *env[] = {HASH_KEY, "TOKEN_REUSE_GRACE=0", NULL};
    assert_int_equal(th_daemon_start(&d, "bin/tokend", redis.url, env), 0);
    const char *ua = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0 Safari/537.36";
    char body[1024], t0[256], t1[256];
    snprintf(body, sizeof(body),
             "{\"user_id\":\"u-1\",\"device_id\":\"d-1\",\"user_agent\":\"%s\"}", ua);
    assert_int_equal(th_post_json(d.port, "/v1/tokens", body, &r), 0);
    assert_int_equal(r.status, 201);
    json_t *j = th_json(&r);
    snprintf(t0, sizeof(t0), "%s", json_string_value(json_object_get(j, "refresh_token")));
    json_decref(j);
    th_resp_free(&r);
    /* malformed */
    assert_int_equal(th_post_json(d.port, "/v1/tokens/refresh",
                                  "{\"refresh_token\":\"nope\",\"device_id\":\"d-1\","
                                  "\"user_agent\":\"x\"}",
                                  &r),
                     0);
    expect_challenge(&r, "invalid_grant");
    /* another device */
    snprintf(body, sizeof(body),
             "{\"refresh_token\":\"%s\",\"device_id\":\"d-2\",\"user_agent\":\"%s\"}", t0, ua);
    assert_int_equal(th_post_json(d.port, "/v1/tokens/refresh", body, &r), 0);
    expect_challenge(&r, "fingerprint_mismatch");
    /* rotate, then present the old one again: reuse */
    snprintf(body, sizeof(body),
             "{\"refresh_token\":\"%s\",\"device_id\":\"d-1\",\"user_agent\":\"%s\"}", t0, ua);
    assert_int_equal(th_post_json(d.port, "/v1/tokens/refresh", body, &r), 0);
    assert_int_equal(r.status, 200);
    j = th_json(&r);
    snprintf(t1, sizeof(t1), "%s", json_string_value(json_object_get(j, "refresh_token")));
    json_decref(j);
    th_resp_free(&r);
    assert_int_equal(th_post_json(d.port, "/v1/tokens/refresh", body, &r), 0);
    expect_challenge(&r, "token_reused");
    /* the successor of a revoked family */
    snprintf(body, sizeof(body),
             "{\"refresh_token\":\"%s\",\"device_id\":\"d-1\",\"user_agent\":\"%s\"}", t1, ua);
    assert_int_equal(th_post_json(d.port, "/v1/tokens/refresh", body, &r), 0);
    expect_challenge(&r, "invalid_grant");
    th_proc_stop(&d, SIGTERM, 5000);
}

static void post_form(int port, const char *path, const char *form, struct th_resp *r)
{
    const char *hdr[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    assert_int_equal(th_http(port, "POST", path, hdr, form, strlen(form), r), 0);
}

static void test_tokend_form_introspection_and_revocation(void **state)
{
    (void)state;
    struct th_proc d = {0};
    struct th_resp r = {0};
    const char *env[] = {HASH_KEY, NULL};
    assert_int_equal(th_daemon_start(&d, "bin/tokend", redis.url, env), 0);
    assert_int_equal(th_post_json(d.port, "/v1/tokens",
                                  "{\"user_id\":\"u-form\",\"device_id\":\"d-1\","
                                  "\"user_agent\":\"curl/8.0\"}",
                                  &r),
                     0);
    assert_int_equal(r.status, 201);
    json_t *j = th_json(&r);
    char token[256], form[600];
    snprintf(token, sizeof(token), "%s", json_string_value(json_object_get(j, "refresh_token")));
    json_decref(j);
    th_resp_free(&r);
    /* RFC 7662: token=...&token_type_hint=refresh_token */
    snprintf(form, sizeof(form), "token=%s&token_type_hint=refresh_token", token);
    post_form(d.port, "/v1/tokens/introspect", form, &r);
    assert_int_equal(r.status, 200);
    j = th_json(&r);
    assert_true(json_is_true(json_object_get(j, "active")));
    assert_string_equal(json_string_value(json_object_get(j, "sub")), "u-form");
    json_decref(j);
    th_resp_free(&r);
    /* RFC 7009 */
    post_form(d.port, "/v1/tokens/revoke", form, &r);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    post_form(d.port, "/v1/tokens/introspect", form, &r);
    j = th_json(&r);
    assert_true(json_is_false(json_object_get(j, "active")));
    json_decref(j);
    th_resp_free(&r);
    /* A repeated parameter is refused (RFC 6749 §3.2); the other routes stay JSON only. */
    snprintf(form, sizeof(form), "token=%s&token=%s", token, token);
    post_form(d.port, "/v1/tokens/introspect", form, &r);
    assert_int_equal(r.status, 400);
    th_resp_free(&r);
    post_form(d.port, "/v1/tokens/refresh", "refresh_token=x", &r);
    assert_int_equal(r.status, 415);
    th_resp_free(&r);
    th_proc_stop(&d, SIGTERM, 5000);
}

/* auditd pubkeys with these keys, into dir/name. */
static void keyring(const char *name, const char *key, char *path, size_t size)
{
    char *out = NULL;
    const char *argv[] = {"auditd", "pubkeys", NULL}, *env[] = {key, NULL};
    assert_int_equal(th_run(th_bin("bin/auditd"), argv, env, &out, NULL, 5000), 0);
    snprintf(path, size, "%s/%s", tmp, name);
    assert_int_equal(th_write_file(path, out), 0);
    free(out);
}

static void append_with(const char *const *keys)
{
    struct th_proc d = {0};
    struct th_resp r = {0};
    assert_int_equal(th_daemon_start(&d, "bin/auditd", redis.url, keys), 0);
    assert_int_equal(
        th_post_json(d.port, "/v1/events", "{\"actor\":\"user:1\",\"action\":\"test.append\"}", &r),
        0);
    assert_int_equal(r.status, 201);
    th_resp_free(&r);
    th_proc_stop(&d, SIGTERM, 5000);
}

static int verify(const char *const *keyrings, char **out)
{
    const char *argv[12] = {"audit-verify"};
    int n = 1;
    for (int i = 0; keyrings[i]; i++) {
        argv[n++] = "--keys";
        argv[n++] = keyrings[i];
    }
    argv[n] = NULL;
    char env_url[160];
    snprintf(env_url, sizeof(env_url), "REDIS_URL=%s", redis.url);
    const char *env[] = {env_url, NULL};
    return th_run(th_bin("bin/audit-verify"), argv, env, out, NULL, 30000);
}

static void test_audit_verify_merges_keyrings(void **state)
{
    (void)state;
    char k1[300], k2[300], k1_other[300], *out = NULL;
    keyring("v1.json", KEY1, k1, sizeof(k1));
    keyring("v2.json", KEY2, k2, sizeof(k2));
    keyring("v1-other.json", KEY1_OTHER, k1_other, sizeof(k1_other));
    const char *era1[] = {KEY1, NULL}, *era2[] = {KEY1, KEY2, NULL};
    append_with(era1);
    append_with(era2); /* v2 is active from here: the chain holds both versions */

    const char *only1[] = {k1, NULL};
    assert_int_equal(verify(only1, &out), 2); /* v2's entries: unknown key */
    free(out);
    const char *both[] = {k1, k2, NULL};
    assert_int_equal(verify(both, &out), 0);
    assert_non_null(strstr(out, "OK: "));
    free(out);
    const char *again[] = {k1, k2, k1, NULL}; /* the same key twice counts once */
    assert_int_equal(verify(again, &out), 0);
    free(out);
    const char *clash[] = {k1, k1_other, NULL};
    assert_int_equal(verify(clash, &out), 3); /* two keys for v1: refused */
    free(out);

    char *err = NULL;
    const char *help[] = {"audit-verify", "-h", NULL};
    assert_int_equal(th_run(th_bin("bin/audit-verify"), help, NULL, &out, &err, 5000), 0);
    assert_non_null(strstr(out, "usage: warden-audit-verify"));
    assert_non_null(strstr(out, "--keys keyring.json [--keys keyring.json ...]"));
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokend_401s_carry_www_authenticate),
        cmocka_unit_test(test_tokend_form_introspection_and_revocation),
        cmocka_unit_test(test_audit_verify_merges_keyrings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
