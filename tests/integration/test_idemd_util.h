/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by idemd's integration tests (header-only: each test binary is one source
 * file): starting idemd, posting to it with an expected status, claims posted from threads
 * of their own, reading JSON members, snapshots of a record's hash and values of /metrics. */
#ifndef TEST_IDEMD_UTIL_H
#define TEST_IDEMD_UTIL_H

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/harness.h"

static inline void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Start idemd against redis_url with LOG_LEVEL=debug, a 1 KiB response limit and the extra
 * "NAME=value" settings (NULL-terminated, may be NULL; later ones win). */
static inline int start_idemd(struct th_proc *p, const char *redis_url, const char *const *extra)
{
    const char *env[TH_DAEMON_EXTRA_MAX] = {"LOG_LEVEL=debug", "IDEM_MAX_RESPONSE_BYTES=1KiB"};
    for (int i = 0; extra && extra[i] && i + 3 < TH_DAEMON_EXTRA_MAX; i++)
        env[i + 2] = extra[i];
    return th_daemon_start(p, "bin/idemd", redis_url, env);
}

/* POST json to idemd; asserts the status; returns the parsed body (caller decrefs). */
static inline json_t *post(int port, const char *path, int want, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline json_t *post(int port, const char *path, int want, const char *fmt, ...)
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

/* GET path; asserts the status; returns the parsed body (caller decrefs). */
static inline json_t *get(int port, const char *path, int want)
{
    struct th_resp r;
    assert_int_equal(th_http(port, "GET", path, NULL, NULL, 0, &r), 0);
    if (r.status != want)
        fail_msg("GET %s: want %d, got %d: %s", path, want, r.status, r.body);
    json_t *j = th_json(&r);
    assert_non_null(j);
    th_resp_free(&r);
    return j;
}

static inline const char *jstr(json_t *j, const char *name)
{
    const char *s = json_string_value(json_object_get(j, name));
    if (!s)
        fail_msg("no string member \"%s\"", name);
    return s;
}

static inline long long jint(json_t *j, const char *name)
{
    json_t *v = json_object_get(j, name);
    if (!json_is_integer(v))
        fail_msg("no integer member \"%s\"", name);
    return json_integer_value(v);
}

/* Claim scope/key with fingerprint fp on port (201 claimed expected); the lease token goes
 * into out (64 bytes) and is returned. */
static inline const char *claim_token(int port, const char *scope, const char *key, const char *fp,
                                      char *out)
{
    json_t *j = post(port, "/v1/claim", 201,
                     "{\"scope\":\"%s\",\"key\":\"%s\",\"fingerprint\":\"%s\"}", scope, key, fp);
    assert_string_equal(jstr(j, "outcome"), "claimed");
    snprintf(out, 64, "%s", jstr(j, "lease_token"));
    json_decref(j);
    return out;
}

/* The whole hash of key as one string "field=value;..." in Redis's order, for comparing a
 * record before and after (caller frees). */
static inline char *snapshot(struct th_redis *rd, const char *key)
{
    redisReply *r = th_redis_cmd(rd, "HGETALL %s", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    size_t cap = 64;
    for (size_t i = 0; i < r->elements; i++)
        cap += r->element[i]->len + 2;
    char *out = calloc(1, cap);
    assert_non_null(out);
    size_t at = 0;
    for (size_t i = 0; i < r->elements; i++)
        at += (size_t)snprintf(out + at, cap - at, "%s%s", r->element[i]->str, i % 2 ? ";" : "=");
    freeReplyObject(r);
    return out;
}

/* The value of one series of /metrics (e.g. "idemd_releases_total" or
 * "idemd_claims_total{outcome=\"claimed\"}"), 0 when it is not exported yet. */
static inline double metric_value(int port, const char *series)
{
    struct th_resp r;
    double v = 0;
    size_t n = strlen(series);
    assert_int_equal(th_http(port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    const char *line = r.body;
    while (line) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            v = strtod(line + n + 1, NULL);
            break;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    th_resp_free(&r);
    return v;
}

/* calls=N of cmdstat_<name> in rd's INFO commandstats (0 when it never ran). */
static inline long long command_calls(struct th_redis *rd, const char *name)
{
    char needle[64];
    long long n = 0;
    snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", name);
    redisReply *info = th_redis_cmd(rd, "INFO commandstats");
    const char *at = info && info->str ? strstr(info->str, needle) : NULL;
    if (at)
        n = atoll(at + strlen(needle));
    freeReplyObject(info);
    return n;
}

/* One claim in a thread of its own: posts body to port, records the answer and its time. */
struct waiter {
    const char *body;
    struct th_resp resp;
    int64_t took_ms;
    pthread_t thread;
    int port;
    atomic_int done;
};

static inline void *wait_claim(void *p)
{
    struct waiter *w = p;
    int64_t t0 = th_now_ms();
    if (th_post_json(w->port, "/v1/claim", w->body, &w->resp) != 0)
        w->resp.status = -1;
    w->took_ms = th_now_ms() - t0;
    atomic_store(&w->done, 1);
    return NULL;
}

/* Start w posting body (which outlives the thread) to port. */
static inline void start_waiter(struct waiter *w, int port, const char *body)
{
    *w = (struct waiter){.port = port, .body = body};
    assert_int_equal(pthread_create(&w->thread, NULL, wait_claim, w), 0);
}

/* A test file that defines IDEM_TEST_REDIS before including this gets the global `redis`
 * and a `reset` (FLUSHALL) for cmocka; with IDEM_TEST_DAEMON also, the global `idemd` and
 * the group `setup` / `teardown` that start and stop both. */
#if defined(IDEM_TEST_REDIS) || defined(IDEM_TEST_DAEMON)
static struct th_redis redis;

static inline int reset(void **state)
{
    (void)state;
    freeReplyObject(th_redis_cmd(&redis, "FLUSHALL"));
    return 0;
}
#endif

#ifdef IDEM_TEST_DAEMON
static struct th_proc idemd;

static inline int setup(void **state)
{
    (void)state;
    if (th_redis_start(&redis, NULL) != 0)
        return -1;
    return start_idemd(&idemd, redis.url, NULL);
}

static inline int teardown(void **state)
{
    (void)state;
    th_proc_stop(&idemd, SIGTERM, 5000);
    th_redis_stop(&redis);
    return 0;
}
#endif

#endif
