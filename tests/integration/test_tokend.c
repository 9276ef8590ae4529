/* SPDX-License-Identifier: Apache-2.0 */
/* tokend end to end: real redis-server, tokend daemons as subprocesses (one per policy
 * set), real HTTP. Follows tokend.md's guarantees: one rotation under 20 concurrent
 * refreshes, reuse detection, fingerprint policy, lifetimes and the per-user cap, revoke,
 * RFC 7009/7662 shapes, sessions. Bad input and Redis failures: test_tokend_faults.c;
 * secrets at rest and in logs, key rotation, metrics: test_tokend_secrets.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../tokend/fingerprint.h"
#include "../lib/harness.h"
#include "shared/crypto.h"
#include "test_tokend_util.h"

static struct th_redis redis;
/* The grace window of the two race daemons: long enough for 20 requests on a loaded
 * machine to land inside it, short enough to wait out. */
#define RACE_GRACE_MS 3000
static struct th_proc upgrade_d; /* defaults: upgrade, soft, reject; grace 3s */
static struct th_proc strict_d;  /* strict, tls strict, revoke on mismatch; grace 3s */
static struct th_proc short_d;   /* idle 2s, absolute 5s, 2 families per user, tls ignore */

static int start(struct th_proc *p, const char *const *extra)
{
    return tt_start(p, redis.url, extra);
}

static int setup(void **state)
{
    (void)state;
    static const char *const upgrade[] = {"TOKEN_REUSE_GRACE=3s", NULL};
    static const char *const strict[] = {"TOKEN_FP_UA=strict", "TOKEN_FP_TLS=strict",
                                         "TOKEN_ON_FP_MISMATCH=revoke", "TOKEN_REUSE_GRACE=3s",
                                         NULL};
    static const char *const shortl[] = {"TOKEN_IDLE_TTL=2s", "TOKEN_ABSOLUTE_TTL=5s",
                                         "TOKEN_MAX_FAMILIES_PER_USER=2", "TOKEN_FP_TLS=ignore",
                                         NULL};
    if (th_redis_start(&redis, NULL) != 0)
        return -1;
    if (start(&upgrade_d, upgrade) || start(&strict_d, strict) || start(&short_d, shortl))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&upgrade_d, SIGTERM, 5000);
    th_proc_stop(&strict_d, SIGTERM, 5000);
    th_proc_stop(&short_d, SIGTERM, 5000);
    th_redis_stop(&redis);
    return 0;
}

static void test_issue_shape(void **state)
{
    int st;
    char ua_hash[TOK_UA_HASH_LEN + 1], fp[TOK_FP_HEX_LEN + 1];
    (void)state;
    json_t *j = post(upgrade_d.port, "/v1/tokens", &st,
                     "{\"user_id\":\"u-42\",\"client_id\":\"web\",\"scope\":\"openid\","
                     "\"device_id\":\"d-9\",\"user_agent\":\"%s\",\"tls_fingerprint\":\"t13\"}",
                     CHROME120);
    assert_int_equal(st, 201);
    const char *tok = jstr(j, "refresh_token"), *fam = jstr(j, "family_id");
    assert_int_equal(strlen(tok), 70);
    assert_memory_equal(tok, "rt1.", 4);
    assert_memory_equal(tok + 4, fam, 22);
    assert_int_equal(tok[26], '.');
    assert_int_equal(json_integer_value(json_object_get(j, "expires_in")), 14 * 86400);
    assert_int_equal(json_integer_value(json_object_get(j, "absolute_expires_in")), 90 * 86400);
    tok_ua_hash(CHROME120, strlen(CHROME120), ua_hash);
    tok_fingerprint("d-9", ua_hash, "t13", fp);
    assert_string_equal(jstr(j, "fingerprint"), fp);
    /* Both parts are canonical base64url: 16 random bytes of family, 32 of secret. */
    uint8_t raw[48];
    assert_int_equal(crypto_unb64url(tok + 4, 22, raw, sizeof(raw)), 16);
    assert_int_equal(crypto_unb64url(tok + 27, 43, raw, sizeof(raw)), 32);
    char first[80], t[80];
    snprintf(first, sizeof(first), "%s", tok);
    json_decref(j);
    /* The optional fields may be left out: client_id and scope then come back null. */
    j = post(upgrade_d.port, "/v1/tokens", &st,
             "{\"user_id\":\"u-42\",\"device_id\":\"d-9\","
             "\"user_agent\":\"%s\"}",
             CHROME120);
    assert_int_equal(st, 201);
    snprintf(t, sizeof(t), "%s", jstr(j, "refresh_token"));
    assert_string_not_equal(t, first);
    json_decref(j);
    j = refresh(upgrade_d.port, t, "d-9", CHROME120, "", &st);
    assert_int_equal(st, 200);
    assert_true(json_is_null(json_object_get(j, "client_id")));
    assert_true(json_is_null(json_object_get(j, "scope")));
    assert_string_equal(jstr(j, "user_id"), "u-42");
    json_decref(j);
}

