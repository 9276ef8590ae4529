/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of the Redis pool and script runner against a real redis-server:
 * concurrency, exhaustion, restarts, SCRIPT FLUSH, timeouts, AUTH, db and unix sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/harness.h"
#include "shared/crypto.h"
#include "shared/log.h"
#include "shared/redis_pool.h"
#include "test_scripts.h"

static struct th_redis redis;

static int setup(void **state)
{
    (void)state;
    crypto_init();
    log_init("test_pool", LOG_CRITICAL);
    return th_redis_start(&redis, NULL);
}

static int teardown(void **state)
{
    (void)state;
    th_redis_stop(&redis);
    return 0;
}

static struct rpool *make_pool(const char *url, int size, int64_t pool_timeout_ms,
                               int64_t cmd_timeout_ms)
{
    struct rpool_config rc;
    char err[128];
    rpool_config_defaults(&rc);
    rc.url = url;
    rc.size = size;
    rc.min_idle = size < 10 ? size : 10;
    rc.pool_timeout_ms = pool_timeout_ms;
    rc.command_timeout_ms = cmd_timeout_ms;
    struct rpool *p = rpool_create(&rc, NULL, err, sizeof(err));
    assert_non_null(p);
    static const struct script *const scripts[] = {&script_test_incr, NULL};
    rpool_set_scripts(p, scripts);
    return p;
}

/* INCRBY key 1 through the embedded script; returns the status. */
static enum rpool_status incr(struct rpool *p, const char *key, long long *value)
{
    const char *argv[] = {key, "1"};
    redisReply *r = NULL;
    enum rpool_status st = rpool_eval(p, &script_test_incr, 1, 2, argv, NULL, 0, &r);
    if (st == RPOOL_OK && value)
        *value = r->integer;
    freeReplyObject(r);
    return st;
}

/* Does Redis hold the test script in its cache? */
static int script_cached(void)
{
    redisReply *r = th_redis_cmd(&redis, "SCRIPT EXISTS %s", script_test_incr.sha1);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    int cached = (int)r->element[0]->integer;
    freeReplyObject(r);
    return cached;
}

struct worker {
    struct rpool *pool;
    int calls;
    const char *key;
    _Atomic int *errors;
};

static void *incr_worker(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->calls; i++)
        if (incr(w->pool, w->key, NULL) != RPOOL_OK)
            atomic_fetch_add(w->errors, 1);
    return NULL;
}

/* 100 threads x 1000 EVALSHA: no error, the counter is exact, the stats add up. */
static void test_hundred_threads(void **state)
{
    (void)state;
    enum { THREADS = 100, CALLS = 1000 };
    struct rpool *p = make_pool(redis.url, 100, 1000, 1000);
    _Atomic int errors = 0;
    pthread_t t[THREADS];
    struct worker w = {.pool = p, .calls = CALLS, .key = "pool:hundred", .errors = &errors};
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, incr_worker, &w), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);

    assert_int_equal(atomic_load(&errors), 0);
    assert_int_equal(th_redis_int(&redis, "GET pool:hundred"), THREADS * CALLS);
    struct rpool_stats s;
    rpool_stats(p, &s);
    assert_int_equal(s.hits + s.misses, THREADS * CALLS);
    assert_int_equal(s.timeouts, 0);
    assert_true(s.total <= 100);
    assert_int_equal(s.idle, s.total); /* every connection came back */
    assert_int_equal(s.stale, 0);
    rpool_free(p);
}

struct blocker {
    struct rpool *pool;
    _Atomic int ok, pool_timeouts, other;
};

static void *block_worker(void *arg)
{
    struct blocker *b = arg;
    const char *argv[] = {"BLPOP", "pool:never", "0.1"};
    redisReply *r = NULL;
    enum rpool_status st = rpool_command(b->pool, 3, argv, NULL, 2000, &r);
    freeReplyObject(r);
    if (st == RPOOL_OK)
        atomic_fetch_add(&b->ok, 1);
    else if (st == RPOOL_POOL_TIMEOUT)
        atomic_fetch_add(&b->pool_timeouts, 1);
    else
        atomic_fetch_add(&b->other, 1);
    return NULL;
}

/* Pool of 2, 20 threads each holding a connection 100 ms: the others give up after the
 * pool timeout, each give-up is counted, and nothing deadlocks. */
