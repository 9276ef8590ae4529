/* tokend end to end: real redis-server, tokend daemons as subprocesses (one per policy
 * set), real HTTP. Follows tokend.md's guarantees: one rotation under 20 concurrent
 * refreshes, reuse detection, fingerprint policy, lifetimes, RFC 7009/7662 shapes, bad
 * input leaving Redis untouched, no token text in Redis or the logs, 503 without Redis. */
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
#include <unistd.h>

#include "../../tokend/fingerprint.h"
#include "../lib/harness.h"

#define KEY "TOKEN_HASH_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define CHROME120                                                                                  \
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "     \
    "Safari/537.36"
#define CHROME121                                                                                  \
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 "     \
    "Safari/537.36"
#define FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"

static struct th_redis redis;
static struct th_proc upgrade_d; /* defaults: upgrade, soft, reject; grace 1s */
static struct th_proc strict_d;  /* strict, tls strict, revoke on mismatch */
static struct th_proc short_d;   /* idle 1s, absolute 2s, 2 families per user, tls ignore */

/* Every token the daemons handed out, to look for afterwards in Redis and in the logs. */
static char seen[1024][80];
static int nseen;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

static void remember(const char *token)
{
    pthread_mutex_lock(&seen_lock);
    if (nseen < 1024)
        snprintf(seen[nseen++], sizeof(seen[0]), "%s", token);
    pthread_mutex_unlock(&seen_lock);
}

static int start(struct th_proc *p, const char *const *extra)
{
    /* The extras come first: the first of duplicate names is the one a daemon reads. */
    const char *env[TH_DAEMON_EXTRA_MAX];
    int n = 0;
    for (; extra && extra[n] && n + 4 < TH_DAEMON_EXTRA_MAX; n++)
        env[n] = extra[n];
    env[n++] = KEY;
    env[n++] = "TOKEN_REUSE_GRACE=1s";
    env[n++] = "REDIS_MIN_IDLE_CONNS=2";
    env[n] = NULL;
    return th_daemon_start(p, "bin/tokend", redis.url, env);
}

