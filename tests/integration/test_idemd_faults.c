/* SPDX-License-Identifier: Apache-2.0 */
/* idemd when Redis fails: killed, frozen (SIGSTOP), its script cache flushed, or set to
 * evict keys. Every call answers 503 backend_unavailable within the pool + command
 * timeouts (never fails open), /ready turns 503, and calls succeed again once Redis is
 * back, without restarting idemd. */
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

#include "../lib/harness.h"

/* REDIS_POOL_TIMEOUT + REDIS_COMMAND_TIMEOUT as configured below, plus scheduling slack
 * (times the harness's time scale: the configured timeouts do not scale). */
#define BOUND_MS (300 + 300 + th_ms(250))

static struct th_redis redis;
static struct th_proc idemd;

static int start_idemd(struct th_proc *p, const struct th_redis *rd)
{
    const char *env[] = {"REDIS_POOL_TIMEOUT=300ms", "REDIS_COMMAND_TIMEOUT=300ms",
                         "REDIS_CONNECT_TIMEOUT=300ms", "REDIS_MIN_IDLE_CONNS=2", NULL};
    return th_daemon_start(p, "bin/idemd", rd->url, env);
}

static int setup(void **state)
{
    (void)state;
    if (th_redis_start(&redis, NULL) != 0)
        return -1;
    return start_idemd(&idemd, &redis);
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&idemd, SIGTERM, 5000);
    th_redis_stop(&redis);
    return 0;
}

static const char *const calls[][2] = {
    {"/v1/claim", "{\"scope\":\"t\",\"key\":\"k\",\"fingerprint\":\"f\"}"},
    {"/v1/complete", "{\"scope\":\"t\",\"key\":\"k\",\"lease_token\":\"x\",\"status\":200}"},
    {"/v1/release", "{\"scope\":\"t\",\"key\":\"k\",\"lease_token\":\"x\"}"},
    {"/v1/extend", "{\"scope\":\"t\",\"key\":\"k\",\"lease_token\":\"x\"}"},
    {"/v1/checkpoint",
     "{\"scope\":\"t\",\"key\":\"k\",\"lease_token\":\"x\",\"checkpoint\":\"c\"}"},
    {NULL, NULL}, /* GET /v1/record */
};

/* Every endpoint answers 503 backend_unavailable with Retry-After: 1, within BOUND_MS. */
static void assert_all_unavailable(void)
{
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        struct th_resp r;
        char hv[16];
        int64_t t0 = th_now_ms();
        if (calls[i][0])
            assert_int_equal(th_post_json(idemd.port, calls[i][0], calls[i][1], &r), 0);
        else
            assert_int_equal(
                th_http(idemd.port, "GET", "/v1/record?scope=t&key=k", NULL, NULL, 0, &r), 0);
        int64_t took = th_now_ms() - t0;
        if (r.status != 503 || took > BOUND_MS)
            fail_msg("%s: %d after %lld ms", calls[i][0] ? calls[i][0] : "/v1/record", r.status,
                     (long long)took);
        json_t *j = th_json(&r);
        assert_string_equal(json_string_value(json_object_get(j, "code")), "backend_unavailable");
        json_decref(j);
        assert_non_null(th_header(&r, "Retry-After", hv, sizeof(hv)));
        assert_string_equal(hv, "1");
        th_resp_free(&r);
    }
}

static int ready_status(void)
{
    struct th_resp r;
    if (th_http(idemd.port, "GET", "/ready", NULL, NULL, 0, &r) != 0)
        return -1;
    int st = r.status;
    th_resp_free(&r);
    return st;
}

