/* Integration tests of ratelimitd over real sockets against a private redis-server: the API
 * (fields, headers, statuses), GCRA and sliding-window exactness against a reference read
 * on the Redis clock, no over-grant under concurrency, bad input, the deny cache, shadow
 * mode, rules reload and metrics. */
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

static struct th_redis redis;
static struct th_proc rl;
static char rules_path[300];

/* g: gcra 10 per 2s burst 4 (interval 200 ms); c: 5 per 1h for cost tests; big: 50 per 1h
 * for the race; sw: sliding window 5 per 10s; sh: shadow; dc: the deny-cache sequence. */
static const char RULES[] =
    "{\"rules\":["
    "{\"name\":\"g\",\"limit\":10,\"period\":\"2s\",\"burst\":4},"
    "{\"name\":\"c\",\"limit\":5,\"period\":\"1h\"},"
    "{\"name\":\"ip\",\"limit\":5,\"period\":\"1m\"},"
    "{\"name\":\"big\",\"limit\":50,\"period\":\"1h\"},"
    "{\"name\":\"sw\",\"algorithm\":\"sliding_window\",\"limit\":5,\"period\":\"10s\"},"
    "{\"name\":\"sh\",\"limit\":1,\"period\":\"1h\",\"shadow\":true},"
    "{\"name\":\"dc\",\"limit\":20,\"period\":\"1s\",\"burst\":3}"
    "]}";

static int setup(void **state)
{
    (void)state;
    char dir[256], rules[340];
    if (th_redis_start(&redis, NULL) != 0 || th_tmpdir(dir, sizeof(dir)) != 0)
        return -1;
    snprintf(rules_path, sizeof(rules_path), "%s/rules.json", dir);
    if (th_write_file(rules_path, RULES) != 0)
        return -1;
    snprintf(rules, sizeof(rules), "RATELIMIT_RULES_FILE=%s", rules_path);
    const char *env[] = {rules, "CLOUD_RUN_REGION=us-central1", "REDIS_COMMAND_TIMEOUT=1s", NULL};
    return th_daemon_start(&rl, "bin/ratelimitd", redis.url, env);
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
    redisReply *r = th_redis_cmd(&redis, "TIME");
    assert_non_null(r);
    long long us = atoll(r->element[0]->str) * 1000000LL + atoll(r->element[1]->str);
    freeReplyObject(r);
    return us;
}

static long long redis_tat(const char *key)
{
    redisReply *r = th_redis_cmd(&redis, "HGET %s tat", key);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
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
        if (i == 0)
            first_tat = tat;
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
    json_decref(j);
    th_resp_free(&r);
    j = post("/v1/check",
             "{\"checks\":[{\"rule\":\"c\",\"key\":\"b1\"},{\"rule\":\"c\",\"key\":\"b2\"}]}", &st,
             NULL);
    assert_int_equal(st, 429);
    assert_false(jbool(j, "allowed"));
    res = json_object_get(j, "results");
    assert_true(jbool(json_array_get(res, 0), "allowed"));
    assert_false(jbool(json_array_get(res, 1), "allowed"));
    json_decref(j);
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
    long long dbsize = th_redis_int(&redis, "DBSIZE");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int st;
        json_t *j = post("/v1/check", cases[i].body, &st, NULL);
        if (st != cases[i].status || !j || strcmp(jstr(j, "code"), cases[i].code) != 0)
            fail_msg("case %zu (%s): got %d %s", i, cases[i].body, st, j ? jstr(j, "code") : "");
        json_decref(j);
    }
    int st;
    json_t *j = post("/v1/peek", "{\"rule\":\"c\",\"key\":\"k\",\"cost\":1}", &st, NULL);
    assert_int_equal(st, 400);
    json_decref(j);
    j = post("/v1/reset", "{\"rule\":\"nope\",\"key\":\"k\"}", &st, NULL);
    assert_int_equal(st, 404);
    json_decref(j);
    j = post("/v1/breaker", "{\"action\":\"explode\"}", &st, NULL);
    assert_int_equal(st, 400);
    json_decref(j);
    assert_int_equal(th_redis_int(&redis, "DBSIZE"), dbsize);
    assert_int_equal(th_redis_int(&redis, "EXISTS ratelimit:us-central1:c:z"), 0);
}

/* Would Redis alone allow this request now? A peek by EVALSHA of the same script. */
static int redis_would_allow(const char *key, int cost)
{
    redisReply *r = th_redis_cmd(&redis, "EVALSHA %s 1 %s 1000000 20 3 %d 0",
                                 script_ratelimit_gcra.sha1, key, cost);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    int allowed = (int)r->element[0]->integer;
    freeReplyObject(r);
    return allowed;
}