static void test_refresh_rotates_and_grace(void **state)
{
    int st;
    char t0[80], t1[80];
    (void)state;
    issue(upgrade_d.port, "u-r", "d-1", CHROME120, "", t0);
    json_t *j = refresh(upgrade_d.port, t0, "d-1", CHROME120, "", &st);
    assert_int_equal(st, 200);
    snprintf(t1, sizeof(t1), "%s", jstr(j, "refresh_token"));
    assert_string_not_equal(t1, t0);
    assert_memory_equal(t1, t0, 27); /* same family */
    assert_memory_equal(jstr(j, "family_id"), t0 + 4, 22);
    assert_int_equal(strlen(jstr(j, "family_id")), 22);
    assert_string_equal(jstr(j, "user_id"), "u-r");
    assert_string_equal(jstr(j, "client_id"), "web");
    assert_string_equal(jstr(j, "scope"), "openid offline");
    assert_true(json_is_false(json_object_get(j, "grace")));
    assert_true(json_is_false(json_object_get(j, "rebound")));
    assert_int_equal(json_integer_value(json_object_get(j, "expires_in")), 14 * 86400);
    json_decref(j);
    /* A retry of the same refresh inside the window: the same successor. */
    j = refresh(upgrade_d.port, t0, "d-1", CHROME120, "", &st);
    assert_int_equal(st, 200);
    assert_string_equal(jstr(j, "refresh_token"), t1);
    assert_true(json_is_true(json_object_get(j, "grace")));
    json_decref(j);
    j = refresh(upgrade_d.port, t1, "d-1", CHROME120, "", &st);
    assert_int_equal(st, 200);
    json_decref(j);
}

struct racer {
    int port;
    const char *token;
    pthread_barrier_t *go;
    int status;
    int grace;
    char successor[80];
};

static void *race(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(r->go);
    json_t *j = refresh(r->port, r->token, "d-1", CHROME120, "", &r->status);
    snprintf(r->successor, sizeof(r->successor), "%s", jstr(j, "refresh_token"));
    r->grace = json_is_true(json_object_get(j, "grace"));
    json_decref(j);
    return NULL;
}

static void test_concurrent_refresh_one_rotation(void **state)
{
    enum { N = 20 };
    char t0[80], key[64];
    pthread_t th[N];
    struct racer rs[N];
    pthread_barrier_t go;
    int st, fresh = 0, grace_here = 0;
    char want[96];
    (void)state;
    issue(upgrade_d.port, "u-race", "d-1", CHROME120, "", t0);
    /* Two daemon processes (same key; the client matches both policies) share the race. */
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        rs[i] =
            (struct racer){.port = i % 2 ? strict_d.port : upgrade_d.port, .token = t0, .go = &go};
        assert_int_equal(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    }
    int64_t began = th_now_ms();
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    int64_t took = th_now_ms() - began;
    pthread_barrier_destroy(&go);
    if (took >= RACE_GRACE_MS)
        fail_msg("the race took %lld ms, longer than the grace window", (long long)took);
    for (int i = 0; i < N; i++) {
        assert_int_equal(rs[i].status, 200);
        assert_string_equal(rs[i].successor, rs[0].successor);
        fresh += !rs[i].grace;
        grace_here += rs[i].grace && rs[i].port == upgrade_d.port;
    }
    assert_int_equal(fresh, 1); /* exactly one rotation; 19 got it from the grace window */
    snprintf(key, sizeof(key), "tok:{%.22s}:f", t0 + 4);
    assert_int_equal(th_redis_int(&redis, "HGET %s rotations", key), 1);
    redisReply *s = th_redis_cmd(&redis, "HGET %s state", key);
    assert_string_equal(s->str, "active");
    freeReplyObject(s);
    /* After the window: the old token is reuse, and the whole family is gone with it. */
    usleep((useconds_t)(RACE_GRACE_MS + 100) * 1000);
    expect_problem(refresh(upgrade_d.port, t0, "d-1", CHROME120, "", &st), &st, 401,
                   "token_reused");
    char *state_now = family_field(&redis, t0, "state"),
         *why = family_field(&redis, t0, "revoked_reason");
    assert_string_equal(state_now, "revoked");
    assert_string_equal(why, "reuse");
    free(state_now);
    free(why);
    expect_problem(refresh(upgrade_d.port, rs[0].successor, "d-1", CHROME120, "", &st), &st, 401,
                   "invalid_grant");
    /* 1 grace answer earlier in this file + those served here; this is the first reuse. */
    struct th_resp m;
    assert_int_equal(th_http(upgrade_d.port, "GET", "/metrics", NULL, NULL, 0, &m), 0);
    snprintf(want, sizeof(want), "tokend_refresh_total{outcome=\"grace\"} %d\n", 1 + grace_here);
    assert_non_null(strstr(m.body, want));
    assert_non_null(strstr(m.body, "tokend_refresh_total{outcome=\"reused\"} 1\n"));
    assert_non_null(strstr(m.body, "tokend_revoked_total{reason=\"reuse\"} 1\n"));
    th_resp_free(&m);
}

