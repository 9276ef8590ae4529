/* SPDX-License-Identifier: Apache-2.0 */
/* idemd's waiting claims (wait_ms) over real sockets against a real redis-server: answered
 * as soon as the key is completed, released or taken over, else 409 when the wait ends;
 * a hundred waiters hold no HTTP worker, waiters of one key share their re-checks;
 * shutdown answers waiters at once. */
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
#include <time.h>

#define IDEM_TEST_DAEMON
#include "test_idemd_util.h"

/* wait_ms: answered as soon as the holder completes; else 409 when the wait ends. */
static void test_wait_ms(void **state)
{
    (void)state;
    struct waiter w[3];
    char tok[64];
    claim_token(idemd.port, "t", "wk", "f", tok);
    start_waiter(&w[0], idemd.port,
                 "{\"scope\":\"t\",\"key\":\"wk\",\"fingerprint\":\"f\",\"wait_ms\":5000}");
    start_waiter(&w[1], idemd.port,
                 "{\"scope\":\"t\",\"key\":\"wk\",\"fingerprint\":\"f\",\"wait_ms\":5000}");
    start_waiter(&w[2], idemd.port,
                 "{\"scope\":\"t\",\"key\":\"wk\",\"fingerprint\":\"f\",\"wait_ms\":300}");
    pthread_join(w[2].thread, NULL);
    assert_int_equal(w[2].resp.status, 409);
    assert_true(w[2].took_ms >= 280 && w[2].took_ms < 2000);
    assert_false(atomic_load(&w[0].done) || atomic_load(&w[1].done));
    int64_t t0 = th_now_ms();
    json_decref(post(idemd.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"wk\",\"lease_token\":\"%s\",\"status\":201}",
                     tok));
    for (int i = 0; i < 2; i++) {
        pthread_join(w[i].thread, NULL);
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
    static struct waiter w[N];
    struct th_proc pool;
    char tok[64];
    const char *env[] = {"HTTP_THREADS=2", NULL};
    assert_int_equal(start_idemd(&pool, redis.url, env), 0);
    claim_token(pool.port, "t", "pw", "f", tok);
    for (int i = 0; i < N; i++)
        start_waiter(&w[i], pool.port,
                     "{\"scope\":\"t\",\"key\":\"pw\",\"fingerprint\":\"f\",\"wait_ms\":8000}");
    sleep_ms(500);
    int64_t t0 = th_now_ms();
    json_decref(post(pool.port, "/v1/claim", 201,
                     "{\"scope\":\"t\",\"key\":\"other\",\"fingerprint\":\"f\"}"));
    json_decref(get(pool.port, "/health", 200));
    assert_true(th_now_ms() - t0 < 500);
    int early = 0;
    for (int i = 0; i < N; i++)
        early += atomic_load(&w[i].done);
    assert_int_equal(early, 0); /* all of them still waiting */
    json_decref(post(pool.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"pw\",\"lease_token\":\"%s\",\"status\":200}",
                     tok));
    int replayed = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(w[i].thread, NULL);
        replayed += w[i].resp.status == 200;
        th_resp_free(&w[i].resp);
    }
    assert_int_equal(replayed, N);
    assert_true(th_now_ms() - t0 < 3000);
    th_proc_stop(&pool, SIGTERM, 5000);
}

/* Twenty claims parked on one worker for the same key and request share one re-check:
 * Redis runs about one claim script per tick of the group's timer, not one per waiter. */
static void test_waiters_share_checks(void **state)
{
    (void)state;
    enum { N = 20 };
    static struct waiter w[N];
    struct th_proc p;
    char tok[64];
    const char *env[] = {"HTTP_THREADS=1", NULL};
    assert_int_equal(start_idemd(&p, redis.url, env), 0);
    claim_token(p.port, "t", "sh", "f", tok);
    for (int i = 0; i < N; i++)
        start_waiter(&w[i], p.port,
                     "{\"scope\":\"t\",\"key\":\"sh\",\"fingerprint\":\"f\",\"wait_ms\":8000}");
    sleep_ms(300);
    freeReplyObject(th_redis_cmd(&redis, "CONFIG RESETSTAT"));
    sleep_ms(1000);
    long long checks = command_calls(&redis, "evalsha");
    /* about 10 ticks a second at the longest interval, and at most 50 at the shortest;
     * one check per waiter per tick would be 20 times that */
    assert_true(checks >= 2 && checks <= 60);
    json_decref(post(p.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"sh\",\"lease_token\":\"%s\",\"status\":200}",
                     tok));
    for (int i = 0; i < N; i++) {
        pthread_join(w[i].thread, NULL);
        assert_int_equal(w[i].resp.status, 200);
        th_resp_free(&w[i].resp);
    }
    th_proc_stop(&p, SIGTERM, 5000);
}

/* Waiters on a released key: exactly one of them wins it (201) while the others keep
 * waiting; when that winner completes, the others get the replay. */
/* The index of the first of the n waiters answered 201 within ms; fails the test if none is. */
static int first_claimer(struct waiter *w, int n, int ms)
{
    for (int64_t t0 = th_now_ms(); th_now_ms() - t0 < ms; sleep_ms(5))
        for (int i = 0; i < n; i++)
            if (atomic_load(&w[i].done) && w[i].resp.status == 201)
                return i;
    fail_msg("no waiter was answered 201 within %d ms", ms);
    return 0; /* not reached: fail_msg ends the test */
}