/* A long random sequence: every denial the cache gives, Redis alone would give too. */
static void test_deny_cache_never_denies_what_redis_allows(void **state)
{
    (void)state;
    srand(42);
    int cache_hits = 0, checked = 0;
    for (int i = 0; i < 400; i++) {
        int st, cost = 1 + rand() % 3;
        json_t *j = check("dc", "seq", cost, &st);
        if (strcmp(jstr(j, "source"), "cache") == 0) {
            cache_hits++;
            assert_int_equal(st, 429);
            /* Only when the answer is not about to lapse before our own peek lands. */
            if (jint(j, "retry_after_ms") >= 5) {
                checked++;
                assert_false(redis_would_allow("ratelimit:us-central1:dc:seq", cost));
            }
        }
        json_decref(j);
        if (rand() % 4 == 0)
            usleep((useconds_t)(rand() % 60000));
    }
    assert_true(cache_hits > 20);
    assert_true(checked > 10);
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
    json_decref(check("sh", "s", 1, &st));
    json_t *j = check("sh", "s", 1, &st);
    assert_int_equal(st, 200);
    assert_true(jbool(j, "allowed"));
    assert_true(jbool(j, "shadow"));
    assert_false(jbool(j, "would_allow"));
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
    for (int i = 0; i < 7; i++) {
        assert_int_equal(th_post_json(port, "/v1/check", "{\"rule\":\"c\",\"key\":\"s\"}", &r), 0);
        json_t *j = th_json(&r);
        assert_int_equal(r.status, 200);
        assert_true(jbool(j, "allowed"));
        assert_true(jbool(j, "shadow"));
        assert_int_equal(jbool(j, "would_allow"), i < 5); /* counts are still consumed */
        json_decref(j);
        th_resp_free(&r);
    }
    th_proc_stop(&shadow, SIGTERM, 5000);
}

static void test_reload_on_sighup(void **state)
{
    (void)state;
    struct th_resp r;
    int st;
    assert_int_equal(th_write_file(rules_path, "{\"rules\":[{\"name\":\"bad\"}]}"), 0);
    kill(rl.pid, SIGHUP);
    for (int i = 0; i < 50 && !th_proc_log_contains(&rl, "rules reload refused"); i++)
        usleep(20000);
    assert_true(th_proc_log_contains(&rl, "rules reload refused"));
    json_t *j = check("c", "reload", 1, &st);
    assert_int_equal(st, 200); /* the old rules stay */
    json_decref(j);
    assert_int_equal(
        th_write_file(rules_path,
                      "{\"rules\":[{\"name\":\"c\",\"limit\":9,\"period\":\"1h\"},"
                      "{\"name\":\"fresh\",\"limit\":1,\"period\":\"1s\",\"on_redis_failure\":"
                      "\"closed\"}]}"),
        0);
    kill(rl.pid, SIGHUP);
    for (int i = 0; i < 50 && !th_proc_log_contains(&rl, "rules reloaded"); i++)
        usleep(20000);
    assert_int_equal(th_http(rl.port, "GET", "/v1/rules", NULL, NULL, 0, &r), 0);
    assert_non_null(strstr(r.body, "\"fresh\""));
    th_resp_free(&r);
    /* The state in Redis is kept and read under the new numbers: the stored tat is one old
     * interval (720 s) ahead, 1.8 new intervals of 400 s; one more request makes 2.8, so
     * floor(9 - 2.8) = 6 remain (a fresh key would have 8). */
    j = check("c", "reload", 1, &st);
    assert_int_equal(jint(j, "limit"), 9);
    assert_int_equal(jint(j, "remaining"), 6);
    json_decref(j);
    j = check("g", "x", 1, &st);
    assert_int_equal(st, 404);
    json_decref(j);
    assert_int_equal(th_write_file(rules_path, RULES), 0);
    kill(rl.pid, SIGHUP);
    usleep(200000);
}

static void test_metrics_families(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(th_http(rl.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    const char *want[] = {
        "ratelimitd_decisions_total{rule=\"ip\",decision=\"allowed\",source=\"redis\"} 5",
        "ratelimitd_decisions_total{rule=\"dc\",decision=\"denied\",source=\"cache\"}",
        "ratelimitd_breaker_state 0",
        "ratelimitd_breaker_rejected_probes_total 0",
        "ratelimitd_deny_cache_entries",
        "ratelimitd_fallback_decisions_total",
        "ratelimitd_breaker_transitions_total",
        NULL};
    for (int i = 0; want[i]; i++)
        if (!strstr(r.body, want[i]))
            fail_msg("missing in /metrics: %s", want[i]);
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
        cmocka_unit_test(test_bad_input_consumes_nothing),
        cmocka_unit_test(test_deny_cache_never_denies_what_redis_allows),
        cmocka_unit_test(test_scripts_directly),
        cmocka_unit_test(test_script_flush_is_survived),
        cmocka_unit_test(test_shadow_rule_always_allows),
        cmocka_unit_test(test_global_shadow_mode),
        cmocka_unit_test(test_reload_on_sighup),
        cmocka_unit_test(test_metrics_families),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
