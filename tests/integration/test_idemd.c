/* SPDX-License-Identifier: Apache-2.0 */
/* idemd over real sockets against a real redis-server: every endpoint's answers and
 * fields, stale tokens and bad input that leave Redis untouched, scope isolation, the
 * replay-header setting. Waiting claims: test_idemd_wait.c; logs, metrics and replicas:
 * test_idemd_ops.c; races: test_idemd_race.c; Redis failing: test_idemd_faults.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDEM_TEST_DAEMON
#include "test_idemd_util.h"

/* The replay of record t/order-1 as test_claim_complete_replay completed it. */
static void assert_replay_of_order_1(const char *claim)
{
    struct th_resp r;
    char hv[64];
    json_t *j;
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
    assert_true(jint(j, "expires_in_ms") > 86000000 && jint(j, "expires_in_ms") < 86400000);
    json_t *h = json_object_get(j, "headers");
    assert_int_equal(json_object_size(h), 1); /* Set-Cookie never stored */
    assert_string_equal(jstr(h, "Location"), "/charges/42");
    json_decref(j);
    th_resp_free(&r);
}

/* The claim, its conflicts, the completion and the replay, with every member of each. */
static void test_claim_complete_replay(void **state)
{
    (void)state;
    struct th_resp r;
    char hv[64], tok[64];
    const char *claim = "{\"scope\":\"t\",\"key\":\"order-1\",\"fingerprint\":\"f1\"}";
    json_t *j = post(idemd.port, "/v1/claim", 201, "%s", claim);
    assert_string_equal(jstr(j, "outcome"), "claimed");
    snprintf(tok, sizeof(tok), "%s", jstr(j, "lease_token"));
    assert_int_equal(strlen(tok), 32);                       /* 192 random bits */
    assert_int_equal(jint(j, "lease_expires_in_ms"), 30000); /* IDEM_LEASE_TTL */
    assert_int_equal(jint(j, "expires_in_ms"), 86400000);    /* IDEM_TTL */
    assert_true(json_is_false(json_object_get(j, "recovered")));
    assert_true(json_is_null(json_object_get(j, "checkpoint")));
    assert_null(json_object_get(j, "replicas_acked")); /* only with IDEM_WAIT_REPLICAS */
    json_decref(j);

    assert_int_equal(th_post_json(idemd.port, "/v1/claim", claim, &r), 0);
    assert_int_equal(r.status, 409);
    assert_non_null(th_header(&r, "Retry-After", hv, sizeof(hv)));
    assert_true(atoi(hv) >= 29 && atoi(hv) <= 30); /* the lease's seconds left, rounded up */
    j = th_json(&r);
    assert_string_equal(jstr(j, "code"), "request_in_progress");
    assert_true(jint(j, "lease_expires_in_ms") > 25000);
    json_decref(j);
    th_resp_free(&r);

    j = post(idemd.port, "/v1/claim", 422,
             "{\"scope\":\"t\",\"key\":\"order-1\",\"fingerprint\":\"other\"}");
    assert_string_equal(jstr(j, "code"), "fingerprint_mismatch");
    json_decref(j);

    char body[512];
    snprintf(body, sizeof(body),
             "{\"scope\":\"t\",\"key\":\"order-1\",\"lease_token\":\"%s\",\"status\":201,"
             "\"headers\":{\"location\":\"/charges/42\",\"Set-Cookie\":\"s=1\"},"
             "\"body\":\"{\\\"id\\\":42}\"}",
             tok);
    j = post(idemd.port, "/v1/complete", 200, "%s", body);
    assert_string_equal(jstr(j, "outcome"), "completed");
    assert_true(jint(j, "expires_in_ms") > 86000000);
    json_decref(j);
    /* The same completion again is 200 again; another response with that token is not. */
    json_decref(post(idemd.port, "/v1/complete", 200, "%s", body));
    j = post(idemd.port, "/v1/complete", 409,
             "{\"scope\":\"t\",\"key\":\"order-1\",\"lease_token\":\"%s\",\"status\":500}", tok);
    assert_string_equal(jstr(j, "code"), "lease_lost");
    json_decref(j);

    assert_replay_of_order_1(claim);

    /* The fingerprint is compared first, whatever the record's state. */
    j = post(idemd.port, "/v1/claim", 422,
             "{\"scope\":\"t\",\"key\":\"order-1\",\"fingerprint\":\"other\"}");
    assert_string_equal(jstr(j, "code"), "fingerprint_mismatch");
    json_decref(j);
}

