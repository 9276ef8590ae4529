/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of ratelimitd over real sockets against a private redis-server: the API
 * (fields, headers, statuses), GCRA and sliding-window exactness against a reference read
 * on the Redis clock, no over-grant under concurrency, bad input, shadow mode, rules reload
 * and metrics. Long random sequences against reference models, and the deny cache, are in
 * test_ratelimitd_model.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/harness.h"
#include "scripts.h"
#include "test_ratelimitd_util.h"

static struct th_redis redis;
static struct th_proc rl;
static char rules_path[300];

/* g: gcra 10 per 2s burst 4 (interval 200 ms); c: 5 per 1h for cost tests; big: 50 per 1h
 * for the race; sw: sliding window 5 per 10s; sh: shadow; mt: 1 per 1h for the metrics. */
static const char RULES[] =
    "{\"rules\":["
    "{\"name\":\"g\",\"limit\":10,\"period\":\"2s\",\"burst\":4},"
    "{\"name\":\"c\",\"limit\":5,\"period\":\"1h\"},"
    "{\"name\":\"ip\",\"limit\":5,\"period\":\"1m\"},"
    "{\"name\":\"big\",\"limit\":50,\"period\":\"1h\"},"
    "{\"name\":\"sw\",\"algorithm\":\"sliding_window\",\"limit\":5,\"period\":\"10s\"},"
    "{\"name\":\"sh\",\"limit\":1,\"period\":\"1h\",\"shadow\":true},"
    "{\"name\":\"mt\",\"limit\":1,\"period\":\"1h\"}"
    "]}";

static int setup(void **state)
{
    (void)state;
    return rlt_start(&redis, &rl, RULES, "us-central1", rules_path, sizeof(rules_path));
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&rl, SIGTERM, 5000);
    th_redis_stop(&redis);
    return 0;
}

/* POST body; returns the parsed body (caller decrefs) and fills status. */
static json_t *post(const char *path, const char *body, int *status, struct th_resp *keep)
{
    struct th_resp r;
    assert_int_equal(th_post_json(rl.port, path, body, &r), 0);
    *status = r.status;
    json_t *j = th_json(&r);
    if (keep)
        *keep = r;
    else
        th_resp_free(&r);
    return j;
}

static json_t *check(const char *rule, const char *key, int cost, int *status)
{
    char body[1024];
    snprintf(body, sizeof(body), "{\"rule\":\"%s\",\"key\":\"%s\",\"cost\":%d}", rule, key, cost);
    return post("/v1/check", body, status, NULL);
}

static long long jint(const json_t *j, const char *k)
{
    return (long long)json_integer_value(json_object_get(j, k));
}
static int jbool(const json_t *j, const char *k)
{
    return json_is_true(json_object_get(j, k));
}
static const char *jstr(const json_t *j, const char *k)
{
    return json_string_value(json_object_get(j, k));
}

/* Redis TIME in microseconds. */
static long long redis_now_us(void)
{
    long long us = rlt_now_us(&redis);
    assert_true(us > 0);
    return us;
}

static long long redis_tat(const char *key)
{
    return rlt_hash_int(&redis, key, "tat");
}

static long long ceil_ms(long long us)
{
    return us <= 0 ? 0 : (us + 999) / 1000;
}

static void test_check_fields_and_headers(void **state)
{
    (void)state;
    struct th_resp r;
    int st;
    char h[128];
    json_t *j = post("/v1/check", "{\"rule\":\"ip\",\"key\":\"203.0.113.1\"}", &st, &r);
    assert_int_equal(st, 200);
    assert_true(jbool(j, "allowed"));
    assert_string_equal(jstr(j, "rule"), "ip");
    assert_int_equal(jint(j, "limit"), 5);
    assert_int_equal(jint(j, "remaining"), 4);
    assert_int_equal(jint(j, "reset_after_ms"), 12000);
    assert_int_equal(jint(j, "retry_after_ms"), 0);
    assert_string_equal(jstr(j, "region"), "us-central1");
    assert_string_equal(jstr(j, "source"), "redis");
    assert_false(jbool(j, "shadow"));
    assert_string_equal(th_header(&r, "RateLimit-Policy", h, sizeof(h)), "\"ip\";q=5;w=60");
    assert_string_equal(th_header(&r, "RateLimit", h, sizeof(h)), "\"ip\";r=4;t=12");
    assert_null(th_header(&r, "Retry-After", h, sizeof(h)));
    json_decref(j);
    th_resp_free(&r);
    for (int i = 0; i < 4; i++)
        json_decref(check("ip", "203.0.113.1", 1, &st));
    j = post("/v1/check", "{\"rule\":\"ip\",\"key\":\"203.0.113.1\"}", &st, &r);
    assert_int_equal(st, 429);
    assert_false(jbool(j, "allowed"));
    long long retry = jint(j, "retry_after_ms");
    assert_true(retry > 11000 && retry <= 12000);
    assert_non_null(th_header(&r, "Retry-After", h, sizeof(h)));
    assert_true(atoll(h) * 1000 >= retry);
    assert_int_equal(atoll(h), 12);
    assert_string_equal(th_header(&r, "RateLimit-Policy", h, sizeof(h)), "\"ip\";q=5;w=60");
    /* r = remaining, t = reset_after_ms in whole seconds rounded up (just under 60 s) */
    long long reset = jint(j, "reset_after_ms");
    assert_in_range(reset, 59000, 60000);
    char want[64];
    snprintf(want, sizeof(want), "\"ip\";r=0;t=%lld", (reset + 999) / 1000);
    assert_string_equal(th_header(&r, "RateLimit", h, sizeof(h)), want);
    json_decref(j);
    th_resp_free(&r);
    /* The key in Redis is exactly ratelimit:<region>:<rule>:<key>. */
    assert_int_equal(th_redis_int(&redis, "EXISTS ratelimit:us-central1:ip:203.0.113.1"), 1);
}

