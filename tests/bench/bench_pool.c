/* SPDX-License-Identifier: Apache-2.0 */
/* bench_pool: N threads running EVALSHA (the test_incr script on random keys) through the
 * pool for a fixed time; prints requests/s, p50, p99 and errors as one CSV line:
 *   threads,rps,p50_ms,p99_ms,errors
 * Usage: bench_pool REDIS_URL THREADS SECONDS */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/crypto.h"
#include "shared/log.h"
#include "shared/redis_pool.h"
#include "test_scripts.h"

/* Latency histogram: 1 us buckets up to 100 ms, one overflow bucket. */
#define BUCKETS 100001

struct shared {
    struct rpool *pool;
    int64_t end_ns;
    _Atomic uint64_t done, errors;
    _Atomic uint32_t *hist;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *worker(void *arg)
{
    struct shared *s = arg;
    unsigned seed = (unsigned)now_ns() ^ (unsigned)(uintptr_t)&seed;
    char key[32];
    const char *argv[] = {key, "1"};
    while (now_ns() < s->end_ns) {
        snprintf(key, sizeof(key), "bench:%d", rand_r(&seed) % 100000);
        redisReply *r = NULL;
        int64_t t0 = now_ns();
        enum rpool_status st = rpool_eval(s->pool, &script_test_incr, 1, 2, argv, NULL, 0, &r);
        int64_t us = (now_ns() - t0) / 1000;
        freeReplyObject(r);
        if (st != RPOOL_OK)
            atomic_fetch_add(&s->errors, 1);
        atomic_fetch_add(&s->done, 1);
        atomic_fetch_add(&s->hist[us < BUCKETS - 1 ? us : BUCKETS - 1], 1);
    }
    return NULL;
}

static double percentile_ms(_Atomic uint32_t *hist, uint64_t total, double q)
{
    uint64_t want = (uint64_t)((double)total * q), seen = 0;
    for (int i = 0; i < BUCKETS; i++) {
        seen += atomic_load(&hist[i]);
        if (seen > want)
            return (double)i / 1000.0;
    }
    return (double)(BUCKETS - 1) / 1000.0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_pool REDIS_URL THREADS SECONDS\n");
        return 2;
    }
    int threads = atoi(argv[2]), seconds = atoi(argv[3]);
    crypto_init();
    log_init("bench_pool", LOG_ERROR);
    struct rpool_config rc;
    char err[128];
    rpool_config_defaults(&rc);
    rc.url = argv[1];
    rc.size = threads; /* REDIS_POOL_SIZE >= expected concurrency, as documented */
    rc.min_idle = threads < 10 ? threads : 10;
    struct shared s = {.hist = calloc(BUCKETS, sizeof(*s.hist))};
    pthread_t *t = calloc((size_t)threads, sizeof(*t));
    char reason[64] = "out of memory";
    s.pool = rpool_create(&rc, NULL, err, sizeof(err));
    if (!s.pool || !s.hist || !t || rpool_ready(s.pool, reason, sizeof(reason)) != 0) {
        fprintf(stderr, "bench_pool: cannot start: %s\n", s.pool ? reason : err);
        rpool_free(s.pool);
        free(s.hist);
        free(t);
        return 1;
    }
    int64_t start = now_ns();
    s.end_ns = start + (int64_t)seconds * 1000000000;
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, &s);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double elapsed = (double)(now_ns() - start) / 1e9;
    uint64_t done = atomic_load(&s.done);
    printf("%d,%.0f,%.3f,%.3f,%llu\n", threads, (double)done / elapsed,
           percentile_ms(s.hist, done, 0.50), percentile_ms(s.hist, done, 0.99),
           (unsigned long long)atomic_load(&s.errors));
    rpool_free(s.pool);
    free(t);
    free(s.hist);
    return 0;
}