static void test_exhaustion(void **state)
{
    (void)state;
    enum { THREADS = 20 };
    struct rpool *p = make_pool(redis.url, 2, 30, 1000);
    struct blocker b = {.pool = p};
    pthread_t t[THREADS];
    int64_t start = th_now_ms();
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, block_worker, &b), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    int64_t elapsed = th_now_ms() - start;

    struct rpool_stats s;
    rpool_stats(p, &s);
    assert_int_equal(atomic_load(&b.other), 0);
    assert_true(atomic_load(&b.ok) >= 2);
    assert_true(atomic_load(&b.pool_timeouts) > 0);
    assert_int_equal(atomic_load(&b.ok) + atomic_load(&b.pool_timeouts), THREADS);
    assert_int_equal(s.timeouts, (uint64_t)atomic_load(&b.pool_timeouts));
    assert_true(s.total <= 2);
    assert_true(elapsed < 2000); /* no deadlock: everyone answered promptly */
    rpool_free(p);
}

/* kill -9 and restart: calls fail cleanly while it is down, and succeed again within a
 * second of the restart, with the same pool object. */
static void test_restart(void **state)
{
    (void)state;
    struct rpool *p = make_pool(redis.url, 10, 200, 200);
    long long v = 0;
    for (int i = 0; i < 20; i++)
        assert_int_equal(incr(p, "pool:restart", &v), RPOOL_OK);

    th_redis_kill(&redis);
    enum rpool_status st = incr(p, "pool:restart", NULL);
    assert_true(st == RPOOL_CONN || st == RPOOL_TIMEOUT);

    assert_int_equal(th_redis_restart(&redis), 0);
    int64_t restarted = th_now_ms();
    while (incr(p, "pool:restart", &v) != RPOOL_OK && th_now_ms() - restarted < 5000)
        ;
    int64_t recovered_ms = th_now_ms() - restarted;
    printf("# recovered %lld ms after the restart\n", (long long)recovered_ms);
    assert_true(recovered_ms < 1000);
    /* Every later call works: no dead connection is handed out again. */
    for (int i = 0; i < 50; i++)
        assert_int_equal(incr(p, "pool:restart", NULL), RPOOL_OK);
    rpool_free(p);
}

/* SCRIPT FLUSH behind the pool's back: the next call reloads and succeeds. */
static void test_script_flush(void **state)
{
    (void)state;
    struct rpool *p = make_pool(redis.url, 4, 200, 1000);
    long long before = 0, after = 0;
    assert_int_equal(incr(p, "pool:flush", &before), RPOOL_OK);
    redisReply *r = th_redis_cmd(&redis, "SCRIPT FLUSH");
    assert_non_null(r);
    freeReplyObject(r);
    assert_int_equal(script_cached(), 0);
    assert_int_equal(incr(p, "pool:flush", &after), RPOOL_OK);
    assert_int_equal(after, before + 1);
    rpool_free(p);
}

/* A pipeline answers in order, in one call; a Redis error reply is a reply. */
static void test_pipeline(void **state)
{
    (void)state;
    struct rpool *p = make_pool(redis.url, 2, 200, 1000);
    const char *set[] = {"SET", "pool:pipe", "41"};
    const char *inc[] = {"pool:pipe", "1"};
    const char *bad[] = {"INCR", "pool:pipe", "extra-arg"};
    struct rpool_cmd cmds[] = {
        {.argc = 3, .argv = set},
        {.script = &script_test_incr, .nkeys = 1, .argc = 2, .argv = inc},
        {.argc = 3, .argv = bad},
    };
    redisReply *replies[3];
    assert_int_equal(rpool_exec(p, cmds, 3, replies, 0), RPOOL_OK);
    assert_string_equal(replies[0]->str, "OK");
    assert_int_equal(replies[1]->integer, 42);
    assert_int_equal(replies[2]->type, REDIS_REPLY_ERROR);
    for (int i = 0; i < 3; i++)
        freeReplyObject(replies[i]);

    redisReply *r = NULL;
    assert_int_equal(rpool_command(p, 3, bad, NULL, 0, &r), RPOOL_REPLY_ERROR);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    rpool_free(p);
}

/* A frozen Redis: the call gives up after the command timeout, classified as a timeout;
 * after SIGCONT the pool works again. */