/* A stored 5xx and a base64 body are replayed as they were stored. */
static void test_stored_error_and_base64_replayed(void **state)
{
    (void)state;
    char tok[64];
    claim_token(idemd.port, "t", "e", "f", tok);
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

/* A claim whose answer was lost is retried with its attempt_id: the same lease back. */
static void test_attempt_id_gets_same_lease(void **state)
{
    (void)state;
    const char *body =
        "{\"scope\":\"t\",\"key\":\"a\",\"fingerprint\":\"f\",\"attempt_id\":\"a1\"}";
    json_t *first = post(idemd.port, "/v1/claim", 201, "%s", body);
    json_t *again = post(idemd.port, "/v1/claim", 201, "%s", body);
    assert_string_equal(jstr(first, "lease_token"), jstr(again, "lease_token"));
    assert_string_equal(jstr(again, "outcome"), "claimed");
    json_decref(first);
    json_decref(again);
    assert_int_equal(th_redis_int(&redis, "HGET idem:t:a claims"), 1);
    json_decref(
        post(idemd.port, "/v1/claim", 409,
             "{\"scope\":\"t\",\"key\":\"a\",\"fingerprint\":\"f\",\"attempt_id\":\"a2\"}"));
    json_decref(post(idemd.port, "/v1/claim", 409,
                     "{\"scope\":\"t\",\"key\":\"a\",\"fingerprint\":\"f\"}"));
    json_decref(
        post(idemd.port, "/v1/claim", 422,
             "{\"scope\":\"t\",\"key\":\"a\",\"fingerprint\":\"g\",\"attempt_id\":\"a1\"}"));
}

/* The four holder calls with token on scope t key k: each answers want with code. */
static void holder_calls(const char *key, const char *tok, int want, const char *code)
{
    const char *const calls[][2] = {
        {"/v1/complete", ",\"status\":200}"},
        {"/v1/release", "}"},
        {"/v1/extend", ",\"lease_ms\":60000}"},
        {"/v1/checkpoint", ",\"checkpoint\":\"x\"}"},
    };
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        json_t *j =
            post(idemd.port, calls[i][0], want,
                 "{\"scope\":\"t\",\"key\":\"%s\",\"lease_token\":\"%s\"%s", key, tok, calls[i][1]);
        assert_string_equal(jstr(j, "code"), code);
        json_decref(j);
    }
}

/* Complete / release / extend / checkpoint with a wrong token: 409, hash unchanged. */
static void test_wrong_token_changes_nothing(void **state)
{
    (void)state;
    char tok[64];
    claim_token(idemd.port, "t", "w", "f", tok);
    char *before = snapshot(&redis, "idem:t:w");
    long long pttl = th_redis_int(&redis, "PTTL idem:t:w");
    char almost[64];
    snprintf(almost, sizeof(almost), "%s", tok);
    almost[0] = almost[0] == 'A' ? 'B' : 'A'; /* one character off */
    const char *wrong[] = {"nope", "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", almost};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++)
        holder_calls("w", wrong[i], 409, "lease_lost");
    char *after = snapshot(&redis, "idem:t:w");
    assert_string_equal(before, after);
    assert_true(th_redis_int(&redis, "PTTL idem:t:w") <= pttl);
    free(before);
    free(after);
    /* The right token still works, and a second release finds nothing. */
    json_t *j =
        post(idemd.port, "/v1/extend", 200,
             "{\"scope\":\"t\",\"key\":\"w\",\"lease_token\":\"%s\",\"lease_ms\":60000}", tok);
    assert_string_equal(jstr(j, "outcome"), "extended");
    assert_int_equal(jint(j, "lease_expires_in_ms"), 60000);
    json_decref(j);
    j = post(idemd.port, "/v1/checkpoint", 200,
             "{\"scope\":\"t\",\"key\":\"w\",\"lease_token\":\"%s\",\"checkpoint\":\"c1\"}", tok);
    assert_string_equal(jstr(j, "outcome"), "checkpointed");
    json_decref(j);
    j = post(idemd.port, "/v1/release", 200,
             "{\"scope\":\"t\",\"key\":\"w\",\"lease_token\":\"%s\"}", tok);
    assert_string_equal(jstr(j, "outcome"), "released");
    json_decref(j);
    assert_int_equal(th_redis_int(&redis, "EXISTS idem:t:w"), 0);
    holder_calls("w", tok, 404, "not_found");
    assert_int_equal(th_redis_int(&redis, "DBSIZE"), 0);
    /* Released: the next claim starts fresh. */
    j = post(idemd.port, "/v1/claim", 201, "{\"scope\":\"t\",\"key\":\"w\",\"fingerprint\":\"g\"}");
    assert_true(json_is_null(json_object_get(j, "checkpoint")));
    json_decref(j);
    assert_int_equal(th_redis_int(&redis, "HGET idem:t:w claims"), 1);
}

