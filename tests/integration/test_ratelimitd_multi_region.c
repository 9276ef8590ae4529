/* SPDX-License-Identifier: Apache-2.0 */
/* Integration test of ratelimitd's per-region limits: two daemons with different
 * CLOUD_RUN_REGION on one Redis keep independent counts under region-qualified keys.
 * `make test-rate-limit-multi-region` runs this binary alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "../lib/harness.h"

static struct th_redis redis;
static struct th_proc us, eu;
static char rules_env[340];

static int start(struct th_proc *p, const char *region)
{
    char reg[96];
    snprintf(reg, sizeof(reg), "CLOUD_RUN_REGION=%s", region);
    const char *env[] = {reg, rules_env, NULL};
    return th_daemon_start(p, "bin/ratelimitd", redis.url, env);
}

static int setup(void **state)
{
    (void)state;
    char dir[256], path[300];
    if (th_redis_start(&redis, NULL) != 0 || th_tmpdir(dir, sizeof(dir)) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/rules.json", dir);
    if (th_write_file(path, "{\"rules\":[{\"name\":\"ip\",\"limit\":3,\"period\":\"1h\"},"
                            "{\"name\":\"sw\",\"algorithm\":\"sliding_window\",\"limit\":2,"
                            "\"period\":\"1h\"}]}") != 0)
        return -1;
    snprintf(rules_env, sizeof(rules_env), "RATELIMIT_RULES_FILE=%s", path);
    return start(&us, "us-central1") || start(&eu, "europe-west1");
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&us, SIGTERM, 5000);
    th_proc_stop(&eu, SIGTERM, 5000);
    th_redis_stop(&redis);
    return 0;
}

/* Status of one check, and the region it reports. */
static int check(struct th_proc *p, const char *rule, const char *key, char *region, size_t size)
{
    char body[256];
    struct th_resp r;
    snprintf(body, sizeof(body), "{\"rule\":\"%s\",\"key\":\"%s\"}", rule, key);
    assert_int_equal(th_post_json(p->port, "/v1/check", body, &r), 0);
    json_t *j = th_json(&r);
    assert_non_null(j);
    snprintf(region, size, "%s", json_string_value(json_object_get(j, "region")));
    json_decref(j);
    int st = r.status;
    th_resp_free(&r);
    return st;
}

static void test_key_is_region_qualified(void **state)
{
    (void)state;
    char region[64];
    assert_int_equal(check(&us, "ip", "203.0.113.1", region, sizeof(region)), 200);
    assert_string_equal(region, "us-central1");
    assert_int_equal(th_redis_int(&redis, "EXISTS ratelimit:us-central1:ip:203.0.113.1"), 1);
    assert_int_equal(th_redis_int(&redis, "EXISTS ratelimit:europe-west1:ip:203.0.113.1"), 0);
    redisReply *r = th_redis_cmd(&redis, "KEYS ratelimit:*");
    assert_non_null(r);
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->str, "ratelimit:us-central1:ip:203.0.113.1");
    freeReplyObject(r);
    /* It holds the GCRA state: a tat one emission interval (1200 s) ahead, and a TTL. */
    r = th_redis_cmd(&redis, "HGET ratelimit:us-central1:ip:203.0.113.1 tat");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    long long tat = atoll(r->str);
    freeReplyObject(r);
    r = th_redis_cmd(&redis, "TIME");
    long long now = atoll(r->element[0]->str) * 1000000LL + atoll(r->element[1]->str);
    freeReplyObject(r);
    assert_in_range(tat - now, 1190000000LL, 1200000000LL);
    assert_in_range(th_redis_int(&redis, "PTTL ratelimit:us-central1:ip:203.0.113.1"), 1190000,
                    1200000);
}

static void test_regions_count_independently(void **state)
{
    (void)state;
    char region[64];
    const char *rules[] = {"ip", "sw"};
    const int limits[] = {3, 2};
    for (int k = 0; k < 2; k++) {
        /* Exhaust the key in us-central1 ... */
        for (int i = 0; i < limits[k]; i++)
            assert_int_equal(check(&us, rules[k], "shared", region, sizeof(region)), 200);
        assert_int_equal(check(&us, rules[k], "shared", region, sizeof(region)), 429);
        char cmd[96];
        snprintf(cmd, sizeof(cmd), "DUMP ratelimit:us-central1:%s:shared", rules[k]);
        redisReply *before = th_redis_cmd(&redis, cmd);
        assert_non_null(before);
        assert_int_equal(before->type, REDIS_REPLY_STRING);
        /* ... europe-west1 still has its whole allowance for the same rule and key. */
        for (int i = 0; i < limits[k]; i++)
            assert_int_equal(check(&eu, rules[k], "shared", region, sizeof(region)), 200);
        assert_string_equal(region, "europe-west1");
        assert_int_equal(check(&eu, rules[k], "shared", region, sizeof(region)), 429);
        char key[96];
        snprintf(key, sizeof(key), "EXISTS ratelimit:europe-west1:%s:shared", rules[k]);
        assert_int_equal(th_redis_int(&redis, key), 1);
        snprintf(key, sizeof(key), "EXISTS ratelimit:us-central1:%s:shared", rules[k]);
        assert_int_equal(th_redis_int(&redis, key), 1);
        /* europe-west1's traffic left us-central1's key exactly as it was */
        redisReply *after = th_redis_cmd(&redis, cmd);
        assert_non_null(after);
        assert_int_equal(after->len, before->len);
        assert_memory_equal(after->str, before->str, before->len);
        freeReplyObject(before);
        freeReplyObject(after);
        /* and us-central1 is still denied */
        assert_int_equal(check(&us, rules[k], "shared", region, sizeof(region)), 429);
        assert_string_equal(region, "us-central1");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_is_region_qualified),
        cmocka_unit_test(test_regions_count_independently),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