/* Burst B at once, then denial; remaining, reset_after and retry_after agree with the GCRA
 * reference (tat advances by exactly one interval per request) on the Redis clock. */
static void test_gcra_exact_burst_and_interval(void **state)
{
    (void)state;
    const long long interval = 200000, burst = 4;
    const char *key = "ratelimit:us-central1:g:exact";
    long long first_tat = 0;
    int st;
    for (int i = 0; i <= burst; i++) {
        long long before = redis_now_us();
        json_t *j = check("g", "exact", 1, &st);
        long long after = redis_now_us();
        long long tat = redis_tat(key);
        if (i == 0) {
            /* a fresh key: tat = now + one interval, now being the Redis time of the call */
            assert_in_range(tat, before + interval - 1, after + interval + 1);
            first_tat = tat;
        }
        if (i < burst) {
            assert_int_equal(st, 200);
            assert_true(llabs(tat - first_tat - i * interval) <= 1);
            assert_int_equal(jint(j, "remaining"), burst - 1 - i);
            assert_in_range(jint(j, "reset_after_ms"), ceil_ms(tat - after) - 1,
                            ceil_ms(tat - before) + 1);
        } else {
            assert_int_equal(st, 429);
            assert_int_equal(jint(j, "remaining"), 0);
            /* allow_at = tat + interval - burst * interval */
            long long allow_at = tat + interval - burst * interval;
            assert_in_range(jint(j, "retry_after_ms"), ceil_ms(allow_at - after) - 1,
                            ceil_ms(allow_at - before) + 1);
            assert_in_range(jint(j, "reset_after_ms"), ceil_ms(tat - after) - 1,
                            ceil_ms(tat - before) + 1);
            long long wait_us = allow_at - redis_now_us() + 2000;
            json_decref(j);
            usleep((useconds_t)(wait_us > 0 ? wait_us : 0));
            j = check("g", "exact", 1, &st);
            assert_int_equal(st, 200);
            json_decref(j);
            j = check("g", "exact", 1, &st);
            assert_int_equal(st, 429);
        }
        json_decref(j);
    }
}

static void test_cost_is_all_or_nothing(void **state)
{
    (void)state;
    int st;
    json_t *j = check("c", "cost", 3, &st);
    assert_int_equal(st, 200);
    assert_int_equal(jint(j, "remaining"), 2);
    json_decref(j);
    long long tat = redis_tat("ratelimit:us-central1:c:cost");
    j = check("c", "cost", 3, &st);
    assert_int_equal(st, 429);
    assert_int_equal(jint(j, "remaining"), 2);
    json_decref(j);
    assert_int_equal(redis_tat("ratelimit:us-central1:c:cost"), tat); /* nothing consumed */
    j = check("c", "cost", 2, &st);
    assert_int_equal(st, 200);
    assert_int_equal(jint(j, "remaining"), 0);
    json_decref(j);
}

/* Sliding window: the limit within a window, and retry_after from the reference formula
 * prev * (period - elapsed) / period + cur, evaluated at the Redis time of the request. */
static void test_sliding_window_reference(void **state)
{
    (void)state;
    const long long period = 10000000;
    int st;
    while ((redis_now_us() % period) > 6000000) /* stay inside one window */
        usleep(100000);
    for (int i = 0; i < 5; i++) {
        json_t *j = check("sw", "k", 1, &st);
        assert_int_equal(st, 200);
        assert_int_equal(jint(j, "remaining"), 4 - i);
        json_decref(j);
    }
    long long before = redis_now_us();
    json_t *j = check("sw", "k", 1, &st);
    long long after = redis_now_us();
    assert_int_equal(st, 429);
    /* cur = 5 = limit, prev = 0: retry = (period - elapsed) + period - 4/5 * period. */
    long long e_before = before % period, e_after = after % period;
    long long lo = ceil_ms((period - e_after) + period / 5),
              hi = ceil_ms((period - e_before) + period / 5);
    assert_in_range(jint(j, "retry_after_ms"), lo - 1, hi + 1);
    assert_in_range(jint(j, "reset_after_ms"), (2 * period - e_after) / 1000 - 1,
                    (2 * period - e_before) / 1000 + 1);
    json_decref(j);
    redisReply *r = th_redis_cmd(&redis, "HMGET ratelimit:us-central1:sw:k w c p");
    assert_non_null(r);
    assert_int_equal(atoll(r->element[0]->str), before / period);
    assert_int_equal(atoll(r->element[1]->str), 5);
    freeReplyObject(r);
}