static void expect_mismatch(json_t *j, const int *st, const char *component)
{
    json_t *m = json_object_get(j, "mismatch");
    assert_int_equal(*st, 401);
    assert_string_equal(jstr(j, "code"), "fingerprint_mismatch");
    assert_int_equal(json_array_size(m), 1);
    assert_string_equal(json_string_value(json_array_get(m, 0)), component);
    json_decref(j);
}

/* The family's state (and revoked_reason, unless NULL) in Redis. */
static void expect_family(const char *token, const char *state, const char *reason)
{
    char *now = family_field(&redis, token, "state"),
         *why = family_field(&redis, token, "revoked_reason");
    assert_string_equal(now, state);
    if (reason)
        assert_string_equal(why, reason);
    free(now);
    free(why);
}

static void test_fingerprint_device_and_user_agent(void **state)
{
    int st;
    char t[80], s[80], ua_hash[TOK_UA_HASH_LEN + 1], fp[TOK_FP_HEX_LEN + 1];
    (void)state;
    issue(upgrade_d.port, "u-fp", "d-1", CHROME120, "", t);
    /* A changed IP is irrelevant: there is no IP input. A changed device id is refused. */
    expect_mismatch(refresh(upgrade_d.port, t, "d-2", CHROME120, "", &st), &st, "device_id");
    expect_mismatch(refresh(upgrade_d.port, t, "d-1", FIREFOX, "", &st), &st, "user_agent");
    /* reject keeps the family usable from the right client: Chrome 121 upgrades it. */
    expect_family(t, "active", "");
    json_t *j = refresh(upgrade_d.port, t, "d-1", CHROME121, "", &st);
    assert_int_equal(st, 200);
    assert_true(json_is_true(json_object_get(j, "rebound")));
    snprintf(s, sizeof(s), "%s", jstr(j, "refresh_token"));
    json_decref(j);
    /* Re-bound in Redis: the 121 user agent's hash, major and fingerprint are stored. */
    tok_ua_hash(CHROME121, strlen(CHROME121), ua_hash);
    tok_fingerprint("d-1", ua_hash, "", fp);
    char *got_uah = family_field(&redis, s, "ua_hash"),
         *got_major = family_field(&redis, s, "ua_major");
    char *got_fp = family_field(&redis, s, "fingerprint");
    assert_string_equal(got_uah, ua_hash);
    assert_string_equal(got_major, "121");
    assert_string_equal(got_fp, fp);
    free(got_uah);
    free(got_major);
    free(got_fp);
    /* The same user agent again is no re-bind. Now bound to 121: 120 is a downgrade. */
    j = refresh(upgrade_d.port, s, "d-1", CHROME121, "", &st);
    assert_int_equal(st, 200);
    assert_true(json_is_false(json_object_get(j, "rebound")));
    snprintf(s, sizeof(s), "%s", jstr(j, "refresh_token"));
    json_decref(j);
    expect_mismatch(refresh(upgrade_d.port, s, "d-1", CHROME120, "", &st), &st, "user_agent");
    expect_family(s, "active", "");
    /* Under upgrade, a switch of browser is refused whatever its version. */
    issue(upgrade_d.port, "u-fp", "d-1", FIREFOX, "", t);
    expect_mismatch(refresh(upgrade_d.port, t, "d-1", CHROME121, "", &st), &st, "user_agent");
    /* strict: 120 -> 121 refused, and this daemon revokes on mismatch. */
    issue(strict_d.port, "u-fp", "d-1", CHROME120, "", t);
    j = refresh(strict_d.port, t, "d-1", CHROME121, "", &st);
    assert_non_null(strstr(jstr(j, "detail"), "revoked"));
    expect_mismatch(j, &st, "user_agent");
    expect_family(t, "revoked", "mismatch");
    expect_problem(refresh(strict_d.port, t, "d-1", CHROME120, "", &st), &st, 401, "invalid_grant");
    issue(strict_d.port, "u-fp", "d-1", CHROME121, "", t);
    expect_mismatch(refresh(strict_d.port, t, "d-1", CHROME120, "", &st), &st, "user_agent");
    issue(strict_d.port, "u-fp", "d-1", CHROME120, "", t);
    expect_mismatch(refresh(strict_d.port, t, "d-1", FIREFOX, "", &st), &st, "user_agent");
    /* Under strict, only the identical user agent passes. */
    issue(strict_d.port, "u-fp", "d-1", CHROME120, "", t);
    refresh_ok(strict_d.port, t, "d-1", CHROME120, "", s);
    /* Two components at once are both named. */
    issue(upgrade_d.port, "u-fp", "d-1", CHROME120, "", t);
    j = refresh(upgrade_d.port, t, "d-7", FIREFOX, "", &st);
    json_t *m = json_object_get(j, "mismatch");
    assert_int_equal(json_array_size(m), 2);
    assert_string_equal(json_string_value(json_array_get(m, 0)), "device_id");
    assert_string_equal(json_string_value(json_array_get(m, 1)), "user_agent");
    json_decref(j);
}