/* A completed record is never changed by a holder call, not even with its own token. */
static void test_completed_record_is_final(void **state)
{
    (void)state;
    char tok[64];
    claim_token(idemd.port, "t", "fin", "f", tok);
    json_decref(post(idemd.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"fin\",\"lease_token\":\"%s\",\"status\":201,"
                     "\"body\":\"done\"}",
                     tok));
    char *before = snapshot(&redis, "idem:t:fin");
    holder_calls("fin", tok, 409, "lease_lost"); /* complete here stores another response */
    holder_calls("fin", "other", 409, "lease_lost");
    char *after = snapshot(&redis, "idem:t:fin");
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_record(void **state)
{
    (void)state;
    char tok[64];
    json_t *j = get(idemd.port, "/v1/record?scope=t&key=rec", 404);
    assert_string_equal(jstr(j, "code"), "not_found");
    json_decref(j);
    claim_token(idemd.port, "t", "rec", "fp1", tok);
    json_decref(post(
        idemd.port, "/v1/checkpoint", 200,
        "{\"scope\":\"t\",\"key\":\"rec\",\"lease_token\":\"%s\",\"checkpoint\":\"c1\"}", tok));
    struct th_resp r;
    assert_int_equal(th_http(idemd.port, "GET", "/v1/record?scope=t&key=rec", NULL, NULL, 0, &r),
                     0);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, tok)); /* never the lease token */
    th_resp_free(&r);
    j = get(idemd.port, "/v1/record?scope=t&key=rec", 200);
    assert_string_equal(jstr(j, "state"), "in_progress");
    assert_string_equal(jstr(j, "fingerprint"), "fp1");
    assert_int_equal(jint(j, "claims"), 1);
    assert_true(jint(j, "lease_expires_in_ms") > 25000);
    assert_true(json_is_null(json_object_get(j, "status")));
    assert_true(json_is_null(json_object_get(j, "completed_at_ms")));
    assert_string_equal(jstr(j, "checkpoint"), "c1");
    assert_true(jint(j, "created_at_ms") > 0);
    assert_true(jint(j, "expires_in_ms") > 86000000);
    assert_null(json_object_get(j, "lease_token"));
    json_decref(j);
    /* Only the status: headers, body and encoding take their defaults. */
    json_decref(post(idemd.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"rec\",\"lease_token\":\"%s\",\"status\":204}",
                     tok));
    j = get(idemd.port, "/v1/record?scope=t&key=rec", 200);
    assert_string_equal(jstr(j, "state"), "completed");
    assert_int_equal(jint(j, "status"), 204);
    assert_true(jint(j, "completed_at_ms") >= jint(j, "created_at_ms"));
    assert_true(json_is_null(json_object_get(j, "lease_expires_in_ms")));
    assert_null(json_object_get(j, "body"));
    json_decref(j);
    j = post(idemd.port, "/v1/claim", 200,
             "{\"scope\":\"t\",\"key\":\"rec\",\"fingerprint\":\"fp1\"}");
    assert_int_equal(jint(j, "status"), 204);
    assert_int_equal(json_object_size(json_object_get(j, "headers")), 0);
    assert_string_equal(jstr(j, "body"), "");
    assert_string_equal(jstr(j, "body_encoding"), "utf8");
    json_decref(j);
}

/* Percent-encode every byte of s but letters and digits, into out. */
static void urlenc(const char *s, char *out, size_t size)
{
    size_t at = 0;
    for (; *s && at + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            out[at++] = (char)c;
        else
            at += (size_t)snprintf(out + at, size - at, "%%%02X", c);
    }
    out[at] = '\0';
}

/* The same key in two scopes is two records; keys with {, }, : and spaces stay in their
 * scope and carry no hash tag (so their cluster slot is that of the whole key). */