static atomic_int race_allowed, race_denied, race_errors;
static void *race_client(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2; i++) {
        struct th_resp r;
        if (th_post_json(rl.port, "/v1/check", "{\"rule\":\"big\",\"key\":\"hot\"}", &r) != 0) {
            atomic_fetch_add(&race_errors, 1);
            continue;
        }
        if (r.status == 200)
            atomic_fetch_add(&race_allowed, 1);
        else if (r.status == 429)
            atomic_fetch_add(&race_denied, 1);
        else
            atomic_fetch_add(&race_errors, 1);
        th_resp_free(&r);
    }
    return NULL;
}

/* 100 concurrent clients, 200 requests on one key of burst 50 and a 72 s interval: the
 * model allows exactly 50. */
static void test_no_over_grant_under_concurrency(void **state)
{
    (void)state;
    pthread_t t[100];
    for (int i = 0; i < 100; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_client, NULL), 0);
    for (int i = 0; i < 100; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&race_errors), 0);
    assert_int_equal(atomic_load(&race_allowed), 50);
    assert_int_equal(atomic_load(&race_denied), 150);
}

static void test_batch_checks(void **state)
{
    (void)state;
    int st;
    struct th_resp r;
    char h[256];
    json_t *j = post("/v1/check",
                     "{\"checks\":[{\"rule\":\"c\",\"key\":\"b1\"},{\"rule\":\"c\",\"key\":\"b2\","
                     "\"cost\":5}]}",
                     &st, &r);
    assert_int_equal(st, 200);
    assert_true(jbool(j, "allowed"));
    json_t *res = json_object_get(j, "results");
    assert_int_equal(json_array_size(res), 2);
    assert_int_equal(jint(json_array_get(res, 0), "remaining"), 4);
    assert_int_equal(jint(json_array_get(res, 1), "remaining"), 0);
    assert_string_equal(th_header(&r, "RateLimit-Policy", h, sizeof(h)),
                        "\"c\";q=5;w=3600, \"c\";q=5;w=3600");
    /* one emission interval (720 s) used by b1, the whole bucket (3600 s) by b2 */
    assert_string_equal(th_header(&r, "RateLimit", h, sizeof(h)),
                        "\"c\";r=4;t=720, \"c\";r=0;t=3600");
    assert_null(th_header(&r, "Retry-After", h, sizeof(h)));
    json_decref(j);
    th_resp_free(&r);
    j = post("/v1/check",
             "{\"checks\":[{\"rule\":\"c\",\"key\":\"b1\"},{\"rule\":\"c\",\"key\":\"b2\"}]}", &st,
             &r);
    assert_int_equal(st, 429);
    assert_false(jbool(j, "allowed"));
    res = json_object_get(j, "results");
    assert_true(jbool(json_array_get(res, 0), "allowed"));
    assert_false(jbool(json_array_get(res, 1), "allowed"));
    /* Each check consumed independently: b1 took its second token although b2 was denied. */
    assert_int_equal(jint(json_array_get(res, 0), "remaining"), 3);
    /* Retry-After follows the denied check: 720 s for b2's next token. */
    long long retry = jint(json_array_get(res, 1), "retry_after_ms");
    assert_in_range(retry, 719000, 720000);
    assert_string_equal(th_header(&r, "Retry-After", h, sizeof(h)), "720");
    json_decref(j);
    th_resp_free(&r);
}

