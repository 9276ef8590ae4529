/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the pool's configuration: REDIS_URL forms and the REDIS_* variables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "shared/config.h"
#include "shared/crypto.h"
#include "shared/redis_pool.h"

static void test_url_tcp_forms(void **state)
{
    (void)state;
    struct rpool_url u;
    char err[128];
    assert_int_equal(rpool_url_parse("redis://127.0.0.1:6379/0", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.pass, "");

    assert_int_equal(
        rpool_url_parse("redis://idemd:p%40ss%3Aw@redis.local:7000/5", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "idemd");
    assert_string_equal(u.pass, "p@ss:w");
    assert_string_equal(u.host, "redis.local");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 5);

    assert_int_equal(rpool_url_parse("redis://:only-pass@h", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.pass, "only-pass");
    assert_int_equal(u.port, 6379);

    assert_int_equal(rpool_url_parse("redis://[::1]:6380/1", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 1);
    assert_int_equal(u.tls, 0);

    /* rediss:// is the same with TLS. */
    assert_int_equal(rpool_url_parse("rediss://u:p@redis.example:6380/2", &u, err, sizeof(err)), 0);
    assert_int_equal(u.tls, 1);
    assert_string_equal(u.host, "redis.example");
    assert_int_equal(u.port, 6380);
    assert_string_equal(u.user, "u");
    assert_int_equal(u.db, 2);
}

static void test_url_unix(void **state)
{
    (void)state;
    struct rpool_url u;
    char err[128];
    assert_int_equal(rpool_url_parse("unix:///run/redis/redis.sock", &u, err, sizeof(err)), 0);
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_string_equal(u.host, "");
    assert_int_equal(rpool_url_parse("unix:///tmp/r.sock?db=4", &u, err, sizeof(err)), 0);
    assert_int_equal(u.db, 4);
}

static void test_url_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "http://localhost:6379",   "redis://",          "redis://host:0",
        "redis://host:65536",      "redis://host:12ab", "redis://host/db",
        "redis://user@host",       "redis://:@host",    "unix://relative.sock",
        "unix:///tmp/x.sock?db=z", "redis://[::1/0",    "redis://p%zz:x@h",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rpool_url u;
        char err[128] = "";
        if (rpool_url_parse(bad[i], &u, err, sizeof(err)) != -1)
            fail_msg("accepted %s", bad[i]);
        assert_true(strlen(err) > 0);
        assert_null(strstr(err, "p%zz"));
    }
}

static void test_config_defaults_and_env(void **state)
{
    (void)state;
    struct rpool_config rc;
    rpool_config_defaults(&rc);
    assert_int_equal(rc.size, 100);
    assert_int_equal(rc.min_idle, 10);
    assert_int_equal(rc.max_conn_age_ms, 300000);
    assert_int_equal(rc.pool_timeout_ms, 1000);
    assert_int_equal(rc.idle_timeout_ms, 30000);
    assert_int_equal(rc.idle_check_freq_ms, 60000);
    assert_int_equal(rc.connect_timeout_ms, 1000);
    assert_int_equal(rc.command_timeout_ms, 1000);

    setenv("REDIS_POOL_SIZE", "7", 1);
    setenv("REDIS_MIN_IDLE_CONNS", "3", 1);
    setenv("REDIS_COMMAND_TIMEOUT", "50ms", 1);
    setenv("REDIS_URL", "redis://a:b@h:1/2", 1);
    struct cfg *c = cfg_create();
    rpool_config_load(&rc, c);
    assert_false(cfg_failed(c));
    assert_int_equal(rc.size, 7);
    assert_int_equal(rc.min_idle, 3);
    assert_int_equal(rc.command_timeout_ms, 50);
    assert_string_equal(rc.url, "redis://a:b@h:1/2");
    cfg_free(c);

    setenv("REDIS_MIN_IDLE_CONNS", "8", 1); /* above the size */
    c = cfg_create();
    rpool_config_load(&rc, c);
    assert_true(cfg_failed(c));
    assert_non_null(strstr(cfg_errstr(c), "REDIS_MIN_IDLE_CONNS"));
    cfg_free(c);
    unsetenv("REDIS_POOL_SIZE");
    unsetenv("REDIS_MIN_IDLE_CONNS");
    unsetenv("REDIS_COMMAND_TIMEOUT");
    unsetenv("REDIS_URL");
}

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(rpool_status_name(RPOOL_OK), "ok");
    assert_string_equal(rpool_status_name(RPOOL_POOL_TIMEOUT), "pool_timeout");
    assert_string_equal(rpool_status_name(RPOOL_CONN), "connect");
    assert_string_equal(rpool_status_name(RPOOL_TIMEOUT), "timeout");
    assert_string_equal(rpool_status_name(RPOOL_REPLY_ERROR), "reply");
}

int main(void)
{
    crypto_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_tcp_forms), cmocka_unit_test(test_url_unix),
        cmocka_unit_test(test_url_bad),       cmocka_unit_test(test_config_defaults_and_env),
        cmocka_unit_test(test_status_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
