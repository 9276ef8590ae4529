/* SPDX-License-Identifier: Apache-2.0 */
/* bench_client: the non-blocking Redis client (redis_client.h) on one event loop, keeping
 * N commands in flight — EVALSHA of the test_incr script on random keys; each reply issues
 * the next — for a fixed time. Prints one CSV line:
 *   in_flight,rps,p50_ms,p99_ms,errors,commands_per_write,client_cpu_us_per_cmd
 * Usage: bench_client REDIS_URL IN_FLIGHT SECONDS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "shared/loop.h"
#include "shared/redis_client.h"
#include "test_scripts.h"

#define BUCKETS 100001 /* 1 us buckets up to 100 ms, one overflow bucket */

struct bench {
    struct loop *loop;
    struct rclient *client;
    int64_t end_ms;
    uint64_t done, errors;
    uint32_t *hist;
    unsigned seed;
    int stopping;
};

struct slot {
    struct bench *b;
    struct timespec sent;
    char key[32];
};

static int64_t us_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000000 + (t.tv_nsec - t0->tv_nsec) / 1000;
}

static void issue(struct slot *s);

static void replied(void *arg, enum rcl_status st, redisReply *reply)
{
    struct slot *s = arg;
    struct bench *b = s->b;
    int64_t us = us_since(&s->sent);
    (void)reply;
    b->done++;
    b->errors += st != RCL_OK;
    b->hist[us < BUCKETS - 1 ? us : BUCKETS - 1]++;
    if (loop_now_ms(b->loop) < b->end_ms)
        issue(s);
    else if (!b->stopping) {
        b->stopping = 1;
        loop_stop(b->loop);
    }
}

static void issue(struct slot *s)
{
    struct bench *b = s->b;
    snprintf(s->key, sizeof(s->key), "bench:%d", rand_r(&b->seed) % 100000);
    const char *argv[] = {s->key, "1"};
    clock_gettime(CLOCK_MONOTONIC, &s->sent);
    if (rcl_eval(b->client, &script_test_incr, 1, 2, argv, NULL, 0, replied, s) != 0)
        abort();
}

static double percentile(const uint32_t *hist, uint64_t total, double p)
{
    uint64_t want = (uint64_t)((double)total * p), seen = 0;
    for (int i = 0; i < BUCKETS; i++)
        if ((seen += hist[i]) >= want && want > 0)
            return i / 1000.0;
    return 0;
}

static double cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_client REDIS_URL IN_FLIGHT SECONDS\n");
        return 2;
    }
    int n = atoi(argv[2]), seconds = atoi(argv[3]);
    char err[256] = "out of memory";
    struct bench b = {.seed = (unsigned)time(NULL), .hist = calloc(BUCKETS, sizeof(uint32_t))};
    struct rcl_config conf = {.url = argv[1],
                              .pool_size = 1,
                              .loops = 1,
                              .min_idle = 1,
                              .pool_timeout_ms = 1000,
                              .connect_timeout_ms = 1000,
                              .command_timeout_ms = 2000};
    struct slot *slots = calloc((size_t)n, sizeof(*slots));
    b.loop = loop_create(err, sizeof(err));
    if (!b.hist || !slots || !b.loop || !(b.client = rcl_create(b.loop, &conf, err, sizeof(err)))) {
        fprintf(stderr, "bench_client: %s\n", err);
        loop_free(b.loop);
        free(slots);
        free(b.hist);
        return 1;
    }
    double cpu0 = cpu_us();
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    b.end_ms = loop_update_now(b.loop) + seconds * 1000;
    for (int i = 0; i < n; i++) {
        slots[i].b = &b;
        issue(&slots[i]);
    }
    loop_run(b.loop);
    double secs = (double)us_since(&t0) / 1e6, cpu = cpu_us() - cpu0;
    struct rcl_stats st;
    rcl_stats(b.client, &st);
    printf("%d,%.0f,%.3f,%.3f,%llu,%.1f,%.2f\n", n, (double)b.done / secs,
           percentile(b.hist, b.done, 0.50), percentile(b.hist, b.done, 0.99),
           (unsigned long long)b.errors, st.writes ? (double)st.commands / (double)st.writes : 0,
           b.done ? cpu / (double)b.done : 0);
    rcl_free(b.client);
    loop_free(b.loop);
    free(slots);
    free(b.hist);
    return 0;
}
