/* idemd over real sockets against a real redis-server: every endpoint's answers, bad input
 * that leaves Redis untouched, scope isolation, wait_ms, WAIT replicas, keys kept out of
 * the logs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/harness.h"
#include "shared/log.h"

static struct th_redis redis;
static struct th_proc idemd;

/* Start idemd against the shared Redis with a 1 KiB response limit and extra settings. */
static int start_idemd(struct th_proc *p, const char *const *extra)
{
    const char *env[TH_DAEMON_EXTRA_MAX] = {"LOG_LEVEL=debug", "IDEM_MAX_RESPONSE_BYTES=1KiB"};
    for (int i = 0; extra && extra[i] && i + 3 < TH_DAEMON_EXTRA_MAX; i++)
        env[i + 2] = extra[i];
    return th_daemon_start(p, "bin/idemd", redis.url, env);
}

static int setup(void **state)
{
    (void)state;
    if (th_redis_start(&redis, NULL) != 0)
        return -1;
    return start_idemd(&idemd, NULL);
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&idemd, SIGTERM, 5000);
    th_redis_stop(&redis);
    return 0;
}

static int reset(void **state)
{
    (void)state;
    freeReplyObject(th_redis_cmd(&redis, "FLUSHALL"));
    return 0;
}

/* POST json to idemd; asserts the status; returns the parsed body (caller decrefs). */
static json_t *post(int port, const char *path, int want, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static json_t *post(int port, const char *path, int want, const char *fmt, ...)
{
    char body[4096];
    va_list ap;
    struct th_resp r;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    assert_int_equal(th_post_json(port, path, body, &r), 0);
    if (r.status != want)
        fail_msg("%s %s: want %d, got %d: %s", path, body, want, r.status, r.body);
    json_t *j = th_json(&r);
    assert_non_null(j);
    th_resp_free(&r);
    return j;
}

static const char *jstr(json_t *j, const char *name)
{
    const char *s = json_string_value(json_object_get(j, name));
    assert_non_null(s);
    return s;
}

static long long jint(json_t *j, const char *name)
{
    json_t *v = json_object_get(j, name);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* Claim scope/key with fingerprint fp; returns the lease token (static buffer) on 201. */
static const char *claim_token(const char *scope, const char *key, const char *fp)
{
    static char token[64];
    json_t *j = post(idemd.port, "/v1/claim", 201,
                     "{\"scope\":\"%s\",\"key\":\"%s\",\"fingerprint\":\"%s\"}", scope, key, fp);
    snprintf(token, sizeof(token), "%s", jstr(j, "lease_token"));
    assert_string_equal(jstr(j, "outcome"), "claimed");
    json_decref(j);
    return token;
}

static char *snapshot(const char *key)
{
    redisReply *r = th_redis_cmd(&redis, "HGETALL %s", key);
    assert_non_null(r);
    size_t cap = 64;
    for (size_t i = 0; i < r->elements; i++)
        cap += r->element[i]->len + 2;
    char *out = calloc(1, cap);
    size_t at = 0;
    for (size_t i = 0; i < r->elements; i++)
        at += (size_t)snprintf(out + at, cap - at, "%s%s", r->element[i]->str, i % 2 ? ";" : "=");
    freeReplyObject(r);
    return out;
}

static void test_claim_complete_replay(void **state)
{
    (void)state;
    struct th_resp r;
    char hv[64];
    const char *claim = "{\"scope\":\"t\",\"key\":\"order-1\",\"fingerprint\":\"f1\"}";
    const char *tok = claim_token("t", "order-1", "f1");
    assert_int_equal(strlen(tok), 32); /* 192 random bits */

    assert_int_equal(th_post_json(idemd.port, "/v1/claim", claim, &r), 0);
    assert_int_equal(r.status, 409);
    assert_non_null(th_header(&r, "Retry-After", hv, sizeof(hv)));
    assert_true(atoi(hv) >= 1 && atoi(hv) <= 30);
    json_t *j = th_json(&r);
    assert_string_equal(jstr(j, "code"), "request_in_progress");
    assert_true(jint(j, "lease_expires_in_ms") > 25000);
    json_decref(j);
    th_resp_free(&r);

    j = post(idemd.port, "/v1/claim", 422,
             "{\"scope\":\"t\",\"key\":\"order-1\",\"fingerprint\":\"other\"}");
    assert_string_equal(jstr(j, "code"), "fingerprint_mismatch");
    json_decref(j);

    j = post(idemd.port, "/v1/complete", 200,
             "{\"scope\":\"t\",\"key\":\"order-1\",\"lease_token\":\"%s\",\"status\":201,"
             "\"headers\":{\"location\":\"/charges/42\",\"Set-Cookie\":\"s=1\"},"
             "\"body\":\"{\\\"id\\\":42}\"}",
             tok);
    assert_string_equal(jstr(j, "outcome"), "completed");
    assert_true(jint(j, "expires_in_ms") > 86000000);
    json_decref(j);

    assert_int_equal(th_post_json(idemd.port, "/v1/claim", claim, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(th_header(&r, "Idempotent-Replayed", hv, sizeof(hv)));
    assert_string_equal(hv, "true");
    j = th_json(&r);
    assert_string_equal(jstr(j, "outcome"), "replay");
    assert_int_equal(jint(j, "status"), 201);
    assert_string_equal(jstr(j, "body"), "{\"id\":42}");
    assert_string_equal(jstr(j, "body_encoding"), "utf8");
    assert_true(jint(j, "completed_at_ms") > 0);
    json_t *h = json_object_get(j, "headers");
    assert_int_equal(json_object_size(h), 1); /* Set-Cookie never stored */
    assert_string_equal(jstr(h, "Location"), "/charges/42");
    json_decref(j);
    th_resp_free(&r);
}

/* A stored 5xx and a base64 body are replayed as they were stored. */
static void test_stored_error_and_base64_replayed(void **state)
{
    (void)state;
    const char *tok = claim_token("t", "e", "f");
    json_decref(post(idemd.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"e\",\"lease_token\":\"%s\",\"status\":503,"
                     "\"body\":\"AAEC/w==\",\"body_encoding\":\"base64\"}",
                     tok));
    json_t *j =
        post(idemd.port, "/v1/claim", 200, "{\"scope\":\"t\",\"key\":\"e\",\"fingerprint\":\"f\"}");
    assert_int_equal(jint(j, "status"), 503);
    assert_string_equal(jstr(j, "body"), "AAEC/w==");
    assert_string_equal(jstr(j, "body_encoding"), "base64");
    json_decref(j);
}

static void test_request_fingerprint(void **state)
{
    (void)state;
    const char *req = "\"request\":{\"method\":\"POST\",\"path\":\"/charges\","
                      "\"body\":\"{\\\"amount\\\":42}\"}";
    json_decref(post(idemd.port, "/v1/claim", 201, "{\"scope\":\"t\",\"key\":\"r\",%s}", req));
    redisReply *r = th_redis_cmd(&redis, "HGET idem:t:r fingerprint");
    assert_string_equal(r->str, "a9c4e64be86af54a75e056a25995e667b96484a587781295c96c9cc7df641e29");
    freeReplyObject(r);
    json_decref(post(idemd.port, "/v1/claim", 409, "{\"scope\":\"t\",\"key\":\"r\",%s}", req));
    json_decref(post(idemd.port, "/v1/claim", 422,
                     "{\"scope\":\"t\",\"key\":\"r\",\"request\":{\"method\":\"POST\","
                     "\"path\":\"/charges\",\"body\":\"{}\"}}"));
}

static void test_attempt_id_gets_same_lease(void **state)
{
    (void)state;
    const char *body =
        "{\"scope\":\"t\",\"key\":\"a\",\"fingerprint\":\"f\",\"attempt_id\":\"a1\"}";
    json_t *first = post(idemd.port, "/v1/claim", 201, "%s", body);
    json_t *again = post(idemd.port, "/v1/claim", 201, "%s", body);
    assert_string_equal(jstr(first, "lease_token"), jstr(again, "lease_token"));
    json_decref(first);
    json_decref(again);
    json_decref(
        post(idemd.port, "/v1/claim", 409,
             "{\"scope\":\"t\",\"key\":\"a\",\"fingerprint\":\"f\",\"attempt_id\":\"a2\"}"));
}

/* Complete / release / extend / checkpoint with a wrong token: 409, hash unchanged. */
static void test_wrong_token_changes_nothing(void **state)
{
    (void)state;
    const char *tok = claim_token("t", "w", "f");
    char *before = snapshot("idem:t:w");
    const char *wrong[] = {"nope", "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < 3; i++) {
        const char *ref = "\"scope\":\"t\",\"key\":\"w\"";
        json_t *j = post(idemd.port, "/v1/complete", 409,
                         "{%s,\"lease_token\":\"%s\",\"status\":200}", ref, wrong[i]);
        assert_string_equal(jstr(j, "code"), "lease_lost");
        json_decref(j);
        json_decref(
            post(idemd.port, "/v1/release", 409, "{%s,\"lease_token\":\"%s\"}", ref, wrong[i]));
        json_decref(post(idemd.port, "/v1/extend", 409,
                         "{%s,\"lease_token\":\"%s\",\"lease_ms\":60000}", ref, wrong[i]));
        json_decref(post(idemd.port, "/v1/checkpoint", 409,
                         "{%s,\"lease_token\":\"%s\",\"checkpoint\":\"x\"}", ref, wrong[i]));
    }
    char *after = snapshot("idem:t:w");
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* The right token still works, and a second release finds nothing. */
    json_t *j =
        post(idemd.port, "/v1/extend", 200,
             "{\"scope\":\"t\",\"key\":\"w\",\"lease_token\":\"%s\",\"lease_ms\":60000}", tok);
    assert_int_equal(jint(j, "lease_expires_in_ms"), 60000);
    json_decref(j);
    json_decref(post(idemd.port, "/v1/checkpoint", 200,
                     "{\"scope\":\"t\",\"key\":\"w\",\"lease_token\":\"%s\",\"checkpoint\":\"c1\"}",
                     tok));
    json_decref(post(idemd.port, "/v1/release", 200,
                     "{\"scope\":\"t\",\"key\":\"w\",\"lease_token\":\"%s\"}", tok));
    assert_int_equal(th_redis_int(&redis, "EXISTS idem:t:w"), 0);
    j = post(idemd.port, "/v1/release", 404,
             "{\"scope\":\"t\",\"key\":\"w\",\"lease_token\":\"%s\"}", tok);
    assert_string_equal(jstr(j, "code"), "not_found");
    json_decref(j);
    json_decref(post(idemd.port, "/v1/complete", 404,
                     "{\"scope\":\"t\",\"key\":\"w\",\"lease_token\":\"x\",\"status\":200}"));
}

static void test_record(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(th_http(idemd.port, "GET", "/v1/record?scope=t&key=rec", NULL, NULL, 0, &r),
                     0);
    assert_int_equal(r.status, 404);
    th_resp_free(&r);
    const char *tok = claim_token("t", "rec", "fp1");
    assert_int_equal(th_http(idemd.port, "GET", "/v1/record?scope=t&key=rec", NULL, NULL, 0, &r),
                     0);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, tok)); /* never the lease token */
    json_t *j = th_json(&r);
    assert_string_equal(jstr(j, "state"), "in_progress");
    assert_string_equal(jstr(j, "fingerprint"), "fp1");
    assert_int_equal(jint(j, "claims"), 1);
    assert_true(jint(j, "lease_expires_in_ms") > 25000);
    assert_true(json_is_null(json_object_get(j, "status")));
    assert_true(jint(j, "created_at_ms") > 0);
    assert_true(jint(j, "expires_in_ms") > 86000000);
    json_decref(j);
    th_resp_free(&r);
    json_decref(post(idemd.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"rec\",\"lease_token\":\"%s\",\"status\":204}",
                     tok));
    assert_int_equal(th_http(idemd.port, "GET", "/v1/record?scope=t&key=rec", NULL, NULL, 0, &r),
                     0);
    j = th_json(&r);
    assert_string_equal(jstr(j, "state"), "completed");
    assert_int_equal(jint(j, "status"), 204);
    assert_null(json_object_get(j, "body"));
    json_decref(j);
    th_resp_free(&r);
}

/* The same key in two scopes is two records; keys with {, }, : and spaces stay in their
 * scope and carry no hash tag. */
static void test_scopes_isolated(void **state)
{
    (void)state;
    const char *keys[] = {"k", "b:k", "{b}:k", "x {y} z", "}{"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        claim_token("a", keys[i], "fa");
        claim_token("b", keys[i], "fb"); /* not in progress, not a mismatch: its own */
    }
    assert_int_equal(th_redis_int(&redis, "DBSIZE"), 10);
    redisReply *r = th_redis_cmd(&redis, "KEYS *");
    for (size_t i = 0; i < r->elements; i++) {
        const char *k = r->element[i]->str;
        assert_null(strchr(k, '{'));
        assert_null(strchr(k, '}'));
        assert_true(strncmp(k, "idem:a:", 7) == 0 || strncmp(k, "idem:b:", 7) == 0);
    }
    freeReplyObject(r);
    r = th_redis_cmd(&redis, "HGET %s fingerprint", "idem:a:%7Bb%7D:k");
    assert_string_equal(r->str, "fa");
    freeReplyObject(r);
    /* A scope cannot smuggle in part of a key. */
    json_decref(post(idemd.port, "/v1/claim", 400,
                     "{\"scope\":\"a:b\",\"key\":\"k\",\"fingerprint\":\"fa\"}"));
}

/* One bad request: status, code, and (for 400) the field named. */
static void bad(const char *path, const char *body, const char *ctype, int status, const char *code,
                const char *field)
{
    struct th_resp r;
    char ct[64];
    snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
    const char *headers[] = {ct, NULL};
    assert_int_equal(th_http(idemd.port, "POST", path, headers, body, strlen(body), &r), 0);
    if (r.status != status)
        fail_msg("%s %s: want %d, got %d %s", path, body, status, r.status, r.body);
    json_t *j = th_json(&r);
    assert_non_null(j);
    assert_string_equal(jstr(j, "code"), code);
    if (field)
        assert_string_equal(jstr(j, "field"), field);
    json_decref(j);
    th_resp_free(&r);
}

#define J "application/json"

/* Bad claims: each gets its 400 / 415. */
static void bad_claims(void)
{
    char key256[300], body[600];
    memset(key256, 'k', 256);
    key256[256] = '\0';
    bad("/v1/claim", "{\"scope\":\"t\",", J, 400, "invalid_json", NULL);
    bad("/v1/claim", "[1]", J, 400, "invalid_json", NULL);
    bad("/v1/claim", "{\"scope\":\"t\",\"key\":\"k\",\"fingerprint\":\"f\"}", "text/plain", 415,
        "unsupported_media_type", NULL);
    bad("/v1/claim", "{\"key\":\"k\",\"fingerprint\":\"f\"}", J, 400, "invalid_request", "scope");
    bad("/v1/claim", "{\"scope\":\"t t\",\"key\":\"k\",\"fingerprint\":\"f\"}", J, 400,
        "invalid_request", "scope");
    bad("/v1/claim", "{\"scope\":\"t\",\"key\":7,\"fingerprint\":\"f\"}", J, 400, "invalid_request",
        "key");
    snprintf(body, sizeof(body), "{\"scope\":\"t\",\"key\":\"%s\",\"fingerprint\":\"f\"}", key256);
    bad("/v1/claim", body, J, 400, "invalid_request", "key");
    bad("/v1/claim", "{\"scope\":\"t\",\"key\":\"k\"}", J, 400, "invalid_request", "fingerprint");
    bad("/v1/claim",
        "{\"scope\":\"t\",\"key\":\"k\",\"fingerprint\":\"f\",\"request\":{\"method\":\"GET\","
        "\"path\":\"/\"}}",
        J, 400, "invalid_request", "fingerprint");
    bad("/v1/claim", "{\"scope\":\"t\",\"key\":\"k\",\"fingerprint\":\"f\",\"wait_ms\":99999}", J,
        400, "invalid_request", "wait_ms");
    bad("/v1/claim", "{\"scope\":\"t\",\"key\":\"k\",\"fingerprint\":\"f\",\"lease_ms\":1e99}", J,
        400, "invalid_request", "lease_ms");
    bad("/v1/claim", "{\"scope\":\"t\",\"key\":\"a\\nb\",\"fingerprint\":\"f\"}", J, 400,
        "invalid_request", "key");
    bad("/v1/claim",
        "{\"scope\":\"t\",\"key\":\"k\",\"fingerprint\":\"f\",\"lease_ms\":"
        "123456789012345678901234567890}",
        J, 400, "invalid_json", NULL);
    bad("/v1/claim", "{\"scope\":\"t\",\"key\":\"k\",\"request\":[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]}",
        J, 400, "invalid_request", "request");
}

/* Bad calls of the lease holder on record "keep" (token tok): each gets its 4xx. */
static void bad_holder_calls(const char *tok)
{
    char body[2048];
    const char *ref = "\"scope\":\"t\",\"key\":\"keep\"";
    snprintf(body, sizeof(body), "{%s,\"lease_token\":\"%s\",\"status\":600}", ref, tok);
    bad("/v1/complete", body, J, 400, "invalid_request", "status");
    snprintf(body, sizeof(body), "{%s,\"lease_token\":\"%s\",\"status\":99}", ref, tok);
    bad("/v1/complete", body, J, 400, "invalid_request", "status");
    snprintf(body, sizeof(body), "{%s,\"lease_token\":\"%s\",\"status\":200,\"body\":\"%01025d\"}",
             ref, tok, 0);
    bad("/v1/complete", body, J, 413, "body_too_large", NULL);
    snprintf(body, sizeof(body), "{%s,\"lease_token\":\"%s\",\"status\":200,\"headers\":[]}", ref,
             tok);
    bad("/v1/complete", body, J, 400, "invalid_request", "headers");
    bad("/v1/complete", "{\"scope\":\"t\",\"key\":\"keep\",\"status\":200}", J, 400,
        "invalid_request", "lease_token");
    snprintf(body, sizeof(body), "{%s,\"lease_token\":7}", ref);
    bad("/v1/release", body, J, 400, "invalid_request", "lease_token");
    snprintf(body, sizeof(body), "{%s,\"lease_token\":\"%s\",\"lease_ms\":1}", ref, tok);
    bad("/v1/extend", body, J, 400, "invalid_request", "lease_ms");
    snprintf(body, sizeof(body), "{%s,\"lease_token\":\"%s\",\"checkpoint\":\"%0257d\"}", ref, tok,
             0);
    bad("/v1/checkpoint", body, J, 400, "invalid_request", "checkpoint");
    snprintf(body, sizeof(body), "{%s,\"lease_token\":\"%s\"}", ref, tok);
    bad("/v1/checkpoint", body, J, 400, "invalid_request", "checkpoint");
    bad("/v1/release", "{\"scope\":\"t\",\"key\":\"keep\"", J, 400, "invalid_json", NULL);
    const char *posts[] = {"/v1/claim", "/v1/complete", "/v1/release", "/v1/extend",
                           "/v1/checkpoint"};
    for (size_t i = 0; i < sizeof(posts) / sizeof(posts[0]); i++) {
        snprintf(body, sizeof(body), "{%s,\"lease_token\":\"%s\",\"status\":200}", ref, tok);
        bad(posts[i], body, "application/x-www-form-urlencoded", 415, "unsupported_media_type",
            NULL);
        bad(posts[i], "{\"scope\":\"t\",\"key\":\"keep\",\"nope\":1}", J, 400, "invalid_request",
            "nope");
    }
}

/* Bad input on every endpoint gets its 4xx and leaves Redis as it was. */
static void test_bad_input_leaves_redis_untouched(void **state)
{
    (void)state;
    const char *tok = claim_token("t", "keep", "f");
    char *before = snapshot("idem:t:keep");
    bad_claims();
    bad_holder_calls(tok);
    struct th_resp r;
    assert_int_equal(th_http(idemd.port, "GET", "/v1/record?scope=t:x&key=keep", NULL, NULL, 0, &r),
                     0);
    assert_int_equal(r.status, 400);
    th_resp_free(&r);
    assert_int_equal(th_http(idemd.port, "GET", "/v1/record?scope=t", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 400);
    th_resp_free(&r);

    assert_int_equal(th_redis_int(&redis, "DBSIZE"), 1);
    char *after = snapshot("idem:t:keep");
    assert_string_equal(before, after);
    free(before);
    free(after);
}

struct waiter_arg {
    struct th_resp resp;
    int64_t took_ms;
    const char *body;
    atomic_int done;
};

static void *wait_claim(void *p)
{
    struct waiter_arg *w = p;
    int64_t t0 = th_now_ms();
    if (th_post_json(idemd.port, "/v1/claim", w->body, &w->resp) != 0)
        w->resp.status = -1;
    w->took_ms = th_now_ms() - t0;
    atomic_store(&w->done, 1);
    return NULL;
}

/* Waiters on a released key: exactly one of them wins it (201) while the others keep
 * waiting; when that winner completes, the others get the replay. */
static void test_waiters_after_release(void **state)
{
    (void)state;
    enum { N = 20 };
    static struct waiter_arg w[N];
    pthread_t t[N];
    const char *tok = claim_token("t", "rel", "f");
    for (int i = 0; i < N; i++) {
        w[i] = (struct waiter_arg){
            .body = "{\"scope\":\"t\",\"key\":\"rel\",\"fingerprint\":\"f\",\"wait_ms\":6000}"};
        assert_int_equal(pthread_create(&t[i], NULL, wait_claim, &w[i]), 0);
    }
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 300000000L};
    nanosleep(&ts, NULL);
    json_decref(post(idemd.port, "/v1/release", 200,
                     "{\"scope\":\"t\",\"key\":\"rel\",\"lease_token\":\"%s\"}", tok));
    int winner = -1, done = 0;
    struct timespec poll = {.tv_sec = 0, .tv_nsec = 5000000L};
    for (int64_t t0 = th_now_ms(); winner < 0 && th_now_ms() - t0 < 3000; nanosleep(&poll, NULL))
        for (int i = 0; i < N; i++)
            if (atomic_load(&w[i].done) && w[i].resp.status == 201)
                winner = i;
    assert_true(winner >= 0);
    nanosleep(&ts, NULL); /* the others had time to be answered, were they to be */
    for (int i = 0; i < N; i++)
        done += atomic_load(&w[i].done);
    assert_int_equal(done, 1);
    json_t *j = winner >= 0 ? th_json(&w[winner].resp) : NULL;
    assert_non_null(j);
    json_decref(post(idemd.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"rel\",\"lease_token\":\"%s\",\"status\":201}",
                     jstr(j, "lease_token")));
    json_decref(j);
    int replayed = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        replayed += w[i].resp.status == 200;
        th_resp_free(&w[i].resp);
    }
    assert_int_equal(replayed, N - 1);
}

/* wait_ms: answered as soon as the holder completes; else 409 when the wait ends. */
static void test_wait_ms(void **state)
{
    (void)state;
    pthread_t t[3];
    const char *tok = claim_token("t", "wk", "f");
    struct waiter_arg w[3] = {
        {.body = "{\"scope\":\"t\",\"key\":\"wk\",\"fingerprint\":\"f\",\"wait_ms\":5000}"},
        {.body = "{\"scope\":\"t\",\"key\":\"wk\",\"fingerprint\":\"f\",\"wait_ms\":5000}"},
        {.body = "{\"scope\":\"t\",\"key\":\"wk\",\"fingerprint\":\"f\",\"wait_ms\":300}"},
    };
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, wait_claim, &w[i]), 0);
    pthread_join(t[2], NULL);
    assert_int_equal(w[2].resp.status, 409);
    assert_true(w[2].took_ms >= 280 && w[2].took_ms < 2000);
    int64_t t0 = th_now_ms();
    json_decref(post(idemd.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"wk\",\"lease_token\":\"%s\",\"status\":201}",
                     tok));
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].resp.status, 200);
        assert_true(th_now_ms() - t0 < 1000);
        th_resp_free(&w[i].resp);
    }
    th_resp_free(&w[2].resp);
}