static void test_peek_reset_rules(void **state)
{
    (void)state;
    int st;
    json_decref(check("c", "pk", 2, &st));
    json_t *j = post("/v1/peek", "{\"rule\":\"c\",\"key\":\"pk\"}", &st, NULL);
    assert_int_equal(st, 200);
    assert_int_equal(jint(j, "remaining"), 3);
    json_decref(j);
    j = post("/v1/peek", "{\"rule\":\"c\",\"key\":\"pk\"}", &st, NULL);
    assert_int_equal(jint(j, "remaining"), 3); /* nothing consumed */
    json_decref(j);
    j = post("/v1/reset", "{\"rule\":\"c\",\"key\":\"pk\"}", &st, NULL);
    assert_int_equal(st, 200);
    assert_true(jbool(j, "reset"));
    json_decref(j);
    assert_int_equal(th_redis_int(&redis, "EXISTS ratelimit:us-central1:c:pk"), 0);
    j = check("c", "pk", 5, &st);
    assert_int_equal(st, 200);
    json_decref(j);
    struct th_resp r;
    assert_int_equal(th_http(rl.port, "GET", "/v1/rules", NULL, NULL, 0, &r), 0);
    j = th_json(&r);
    assert_string_equal(jstr(j, "region"), "us-central1");
    json_t *rules = json_object_get(j, "rules");
    assert_int_equal(json_array_size(rules), 7);
    json_t *first = json_array_get(rules, 0); /* sorted: big */
    assert_string_equal(jstr(first, "name"), "big");
    assert_string_equal(jstr(first, "algorithm"), "gcra");
    assert_int_equal(jint(first, "burst"), 50);
    assert_string_equal(jstr(first, "on_redis_failure"), "local");
    json_decref(j);
    th_resp_free(&r);
}

/* A check of rule "big" (50 per 1h) and key "rw" on connection fd: its status and source. */
static int check_on(int fd, int cost, char *source, size_t size)
{
    char body[96];
    struct th_resp r;
    snprintf(body, sizeof(body), "{\"rule\":\"big\",\"key\":\"rw\",\"cost\":%d}", cost);
    assert_int_equal(rlt_post_on(fd, "/v1/check", body, &r), 0);
    json_t *j = th_json(&r);
    assert_non_null(j);
    snprintf(source, size, "%s", jstr(j, "source"));
    json_decref(j);
    int st = r.status;
    th_resp_free(&r);
    return st;
}

/* Each HTTP worker keeps its own deny cache; a reset, on whichever worker, clears the key
 * in all of them before it is answered: no worker denies from a denial cached before it. */
static void test_reset_reaches_every_worker(void **state)
{
    (void)state;
    enum { CONNS = 12 };
    struct th_proc four;
    char rules[340], src[32];
    int fd[CONNS], st;
    snprintf(rules, sizeof(rules), "RATELIMIT_RULES_FILE=%s", rules_path);
    const char *env[] = {rules, "CLOUD_RUN_REGION=workers-1", "HTTP_THREADS=4", NULL};
    assert_int_equal(th_daemon_start(&four, "bin/ratelimitd", redis.url, env), 0);
    for (int i = 0; i < CONNS; i++) {
        fd[i] = th_connect(four.port);
        assert_true(fd[i] >= 0);
    }
    assert_int_equal(check_on(fd[0], 50, src, sizeof(src)), 200); /* the whole burst */
    /* Every connection's worker ends up with the denial of cost 1 in its cache. */
    for (int i = 0; i < CONNS; i++) {
        assert_int_equal(check_on(fd[i], 1, src, sizeof(src)), 429);
        assert_int_equal(check_on(fd[i], 1, src, sizeof(src)), 429);
        assert_string_equal(src, "cache");
    }
    struct th_resp r;
    assert_int_equal(th_post_json(four.port, "/v1/reset", "{\"rule\":\"big\",\"key\":\"rw\"}", &r),
                     0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    /* The key is fresh: 50 to spend, and no worker answers from its cache any more. */
    for (int i = 0; i < CONNS; i++) {
        st = check_on(fd[i], 1, src, sizeof(src));
        if (st != 200 || strcmp(src, "redis") != 0)
            fail_msg("connection %d after the reset: %d from %s", i, st, src);
        close(fd[i]);
    }
    th_proc_stop(&four, SIGTERM, 5000);
}

/* How many times Redis has run cmd (INFO commandstats), 0 if never. */
static long long redis_calls(const char *cmd)
{
    redisReply *r = th_redis_cmd(&redis, "INFO commandstats");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char needle[64];
    snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", cmd);
    const char *p = strstr(r->str, needle);
    long long n = p ? atoll(p + strlen(needle)) : 0;
    freeReplyObject(r);
    return n;
}

/* POST body to path and expect a problem document with this status and code. */
static void expect_problem(const char *path, const char *body, int status, const char *code)
{
    struct th_resp r;
    char ct[64];
    assert_int_equal(th_post_json(rl.port, path, body, &r), 0);
    json_t *j = th_json(&r);
    if (r.status != status || !j || !jstr(j, "code") || strcmp(jstr(j, "code"), code) != 0)
        fail_msg("%s %.80s: got %d %s", path, body, r.status, j ? r.body : "(not JSON)");
    assert_string_equal(th_header(&r, "Content-Type", ct, sizeof(ct)), "application/problem+json");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), status);
    json_decref(j);
    th_resp_free(&r);
}

static void assert_state_closed(void)
{
    struct th_resp r;
    assert_int_equal(th_http(rl.port, "GET", "/v1/breaker", NULL, NULL, 0, &r), 0);
    json_t *j = th_json(&r);
    assert_string_equal(jstr(j, "state"), "closed");
    json_decref(j);
    th_resp_free(&r);
}