static void test_fingerprint_tls(void **state)
{
    int st;
    char t[80], s[80];
    (void)state;
    /* soft: a changed, vanished or appearing TLS fingerprint is accepted (and counted). */
    issue(upgrade_d.port, "u-tls", "d-1", CHROME120, "ja4-a", t);
    refresh_ok(upgrade_d.port, t, "d-1", CHROME120, "", s);
    refresh_ok(upgrade_d.port, s, "d-1", CHROME120, "ja4-b", t);
    issue(upgrade_d.port, "u-tls", "d-1", CHROME120, "", t);
    refresh_ok(upgrade_d.port, t, "d-1", CHROME120, "ja4-c", s);
    char *metrics = metrics_text(upgrade_d.port);
    assert_non_null(strstr(metrics, "tokend_fingerprint_drift_total{component=\"tls\"} 3\n"));
    free(metrics);
    /* ... and not re-bound: the stored one is still the login's. */
    char *stored = family_field(&redis, s, "tls");
    assert_string_equal(stored, "");
    free(stored);
    /* strict: any difference is refused — changed, appearing, vanishing; equal passes. */
    issue(strict_d.port, "u-tls", "d-1", CHROME120, "ja4-a", t);
    expect_mismatch(refresh(strict_d.port, t, "d-1", CHROME120, "ja4-b", &st), &st, "tls");
    issue(strict_d.port, "u-tls", "d-1", CHROME120, "", t);
    expect_mismatch(refresh(strict_d.port, t, "d-1", CHROME120, "ja4-b", &st), &st, "tls");
    issue(strict_d.port, "u-tls", "d-1", CHROME120, "ja4-a", t);
    expect_mismatch(refresh(strict_d.port, t, "d-1", CHROME120, "", &st), &st, "tls");
    issue(strict_d.port, "u-tls", "d-1", CHROME120, "ja4-a", t);
    refresh_ok(strict_d.port, t, "d-1", CHROME120, "ja4-a", s);
    /* ignore: not even compared (nor counted). */
    issue(short_d.port, "u-tls-ignore", "d-1", CHROME120, "ja4-a", t);
    refresh_ok(short_d.port, t, "d-1", CHROME120, "ja4-zz", s);
    metrics = metrics_text(short_d.port);
    assert_non_null(strstr(metrics, "tokend_fingerprint_drift_total{component=\"tls\"} 0\n"));
    free(metrics);
}