/* With a pool of 2 HTTP workers, a hundred waiting claims hold none of them: another
 * claim is answered at once, and every waiter gets the replay when the holder completes. */
static void test_waiters_hold_no_workers(void **state)
{
    (void)state;
    enum { N = 100 };
    struct th_proc pool;
    const char *env[] = {"HTTP_THREADS=2", NULL};
    assert_int_equal(start_idemd(&pool, env), 0);
    int saved = idemd.port;
    json_t *j =
        post(pool.port, "/v1/claim", 201, "{\"scope\":\"t\",\"key\":\"pw\",\"fingerprint\":\"f\"}");
    char tok[64];
    snprintf(tok, sizeof(tok), "%s", jstr(j, "lease_token"));
    json_decref(j);
    idemd.port = pool.port; /* wait_claim talks to idemd.port */
    static struct waiter_arg w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct waiter_arg){
            .body = "{\"scope\":\"t\",\"key\":\"pw\",\"fingerprint\":\"f\",\"wait_ms\":8000}"};
        assert_int_equal(pthread_create(&t[i], NULL, wait_claim, &w[i]), 0);
    }
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 500000000L};
    nanosleep(&ts, NULL);
    int64_t t0 = th_now_ms();
    json_decref(post(pool.port, "/v1/claim", 201,
                     "{\"scope\":\"t\",\"key\":\"other\",\"fingerprint\":\"f\"}"));
    assert_true(th_now_ms() - t0 < 500);
    json_decref(post(pool.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"pw\",\"lease_token\":\"%s\",\"status\":200}",
                     tok));
    int replayed = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        replayed += w[i].resp.status == 200;
        th_resp_free(&w[i].resp);
    }
    idemd.port = saved;
    assert_int_equal(replayed, N);
    assert_true(th_now_ms() - t0 < 3000);
    th_proc_stop(&pool, SIGTERM, 5000);
}