static void test_scopes_isolated(void **state)
{
    (void)state;
    const char *keys[] = {"k", "b:k", "{b}:k", "x {y} z", "}{", "%7Bb%7D:k", " "};
    enum { NKEYS = sizeof(keys) / sizeof(keys[0]) };
    char tok[64];
    for (size_t i = 0; i < NKEYS; i++) {
        claim_token(idemd.port, "a", keys[i], "fa", tok);
        claim_token(idemd.port, "b", keys[i], "fb", tok); /* its own, not a's */
    }
    assert_int_equal(th_redis_int(&redis, "DBSIZE"), 2 * NKEYS);
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
    /* Each record read back through its own scope (the key URL-encoded in the query). */
    for (size_t i = 0; i < NKEYS; i++) {
        char enc[128], path[192];
        urlenc(keys[i], enc, sizeof(enc));
        snprintf(path, sizeof(path), "/v1/record?scope=a&key=%s", enc);
        json_t *j = get(idemd.port, path, 200);
        assert_string_equal(jstr(j, "fingerprint"), "fa");
        json_decref(j);
        snprintf(path, sizeof(path), "/v1/record?scope=b&key=%s", enc);
        j = get(idemd.port, path, 200);
        assert_string_equal(jstr(j, "fingerprint"), "fb");
        json_decref(j);
    }
    /* A scope cannot smuggle in part of a key. */
    json_decref(post(idemd.port, "/v1/claim", 400,
                     "{\"scope\":\"a:b\",\"key\":\"k\",\"fingerprint\":\"fa\"}"));
    assert_int_equal(th_redis_int(&redis, "DBSIZE"), 2 * NKEYS);
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
    if (field) {
        json_t *f = json_object_get(j, "field");
        if (!json_is_string(f) || strcmp(json_string_value(f), field) != 0)
            fail_msg("%s %s: want field %s, got %s", path, body, field, r.body);
    }
    json_decref(j);
    th_resp_free(&r);
}

#define J "application/json"

/* The members after scope and key that make a valid body for each POST route, with the
 * record "keep"'s token where one is needed. */
struct route_case {
    const char *path;
    char rest[160];
};

static void route_cases(const char *tok, struct route_case *rc)
{
    rc[0] = (struct route_case){.path = "/v1/claim"};
    snprintf(rc[0].rest, sizeof(rc[0].rest), "\"fingerprint\":\"f\"");
    rc[1] = (struct route_case){.path = "/v1/complete"};
    snprintf(rc[1].rest, sizeof(rc[1].rest), "\"lease_token\":\"%s\",\"status\":200", tok);
    rc[2] = (struct route_case){.path = "/v1/release"};
    snprintf(rc[2].rest, sizeof(rc[2].rest), "\"lease_token\":\"%s\"", tok);
    rc[3] = (struct route_case){.path = "/v1/extend"};
    snprintf(rc[3].rest, sizeof(rc[3].rest), "\"lease_token\":\"%s\",\"lease_ms\":5000", tok);
    rc[4] = (struct route_case){.path = "/v1/checkpoint"};
    snprintf(rc[4].rest, sizeof(rc[4].rest), "\"lease_token\":\"%s\",\"checkpoint\":\"c\"", tok);
}

/* What every POST route refuses the same way: bad JSON, bad scope or key, unknown members,
 * a non-JSON content type. Aimed at the record "keep" wherever a key is valid. */