static void test_waiters_after_release(void **state)
{
    (void)state;
    enum { N = 20 };
    static struct waiter w[N];
    char tok[64];
    claim_token(idemd.port, "t", "rel", "f", tok);
    for (int i = 0; i < N; i++)
        start_waiter(&w[i], idemd.port,
                     "{\"scope\":\"t\",\"key\":\"rel\",\"fingerprint\":\"f\",\"wait_ms\":6000}");
    sleep_ms(300);
    json_decref(post(idemd.port, "/v1/release", 200,
                     "{\"scope\":\"t\",\"key\":\"rel\",\"lease_token\":\"%s\"}", tok));
    int winner = first_claimer(w, N, 3000), done = 0;
    sleep_ms(300); /* the others had time to be answered, were they to be */
    for (int i = 0; i < N; i++)
        done += atomic_load(&w[i].done);
    assert_int_equal(done, 1);
    json_t *j = th_json(&w[winner].resp);
    assert_non_null(j);
    assert_true(json_is_false(json_object_get(j, "recovered")));
    json_decref(post(idemd.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"rel\",\"lease_token\":\"%s\",\"status\":201}",
                     jstr(j, "lease_token")));
    json_decref(j);
    int replayed = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(w[i].thread, NULL);
        replayed += w[i].resp.status == 200;
        th_resp_free(&w[i].resp);
    }
    assert_int_equal(replayed, N - 1);
}

/* A waiter on a key whose holder dies takes it over when the lease runs out. */
static void test_waiter_recovers_expired_lease(void **state)
{
    (void)state;
    struct waiter w;
    json_decref(post(idemd.port, "/v1/claim", 201,
                     "{\"scope\":\"t\",\"key\":\"dead\",\"fingerprint\":\"f\",\"lease_ms\":1000}"));
    start_waiter(&w, idemd.port,
                 "{\"scope\":\"t\",\"key\":\"dead\",\"fingerprint\":\"f\",\"wait_ms\":5000}");
    pthread_join(w.thread, NULL);
    assert_int_equal(w.resp.status, 201);
    assert_true(w.took_ms >= 800 && w.took_ms < 2500);
    json_t *j = th_json(&w.resp);
    assert_true(json_is_true(json_object_get(j, "recovered")));
    json_decref(j);
    th_resp_free(&w.resp);
    assert_int_equal(th_redis_int(&redis, "HGET idem:t:dead claims"), 2);
}

/* Under block, a waiter on an expired lease keeps waiting and gets the holder's result. */
static void test_waiter_on_blocked_key(void **state)
{
    (void)state;
    struct th_proc p;
    struct waiter w;
    const char *env[] = {"IDEM_ON_LEASE_EXPIRY=block", NULL};
    assert_int_equal(start_idemd(&p, redis.url, env), 0);
    json_t *j = post(p.port, "/v1/claim", 201,
                     "{\"scope\":\"t\",\"key\":\"blk\",\"fingerprint\":\"f\",\"lease_ms\":1000}");
    char tok[64];
    snprintf(tok, sizeof(tok), "%s", jstr(j, "lease_token"));
    json_decref(j);
    sleep_ms(1100);
    start_waiter(&w, p.port,
                 "{\"scope\":\"t\",\"key\":\"blk\",\"fingerprint\":\"f\",\"wait_ms\":5000}");
    sleep_ms(300);
    assert_false(atomic_load(&w.done));
    json_decref(post(p.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"blk\",\"lease_token\":\"%s\",\"status\":202}",
                     tok));
    pthread_join(w.thread, NULL);
    assert_int_equal(w.resp.status, 200);
    assert_true(w.took_ms < 2000);
    th_resp_free(&w.resp);
    th_proc_stop(&p, SIGTERM, 5000);
}

/* SIGTERM answers waiting claims at once (409, so the caller retries elsewhere) instead of
 * holding the shutdown for their whole wait; idemd exits 0 promptly. */
static void test_shutdown_answers_waiters(void **state)
{
    (void)state;
    struct th_proc p;
    struct waiter w;
    char tok[64];
    const char *env[] = {"SHUTDOWN_TIMEOUT=8s", NULL};
    assert_int_equal(start_idemd(&p, redis.url, env), 0);
    claim_token(p.port, "t", "sd", "f", tok);
    start_waiter(&w, p.port,
                 "{\"scope\":\"t\",\"key\":\"sd\",\"fingerprint\":\"f\",\"wait_ms\":10000}");
    sleep_ms(300);
    assert_false(atomic_load(&w.done));
    int64_t t0 = th_now_ms();
    assert_int_equal(th_proc_stop(&p, SIGTERM, 8000), 0);
    assert_true(th_now_ms() - t0 < 2000);
    pthread_join(w.thread, NULL);
    assert_int_equal(w.resp.status, 409);
    assert_true(w.took_ms < 2500);
    json_t *j = th_json(&w.resp);
    assert_string_equal(jstr(j, "code"), "request_in_progress");
    json_decref(j);
    th_resp_free(&w.resp);
    assert_false(th_proc_log_contains(&p, "shutdown timeout"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_wait_ms, reset),
        cmocka_unit_test_setup(test_waiters_hold_no_workers, reset),
        cmocka_unit_test_setup(test_waiters_share_checks, reset),
        cmocka_unit_test_setup(test_waiters_after_release, reset),
        cmocka_unit_test_setup(test_waiter_recovers_expired_lease, reset),
        cmocka_unit_test_setup(test_waiter_on_blocked_key, reset),
        cmocka_unit_test_setup(test_shutdown_answers_waiters, reset),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
