/* SPDX-License-Identifier: Apache-2.0 */
/* idemd's race guarantees, with many threads against two idemd processes sharing one real
 * redis-server: exactly one claim wins, every replay is byte-identical, and an expired
 * lease is recovered by exactly one claimer (takeover) or by none (block).
 * Run alone with `make test-idempotency-race-condition`. */
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

#include "test_idemd_util.h"

#define CLAIMERS 200
#define RECOVERERS 50

static struct th_redis redis;
static struct th_proc idemd[2]; /* takeover mode */
static struct th_proc blocking; /* IDEM_ON_LEASE_EXPIRY=block */

static int start_mode(struct th_proc *p, const char *mode)
{
    const char *env[] = {mode, "LOG_LEVEL=warn", NULL};
    return th_daemon_start(p, "bin/idemd", redis.url, env);
}

static int setup(void **state)
{
    (void)state;
    if (th_redis_start(&redis, NULL) != 0)
        return -1;
    if (start_mode(&idemd[0], "IDEM_ON_LEASE_EXPIRY=takeover") != 0 ||
        start_mode(&idemd[1], "IDEM_ON_LEASE_EXPIRY=takeover") != 0)
        return -1;
    return start_mode(&blocking, "IDEM_ON_LEASE_EXPIRY=block");
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&idemd[0], SIGTERM, 5000);
    th_proc_stop(&idemd[1], SIGTERM, 5000);
    th_proc_stop(&blocking, SIGTERM, 5000);
    th_redis_stop(&redis);
    return 0;
}

struct shot {
    pthread_barrier_t *go;
    int port;
    const char *body;
    struct th_resp resp;
    int ok;
};

static void *fire(void *arg)
{
    struct shot *s = arg;
    pthread_barrier_wait(s->go);
    s->ok = th_post_json(s->port, "/v1/claim", s->body, &s->resp) == 0;
    return NULL;
}