static void bad_on_every_route(const char *tok)
{
    struct route_case rc[5];
    char key256[257], scope129[130], body[1024];
    memset(key256, 'k', 256);
    key256[256] = '\0';
    memset(scope129, 's', 129);
    scope129[129] = '\0';
    route_cases(tok, rc);
    const char *const refs[][2] = {
        {"\"key\":\"keep\"", "scope"},
        {"\"scope\":\"\",\"key\":\"keep\"", "scope"},
        {"\"scope\":\"t:x\",\"key\":\"keep\"", "scope"},
        {"\"scope\":\"t t\",\"key\":\"keep\"", "scope"},
        {"\"scope\":\"{t}\",\"key\":\"keep\"", "scope"},
        {"\"scope\":5,\"key\":\"keep\"", "scope"},
        {"\"scope\":\"t\"", "key"},
        {"\"scope\":\"t\",\"key\":\"\"", "key"},
        {"\"scope\":\"t\",\"key\":7", "key"},
        {"\"scope\":\"t\",\"key\":[\"keep\"]", "key"},
        {"\"scope\":\"t\",\"key\":\"ke\\u0001ep\"", "key"},
        {"\"scope\":\"t\",\"key\":\"ke\\nep\"", "key"},
        {"\"scope\":\"t\",\"key\":\"k\\u00e9ep\"", "key"},
        {"\"scope\":\"t\",\"key\":\"keep\",\"nope\":1", "nope"},
    };
    for (size_t i = 0; i < 5; i++) {
        const char *p = rc[i].path;
        bad(p, "{\"scope\":\"t\",", J, 400, "invalid_json", NULL);
        bad(p, "[1]", J, 400, "invalid_json", NULL);
        bad(p, "\"keep\"", J, 400, "invalid_json", NULL);
        bad(p, "", J, 400, "invalid_json", NULL);
        bad(p, "{\"scope\":\"t\",\"scope\":\"u\",\"key\":\"keep\"}", J, 400, "invalid_json", NULL);
        for (size_t k = 0; k < sizeof(refs) / sizeof(refs[0]); k++) {
            snprintf(body, sizeof(body), "{%s,%s}", refs[k][0], rc[i].rest);
            bad(p, body, J, 400, "invalid_request", refs[k][1]);
        }
        snprintf(body, sizeof(body), "{\"scope\":\"t\",\"key\":\"%s\",%s}", key256, rc[i].rest);
        bad(p, body, J, 400, "invalid_request", "key");
        snprintf(body, sizeof(body), "{\"scope\":\"%s\",\"key\":\"keep\",%s}", scope129,
                 rc[i].rest);
        bad(p, body, J, 400, "invalid_request", "scope");
        snprintf(body, sizeof(body), "{\"scope\":\"t\",\"key\":\"keep\",%s}", rc[i].rest);
        bad(p, body, "text/plain", 415, "unsupported_media_type", NULL);
        bad(p, body, "application/x-www-form-urlencoded", 415, "unsupported_media_type", NULL);
    }
}

