/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the one classification of Redis outcomes (libshared/src/redis_reply.c):
 * every failure that means "Redis cannot serve now" is 503, any other error reply 500,
 * whichever client (pool or loop) reported it; and the typed element reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "shared/redis_client.h"
#include "shared/redis_reply.h"

static redisReply error_reply(const char *text)
{
    return (redisReply){.type = REDIS_REPLY_ERROR, .str = (char *)text, .len = strlen(text)};
}

static void test_failures_without_a_reply(void **state)
{
    (void)state;
    assert_int_equal(rreply_classify(RCL_OK, NULL), RREPLY_OK);
    assert_int_equal(rreply_classify(RCL_POOL_TIMEOUT, NULL), RREPLY_UNAVAILABLE);
    assert_int_equal(rreply_classify(RCL_CONN, NULL), RREPLY_UNAVAILABLE);
    assert_int_equal(rreply_classify(RCL_TIMEOUT, NULL), RREPLY_UNAVAILABLE);
    assert_int_equal(rreply_classify(RCL_TIMEOUT, NULL), RREPLY_UNAVAILABLE);
    assert_int_equal(rreply_classify(RCL_REPLY_ERROR, NULL), RREPLY_INTERNAL);
}

static void test_error_replies(void **state)
{
    (void)state;
    static const char *const unavailable[] = {
        "LOADING Redis is loading the dataset in memory",
        "BUSY Redis is busy running a script.",
        "OOM command not allowed when used memory > 'maxmemory'.",
        "READONLY You can't write against a read only replica.",
        "MASTERDOWN Link with MASTER is down",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down",
        "NOPERM this user has no permissions to run the 'evalsha' command",
        "NOAUTH Authentication required.",
        "WRONGPASS invalid username-password pair or user is disabled.",
        "ERR max number of clients reached",
        "ERR The user executing the script can't run this command or subcommand script: ...",
    };
    for (size_t i = 0; i < sizeof(unavailable) / sizeof(unavailable[0]); i++) {
        redisReply r = error_reply(unavailable[i]);
        assert_int_equal(rreply_classify(RCL_REPLY_ERROR, &r), RREPLY_UNAVAILABLE);
        assert_int_equal(rreply_classify(RCL_REPLY_ERROR, &r), RREPLY_UNAVAILABLE);
        /* an error among a pipeline's replies comes with "ok" */
        assert_int_equal(rreply_classify(RCL_OK, &r), RREPLY_UNAVAILABLE);
    }
    static const char *const internal[] = {
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "ERR Error running script (call to f_abc): @user_script:1: bad argument",
        "NOSCRIPT No matching script. Please use EVAL.",
        "ERR unknown command 'FOO'",
    };
    for (size_t i = 0; i < sizeof(internal) / sizeof(internal[0]); i++) {
        redisReply r = error_reply(internal[i]);
        assert_int_equal(rreply_classify(RCL_REPLY_ERROR, &r), RREPLY_INTERNAL);
        assert_int_equal(rreply_classify(RCL_OK, &r), RREPLY_INTERNAL);
    }
    redisReply ok = {.type = REDIS_REPLY_STATUS, .str = (char *)"OK", .len = 2};
    assert_int_equal(rreply_classify(RCL_OK, &ok), RREPLY_OK);
}

static void test_element_reads(void **state)
{
    (void)state;
    redisReply s = {.type = REDIS_REPLY_STRING, .str = (char *)"claimed", .len = 7};
    redisReply n = {.type = REDIS_REPLY_INTEGER, .integer = -42};
    redisReply nil = {.type = REDIS_REPLY_NIL};
    redisReply *els[] = {&s, &n, &nil};
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 3, .element = els};
    size_t len = 0;
    long long v = 0;
    assert_string_equal(rreply_str(&arr, 0, &len), "claimed");
    assert_int_equal(len, 7);
    assert_int_equal(rreply_int(&arr, 1, &v), 0);
    assert_int_equal(v, -42);
    assert_null(rreply_str(&arr, 1, NULL)); /* not a string */
    assert_int_equal(rreply_int(&arr, 0, &v), -1);
    assert_null(rreply_str(&arr, 2, NULL)); /* nil */
    assert_null(rreply_str(&arr, 3, NULL)); /* past the end */
    assert_null(rreply_str(&s, 0, NULL));   /* not an array */
    assert_null(rreply_str(NULL, 0, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failures_without_a_reply),
        cmocka_unit_test(test_error_replies),
        cmocka_unit_test(test_element_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
