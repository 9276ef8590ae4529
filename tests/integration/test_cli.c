/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of a daemon's command line: --help, --version, --check-config with
 * good and bad values of every variable type (exit 2 with one line naming it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/harness.h"

/* Run testd with args and env; returns the exit status, output in *out / *err. */
static int run_testd(const char *arg, const char *const *env, char **out, char **err)
{
    const char *argv[] = {"testd", arg, NULL};
    return th_run(th_bin("tests/testd"), argv, env, out, err, 5000);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void test_help_and_version(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    assert_int_equal(run_testd("--help", NULL, &out, &err), 0);
    assert_non_null(strstr(out, "Usage: warden-testd"));
    assert_non_null(strstr(out, "REDIS_URL"));
    free(out), free(err);
    assert_int_equal(run_testd("--version", NULL, &out, &err), 0);
    assert_non_null(strstr(out, "testd 0."));
    free(out), free(err);
    assert_int_equal(run_testd("--bogus", NULL, &out, &err), 2);
    assert_non_null(strstr(err, "--bogus"));
    free(out), free(err);
}

/* Each bad value: exit 2, one line on stderr naming the variable and the value. */
static void test_bad_values(void **state)
{
    (void)state;
    static const struct {
        const char *env;
        const char *needle;
    } bad[] = {
        {"HTTP_THREADS=abc", "HTTP_THREADS=abc"},
        {"HTTP_THREADS=2000", "HTTP_THREADS=2000"},
        {"SHUTDOWN_TIMEOUT=5", "SHUTDOWN_TIMEOUT=5"},
        {"REDIS_POOL_TIMEOUT=1y", "REDIS_POOL_TIMEOUT=1y"},
        {"HTTP_MAX_BODY=12XB", "HTTP_MAX_BODY=12XB"},
        {"LOG_LEVEL=loud", "LOG_LEVEL=loud"},
        {"TESTD_KNOB=11", "TESTD_KNOB=11"},
        {"REDIS_URL=http://localhost", "REDIS_URL"},
        {"API_TOKEN_FILE=/nonexistent/token", "API_TOKEN_FILE"},
        {"REDIS_MIN_IDLE_CONNS=20\nREDIS_POOL_SIZE=5", "REDIS_MIN_IDLE_CONNS"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[128];
        const char *env[4] = {NULL};
        snprintf(buf, sizeof(buf), "%s", bad[i].env);
        char *nl = strchr(buf, '\n');
        env[0] = buf;
        if (nl) {
            *nl = '\0';
            env[1] = nl + 1;
        }
        char *out = NULL, *err = NULL;
        int rc = run_testd("--check-config", env, &out, &err);
        if (rc != 2 || !err || !strstr(err, bad[i].needle) || count_lines(err) != 1)
            fail_msg("%s: exit %d, stderr: %s", bad[i].env, rc, err ? err : "(none)");
        free(out), free(err);
    }
}

/* A good configuration prints the effective values, secrets masked, and exits 0. */
static void test_check_config_masks_secrets(void **state)
{
    (void)state;
    char tokfile[300], dir[256];
    assert_int_equal(th_tmpdir(dir, sizeof(dir)), 0);
    snprintf(tokfile, sizeof(tokfile), "%s/admin", dir);
    FILE *f = fopen(tokfile, "w");
    assert_non_null(f);
    fputs("admin-file-secret\n", f);
    fclose(f);
    char admin_env[320];
    snprintf(admin_env, sizeof(admin_env), "ADMIN_TOKEN_FILE=%s", tokfile);
    const char *env[] = {"API_TOKEN=api-env-secret",
                         admin_env,
                         "REDIS_URL=redis://u:redis-pass@127.0.0.1:6390/2",
                         "HTTP_THREADS=7",
                         "REDIS_COMMAND_TIMEOUT=250ms",
                         NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(run_testd("--check-config", env, &out, &err), 0);
    assert_non_null(strstr(out, "HTTP_THREADS=7"));
    assert_non_null(strstr(out, "REDIS_COMMAND_TIMEOUT="));
    assert_non_null(strstr(out, "TESTD_KNOB=5"));
    assert_non_null(strstr(out, "API_TOKEN="));
    assert_null(strstr(out, "api-env-secret"));
    assert_null(strstr(out, "admin-file-secret"));
    assert_null(strstr(out, "redis-pass"));
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_check_config_masks_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