/* Every bad request gets its documented 4xx and Redis is untouched. */
static void test_bad_input_consumes_nothing(void **state)
{
    (void)state;
    char big[700], longkey[600];
    memset(longkey, 'a', 513);
    longkey[513] = '\0';
    snprintf(big, sizeof(big), "{\"rule\":\"c\",\"key\":\"%s\"}", longkey);
    char checks17[2048];
    size_t off = (size_t)snprintf(checks17, sizeof(checks17), "{\"checks\":[");
    for (int i = 0; i < 17; i++)
        off += (size_t)snprintf(checks17 + off, sizeof(checks17) - off,
                                "%s{\"rule\":\"c\",\"key\":\"z\"}", i ? "," : "");
    snprintf(checks17 + off, sizeof(checks17) - off, "]}");
    struct {
        const char *body;
        int status;
        const char *code;
    } cases[] = {
        {"{\"rule\":\"nope\",\"key\":\"k\"}", 404, "unknown_rule"},
        {"{\"rule\":\"c\",\"key\":\"\"}", 400, "invalid_request"},
        {big, 400, "invalid_request"},
        {"{\"rule\":\"c\",\"key\":\"a\\u0001b\"}", 400, "invalid_request"},
        {"{\"rule\":\"c\",\"key\":\"a\\nb\"}", 400, "invalid_request"},
        {"{\"rule\":\"c\",\"key\":\"k\",\"cost\":0}", 400, "invalid_request"},
        {"{\"rule\":\"c\",\"key\":\"k\",\"cost\":6}", 400, "invalid_request"},
        {"{\"rule\":\"c\",\"key\":\"k\",\"cost\":1.5}", 400, "invalid_request"},
        {"{\"rule\":\"c\",\"key\":\"k\",\"cost\":\"1\"}", 400, "invalid_request"},
        {"{\"rule\":\"c\",\"key\":\"k\",\"cost\":99999999999999999999}", 400, "invalid_json"},
        {"{\"rule\":\"c\",\"key\":7}", 400, "invalid_request"},
        {"{\"rule\":\"c\"}", 400, "invalid_request"},
        {"{\"rule\":\"c\",\"key\":\"k\"", 400, "invalid_json"},
        {"[1,2]", 400, "invalid_json"},
        {"{\"checks\":[]}", 400, "invalid_request"},
        {checks17, 400, "invalid_request"},
        {"{\"checks\":[{\"rule\":\"c\",\"key\":\"z\"},{\"rule\":\"nope\",\"key\":\"z\"}]}", 404,
         "unknown_rule"},
        {"{\"checks\":[{\"rule\":\"c\",\"key\":\"z\"},{\"rule\":\"c\",\"key\":\"z\",\"cost\":9}]}",
         400, "invalid_request"},
        {"{\"rule\":\"c\",\"key\":\"k\",\"extra\":1}", 400, "invalid_request"},
    };
    long long evals = redis_calls("evalsha"), dels = redis_calls("del");
    long long keys = th_redis_int(&redis, "DBSIZE");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_problem("/v1/check", cases[i].body, cases[i].status, cases[i].code);
    /* peek and reset take {rule, key} and nothing else */
    const char *rk[][3] = {
        {"{\"rule\":\"c\",\"key\":\"k\",\"cost\":1}", "400", "invalid_request"},
        {"{\"rule\":\"nope\",\"key\":\"k\"}", "404", "unknown_rule"},
        {"{\"rule\":\"c\",\"key\":\"\"}", "400", "invalid_request"},
        {"{\"rule\":\"c\",\"key\":\"a\\tb\"}", "400", "invalid_request"},
        {"{\"rule\":\"c\",\"key\":\"a\\u007fb\"}", "400", "invalid_request"},
        {big, "400", "invalid_request"},
        {"{\"rule\":\"c\"}", "400", "invalid_request"},
        {"{\"rule\":\"c\",", "400", "invalid_json"},
        {"\"c\"", "400", "invalid_json"},
        {"{\"checks\":[{\"rule\":\"c\",\"key\":\"z\"}]}", "400", "invalid_request"},
    };
    for (size_t i = 0; i < sizeof(rk) / sizeof(rk[0]); i++) {
        expect_problem("/v1/peek", rk[i][0], atoi(rk[i][1]), rk[i][2]);
        expect_problem("/v1/reset", rk[i][0], atoi(rk[i][1]), rk[i][2]);
    }
    const char *brk[] = {"{\"action\":\"explode\"}", "{}", "{\"action\":1}",
                         "{\"action\":\"reset\",\"x\":1}", "{\"action\":"};
    for (size_t i = 0; i < sizeof(brk) / sizeof(brk[0]); i++)
        expect_problem("/v1/breaker", brk[i], 400, i == 4 ? "invalid_json" : "invalid_request");
    struct th_resp resp;
    const char *plain[] = {"Content-Type: text/plain", NULL};
    assert_int_equal(
        th_http(rl.port, "POST", "/v1/check", plain, "{\"rule\":\"c\",\"key\":\"k\"}", 22, &resp),
        0);
    assert_int_equal(resp.status, 415);
    th_resp_free(&resp);
    assert_state_closed();
    /* Nothing reached Redis: no script ran, nothing was deleted, no key appeared. */
    assert_int_equal(redis_calls("evalsha"), evals);
    assert_int_equal(redis_calls("del"), dels);
    assert_true(th_redis_int(&redis, "DBSIZE") <= keys);
    assert_int_equal(th_redis_int(&redis, "EXISTS ratelimit:us-central1:c:z"), 0);
    assert_int_equal(th_redis_int(&redis, "EXISTS ratelimit:us-central1:c:k"), 0);
    /* The bounds themselves are accepted: a 512-byte key, 16 checks, cost = burst. */
    int st;
    longkey[512] = '\0';
    snprintf(big, sizeof(big), "{\"rule\":\"c\",\"key\":\"%s\",\"cost\":5}", longkey);
    json_decref(post("/v1/check", big, &st, NULL));
    assert_int_equal(st, 200);
    char key512[640];
    snprintf(key512, sizeof(key512), "ratelimit:us-central1:c:%s", longkey);
    assert_int_equal(th_redis_int(&redis, "EXISTS %s", key512), 1);
    memcpy(checks17 + off - strlen(",{\"rule\":\"c\",\"key\":\"z\"}"), "]}", 3);
    json_t *j = post("/v1/check", checks17, &st, NULL);
    assert_int_equal(json_array_size(json_object_get(j, "results")), 16);
    json_decref(j);
    assert_int_equal(redis_calls("evalsha"), evals + 17);
}