/* Bad claims of the record "keep" (in flight with another token): each its 400. */
static void bad_claims(void)
{
    char fp129[130], body[1024];
    memset(fp129, 'f', 129);
    fp129[129] = '\0';
    const char *const cases[][2] = {
        {"", "fingerprint"}, /* neither fingerprint nor request */
        {",\"fingerprint\":\"f\",\"request\":{\"method\":\"GET\",\"path\":\"/\"}", "fingerprint"},
        {",\"fingerprint\":\"\"", "fingerprint"},
        {",\"fingerprint\":\"a b\"", "fingerprint"},
        {",\"fingerprint\":\"f:1\"", "fingerprint"},
        {",\"fingerprint\":7", "fingerprint"},
        {",\"fingerprint\":null", "fingerprint"},
        {",\"request\":\"GET /\"", "request"},
        {",\"request\":{\"path\":\"/\"}", "request"},
        {",\"request\":{\"method\":\"GET\"}", "request"},
        {",\"request\":{\"method\":\"GET\",\"path\":\"/\",\"body\":5}", "request"},
        {",\"request\":{\"method\":\"GE T\",\"path\":\"/\"}", "request"},
        {",\"request\":{\"method\":\"GET\",\"path\":\"/\",\"x\":1}", "request"},
        {",\"request\":[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]", "request"},
        {",\"fingerprint\":\"f\",\"lease_ms\":999", "lease_ms"},
        {",\"fingerprint\":\"f\",\"lease_ms\":600001", "lease_ms"}, /* IDEM_LEASE_MAX 10m */
        {",\"fingerprint\":\"f\",\"lease_ms\":\"30000\"", "lease_ms"},
        {",\"fingerprint\":\"f\",\"lease_ms\":1e99", "lease_ms"},
        {",\"fingerprint\":\"f\",\"lease_ms\":1500.5", "lease_ms"},
        {",\"fingerprint\":\"f\",\"wait_ms\":-1", "wait_ms"},
        {",\"fingerprint\":\"f\",\"wait_ms\":10001", "wait_ms"},
        {",\"fingerprint\":\"f\",\"wait_ms\":true", "wait_ms"},
        {",\"fingerprint\":\"f\",\"attempt_id\":\"\"", "attempt_id"},
        {",\"fingerprint\":\"f\",\"attempt_id\":\"a b\"", "attempt_id"},
        {",\"fingerprint\":\"f\",\"attempt_id\":5", "attempt_id"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(body, sizeof(body), "{\"scope\":\"t\",\"key\":\"keep\"%s}", cases[i][0]);
        bad("/v1/claim", body, J, 400, "invalid_request", cases[i][1]);
    }
    snprintf(body, sizeof(body), "{\"scope\":\"t\",\"key\":\"keep\",\"fingerprint\":\"%s\"}",
             fp129);
    bad("/v1/claim", body, J, 400, "invalid_request", "fingerprint");
    bad("/v1/claim",
        "{\"scope\":\"t\",\"key\":\"keep\",\"fingerprint\":\"f\",\"lease_ms\":"
        "123456789012345678901234567890}",
        J, 400, "invalid_json", NULL);
}

/* Bad calls of the lease holder on record "keep" with its own token: each its 4xx. */
static void bad_holder_calls(const char *tok)
{
    char body[2048];
    const char *ref = "\"scope\":\"t\",\"key\":\"keep\"";
    const char *const complete[][3] = {
        {",\"status\":600", "400", "status"},
        {",\"status\":99", "400", "status"},
        {",\"status\":\"200\"", "400", "status"},
        {",\"status\":200.5", "400", "status"},
        {"", "400", "status"},
        {",\"status\":200,\"headers\":[]", "400", "headers"},
        {",\"status\":200,\"headers\":{\"Location\":5}", "400", "headers"},
        {",\"status\":200,\"headers\":{\"Location\":\"a\\r\\nX: y\"}", "400", "headers"},
        {",\"status\":200,\"body\":5", "400", "body"},
        {",\"status\":200,\"body_encoding\":\"hex\"", "400", "body_encoding"},
        {",\"status\":200,\"body_encoding\":\"base64\",\"body\":\"!!!\"", "400", "body"},
    };
    for (size_t i = 0; i < sizeof(complete) / sizeof(complete[0]); i++) {
        snprintf(body, sizeof(body), "{%s,\"lease_token\":\"%s\"%s}", ref, tok, complete[i][0]);
        bad("/v1/complete", body, J, atoi(complete[i][1]), "invalid_request", complete[i][2]);
    }
    /* Above IDEM_MAX_RESPONSE_BYTES (1 KiB here), as text and decoded from base64. */
    snprintf(body, sizeof(body), "{%s,\"lease_token\":\"%s\",\"status\":200,\"body\":\"%01025d\"}",
             ref, tok, 0);
    bad("/v1/complete", body, J, 413, "body_too_large", NULL);
    snprintf(body, sizeof(body),
             "{%s,\"lease_token\":\"%s\",\"status\":200,\"body_encoding\":\"base64\","
             "\"body\":\"%01368d\"}",
             ref, tok, 0); /* 1368 base64 characters: 1026 bytes */
    bad("/v1/complete", body, J, 413, "body_too_large", NULL);
    const char *const others[][3] = {
        {"/v1/complete", ",\"status\":200", "lease_token"},
        {"/v1/release", "", "lease_token"},
        {"/v1/release", ",\"lease_token\":7", "lease_token"},
        {"/v1/release", ",\"lease_token\":null", "lease_token"},
        {"/v1/extend", ",\"lease_token\":[]", "lease_token"},
        {"/v1/checkpoint", ",\"lease_token\":{},\"checkpoint\":\"c\"", "lease_token"},
    };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        snprintf(body, sizeof(body), "{%s%s}", ref, others[i][1]);
        bad(others[i][0], body, J, 400, "invalid_request", others[i][2]);
    }
    const char *const with_token[][3] = {
        {"/v1/extend", ",\"lease_ms\":1", "lease_ms"},
        {"/v1/extend", ",\"lease_ms\":600001", "lease_ms"},
        {"/v1/extend", ",\"lease_ms\":\"5000\"", "lease_ms"},
        {"/v1/checkpoint", "", "checkpoint"},
        {"/v1/checkpoint", ",\"checkpoint\":5", "checkpoint"},
    };
    for (size_t i = 0; i < sizeof(with_token) / sizeof(with_token[0]); i++) {
        snprintf(body, sizeof(body), "{%s,\"lease_token\":\"%s\"%s}", ref, tok, with_token[i][1]);
        bad(with_token[i][0], body, J, 400, "invalid_request", with_token[i][2]);
    }
    snprintf(body, sizeof(body), "{%s,\"lease_token\":\"%s\",\"checkpoint\":\"%0257d\"}", ref, tok,
             0);
    bad("/v1/checkpoint", body, J, 400, "invalid_request", "checkpoint");
}