/* n concurrent claims with body, spread over ports[0..nports), released together. */
static struct shot *fire_all(int n, const int *ports, int nports, const char *body)
{
    struct shot *shots = calloc((size_t)n, sizeof(*shots));
    pthread_t *t = calloc((size_t)n, sizeof(*t));
    pthread_barrier_t go;
    assert_non_null(shots);
    assert_non_null(t);
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        shots[i] = (struct shot){.go = &go, .port = ports[i % nports], .body = body};
        assert_int_equal(pthread_create(&t[i], NULL, fire, &shots[i]), 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    free(t);
    return shots;
}

static void free_shots(struct shot *shots, int n)
{
    for (int i = 0; i < n; i++)
        th_resp_free(&shots[i].resp);
    free(shots);
}

static const char *code_of(const struct th_resp *r, char *buf, size_t size)
{
    json_t *j = th_json(r);
    snprintf(buf, size, "%s", j ? json_string_value(json_object_get(j, "code")) : "");
    json_decref(j);
    return buf;
}

/* A replay's raw body with the digits of "expires_in_ms" (the only member that moves with
 * time) blanked: every other byte must be the same in every replay (caller frees). */
static char *replay_bytes(const struct th_resp *r)
{
    char *out = strdup(r->body);
    assert_non_null(out);
    char *at = strstr(out, "\"expires_in_ms\":");
    assert_non_null(at);
    for (at += strlen("\"expires_in_ms\":"); *at >= '0' && *at <= '9'; at++)
        *at = 'N';
    return out;
}

/* CLAIMERS concurrent claims with body after completion: every one a replay whose bytes
 * are those of every other (the stored response of the test below). */
static void assert_identical_replays(const int *ports, const char *body)
{
    struct shot *shots = fire_all(CLAIMERS, ports, 2, body);
    char *first = NULL;
    for (int i = 0; i < CLAIMERS; i++) {
        char hv[64];
        assert_true(shots[i].ok);
        assert_int_equal(shots[i].resp.status, 200);
        assert_non_null(th_header(&shots[i].resp, "Idempotent-Replayed", hv, sizeof(hv)));
        assert_string_equal(hv, "true");
        assert_non_null(th_header(&shots[i].resp, "Content-Type", hv, sizeof(hv)));
        assert_string_equal(hv, "application/json");
        char *bytes = replay_bytes(&shots[i].resp);
        if (!first)
            first = bytes;
        else {
            assert_string_equal(bytes, first);
            free(bytes);
        }
    }
    /* The stored status, headers and body, exactly as completed (headers sorted). */
    const char *stored =
        "\"status\":201,\"headers\":{\"ETag\":\"\\\"v1\\\"\",\"Location\":\"/charges/42\"},"
        "\"body\":\"{\\\"id\\\":42,\\\"amount\\\":\\\"9.99\\\"}\",\"body_encoding\":\"utf8\",";
    if (!strstr(first, stored))
        fail_msg("replay %s lacks %s", first, stored);
    free(first);
    free_shots(shots, CLAIMERS);
}

static void test_one_claim_wins_then_identical_replays(void **state)
{
    (void)state;
    const int ports[] = {idemd[0].port, idemd[1].port};
    const char *body = "{\"scope\":\"race\",\"key\":\"k-200\",\"fingerprint\":\"f\"}";
    char code[64], token[64] = "";
    struct shot *shots = fire_all(CLAIMERS, ports, 2, body);
    int claimed = 0, in_progress = 0;
    for (int i = 0; i < CLAIMERS; i++) {
        assert_true(shots[i].ok);
        if (shots[i].resp.status == 201) {
            json_t *j = th_json(&shots[i].resp);
            snprintf(token, sizeof(token), "%s",
                     json_string_value(json_object_get(j, "lease_token")));
            json_decref(j);
            claimed++;
        } else if (shots[i].resp.status == 409 &&
                   strcmp(code_of(&shots[i].resp, code, sizeof(code)), "request_in_progress") ==
                       0) {
            in_progress++;
        }
    }
    free_shots(shots, CLAIMERS);
    assert_int_equal(claimed, 1);
    assert_int_equal(in_progress, CLAIMERS - 1);
    assert_int_equal(th_redis_int(&redis, "HGET idem:race:k-200 claims"), 1);

    char done[512];
    snprintf(done, sizeof(done),
             "{\"scope\":\"race\",\"key\":\"k-200\",\"lease_token\":\"%s\",\"status\":201,"
             "\"headers\":{\"Location\":\"/charges/42\",\"ETag\":\"\\\"v1\\\"\"},"
             "\"body\":\"{\\\"id\\\":42,\\\"amount\\\":\\\"9.99\\\"}\"}",
             token);
    struct th_resp r;
    assert_int_equal(th_post_json(idemd[1].port, "/v1/complete", done, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);

    assert_identical_replays(ports, body);
}

/* Claim with a 1 s lease (the shortest) and save a checkpoint, then let the lease run out.
 * The (now stale) lease token goes into old (64 bytes). */
static void expire_lease(int port, const char *key, char *old)
{
    char body[256];
    struct th_resp r;
    snprintf(body, sizeof(body),
             "{\"scope\":\"race\",\"key\":\"%s\",\"fingerprint\":\"f\",\"lease_ms\":1000}", key);
    assert_int_equal(th_post_json(port, "/v1/claim", body, &r), 0);
    assert_int_equal(r.status, 201);
    json_t *j = th_json(&r);
    snprintf(old, 64, "%s", json_string_value(json_object_get(j, "lease_token")));
    snprintf(body, sizeof(body),
             "{\"scope\":\"race\",\"key\":\"%s\",\"lease_token\":\"%s\","
             "\"checkpoint\":\"charge_created\"}",
             key, json_string_value(json_object_get(j, "lease_token")));
    json_decref(j);
    th_resp_free(&r);
    assert_int_equal(th_post_json(port, "/v1/checkpoint", body, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    struct timespec ts = {.tv_sec = 1, .tv_nsec = 150000000L};
    nanosleep(&ts, NULL);
}

static void test_takeover_recovered_by_exactly_one(void **state)
{
    (void)state;
    const int ports[] = {idemd[0].port, idemd[1].port};
    char code[64];
    char old[64];
    expire_lease(idemd[0].port, "k-takeover", old);
    struct shot *shots = fire_all(
        RECOVERERS, ports, 2, "{\"scope\":\"race\",\"key\":\"k-takeover\",\"fingerprint\":\"f\"}");
    int recovered = 0, in_progress = 0;
    for (int i = 0; i < RECOVERERS; i++) {
        assert_true(shots[i].ok);
        if (shots[i].resp.status == 201) {
            json_t *j = th_json(&shots[i].resp);
            assert_true(json_is_true(json_object_get(j, "recovered")));
            assert_string_equal(json_string_value(json_object_get(j, "checkpoint")),
                                "charge_created");
            json_decref(j);
            recovered++;
        } else if (strcmp(code_of(&shots[i].resp, code, sizeof(code)), "request_in_progress") ==
                   0) {
            in_progress++;
        }
    }
    free_shots(shots, RECOVERERS);
    assert_int_equal(recovered, 1);
    assert_int_equal(in_progress, RECOVERERS - 1);
    assert_int_equal(th_redis_int(&redis, "HGET idem:race:k-takeover claims"), 2);

    /* The previous holder's token is stale now: every call is lease_lost, nothing moves. */
    char *before = snapshot(&redis, "idem:race:k-takeover");
    const char *const calls[][2] = {
        {"/v1/complete", ",\"status\":200}"},
        {"/v1/release", "}"},
        {"/v1/extend", ",\"lease_ms\":60000}"},
        {"/v1/checkpoint", ",\"checkpoint\":\"x\"}"},
    };
    for (size_t i = 0; i < 4; i++) {
        char body[256];
        struct th_resp r;
        snprintf(body, sizeof(body),
                 "{\"scope\":\"race\",\"key\":\"k-takeover\",\"lease_token\":\"%s\"%s", old,
                 calls[i][1]);
        assert_int_equal(th_post_json(idemd[1].port, calls[i][0], body, &r), 0);
        assert_int_equal(r.status, 409);
        assert_string_equal(code_of(&r, code, sizeof(code)), "lease_lost");
        th_resp_free(&r);
    }
    char *after = snapshot(&redis, "idem:race:k-takeover");
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_block_recovered_by_none(void **state)
{
    (void)state;
    const int ports[] = {blocking.port};
    char code[64];
    char old[64];
    expire_lease(blocking.port, "k-block", old);
    char *before = snapshot(&redis, "idem:race:k-block");
    struct shot *shots = fire_all(RECOVERERS, ports, 1,
                                  "{\"scope\":\"race\",\"key\":\"k-block\",\"fingerprint\":\"f\"}");
    int blocked = 0;
    for (int i = 0; i < RECOVERERS; i++) {
        assert_true(shots[i].ok);
        assert_int_equal(shots[i].resp.status, 409);
        blocked +=
            strcmp(code_of(&shots[i].resp, code, sizeof(code)), "lease_expired_blocked") == 0;
    }
    free_shots(shots, RECOVERERS);
    assert_int_equal(blocked, RECOVERERS);
    assert_int_equal(th_redis_int(&redis, "HGET idem:race:k-block claims"), 1);
    char *after = snapshot(&redis, "idem:race:k-block"); /* the same holder, the same lease */
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* The holder whose lease ran out may still finish: nobody took the key over. */
    char body[256];
    struct th_resp r;
    snprintf(body, sizeof(body),
             "{\"scope\":\"race\",\"key\":\"k-block\",\"lease_token\":\"%s\",\"status\":200}", old);
    assert_int_equal(th_post_json(blocking.port, "/v1/complete", body, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_claim_wins_then_identical_replays),
        cmocka_unit_test(test_takeover_recovered_by_exactly_one),
        cmocka_unit_test(test_block_recovered_by_none),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