/* Both scripts run directly by EVALSHA: the reply shape and the consume/peek flag. */
static void test_scripts_directly(void **state)
{
    (void)state;
    /* gcra: period 1 s, limit 10, burst 2, cost 1, consume */
    redisReply *r =
        th_redis_cmd(&redis, "EVALSHA %s 1 direct:g 1000000 10 2 1 1", script_ratelimit_gcra.sha1);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 4);
    assert_int_equal(r->element[0]->integer, 1);
    assert_int_equal(r->element[1]->integer, 1);
    assert_in_range(r->element[2]->integer, 99000, 100000);
    assert_int_equal(r->element[3]->integer, 0);
    freeReplyObject(r);
    assert_true(th_redis_int(&redis, "PTTL direct:g") > 0);
    /* sliding: period 10 s, limit 3, cost 3, peek: allowed, nothing stored */
    r = th_redis_cmd(&redis, "EVALSHA %s 1 direct:s 10000000 3 3 0", script_ratelimit_sliding.sha1);
    assert_non_null(r);
    assert_int_equal(r->elements, 4);
    assert_int_equal(r->element[0]->integer, 1);
    assert_int_equal(r->element[1]->integer, 3);
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "EXISTS direct:s"), 0);
    r = th_redis_cmd(&redis, "EVALSHA %s 1 direct:s 10000000 3 3 1", script_ratelimit_sliding.sha1);
    assert_int_equal(r->element[0]->integer, 1);
    assert_int_equal(r->element[1]->integer, 0);
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "HGET direct:s c"), 3);
    freeReplyObject(th_redis_cmd(&redis, "DEL direct:g direct:s"));
}

/* SCRIPT FLUSH behind the daemon's back: the next check reloads the script and decides. */
static void test_script_flush_is_survived(void **state)
{
    (void)state;
    int st;
    freeReplyObject(th_redis_cmd(&redis, "SCRIPT FLUSH"));
    json_t *j = check("c", "flushed", 1, &st);
    assert_int_equal(st, 200);
    assert_string_equal(jstr(j, "source"), "redis");
    json_decref(j);
    assert_int_equal(th_redis_int(&redis, "EXISTS ratelimit:us-central1:c:flushed"), 1);
}

static void test_shadow_rule_always_allows(void **state)
{
    (void)state;
    int st;
    json_t *j = check("sh", "s", 1, &st);
    assert_int_equal(st, 200);
    assert_true(jbool(j, "shadow"));
    assert_true(jbool(j, "would_allow"));
    json_decref(j);
    long long tat = redis_tat("ratelimit:us-central1:sh:s"); /* counted in Redis */
    assert_true(tat > 0);
    struct th_resp r;
    char h[64];
    j = post("/v1/check", "{\"rule\":\"sh\",\"key\":\"s\"}", &st, &r);
    assert_int_equal(st, 200);
    assert_true(jbool(j, "allowed"));
    assert_true(jbool(j, "shadow"));
    assert_false(jbool(j, "would_allow"));
    assert_null(th_header(&r, "Retry-After", h, sizeof(h)));
    json_decref(j);
    th_resp_free(&r);
    assert_int_equal(redis_tat("ratelimit:us-central1:sh:s"), tat); /* a denial consumes nothing */
    /* Shadow is per rule: another rule of the same daemon still enforces. */
    json_decref(check("c", "shadow-neighbour", 5, &st));
    j = check("c", "shadow-neighbour", 1, &st);
    assert_int_equal(st, 429);
    assert_false(jbool(j, "shadow"));
    assert_null(json_object_get(j, "would_allow"));
    json_decref(j);
}