static long long revoke_call(int port, const char *body)
{
    int st;
    json_t *j = post(port, "/v1/tokens/revoke", &st, "%s", body);
    assert_int_equal(st, 200);
    assert_int_equal(json_object_size(j), 1);
    long long n = json_integer_value(json_object_get(j, "revoked"));
    json_decref(j);
    return n;
}

static void test_revoke_token_family_user(void **state)
{
    int st;
    char t[80], body[256], other[80], a[80], b[80];
    (void)state;
    /* RFC 7009: unknown or malformed tokens are not an error. */
    assert_int_equal(revoke_call(upgrade_d.port, "{\"token\":\"rt1.AAAAAAAAAAAAAAAAAAAAAA."
                                                 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"),
                     0);
    assert_int_equal(revoke_call(upgrade_d.port, "{\"token\":\"garbage\"}"), 0);
    issue(upgrade_d.port, "u-rv", "d-1", CHROME120, "", t);
    snprintf(body, sizeof(body), "{\"token\":\"%s\"}", t);
    assert_int_equal(revoke_call(upgrade_d.port, body), 1);
    assert_int_equal(revoke_call(upgrade_d.port, body), 0);
    expect_problem(refresh(upgrade_d.port, t, "d-1", CHROME120, "", &st), &st, 401,
                   "invalid_grant");
    issue(upgrade_d.port, "u-rv", "d-1", CHROME120, "", t);
    snprintf(body, sizeof(body), "{\"family_id\":\"%.22s\"}", t + 4);
    assert_int_equal(revoke_call(upgrade_d.port, body), 1);
    assert_int_equal(revoke_call(upgrade_d.port, body), 0);
    /* By user: every family of that user, none of another's. */
    issue(upgrade_d.port, "u-all", "d-1", CHROME120, "", a);
    issue(upgrade_d.port, "u-all", "d-2", FIREFOX, "", b);
    issue(upgrade_d.port, "u-all", "d-3", FIREFOX, "", t);
    issue(upgrade_d.port, "u-all2", "d-1", CHROME120, "", other);
    assert_int_equal(revoke_call(upgrade_d.port, "{\"user_id\":\"u-all\"}"), 3);
    expect_problem(refresh(upgrade_d.port, a, "d-1", CHROME120, "", &st), &st, 401,
                   "invalid_grant");
    expect_problem(refresh(upgrade_d.port, b, "d-2", FIREFOX, "", &st), &st, 401, "invalid_grant");
    expect_problem(refresh(upgrade_d.port, t, "d-3", FIREFOX, "", &st), &st, 401, "invalid_grant");
    expect_family(t, "revoked", "user");
    expect_family(other, "active", "");
    refresh_ok(upgrade_d.port, other, "d-1", CHROME120, "", other);
    assert_int_equal(revoke_call(upgrade_d.port, "{\"user_id\":\"u-all\"}"), 0);
    assert_int_equal(revoke_call(upgrade_d.port, "{\"user_id\":\"u-nobody\"}"), 0);
    /* A rotated-out token of a live family still names it: the family is revoked. */
    issue(upgrade_d.port, "u-rv", "d-1", CHROME120, "", t);
    refresh_ok(upgrade_d.port, t, "d-1", CHROME120, "", a);
    refresh_ok(upgrade_d.port, a, "d-1", CHROME120, "", b);
    snprintf(body, sizeof(body), "{\"token\":\"%s\"}", t);
    assert_int_equal(revoke_call(upgrade_d.port, body), 1);
    expect_family(b, "revoked", "token");
    /* A made-up secret in an existing family revokes nothing. */
    issue(upgrade_d.port, "u-rv", "d-1", CHROME120, "", t);
    snprintf(body, sizeof(body), "{\"token\":\"%.27sAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
             t);
    assert_int_equal(revoke_call(upgrade_d.port, body), 0);
    expect_family(t, "active", "");
}

static void test_introspect(void **state)
{
    int st;
    char t[80], s[80];
    (void)state;
    issue(upgrade_d.port, "u-in", "d-1", CHROME120, "", t);
    json_t *j =
        post(upgrade_d.port, "/v1/tokens/introspect", &st,
             "{\"token\":\"%s\",\"device_id\":\"d-1\",\"user_agent\":\"%s\"}", t, CHROME120);
    assert_int_equal(st, 200);
    assert_true(json_is_true(json_object_get(j, "active")));
    assert_string_equal(jstr(j, "token_type"), "refresh_token");
    assert_string_equal(jstr(j, "sub"), "u-in");
    assert_string_equal(jstr(j, "client_id"), "web");
    assert_string_equal(jstr(j, "scope"), "openid offline");
    assert_memory_equal(jstr(j, "family_id"), t + 4, 22);
    long long iat = json_integer_value(json_object_get(j, "iat"));
    assert_int_equal(json_integer_value(json_object_get(j, "exp")) - iat, 14 * 86400);
    assert_true(json_is_true(json_object_get(j, "fingerprint_match")));
    json_decref(j);
    j = post(upgrade_d.port, "/v1/tokens/introspect", &st,
             "{\"token\":\"%s\",\"device_id\":\"d-2\",\"user_agent\":\"%s\"}", t, CHROME120);
    assert_true(json_is_false(json_object_get(j, "fingerprint_match")));
    json_decref(j);
    /* Introspection never rotates: the token still refreshes normally. */
    j = refresh(upgrade_d.port, t, "d-1", CHROME120, "", &st);
    assert_int_equal(st, 200);
    assert_true(json_is_false(json_object_get(j, "grace")));
    snprintf(s, sizeof(s), "%s", jstr(j, "refresh_token"));
    json_decref(j);
    /* Not active: exactly {"active":false} — rotated out, malformed, unknown. */
    const char *inactive[] = {t, "rt1.nope",
                              "rt1.AAAAAAAAAAAAAAAAAAAAAA."
                              "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (int i = 0; i < 3; i++) {
        j = post(upgrade_d.port, "/v1/tokens/introspect", &st, "{\"token\":\"%s\"}", inactive[i]);
        assert_int_equal(st, 200);
        assert_int_equal(json_object_size(j), 1);
        assert_true(json_is_false(json_object_get(j, "active")));
        json_decref(j);
    }
    j = post(upgrade_d.port, "/v1/tokens/introspect", &st, "{\"token\":\"%s\"}", s);
    assert_true(json_is_true(json_object_get(j, "active")));
    assert_null(json_object_get(j, "fingerprint_match")); /* no client given */
    json_decref(j);
    /* However many introspections: one refresh, one rotation. */
    char *rotations = family_field(&redis, s, "rotations");
    assert_string_equal(rotations, "1");
    free(rotations);
    /* Revoked: inactive too, with the right client or without. */
    char body[128];
    snprintf(body, sizeof(body), "{\"family_id\":\"%.22s\"}", s + 4);
    assert_int_equal(revoke_call(upgrade_d.port, body), 1);
    j = post(upgrade_d.port, "/v1/tokens/introspect", &st,
             "{\"token\":\"%s\",\"device_id\":\"d-1\",\"user_agent\":\"%s\"}", s, CHROME120);
    assert_int_equal(st, 200);
    assert_int_equal(json_object_size(j), 1);
    assert_true(json_is_false(json_object_get(j, "active")));
    json_decref(j);
}

static json_t *sessions(int port, const char *user)
{
    struct th_resp r;
    char path[128];
    snprintf(path, sizeof(path), "/v1/users/%s/sessions", user);
    assert_int_equal(th_http(port, "GET", path, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = th_json(&r);
    th_resp_free(&r);
    assert_non_null(j);
    return j;
}

static void test_sessions_list_and_delete(void **state)
{
    char a[80], b[80], path[160];
    struct th_resp r;
    (void)state;
    issue(upgrade_d.port, "u-ses", "d-1", CHROME120, "", a);
    issue(upgrade_d.port, "u-ses", "d-2", FIREFOX, "", b);
    json_t *j = sessions(upgrade_d.port, "u-ses");
    json_t *list = json_object_get(j, "sessions");
    assert_int_equal(json_array_size(list), 2);
    /* Oldest first; two logins in the same millisecond may come either way. */
    json_t *first = json_array_get(list, 0);
    if (strcmp(jstr(first, "device_id"), "d-1") != 0)
        first = json_array_get(list, 1);
    assert_memory_equal(jstr(first, "family_id"), a + 4, 22);
    assert_string_equal(jstr(first, "device_id"), "d-1");
    assert_string_equal(jstr(first, "client_id"), "web");
    char ua_hash[TOK_UA_HASH_LEN + 1];
    tok_ua_hash(CHROME120, strlen(CHROME120), ua_hash);
    assert_string_equal(jstr(first, "ua_hash"), ua_hash);
    assert_true(json_integer_value(json_object_get(first, "expires_at")) >
                json_integer_value(json_object_get(first, "created_at")));
    /* Seconds since the epoch (Redis time, here the same clock). */
    long long created = json_integer_value(json_object_get(first, "created_at"));
    assert_true(llabs(created - (long long)time(NULL)) <= 5);
    assert_int_equal(json_integer_value(json_object_get(first, "last_used_at")), created);
    assert_int_equal(json_integer_value(json_object_get(first, "expires_at")) - created,
                     14 * 86400);
    json_decref(j);
    /* Another user cannot end it; the owner can, once. */
    snprintf(path, sizeof(path), "/v1/users/u-other/sessions/%.22s", a + 4);
    assert_int_equal(th_http(upgrade_d.port, "DELETE", path, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"revoked\":0") ? r.body : strstr(r.body, "\"revoked\": 0"));
    th_resp_free(&r);
    snprintf(path, sizeof(path), "/v1/users/u-ses/sessions/%.22s", a + 4);
    assert_int_equal(th_http(upgrade_d.port, "DELETE", path, NULL, NULL, 0, &r), 0);
    json_t *d = th_json(&r);
    assert_int_equal(json_integer_value(json_object_get(d, "revoked")), 1);
    json_decref(d);
    th_resp_free(&r);
    j = sessions(upgrade_d.port, "u-ses");
    list = json_object_get(j, "sessions");
    assert_int_equal(json_array_size(list), 1);
    assert_memory_equal(jstr(json_array_get(list, 0), "family_id"), b + 4, 22);
    json_decref(j);
    /* A family revoked another way (by id; by reuse) is still indexed but not listed. */
    char body[128], c[80], c2[80], c3[80];
    int st;
    snprintf(body, sizeof(body), "{\"family_id\":\"%.22s\"}", b + 4);
    assert_int_equal(revoke_call(upgrade_d.port, body), 1);
    issue(upgrade_d.port, "u-ses", "d-3", CHROME120, "", c);
    refresh_ok(upgrade_d.port, c, "d-3", CHROME120, "", c2);
    refresh_ok(upgrade_d.port, c2, "d-3", CHROME120, "", c3);
    expect_problem(refresh(upgrade_d.port, c, "d-3", CHROME120, "", &st), &st, 401, "token_reused");
    assert_int_equal(th_redis_int(&redis, "ZCARD tok:user:{u-ses}"), 2);
    j = sessions(upgrade_d.port, "u-ses");
    assert_int_equal(json_array_size(json_object_get(j, "sessions")), 0);
    json_decref(j);
    assert_int_equal(th_redis_int(&redis, "ZCARD tok:user:{u-ses}"), 0); /* pruned */
}

/* Sleep until th_now_ms() reaches at_ms. */
static void sleep_until(int64_t at_ms)
{
    int64_t now = th_now_ms();
    if (at_ms > now)
        usleep((useconds_t)(at_ms - now) * 1000);
}

static long long pttl(const char *token)
{
    char key[64];
    family_key(token, key);
    return th_redis_int(&redis, "PTTL %s", key);
}

/* short_d: idle 2 s, absolute 5 s. Times are taken around the issue calls, so "alive"
 * checks happen before the earliest and "dead" checks after the latest Redis expiry. */
static void test_idle_and_absolute_expiry(void **state)
{
    int st;
    char idle[80], abs[80];
    (void)state;
    int64_t before = th_now_ms();
    issue(short_d.port, "u-life", "d-1", CHROME120, "", idle);
    issue(short_d.port, "u-life2", "d-1", CHROME120, "", abs);
    int64_t after = th_now_ms();
    assert_true(pttl(idle) > 0 && pttl(idle) <= 2000);
    /* Refreshed every 400 ms (1.6 s of slack for a loaded machine), a family outlives its
     * idle TTL ... */
    while (th_now_ms() < after + 2500) {
        usleep(400 * 1000);
        if (th_now_ms() - before > 4800)
            fail_msg("the machine is too slow for this test's 5 s absolute lifetime");
        refresh_ok(short_d.port, abs, "d-1", CHROME120, "", abs);
        assert_true(pttl(abs) <= 2000);
    }
    /* ... the unused one is gone: expired by its Redis TTL. */
    expect_problem(refresh(short_d.port, idle, "d-1", CHROME120, "", &st), &st, 401,
                   "invalid_grant");
    char key[64];
    family_key(idle, key);
    assert_int_equal(th_redis_int(&redis, "EXISTS %s", key), 0);
    /* The key never outlives the absolute expiry, however often it is refreshed. */
    assert_true(pttl(abs) <= 5000 - (th_now_ms() - after));
    sleep_until(after + 5100);
    expect_problem(refresh(short_d.port, abs, "d-1", CHROME120, "", &st), &st, 401,
                   "invalid_grant");
    family_key(abs, key);
    assert_int_equal(th_redis_int(&redis, "EXISTS %s", key), 0);
    /* Sessions list only live families, and prune the index of the dead. */
    json_t *j = sessions(short_d.port, "u-life");
    assert_int_equal(json_array_size(json_object_get(j, "sessions")), 0);
    json_decref(j);
    assert_int_equal(th_redis_int(&redis, "ZCARD tok:user:{u-life}"), 0);
}

static void test_family_cap(void **state)
{
    int st;
    char c[3][80], other[80];
    (void)state;
    issue(short_d.port, "u-cap2", "d-1", CHROME120, "", other);
    for (int i = 0; i < 3; i++) {
        char dev[16];
        snprintf(dev, sizeof(dev), "d-%d", i);
        issue(short_d.port, "u-cap", dev, CHROME120, "", c[i]);
        usleep(5 * 1000); /* distinct creation milliseconds: "oldest" is well defined */
    }
    /* The cap (2): the third login evicted the oldest family, and only that one. */
    expect_problem(refresh(short_d.port, c[0], "d-0", CHROME120, "", &st), &st, 401,
                   "invalid_grant");
    expect_family(c[0], "revoked", "cap");
    json_t *j = sessions(short_d.port, "u-cap");
    json_t *list = json_object_get(j, "sessions");
    assert_int_equal(json_array_size(list), 2);
    assert_memory_equal(jstr(json_array_get(list, 0), "family_id"), c[1] + 4, 22);
    assert_memory_equal(jstr(json_array_get(list, 1), "family_id"), c[2] + 4, 22);
    json_decref(j);
    refresh_ok(short_d.port, c[1], "d-1", CHROME120, "", c[1]);
    refresh_ok(short_d.port, c[2], "d-2", CHROME120, "", c[2]);
    refresh_ok(short_d.port, other, "d-1", CHROME120, "", other); /* another user's */
    char *m = metrics_text(short_d.port);
    assert_non_null(strstr(m, "tokend_revoked_total{reason=\"cap\"} 1\n"));
    free(m);
}

/* The cap counts live families: logged-out (revoked) and expired ones still in the index
 * make no room for evicting a live one. */
static void test_family_cap_counts_live_families(void **state)
{
    char a[80], b[80], c[80], d[80], body[128];
    int st;
    (void)state;
    issue(short_d.port, "u-cap3", "d-1", CHROME120, "", a);
    usleep(5 * 1000);
    issue(short_d.port, "u-cap3", "d-2", CHROME120, "", b);
    snprintf(body, sizeof(body), "{\"token\":\"%s\"}", b); /* device 2 logs out */
    json_t *j = post(short_d.port, "/v1/tokens/revoke", &st, "%s", body);
    assert_int_equal(json_integer_value(json_object_get(j, "revoked")), 1);
    json_decref(j);
    usleep(5 * 1000);
    issue(short_d.port, "u-cap3", "d-2", CHROME120, "", c); /* and back in: 2 live */
    expect_family(a, "active", "");
    refresh_ok(short_d.port, a, "d-1", CHROME120, "", a);
    /* A third live one is beyond the cap: the oldest live family goes. */
    usleep(5 * 1000);
    issue(short_d.port, "u-cap3", "d-3", CHROME120, "", d);
    expect_family(a, "revoked", "cap");
    expect_family(c, "active", "");
    expect_family(d, "active", "");
    j = sessions(short_d.port, "u-cap3");
    assert_int_equal(json_array_size(json_object_get(j, "sessions")), 2);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_shape),
        cmocka_unit_test(test_refresh_rotates_and_grace),
        cmocka_unit_test(test_concurrent_refresh_one_rotation),
        cmocka_unit_test(test_fingerprint_device_and_user_agent),
        cmocka_unit_test(test_fingerprint_tls),
        cmocka_unit_test(test_revoke_token_family_user),
        cmocka_unit_test(test_introspect),
        cmocka_unit_test(test_sessions_list_and_delete),
        cmocka_unit_test(test_idle_and_absolute_expiry),
        cmocka_unit_test(test_family_cap),
        cmocka_unit_test(test_family_cap_counts_live_families),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
