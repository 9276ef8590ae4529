/* SPDX-License-Identifier: Apache-2.0 */
/* One Redis failure, one answer in every daemon: with an ACL user that may not run
 * scripts (every EVALSHA refused with NOPERM), idemd, tokend and auditd answer their writes
 * with 503 backend_unavailable and Retry-After — an operator fixes it in Redis, the caller
 * retries — and ratelimitd decides by its fallback instead, as its contract says; none
 * answers 500. (Before the one classification, tokend answered this 500 and idemd 503.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../lib/harness.h"
#include "test_auditd_util.h"
#include "test_tokend_util.h"

static struct th_redis redis;

static int setup(void **state)
{
    (void)state;
    if (th_redis_start(&redis, NULL) != 0)
        return -1;
    redisReply *r = th_redis_cmd(&redis, "ACL SETUSER noeval on >noeval-pw ~* &* +@all -evalsha "
                                         "-eval -evalsha_ro -eval_ro");
    int ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return ok ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    th_redis_stop(&redis);
    return 0;
}

static void test_noperm_is_503_everywhere(void **state)
{
    (void)state;
    static const struct {
        const char *bin, *path, *body;
    } writes[] = {
        {"bin/idemd", "/v1/claim", "{\"scope\":\"s\",\"key\":\"k\",\"fingerprint\":\"f\"}"},
        {"bin/tokend", "/v1/tokens",
         "{\"user_id\":\"u\",\"device_id\":\"d\",\"user_agent\":\"" CHROME120 "\"}"},
        {"bin/auditd", "/v1/events", "{\"actor\":\"u\",\"action\":\"a\"}"},
    };
    char url[128];
    snprintf(url, sizeof(url), "redis://noeval:noeval-pw@127.0.0.1:%d/0", redis.port);
    const char *extra[] = {KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=0", KEY, NULL};
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        struct th_proc p;
        struct th_resp r;
        char retry[16];
        assert_int_equal(th_daemon_start(&p, writes[i].bin, url, extra), 0);
        assert_int_equal(th_post_json(p.port, writes[i].path, writes[i].body, &r), 0);
        if (r.status != 503)
            print_message("%s: %d %s\n", writes[i].bin, r.status, r.body);
        assert_int_equal(r.status, 503);
        json_t *j = th_json(&r);
        assert_string_equal(json_string_value(json_object_get(j, "code")), "backend_unavailable");
        json_decref(j);
        assert_non_null(th_header(&r, "Retry-After", retry, sizeof(retry)));
        th_resp_free(&r);
        assert_int_equal(th_proc_stop(&p, SIGTERM, 5000), 0);
    }
    /* ratelimitd answers from its fallback: a decision, not an error. */
    struct th_proc p;
    struct th_resp r;
    assert_int_equal(th_daemon_start(&p, "bin/ratelimitd", url, NULL), 0);
    assert_int_equal(th_post_json(p.port, "/v1/check", "{\"rule\":\"default\",\"key\":\"k\"}", &r),
                     0);
    assert_true(r.status == 200 || r.status == 429);
    th_resp_free(&r);
    assert_int_equal(th_proc_stop(&p, SIGTERM, 5000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noperm_is_503_everywhere),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