/* RATELIMIT_SHADOW=true: every rule decides and counts, but the answer always allows. */
static void test_global_shadow_mode(void **state)
{
    (void)state;
    struct th_proc shadow;
    struct th_resp r;
    char rules[340];
    snprintf(rules, sizeof(rules), "RATELIMIT_RULES_FILE=%s", rules_path);
    const char *env[] = {rules, "CLOUD_RUN_REGION=shadow-1", "RATELIMIT_SHADOW=true", NULL};
    assert_int_equal(th_daemon_start(&shadow, "bin/ratelimitd", redis.url, env), 0);
    int port = shadow.port;
    int fd = th_connect(port); /* one connection: one worker, one deny cache */
    assert_true(fd >= 0);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(rlt_post_on(fd, "/v1/check", "{\"rule\":\"c\",\"key\":\"s\"}", &r), 0);
        json_t *j = th_json(&r);
        assert_int_equal(r.status, 200);
        assert_true(jbool(j, "allowed"));
        assert_true(jbool(j, "shadow"));
        assert_int_equal(jbool(j, "would_allow"), i < 5); /* counts are still consumed */
        assert_string_equal(jstr(j, "source"), i < 6 ? "redis" : "cache");
        json_decref(j);
        th_resp_free(&r);
    }
    close(fd);
    /* The real decisions are what the metrics count. */
    assert_int_equal(th_http(port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    const char *want[] = {
        "ratelimitd_decisions_total{rule=\"c\",decision=\"allowed\",source=\"redis\"} 5\n",
        "ratelimitd_decisions_total{rule=\"c\",decision=\"denied\",source=\"redis\"} 1\n",
        "ratelimitd_decisions_total{rule=\"c\",decision=\"denied\",source=\"cache\"} 1\n",
        "ratelimitd_deny_cache_entries 1\n", NULL};
    for (int i = 0; want[i]; i++)
        if (!strstr(r.body, want[i]))
            fail_msg("missing in /metrics: %s", want[i]);
    th_resp_free(&r);
    th_proc_stop(&shadow, SIGTERM, 5000);
}

/* How many times the daemon has logged needle so far. */
static int log_count(const char *needle)
{
    char *log = th_proc_log(&rl);
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, needle)); p++)
        n++;
    free(log);
    return n;
}

/* SIGHUP, then wait until the daemon has logged needle once more. */
static void reload_and_wait(const char *needle)
{
    int before = log_count(needle);
    kill(rl.pid, SIGHUP);
    for (int i = 0; i < 250 && log_count(needle) == before; i++)
        usleep(20000);
    assert_int_equal(log_count(needle), before + 1);
}

/* The names of the loaded rules, comma-separated, from GET /v1/rules. */
static void rule_names(char *out, size_t size)
{
    struct th_resp r;
    assert_int_equal(th_http(rl.port, "GET", "/v1/rules", NULL, NULL, 0, &r), 0);
    json_t *j = th_json(&r), *rules = json_object_get(j, "rules");
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(rules) && off < size; i++)
        off += (size_t)snprintf(out + off, size - off, "%s%s", i ? "," : "",
                                jstr(json_array_get(rules, i), "name"));
    json_decref(j);
    th_resp_free(&r);
}

static void test_reload_on_sighup(void **state)
{
    (void)state;
    char names[256];
    int st;
    /* Invalid files (a rule without limit, broken JSON, no file at all) are refused with a
     * log line, and every old rule stays in force. */
    const char *bad[] = {"{\"rules\":[{\"name\":\"bad\"}]}", "{\"rules\":[", NULL};
    for (int i = 0; i < 3; i++) {
        if (i < 2)
            assert_int_equal(th_write_file(rules_path, bad[i]), 0);
        else
            assert_int_equal(unlink(rules_path), 0);
        reload_and_wait("rules reload refused");
        rule_names(names, sizeof(names));
        assert_string_equal(names, "big,c,g,ip,mt,sh,sw");
        json_t *j = check("g", "reload", 1, &st);
        assert_int_equal(st, 200);
        json_decref(j);
    }
    json_decref(check("c", "reload", 1, &st));
    assert_int_equal(st, 200);
    assert_int_equal(
        th_write_file(rules_path,
                      "{\"rules\":[{\"name\":\"c\",\"limit\":9,\"period\":\"1h\"},"
                      "{\"name\":\"fresh\",\"limit\":1,\"period\":\"1s\",\"on_redis_failure\":"
                      "\"closed\"}]}"),
        0);
    reload_and_wait("rules reloaded");
    rule_names(names, sizeof(names));
    assert_string_equal(names, "c,fresh");
    /* The state in Redis is kept and read under the new numbers: the stored tat is one old
     * interval (720 s) ahead, 1.8 new intervals of 400 s; one more request makes 2.8, so
     * floor(9 - 2.8) = 6 remain (a fresh key would have 8). */
    json_t *j = check("c", "reload", 1, &st);
    assert_int_equal(jint(j, "limit"), 9);
    assert_int_equal(jint(j, "remaining"), 6);
    json_decref(j);
    j = check("g", "x", 1, &st);
    assert_int_equal(st, 404);
    json_decref(j);
    assert_int_equal(th_write_file(rules_path, RULES), 0);
    reload_and_wait("rules reloaded");
    rule_names(names, sizeof(names));
    assert_string_equal(names, "big,c,g,ip,mt,sh,sw");
}