static int setup(void **state)
{
    (void)state;
    static const char *const strict[] = {"TOKEN_FP_UA=strict", "TOKEN_FP_TLS=strict",
                                         "TOKEN_ON_FP_MISMATCH=revoke", NULL};
    static const char *const shortl[] = {"TOKEN_IDLE_TTL=1s", "TOKEN_ABSOLUTE_TTL=2s",
                                         "TOKEN_MAX_FAMILIES_PER_USER=2", "TOKEN_FP_TLS=ignore",
                                         NULL};
    if (th_redis_start(&redis, NULL) != 0)
        return -1;
    if (start(&upgrade_d, NULL) || start(&strict_d, strict) || start(&short_d, shortl))
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

/* POST json; returns the parsed body (caller decrefs) and the status in *status. */
static json_t *post(int port, const char *path, int *status, const char *fmt, ...)
{
    char body[4096];
    struct th_resp r;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    assert_int_equal(th_post_json(port, path, body, &r), 0);
    *status = r.status;
    json_t *j = th_json(&r);
    th_resp_free(&r);
    assert_non_null(j);
    const char *tok = json_string_value(json_object_get(j, "refresh_token"));
    if (tok)
        remember(tok);
    return j;
}

static const char *jstr(const json_t *j, const char *name)
{
    const char *s = json_string_value(json_object_get(j, name));
    return s ? s : "";
}

/* status is read through a pointer: the call that fills it is an argument too. */
static void expect_problem(json_t *j, const int *st, int want, const char *code)
{
    int status = *st;
    if (status != want || strcmp(jstr(j, "code"), code) != 0)
        fail_msg("expected %d %s, got %d %s", want, code, status, jstr(j, "code"));
    json_decref(j);
}

/* Issue a token for user on port with a device, user agent and tls ("" for none). */
static void issue(int port, const char *user, const char *device, const char *ua, const char *tls,
                  char token[80])
{
    int st;
    char tlsf[128] = "";
    if (tls[0])
        snprintf(tlsf, sizeof(tlsf), ",\"tls_fingerprint\":\"%s\"", tls);
    json_t *j = post(port, "/v1/tokens", &st,
                     "{\"user_id\":\"%s\",\"client_id\":\"web\",\"scope\":\"openid offline\","
                     "\"device_id\":\"%s\",\"user_agent\":\"%s\"%s}",
                     user, device, ua, tlsf);
    assert_int_equal(st, 201);
    snprintf(token, 80, "%s", jstr(j, "refresh_token"));
    json_decref(j);
}

static json_t *refresh(int port, const char *token, const char *device, const char *ua,
                       const char *tls, int *status)
{
    char tlsf[128] = "";
    if (tls[0])
        snprintf(tlsf, sizeof(tlsf), ",\"tls_fingerprint\":\"%s\"", tls);
    return post(port, "/v1/tokens/refresh", status,
                "{\"refresh_token\":\"%s\",\"device_id\":\"%s\",\"user_agent\":\"%s\"%s}", token,
                device, ua, tlsf);
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
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
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
    usleep(1100 * 1000);
    expect_problem(refresh(upgrade_d.port, t0, "d-1", CHROME120, "", &st), &st, 401,
                   "token_reused");
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

static void test_fingerprint_device_and_user_agent(void **state)
{
    int st;
    char t[80], s[80];
    (void)state;
    issue(upgrade_d.port, "u-fp", "d-1", CHROME120, "", t);
    expect_mismatch(refresh(upgrade_d.port, t, "d-2", CHROME120, "", &st), &st, "device_id");
    expect_mismatch(refresh(upgrade_d.port, t, "d-1", FIREFOX, "", &st), &st, "user_agent");
    /* reject keeps the family usable from the right client: Chrome 121 upgrades it. */
    json_t *j = refresh(upgrade_d.port, t, "d-1", CHROME121, "", &st);
    assert_int_equal(st, 200);
    assert_true(json_is_true(json_object_get(j, "rebound")));
    snprintf(s, sizeof(s), "%s", jstr(j, "refresh_token"));
    json_decref(j);
    /* Now bound to 121: 120 is a downgrade. */
    expect_mismatch(refresh(upgrade_d.port, s, "d-1", CHROME120, "", &st), &st, "user_agent");
    /* strict: 120 -> 121 refused, and this daemon revokes on mismatch. */
    issue(strict_d.port, "u-fp", "d-1", CHROME120, "", t);
    expect_mismatch(refresh(strict_d.port, t, "d-1", CHROME121, "", &st), &st, "user_agent");
    expect_problem(refresh(strict_d.port, t, "d-1", CHROME120, "", &st), &st, 401, "invalid_grant");
    issue(strict_d.port, "u-fp", "d-1", CHROME121, "", t);
    expect_mismatch(refresh(strict_d.port, t, "d-1", CHROME120, "", &st), &st, "user_agent");
}

static void test_fingerprint_tls(void **state)
{
    int st;
    char t[80];
    (void)state;
    /* soft: a changed or vanished TLS fingerprint is accepted (and counted). */
    issue(upgrade_d.port, "u-tls", "d-1", CHROME120, "ja4-a", t);
    json_t *j = refresh(upgrade_d.port, t, "d-1", CHROME120, "", &st);
    assert_int_equal(st, 200);
    json_decref(j);
    struct th_resp m;
    assert_int_equal(th_http(upgrade_d.port, "GET", "/metrics", NULL, NULL, 0, &m), 0);
    assert_non_null(strstr(m.body, "tokend_fingerprint_drift_total{component=\"tls\"} 1"));
    th_resp_free(&m);
    /* strict: refused; ignore: not even compared. */
    issue(strict_d.port, "u-tls", "d-1", CHROME120, "ja4-a", t);
    expect_mismatch(refresh(strict_d.port, t, "d-1", CHROME120, "ja4-b", &st), &st, "tls");
    issue(strict_d.port, "u-tls", "d-1", CHROME120, "", t);
    expect_mismatch(refresh(strict_d.port, t, "d-1", CHROME120, "ja4-b", &st), &st, "tls");
    issue(short_d.port, "u-tls", "d-1", CHROME120, "ja4-a", t);
    j = refresh(short_d.port, t, "d-1", CHROME120, "ja4-zz", &st);
    assert_int_equal(st, 200);
    json_decref(j);
}

/* Read every tok:* key and value; fail if any token text, secret or successor is there. */
static void test_no_token_text_in_redis(void **state)
{
    (void)state;
    assert_true(nseen > 20);
    redisReply *keys = th_redis_cmd(&redis, "KEYS tok:*");
    assert_true(keys->elements > 5);
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        redisReply *type = th_redis_cmd(&redis, "TYPE %s", k);
        const char *cmd = strcmp(type->str, "hash") == 0   ? "HGETALL"
                          : strcmp(type->str, "set") == 0  ? "SMEMBERS"
                          : strcmp(type->str, "zset") == 0 ? "ZRANGE"
                                                           : NULL;
        redisReply *v = !cmd                         ? NULL
                        : strcmp(cmd, "ZRANGE") == 0 ? th_redis_cmd(&redis, "ZRANGE %s 0 -1", k)
                                                     : th_redis_cmd(&redis, "%s %s", cmd, k);
        for (size_t e = 0; v && e < v->elements; e++) {
            for (int t = 0; t < nseen; t++) {
                const char *secret = seen[t] + 27;
                if (strstr(v->element[e]->str, seen[t]) || strstr(v->element[e]->str, secret))
                    fail_msg("%s holds token text in the clear", k);
            }
        }
        freeReplyObject(v);
        freeReplyObject(type);
    }
    freeReplyObject(keys);
}

static void test_logs_hold_no_tokens(void **state)
{
    (void)state;
    struct th_proc *procs[] = {&upgrade_d, &strict_d, &short_d};
    for (int p = 0; p < 3; p++) {
        char *log = th_proc_log(procs[p]);
        assert_non_null(log);
        for (int t = 0; t < nseen; t++)
            if (strstr(log, seen[t] + 27))
                fail_msg("a token secret appears in the log");
        free(log);
    }
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
    json_t *j = refresh(upgrade_d.port, other, "d-1", CHROME120, "", &st);
    assert_int_equal(st, 200);
    json_decref(j);
    assert_int_equal(revoke_call(upgrade_d.port, "{\"user_id\":\"u-all\"}"), 0);
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
    assert_int_equal(strlen(jstr(first, "ua_hash")), 16);
    assert_true(json_integer_value(json_object_get(first, "expires_at")) >
                json_integer_value(json_object_get(first, "created_at")));
    assert_non_null(json_object_get(first, "last_used_at"));
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
}

static void test_lifetimes_and_cap(void **state)
{
    int st;
    char idle[80], abs[80], c1[80], c2[80], c3[80];
    (void)state;
    issue(short_d.port, "u-life", "d-1", CHROME120, "", idle);
    issue(short_d.port, "u-life2", "d-1", CHROME120, "", abs);
    for (int i = 0; i < 3; i++) { /* kept alive by refreshes, until the absolute limit */
        usleep(600 * 1000);
        json_t *j = refresh(short_d.port, abs, "d-1", CHROME120, "", &st);
        assert_int_equal(st, 200);
        snprintf(abs, sizeof(abs), "%s", jstr(j, "refresh_token"));
        json_decref(j);
    }
    /* 1.8 s: the unused one passed its idle TTL; the used one dies at 2 s. */
    expect_problem(refresh(short_d.port, idle, "d-1", CHROME120, "", &st), &st, 401,
                   "invalid_grant");
    usleep(300 * 1000);
    expect_problem(refresh(short_d.port, abs, "d-1", CHROME120, "", &st), &st, 401,
                   "invalid_grant");
    /* The cap (2): the third login evicts the oldest family. */
    issue(short_d.port, "u-cap", "d-1", CHROME120, "", c1);
    usleep(5 * 1000);
    issue(short_d.port, "u-cap", "d-2", CHROME120, "", c2);
    usleep(5 * 1000);
    issue(short_d.port, "u-cap", "d-3", CHROME120, "", c3);
    expect_problem(refresh(short_d.port, c1, "d-1", CHROME120, "", &st), &st, 401, "invalid_grant");
    json_t *j = sessions(short_d.port, "u-cap");
    assert_int_equal(json_array_size(json_object_get(j, "sessions")), 2);
    json_decref(j);
    j = sessions(short_d.port, "u-life");
    assert_int_equal(json_array_size(json_object_get(j, "sessions")), 0);
    json_decref(j);
}

/* Commands that read or write tokend state, as counted by Redis. */
static long long state_commands(void)
{
    static const char *const names[] = {"evalsha", "eval", "hmget", "zrange", "zrem", NULL};
    long long total = 0;
    redisReply *r = th_redis_cmd(&redis, "INFO commandstats");
    for (int i = 0; names[i]; i++) {
        char needle[64];
        snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", names[i]);
        const char *p = strstr(r->str, needle);
        if (p)
            total += atoll(p + strlen(needle));
    }
    freeReplyObject(r);
    return total;
}

static void test_bad_input_leaves_redis_untouched(void **state)
{
    static const struct {
        const char *path, *body;
        int status;
        const char *code;
    } cases[] = {
        {"/v1/tokens", "{\"user_id\":\"u\",\"device_id\":\"d\"}", 400, "invalid_request"},
        {"/v1/tokens", "{\"user_id\":\"u{x}\",\"device_id\":\"d\",\"user_agent\":\"a\"}", 400,
         "invalid_request"},
        {"/v1/tokens", "{\"user_id\":\"\",\"device_id\":\"d\",\"user_agent\":\"a\"}", 400,
         "invalid_request"},
        {"/v1/tokens", "{\"user_id\":7,\"device_id\":\"d\",\"user_agent\":\"a\"}", 400,
         "invalid_request"},
        {"/v1/tokens", "{\"user_id\":\"u\",\"device_id\":\"d\\n\",\"user_agent\":\"a\"}", 400,
         "invalid_request"},
        {"/v1/tokens", "{\"user_id\":\"u\",", 400, "invalid_json"},
        {"/v1/tokens", "[1,2]", 400, "invalid_json"},
        {"/v1/tokens/refresh", "{\"device_id\":\"d\",\"user_agent\":\"a\"}", 400,
         "invalid_request"},
        {"/v1/tokens/refresh", "{\"refresh_token\":\"rt1.x\",\"user_agent\":\"a\"}", 400,
         "invalid_request"},
        {"/v1/tokens/refresh",
         "{\"refresh_token\":\"rt2.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
         "AAAAA\",\"device_id\":\"d\",\"user_agent\":\"a\"}",
         401, "invalid_grant"},
        {"/v1/tokens/refresh",
         "{\"refresh_token\":\"rt1.AAAAAAAAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
         "AAAAA\",\"device_id\":\"d\",\"user_agent\":\"a\"}",
         401, "invalid_grant"},
        {"/v1/tokens/refresh",
         "{\"refresh_token\":\"rt1.AAAAAAAAAAAAAAAAAAAAA!.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
         "AAAAAA\",\"device_id\":\"d\",\"user_agent\":\"a\"}",
         401, "invalid_grant"},
        {"/v1/tokens/refresh",
         "{\"refresh_token\":\"rt1.AAAAAAAAAAAAAAAAAAAAAA.AAAA\",\"device_id\":\"d\","
         "\"user_agent\":\"a\"}",
         401, "invalid_grant"},
        {"/v1/tokens/revoke", "{}", 400, "invalid_request"},
        {"/v1/tokens/revoke", "{\"token\":\"a\",\"user_id\":\"u\"}", 400, "invalid_request"},
        {"/v1/tokens/revoke", "{\"family_id\":\"not-a-family\"}", 400, "invalid_request"},
        {"/v1/tokens/revoke", "{\"user_id\":\"{u}\"}", 400, "invalid_request"},
        {"/v1/tokens/introspect", "{\"token\":5}", 400, "invalid_request"},
        {"/v1/tokens/introspect", "nope", 400, "invalid_json"},
    };
    char big[1200], body[1400];
    int st;
    (void)state;
    long long before = state_commands();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = post(upgrade_d.port, cases[i].path, &st, "%s", cases[i].body);
        if (st != cases[i].status || strcmp(jstr(j, "code"), cases[i].code) != 0)
            fail_msg("case %zu (%s %s): got %d %s", i, cases[i].path, cases[i].body, st,
                     jstr(j, "code"));
        json_decref(j);
    }
    memset(big, 'A', 1025);
    big[1025] = '\0';
    snprintf(body, sizeof(body), "{\"user_id\":\"u\",\"device_id\":\"d\",\"user_agent\":\"%s\"}",
             big);
    json_t *j = post(upgrade_d.port, "/v1/tokens", &st, "%s", body);
    assert_string_equal(jstr(j, "field"), "user_agent");
    expect_problem(j, &st, 400, "invalid_request");
    struct th_resp r;
    assert_int_equal(th_http(upgrade_d.port, "GET", "/v1/users/a%7Bb/sessions", NULL, NULL, 0, &r),
                     0);
    assert_int_equal(r.status, 400);
    th_resp_free(&r);
    assert_int_equal(
        th_http(upgrade_d.port, "DELETE", "/v1/users/u/sessions/short", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 400);
    th_resp_free(&r);
    assert_int_equal(state_commands(), before);
}

/* After a hash-key rotation (old key as TOKEN_HASH_KEY_PREVIOUS) old tokens still
 * refresh, and their successors are hashed under the new key only. */
static void test_hash_key_rotation(void **state)
{
    static const char *const rotated[] = {
        "TOKEN_HASH_KEY=ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
        "TOKEN_HASH_KEY_PREVIOUS=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", NULL};
    struct th_proc next;
    char t[80], s[80];
    int st;
    (void)state;
    issue(upgrade_d.port, "u-rot", "d-1", CHROME120, "", t);
    assert_int_equal(start(&next, rotated), 0);
    json_t *j = refresh(next.port, t, "d-1", CHROME120, "", &st);
    assert_int_equal(st, 200);
    snprintf(s, sizeof(s), "%s", jstr(j, "refresh_token"));
    json_decref(j);
    j = refresh(next.port, t, "d-1", CHROME120, "", &st); /* grace: successor sealed */
    assert_int_equal(st, 200);
    assert_string_equal(jstr(j, "refresh_token"), s);
    json_decref(j);
    /* The old-key daemon cannot recognise a new-key successor. */
    expect_problem(refresh(upgrade_d.port, s, "d-1", CHROME120, "", &st), &st, 401,
                   "invalid_grant");
    j = refresh(next.port, s, "d-1", CHROME120, "", &st);
    assert_int_equal(st, 200);
    json_decref(j);
    th_proc_stop(&next, SIGTERM, 5000);
}

/* A missing or short hash key stops the daemon with one line naming the variable. */
static void test_config_errors(void **state)
{
    static const char *const missing[] = {"PATH=/usr/bin:/bin", NULL};
    static const char *const shortkey[] = {"TOKEN_HASH_KEY=c2hvcnQ=", NULL};
    static const char *const badpolicy[] = {KEY, "TOKEN_FP_UA=loose", NULL};
    const char *const *envs[] = {missing, shortkey, badpolicy};
    const char *names[] = {"TOKEN_HASH_KEY", "TOKEN_HASH_KEY", "TOKEN_FP_UA"};
    const char *argv[] = {"tokend", "--check-config", NULL};
    (void)state;
    for (int i = 0; i < 3; i++) {
        char *err = NULL;
        assert_int_equal(th_run(th_bin("bin/tokend"), argv, envs[i], NULL, &err, 5000), 2);
        assert_non_null(strstr(err, names[i]));
        free(err);
    }
    char *out = NULL;
    static const char *const good[] = {KEY, NULL};
    assert_int_equal(th_run(th_bin("bin/tokend"), argv, good, &out, NULL, 5000), 0);
    assert_non_null(strstr(out, "TOKEN_FP_UA=upgrade"));
    assert_null(strstr(out, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")); /* masked */
    free(out);
}

static void test_redis_down_is_503(void **state)
{
    int st;
    char t[80];
    (void)state;
    issue(upgrade_d.port, "u-down", "d-1", CHROME120, "", t);
    /* Scripts flushed behind the daemon's back: reloaded transparently. */
    freeReplyObject(th_redis_cmd(&redis, "SCRIPT FLUSH"));
    json_t *j = refresh(upgrade_d.port, t, "d-1", CHROME120, "", &st);
    assert_int_equal(st, 200);
    snprintf(t, sizeof(t), "%s", jstr(j, "refresh_token"));
    json_decref(j);
    /* A frozen Redis: 503 within the command timeout (1 s), no hang. */
    th_redis_pause(&redis);
    int64_t t0 = th_now_ms();
    expect_problem(refresh(upgrade_d.port, t, "d-1", CHROME120, "", &st), &st, 503,
                   "backend_unavailable");
    assert_true(th_now_ms() - t0 < 2500);
    th_redis_resume(&redis);
    th_redis_kill(&redis);
    expect_problem(refresh(upgrade_d.port, t, "d-1", CHROME120, "", &st), &st, 503,
                   "backend_unavailable");
    expect_problem(post(upgrade_d.port, "/v1/tokens", &st,
                        "{\"user_id\":\"u\",\"device_id\":\"d\",\"user_agent\":\"a\"}"),
                   &st, 503, "backend_unavailable");
    expect_problem(post(upgrade_d.port, "/v1/tokens/introspect", &st, "{\"token\":\"%s\"}", t), &st,
                   503, "backend_unavailable");
    assert_int_equal(th_redis_restart(&redis), 0);
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
        cmocka_unit_test(test_lifetimes_and_cap),
        cmocka_unit_test(test_bad_input_leaves_redis_untouched),
        cmocka_unit_test(test_no_token_text_in_redis),
        cmocka_unit_test(test_logs_hold_no_tokens),
        cmocka_unit_test(test_hash_key_rotation),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_redis_down_is_503),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