/* A body above HTTP_MAX_BODY (2 MiB for idemd) is 413 before it is parsed. */
static void bad_oversize_request(void)
{
    size_t n = (2u << 20) + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "{\"scope\":\"t\",\"key\":\"keep\",\"fingerprint\":\"f\"}", 44);
    big[n] = '\0';
    bad("/v1/claim", big, J, 413, "body_too_large", NULL);
    free(big);
}

/* Bad input on every endpoint gets its 4xx and leaves Redis as it was. */
static void test_bad_input_leaves_redis_untouched(void **state)
{
    (void)state;
    char tok[64];
    claim_token(idemd.port, "t", "keep", "f", tok);
    char *before = snapshot(&redis, "idem:t:keep");
    bad_on_every_route(tok);
    bad_claims();
    bad_holder_calls(tok);
    bad_oversize_request();
    const char *queries[] = {
        "/v1/record?scope=t:x&key=keep",
        "/v1/record?scope=t",
        "/v1/record?key=keep",
        "/v1/record?scope=t&key=",
        "/v1/record?scope=t&key=ke%0Aep",
        "/v1/record?scope=t&key=ke%00ep",
    };
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        json_t *j = get(idemd.port, queries[i], 400);
        assert_string_equal(jstr(j, "code"), "invalid_request");
        json_decref(j);
    }
    assert_int_equal(th_redis_int(&redis, "DBSIZE"), 1);
    char *after = snapshot(&redis, "idem:t:keep");
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* The record still works with its token: nothing above reached it. */
    json_decref(post(idemd.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"keep\",\"lease_token\":\"%s\",\"status\":200}",
                     tok));
}

/* IDEM_REPLAY_HEADERS chooses the stored headers; Set-Cookie is refused there at startup. */
static void test_replay_headers_setting(void **state)
{
    (void)state;
    struct th_proc p;
    char tok[64];
    const char *env[] = {"IDEM_REPLAY_HEADERS=Location,X-Charge-Id", NULL};
    assert_int_equal(start_idemd(&p, redis.url, env), 0);
    claim_token(p.port, "t", "h", "f", tok);
    json_decref(post(p.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"h\",\"lease_token\":\"%s\",\"status\":201,"
                     "\"headers\":{\"x-charge-id\":\"ch_1\",\"ETag\":\"v1\",\"Set-Cookie\":\"s\","
                     "\"Location\":\"/c/1\"}}",
                     tok));
    json_t *j =
        post(p.port, "/v1/claim", 200, "{\"scope\":\"t\",\"key\":\"h\",\"fingerprint\":\"f\"}");
    json_t *h = json_object_get(j, "headers");
    assert_int_equal(json_object_size(h), 2);
    assert_string_equal(jstr(h, "X-Charge-Id"), "ch_1"); /* the configured spelling */
    assert_string_equal(jstr(h, "Location"), "/c/1");
    json_decref(j);
    th_proc_stop(&p, SIGTERM, 5000);

    char *err = NULL;
    const char *argv[] = {"idemd", "--check-config", NULL};
    const char *benv[] = {"IDEM_REPLAY_HEADERS=Location,set-cookie", NULL};
    assert_int_equal(th_run(th_bin("bin/idemd"), argv, benv, NULL, &err, 5000), 2);
    assert_non_null(err);
    assert_non_null(strstr(err, "IDEM_REPLAY_HEADERS"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_claim_complete_replay, reset),
        cmocka_unit_test_setup(test_stored_error_and_base64_replayed, reset),
        cmocka_unit_test_setup(test_request_fingerprint, reset),
        cmocka_unit_test_setup(test_attempt_id_gets_same_lease, reset),
        cmocka_unit_test_setup(test_wrong_token_changes_nothing, reset),
        cmocka_unit_test_setup(test_completed_record_is_final, reset),
        cmocka_unit_test_setup(test_record, reset),
        cmocka_unit_test_setup(test_scopes_isolated, reset),
        cmocka_unit_test_setup(test_bad_input_leaves_redis_untouched, reset),
        cmocka_unit_test_setup(test_replay_headers_setting, reset),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