/* Every metric family of the contract, with exact values where this test caused them: one
 * allowed and one denied by Redis, then one denied by the deny cache. */
static void test_metrics_families(void **state)
{
    (void)state;
    struct th_resp r;
    const char *sources[] = {"redis", "redis", "cache"};
    int fd = th_connect(rl.port); /* one connection: one worker, one deny cache */
    assert_true(fd >= 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rlt_post_on(fd, "/v1/check", "{\"rule\":\"mt\",\"key\":\"m\"}", &r), 0);
        assert_int_equal(r.status, i == 0 ? 200 : 429);
        json_t *j = th_json(&r);
        assert_string_equal(jstr(j, "source"), sources[i]);
        json_decref(j);
        th_resp_free(&r);
    }
    close(fd);
    assert_int_equal(th_http(rl.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    const char *want[] = {
        "ratelimitd_decisions_total{rule=\"ip\",decision=\"allowed\",source=\"redis\"} 5\n",
        "ratelimitd_decisions_total{rule=\"mt\",decision=\"allowed\",source=\"redis\"} 1\n",
        "ratelimitd_decisions_total{rule=\"mt\",decision=\"denied\",source=\"redis\"} 1\n",
        "ratelimitd_decisions_total{rule=\"mt\",decision=\"denied\",source=\"cache\"} 1\n",
        "# TYPE ratelimitd_decisions_total counter\n",
        "ratelimitd_breaker_state 0\n",
        "# TYPE ratelimitd_breaker_state gauge\n",
        "ratelimitd_breaker_rejected_probes_total 0\n",
        "# TYPE ratelimitd_breaker_rejected_probes_total counter\n",
        "ratelimitd_deny_cache_entries ",
        "# TYPE ratelimitd_deny_cache_entries gauge\n",
        "# TYPE ratelimitd_fallback_decisions_total counter\n",
        "# TYPE ratelimitd_breaker_transitions_total counter\n",
        NULL};
    for (int i = 0; want[i]; i++)
        if (!strstr(r.body, want[i]))
            fail_msg("missing in /metrics: %s", want[i]);
    /* No fallback and no transition happened here (test_ratelimitd_breaker counts those):
     * every fallback mode is shown, at 0 */
    assert_non_null(strstr(r.body, "\nratelimitd_fallback_decisions_total{mode=\"local\"} 0\n"));
    assert_non_null(strstr(r.body, "\nratelimitd_fallback_decisions_total{mode=\"open\"} 0\n"));
    assert_non_null(strstr(r.body, "\nratelimitd_fallback_decisions_total{mode=\"closed\"} 0\n"));
    assert_null(strstr(r.body, "ratelimitd_breaker_transitions_total{"));
    const char *gauge = strstr(r.body, "\nratelimitd_deny_cache_entries ");
    assert_non_null(gauge);
    assert_true(atoll(gauge + strlen("\nratelimitd_deny_cache_entries ")) >= 1);
    th_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_fields_and_headers),
        cmocka_unit_test(test_gcra_exact_burst_and_interval),
        cmocka_unit_test(test_cost_is_all_or_nothing),
        cmocka_unit_test(test_sliding_window_reference),
        cmocka_unit_test(test_no_over_grant_under_concurrency),
        cmocka_unit_test(test_batch_checks),
        cmocka_unit_test(test_peek_reset_rules),
        cmocka_unit_test(test_reset_reaches_every_worker),
        cmocka_unit_test(test_bad_input_consumes_nothing),
        cmocka_unit_test(test_scripts_directly),
        cmocka_unit_test(test_script_flush_is_survived),
        cmocka_unit_test(test_shadow_rule_always_allows),
        cmocka_unit_test(test_global_shadow_mode),
        cmocka_unit_test(test_reload_on_sighup),
        cmocka_unit_test(test_metrics_families),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