/* Claims a fresh key until one answers 201, for up to ms. Returns how long it took, or -1. */
static int64_t wait_claim_ok(int64_t ms)
{
    static int n;
    int64_t t0 = th_now_ms();
    while (th_now_ms() - t0 < ms) {
        char body[128];
        struct th_resp r;
        snprintf(body, sizeof(body), "{\"scope\":\"t\",\"key\":\"back-%d\",\"fingerprint\":\"f\"}",
                 n++);
        if (th_post_json(idemd.port, "/v1/claim", body, &r) == 0 && r.status == 201) {
            th_resp_free(&r);
            return th_now_ms() - t0;
        }
        th_resp_free(&r);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50000000L};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void test_redis_killed_then_back(void **state)
{
    (void)state;
    assert_true(wait_claim_ok(2000) >= 0);
    th_redis_kill(&redis);
    assert_all_unavailable();
    assert_int_equal(ready_status(), 503);
    assert_int_equal(th_redis_restart(&redis), 0);
    int64_t took = wait_claim_ok(3000);
    assert_true(took >= 0 && took < 1500);
    assert_int_equal(ready_status(), 200);
}

static void test_redis_frozen_then_back(void **state)
{
    (void)state;
    assert_true(wait_claim_ok(2000) >= 0);
    th_redis_pause(&redis);
    assert_all_unavailable();
    assert_int_equal(ready_status(), 503);
    th_redis_resume(&redis);
    int64_t took = wait_claim_ok(3000);
    assert_true(took >= 0 && took < 1500);
}

/* One claim in a thread: its status and how long it took. */
struct shot {
    const char *body;
    int status;
    char code[32];
    int64_t took_ms;
    pthread_t thread;
};

static void *shoot(void *arg)
{
    struct shot *s = arg;
    struct th_resp r;
    int64_t t0 = th_now_ms();
    s->status = th_post_json(idemd.port, "/v1/claim", s->body, &r) == 0 ? r.status : -1;
    s->took_ms = th_now_ms() - t0;
    json_t *j = s->status > 0 ? th_json(&r) : NULL;
    snprintf(s->code, sizeof(s->code), "%s",
             j && json_is_string(json_object_get(j, "code"))
                 ? json_string_value(json_object_get(j, "code"))
                 : "");
    json_decref(j);
    th_resp_free(&r);
    return NULL;
}

/* Many claims at once on a frozen Redis: each one a 503 within the bound, none a 201. */
static void test_concurrent_calls_on_frozen_redis(void **state)
{
    (void)state;
    enum { N = 20 };
    struct shot shots[N];
    assert_true(wait_claim_ok(2000) >= 0);
    th_redis_pause(&redis);
    for (int i = 0; i < N; i++) {
        shots[i] =
            (struct shot){.body = "{\"scope\":\"t\",\"key\":\"frozen\",\"fingerprint\":\"f\"}"};
        assert_int_equal(pthread_create(&shots[i].thread, NULL, shoot, &shots[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(shots[i].thread, NULL);
    th_redis_resume(&redis);
    for (int i = 0; i < N; i++) {
        if (shots[i].status != 503 || strcmp(shots[i].code, "backend_unavailable") != 0 ||
            shots[i].took_ms > BOUND_MS)
            fail_msg("claim %d: %d %s after %lld ms", i, shots[i].status, shots[i].code,
                     (long long)shots[i].took_ms);
    }
    assert_true(wait_claim_ok(3000) >= 0);
}

/* A claim waiting on an in-flight key gets 503 soon after Redis stops answering, not
 * when its wait ends. */
static void test_waiting_claim_when_redis_fails(void **state)
{
    (void)state;
    struct shot w = {.body = "{\"scope\":\"t\",\"key\":\"held\",\"fingerprint\":\"f\","
                             "\"wait_ms\":8000}"};
    struct th_resp r;
    assert_int_equal(th_post_json(idemd.port, "/v1/claim",
                                  "{\"scope\":\"t\",\"key\":\"held\",\"fingerprint\":\"f\"}", &r),
                     0);
    assert_int_equal(r.status, 201);
    th_resp_free(&r);
    assert_int_equal(pthread_create(&w.thread, NULL, shoot, &w), 0);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 300000000L};
    nanosleep(&ts, NULL);
    th_redis_pause(&redis);
    pthread_join(w.thread, NULL);
    th_redis_resume(&redis);
    assert_int_equal(w.status, 503);
    assert_string_equal(w.code, "backend_unavailable");
    assert_true(w.took_ms < 300 + BOUND_MS + th_ms(200));
    assert_true(wait_claim_ok(3000) >= 0);
}

/* SCRIPT FLUSH behind idemd's back: the next call reloads the script and succeeds. */
static void test_script_flush(void **state)
{
    (void)state;
    freeReplyObject(th_redis_cmd(&redis, "SCRIPT FLUSH"));
    struct th_resp r;
    assert_int_equal(th_post_json(idemd.port, "/v1/claim",
                                  "{\"scope\":\"t\",\"key\":\"flushed\",\"fingerprint\":\"f\"}",
                                  &r),
                     0);
    assert_int_equal(r.status, 201);
    th_resp_free(&r);
}

/* A Redis that may evict keys is reported at warn at startup; noeviction is not. */
static void test_eviction_policy_warned(void **state)
{
    (void)state;
    struct th_redis lru;
    struct th_proc p;
    const char *args[] = {"--maxmemory-policy", "allkeys-lru", NULL};
    assert_int_equal(th_redis_start(&lru, args), 0);
    assert_int_equal(start_idemd(&p, &lru), 0);
    int64_t t0 = th_now_ms();
    while (!th_proc_log_contains(&p, "allkeys-lru") && th_now_ms() - t0 < 3000) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 20000000L};
        nanosleep(&ts, NULL);
    }
    char *log = th_proc_log(&p);
    assert_non_null(log);
    char *line = strstr(log, "allkeys-lru");
    assert_non_null(line);
    while (line > log && line[-1] != '\n')
        line--;
    assert_true(strncmp(strstr(line, "\"level\":"), "\"level\":\"warn\"", 14) == 0);
    free(log);
    th_proc_stop(&p, SIGTERM, 5000);
    th_redis_stop(&lru);
    assert_false(th_proc_log_contains(&idemd, "maxmemory_policy"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_killed_then_back),
        cmocka_unit_test(test_redis_frozen_then_back),
        cmocka_unit_test(test_concurrent_calls_on_frozen_redis),
        cmocka_unit_test(test_waiting_claim_when_redis_fails),
        cmocka_unit_test(test_script_flush),
        cmocka_unit_test(test_eviction_policy_warned),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