/* Keys never appear in the logs; their short hash does. */
static void test_keys_not_logged(void **state)
{
    (void)state;
    const char *key = "secret-key-7f3a9c";
    const char *tok = claim_token("t", key, "f");
    json_decref(post(idemd.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"%s\",\"lease_token\":\"%s\",\"status\":200}", key,
                     tok));
    struct th_resp r;
    assert_int_equal(
        th_http(idemd.port, "GET", "/v1/record?scope=t&key=secret-key-7f3a9c", NULL, NULL, 0, &r),
        0);
    th_resp_free(&r);
    char hash[13];
    log_hash_id("idem:t:secret-key-7f3a9c", strlen("idem:t:secret-key-7f3a9c"), hash);
    int64_t t0 = th_now_ms();
    struct timespec poll = {.tv_sec = 0, .tv_nsec = 10000000L};
    while (!th_proc_log_contains(&idemd, hash) && th_now_ms() - t0 < 2000)
        nanosleep(&poll, NULL);
    assert_true(th_proc_log_contains(&idemd, hash));
    assert_false(th_proc_log_contains(&idemd, key));
    assert_false(th_proc_log_contains(&idemd, tok));
}

static void test_metrics(void **state)
{
    (void)state;
    const char *tok = claim_token("t", "m", "f");
    json_decref(post(idemd.port, "/v1/claim", 409,
                     "{\"scope\":\"t\",\"key\":\"m\",\"fingerprint\":\"f\"}"));
    json_decref(post(idemd.port, "/v1/release", 200,
                     "{\"scope\":\"t\",\"key\":\"m\",\"lease_token\":\"%s\"}", tok));
    struct th_resp r;
    assert_int_equal(th_http(idemd.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_non_null(strstr(r.body, "idemd_claims_total{outcome=\"claimed\"}"));
    assert_non_null(strstr(r.body, "idemd_claims_total{outcome=\"in_progress\"}"));
    assert_non_null(strstr(r.body, "idemd_releases_total "));
    th_resp_free(&r);
}

/* IDEM_WAIT_REPLICAS: the answer is the same and says how many replicas acknowledged. */
static void test_wait_replicas(void **state)
{
    (void)state;
    struct th_redis replica;
    struct th_proc p;
    char of[64];
    snprintf(of, sizeof(of), "127.0.0.1 %d", redis.port);
    const char *rargs[] = {"--replicaof", "127.0.0.1", of + 10, NULL};
    assert_int_equal(th_redis_start(&replica, rargs), 0);
    int64_t t0 = th_now_ms();
    struct timespec poll = {.tv_sec = 0, .tv_nsec = 20000000L};
    for (int linked = 0; !linked && th_now_ms() - t0 < 5000; nanosleep(&poll, NULL)) {
        redisReply *info = th_redis_cmd(&redis, "INFO replication");
        linked = info && info->str && strstr(info->str, "state=online");
        freeReplyObject(info);
    }
    const char *env[] = {"IDEM_WAIT_REPLICAS=1", "IDEM_WAIT_TIMEOUT=2s", NULL};
    assert_int_equal(start_idemd(&p, env), 0);
    json_t *j =
        post(p.port, "/v1/claim", 201, "{\"scope\":\"t\",\"key\":\"rep\",\"fingerprint\":\"f\"}");
    assert_int_equal(jint(j, "replicas_acked"), 1);
    json_decref(j);
    th_redis_stop(&replica);
    j = post(p.port, "/v1/claim", 201, "{\"scope\":\"t\",\"key\":\"rep2\",\"fingerprint\":\"f\"}");
    assert_int_equal(jint(j, "replicas_acked"), 0);
    json_decref(j);
    th_proc_stop(&p, SIGTERM, 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_claim_complete_replay, reset),
        cmocka_unit_test_setup(test_stored_error_and_base64_replayed, reset),
        cmocka_unit_test_setup(test_request_fingerprint, reset),
        cmocka_unit_test_setup(test_attempt_id_gets_same_lease, reset),
        cmocka_unit_test_setup(test_wrong_token_changes_nothing, reset),
        cmocka_unit_test_setup(test_record, reset),
        cmocka_unit_test_setup(test_scopes_isolated, reset),
        cmocka_unit_test_setup(test_bad_input_leaves_redis_untouched, reset),
        cmocka_unit_test_setup(test_wait_ms, reset),
        cmocka_unit_test_setup(test_waiters_hold_no_workers, reset),
        cmocka_unit_test_setup(test_waiters_after_release, reset),
        cmocka_unit_test_setup(test_keys_not_logged, reset),
        cmocka_unit_test_setup(test_metrics, reset),
        cmocka_unit_test_setup(test_wait_replicas, reset),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