static void test_command_timeout(void **state)
{
    (void)state;
    struct rpool *p = make_pool(redis.url, 4, 100, 150);
    assert_int_equal(incr(p, "pool:frozen", NULL), RPOOL_OK);
    th_redis_pause(&redis);
    int64_t start = th_now_ms();
    enum rpool_status st = incr(p, "pool:frozen", NULL);
    int64_t took = th_now_ms() - start;
    th_redis_resume(&redis);
    assert_int_equal(st, RPOOL_TIMEOUT);
    assert_true(took >= 140 && took < 600);
    assert_int_equal(incr(p, "pool:frozen", NULL), RPOOL_OK);
    rpool_free(p);
}

/* Opening a connection spends the checkout's budget: against a frozen Redis, a call that
 * must connect (and SELECT) gives up after pool + command timeouts, not after the 2 s
 * connect timeout. */
static void test_connect_within_budget(void **state)
{
    (void)state;
    char url[160];
    struct rpool_config rc;
    char err[128];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/1", redis.port);
    rpool_config_defaults(&rc);
    rc.url = url;
    rc.size = 4;
    rc.min_idle = 0; /* nothing warm: the call has to connect */
    rc.pool_timeout_ms = 100;
    rc.connect_timeout_ms = 2000;
    rc.command_timeout_ms = 100;
    struct rpool *p = rpool_create(&rc, NULL, err, sizeof(err));
    assert_non_null(p);
    th_redis_pause(&redis);
    int64_t start = th_now_ms();
    enum rpool_status st = incr(p, "pool:budget", NULL);
    int64_t took = th_now_ms() - start;
    th_redis_resume(&redis);
    assert_true(st == RPOOL_CONN || st == RPOOL_TIMEOUT);
    assert_true(took < 600);
    assert_int_equal(incr(p, "pool:budget", NULL), RPOOL_OK);
    rpool_free(p);
}

/* ACL user + password, a database number, and a unix socket, all through REDIS_URL. */
static void test_auth_db_unix(void **state)
{
    (void)state;
    char sock[300], url[400];
    struct th_redis r2;
    char dir[256];
    assert_int_equal(th_tmpdir(dir, sizeof(dir)), 0);
    snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
    const char *extra[] = {"--unixsocket", sock, "--user", "alice", "on",
                           ">s3cr%t@pw",   "~*", "+@all",  NULL};
    assert_int_equal(th_redis_start(&r2, extra), 0);

    /* '%' and '@' in the password are percent-encoded in the URL. */
    snprintf(url, sizeof(url), "redis://alice:s3cr%%25t%%40pw@127.0.0.1:%d/3", r2.port);
    struct rpool *p = make_pool(url, 2, 200, 1000);
    long long v = 0;
    assert_int_equal(incr(p, "pool:db3", &v), RPOOL_OK);
    assert_int_equal(v, 1);
    rpool_free(p);

    snprintf(url, sizeof(url), "redis://alice:wrong@127.0.0.1:%d/0", r2.port);
    p = make_pool(url, 2, 200, 1000);
    assert_int_equal(incr(p, "pool:db3", NULL), RPOOL_CONN);
    rpool_free(p);

    snprintf(url, sizeof(url), "unix://%s?db=3", sock);
    struct rpool_config rc;
    char err[128];
    rpool_config_defaults(&rc);
    rc.url = url; /* the default user, database 3: the key alice made there */
    p = rpool_create(&rc, NULL, err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(incr(p, "pool:db3", &v), RPOOL_OK);
    assert_int_equal(v, 2);
    rpool_free(p);
    th_redis_stop(&r2);
    unlink(sock);
    rmdir(dir);
}

/* /ready's check: PING plus every script loaded; it loads what is missing. */
static void test_ready(void **state)
{
    (void)state;
    struct rpool *p = make_pool(redis.url, 2, 200, 200);
    char reason[64];
    redisReply *r = th_redis_cmd(&redis, "SCRIPT FLUSH");
    freeReplyObject(r);
    assert_int_equal(script_cached(), 0);
    assert_int_equal(rpool_ready(p, reason, sizeof(reason)), 0);
    assert_int_equal(script_cached(), 1);
    th_redis_pause(&redis);
    assert_int_equal(rpool_ready(p, reason, sizeof(reason)), -1);
    assert_string_equal(reason, "timeout");
    th_redis_resume(&redis);
    assert_int_equal(rpool_ready(p, reason, sizeof(reason)), 0);
    rpool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hundred_threads), cmocka_unit_test(test_exhaustion),
        cmocka_unit_test(test_script_flush),    cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_command_timeout), cmocka_unit_test(test_connect_within_budget),
        cmocka_unit_test(test_ready),           cmocka_unit_test(test_auth_db_unix),
        cmocka_unit_test(test_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
