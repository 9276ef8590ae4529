/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for libshared config: every getter with good and bad values, the exact
 * one-line errors, *_FILE secrets, masking in cfg_print(), and the duration/size parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/config.h"
#include "shared/crypto.h"

/* Every variable the tests touch; cleared before each test. */
/* clang-format off */
static const char *const test_vars[] = {
    "WT_INT", "WT_BOOL", "WT_DUR", "WT_SIZE", "WT_LEVEL", "WT_STR", "WT_A", "WT_B", "WT_TOKEN",
    "WT_TOKEN_FILE", "WT_A_FILE", "WT_B_FILE", "REDIS_POOL_TIMEOUT", "HTTP_THREADS", NULL};
/* clang-format on */

static const char *const levels[] = {"debug", "info", "warn", "error", "critical", NULL};

static int setup(void **state)
{
    for (size_t i = 0; test_vars[i] != NULL; i++)
        unsetenv(test_vars[i]);
    *state = cfg_create();
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    cfg_free(*state);
    for (size_t i = 0; test_vars[i] != NULL; i++)
        unsetenv(test_vars[i]);
    return 0;
}

static void expect_error(const struct cfg *c, const char *want)
{
    assert_int_equal(cfg_failed(c), 1);
    assert_string_equal(cfg_errstr(c), want);
}

/* cfg_print() output as a malloc'd string. */
static char *print_to_string(const struct cfg *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    cfg_print(c, f);
    fclose(f);
    return buf;
}

/* A temp file holding data[0..len); path written into path (size >= 32). */
static void write_temp(char *path, const void *data, size_t len)
{
    snprintf(path, 32, "%s", "/tmp/warden-test-cfg-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* ---- cfg_int ----------------------------------------------------------------------- */

static void test_int_default_when_unset(void **state)
{
    struct cfg *c = *state;
    assert_int_equal(cfg_int(c, "WT_INT", 32, 1, 1024), 32);
    assert_int_equal(cfg_failed(c), 0);
    assert_string_equal(cfg_errstr(c), "");
}

static void test_int_good_values(void **state)
{
    struct cfg *c = *state;
    setenv("WT_INT", "42", 1);
    assert_int_equal(cfg_int(c, "WT_INT", 32, 1, 1024), 42);
    setenv("WT_INT", "1", 1);
    assert_int_equal(cfg_int(c, "WT_INT", 32, 1, 1024), 1); /* bounds are inclusive */
    setenv("WT_INT", "1024", 1);
    assert_int_equal(cfg_int(c, "WT_INT", 32, 1, 1024), 1024);
    setenv("WT_INT", "-7", 1);
    assert_int_equal(cfg_int(c, "WT_INT", 0, -10, 10), -7);
    setenv("WT_INT", "+7", 1);
    assert_int_equal(cfg_int(c, "WT_INT", 0, -10, 10), 7);
    setenv("WT_INT", "9223372036854775807", 1);
    assert_true(cfg_int(c, "WT_INT", 0, 0, INT64_MAX) == INT64_MAX);
    assert_int_equal(cfg_failed(c), 0);
}

static void test_int_bad_values(void **state)
{
    static const struct {
        const char *value, *error;
    } cases[] = {
        {"abc", "WT_INT=abc: not an integer (allowed: 1..1024)"},
        {"", "WT_INT=: empty value (allowed: 1..1024)"},
        {" 5", "WT_INT= 5: not an integer (allowed: 1..1024)"},
        {"5 ", "WT_INT=5 : not an integer (allowed: 1..1024)"},
        {"1.5", "WT_INT=1.5: not an integer (allowed: 1..1024)"},
        {"0x10", "WT_INT=0x10: not an integer (allowed: 1..1024)"},
        {"-", "WT_INT=-: not an integer (allowed: 1..1024)"},
        {"0", "WT_INT=0: out of range (allowed: 1..1024)"},
        {"1025", "WT_INT=1025: out of range (allowed: 1..1024)"},
        {"-1", "WT_INT=-1: out of range (allowed: 1..1024)"},
        {"99999999999999999999", "WT_INT=99999999999999999999: out of range (allowed: 1..1024)"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg *c = cfg_create();
        setenv("WT_INT", cases[i].value, 1);
        assert_int_equal(cfg_int(c, "WT_INT", 32, 1, 1024), 32); /* the default */
        expect_error(c, cases[i].error);
        cfg_free(c);
    }
}

static void test_int_open_ranges_described(void **state)
{
    struct cfg *c = *state;
    setenv("WT_INT", "-1", 1);
    cfg_int(c, "WT_INT", 0, 0, INT64_MAX);
    expect_error(c, "WT_INT=-1: out of range (allowed: an integer >= 0)");
}

static void test_int_brief_example(void **state)
{
    struct cfg *c = *state;
    setenv("HTTP_THREADS", "abc", 1);
    cfg_int(c, "HTTP_THREADS", 32, 1, 1024);
    expect_error(c, "HTTP_THREADS=abc: not an integer (allowed: 1..1024)");
}

/* ---- cfg_bool ---------------------------------------------------------------------- */

static void test_bool_good_values(void **state)
{
    static const char *const yes[] = {"true", "TRUE", "True", "1", "yes", "YES", "on", "On"};
    static const char *const no[] = {"false", "FALSE", "0", "no", "No", "off", "OFF"};
    struct cfg *c = *state;
    assert_int_equal(cfg_bool(c, "WT_BOOL", 1), 1);
    assert_int_equal(cfg_bool(c, "WT_BOOL", 0), 0);
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        setenv("WT_BOOL", yes[i], 1);
        assert_int_equal(cfg_bool(c, "WT_BOOL", 0), 1);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        setenv("WT_BOOL", no[i], 1);
        assert_int_equal(cfg_bool(c, "WT_BOOL", 1), 0);
    }
    assert_int_equal(cfg_failed(c), 0);
}

static void test_bool_bad_values(void **state)
{
    static const struct {
        const char *value, *error;
    } cases[] = {
        {"maybe", "WT_BOOL=maybe: not a boolean (allowed: true/false, 1/0, yes/no, on/off)"},
        {"", "WT_BOOL=: empty value (allowed: true/false, 1/0, yes/no, on/off)"},
        {"2", "WT_BOOL=2: not a boolean (allowed: true/false, 1/0, yes/no, on/off)"},
        {"y", "WT_BOOL=y: not a boolean (allowed: true/false, 1/0, yes/no, on/off)"},
        {"true ", "WT_BOOL=true : not a boolean (allowed: true/false, 1/0, yes/no, on/off)"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg *c = cfg_create();
        setenv("WT_BOOL", cases[i].value, 1);
        assert_int_equal(cfg_bool(c, "WT_BOOL", 1), 1);
        expect_error(c, cases[i].error);
        cfg_free(c);
    }
}

/* ---- cfg_duration_ms ---------------------------------------------------------------- */

static void test_duration_good_values(void **state)
{
    static const struct {
        const char *value;
        int64_t ms;
    } cases[] = {
        {"50ms", 50}, {"5s", 5000}, {"5m", 300000},   {"24h", 86400000}, {"7d", 604800000},
        {"0", 0},     {"0ms", 0},   {"1000ms", 1000}, {"007s", 7000},
    };
    struct cfg *c = *state;
    assert_int_equal(cfg_duration_ms(c, "WT_DUR", "24h", 0, INT64_MAX), 86400000);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        setenv("WT_DUR", cases[i].value, 1);
        assert_int_equal(cfg_duration_ms(c, "WT_DUR", "1s", 0, INT64_MAX), cases[i].ms);
    }
    assert_int_equal(cfg_failed(c), 0);
}

static void test_duration_bad_values(void **state)
{
#define DUR_ALLOWED "(allowed: e.g. 50ms, 5s, 5m, 24h, 7d; 1ms..1h)"
    static const struct {
        const char *value, *error;
    } cases[] = {
        {"5", "WT_DUR=5: needs a unit " DUR_ALLOWED},
        {"5 ", "WT_DUR=5 : needs a unit " DUR_ALLOWED},
        {"1.5s", "WT_DUR=1.5s: not a whole number " DUR_ALLOWED},
        {"-5s", "WT_DUR=-5s: negative values are not allowed " DUR_ALLOWED},
        {"5sec", "WT_DUR=5sec: unknown unit " DUR_ALLOWED},
        {"5S", "WT_DUR=5S: unknown unit " DUR_ALLOWED},
        {"5 s", "WT_DUR=5 s: unknown unit " DUR_ALLOWED},
        {"s", "WT_DUR=s: not a number with a unit " DUR_ALLOWED},
        {"", "WT_DUR=: empty value " DUR_ALLOWED},
        {"0", "WT_DUR=0: out of range " DUR_ALLOWED},
        {"2h", "WT_DUR=2h: out of range " DUR_ALLOWED},
        {"3600001ms", "WT_DUR=3600001ms: out of range " DUR_ALLOWED},
        {"9223372036854775808ms", "WT_DUR=9223372036854775808ms: too large " DUR_ALLOWED},
        {"106751991168d", "WT_DUR=106751991168d: too large " DUR_ALLOWED},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg *c = cfg_create();
        setenv("WT_DUR", cases[i].value, 1);
        assert_int_equal(cfg_duration_ms(c, "WT_DUR", "5s", 1, 3600000), 5000);
        expect_error(c, cases[i].error);
        cfg_free(c);
    }
#undef DUR_ALLOWED
}

static void test_duration_brief_example_and_ranges(void **state)
{
    struct cfg *c = *state;
    setenv("REDIS_POOL_TIMEOUT", "5 ", 1);
    cfg_duration_ms(c, "REDIS_POOL_TIMEOUT", "1s", 1, 3600000);
    expect_error(c, "REDIS_POOL_TIMEOUT=5 : needs a unit (allowed: e.g. 50ms, 5s, 5m, 24h, 7d; "
                    "1ms..1h)");

    /* Bounds are written in the largest exact unit; an open top says "at least". */
    c = cfg_create();
    setenv("WT_DUR", "1m", 1);
    cfg_duration_ms(c, "WT_DUR", "2m", 90000, 7 * 86400000LL);
    expect_error(c, "WT_DUR=1m: out of range (allowed: e.g. 50ms, 5s, 5m, 24h, 7d; 90s..7d)");
    cfg_free(c);
    c = cfg_create();
    cfg_duration_ms(c, "WT_DUR", "2m", 1000, INT64_MAX);
    assert_int_equal(cfg_failed(c), 0);
    setenv("WT_DUR", "999ms", 1);
    cfg_duration_ms(c, "WT_DUR", "2m", 1000, INT64_MAX);
    expect_error(c, "WT_DUR=999ms: out of range (allowed: e.g. 50ms, 5s, 5m, 24h, 7d; "
                    "at least 1s)");
    cfg_free(c);
}

/* ---- cfg_size ----------------------------------------------------------------------- */

static void test_size_good_values(void **state)
{
    static const struct {
        const char *value;
        uint64_t bytes;
    } cases[] = {
        {"512B", 512}, {"64KiB", 65536}, {"1MiB", 1048576}, {"2GiB", 2147483648ULL}, {"0B", 0},
    };
    struct cfg *c = *state;
    assert_int_equal(cfg_size(c, "WT_SIZE", "64KiB", 0, UINT64_MAX), 65536);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        setenv("WT_SIZE", cases[i].value, 1);
        assert_int_equal(cfg_size(c, "WT_SIZE", "1B", 0, UINT64_MAX), cases[i].bytes);
    }
    assert_int_equal(cfg_failed(c), 0);
}

static void test_size_bad_values(void **state)
{
#define SIZE_ALLOWED "(allowed: e.g. 512B, 64KiB, 1MiB, 1GiB; 1KiB..16MiB)"
    static const struct {
        const char *value, *error;
    } cases[] = {
        {"64", "WT_SIZE=64: needs a unit " SIZE_ALLOWED},
        {"0", "WT_SIZE=0: needs a unit " SIZE_ALLOWED},
        {"64KB", "WT_SIZE=64KB: unknown unit " SIZE_ALLOWED},
        {"64kib", "WT_SIZE=64kib: unknown unit " SIZE_ALLOWED},
        {"1.5MiB", "WT_SIZE=1.5MiB: not a whole number " SIZE_ALLOWED},
        {"-1KiB", "WT_SIZE=-1KiB: negative values are not allowed " SIZE_ALLOWED},
        {"", "WT_SIZE=: empty value " SIZE_ALLOWED},
        {"KiB", "WT_SIZE=KiB: not a number with a unit " SIZE_ALLOWED},
        {"1023B", "WT_SIZE=1023B: out of range " SIZE_ALLOWED},
        {"17MiB", "WT_SIZE=17MiB: out of range " SIZE_ALLOWED},
        {"17179869184GiB", "WT_SIZE=17179869184GiB: too large " SIZE_ALLOWED},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg *c = cfg_create();
        setenv("WT_SIZE", cases[i].value, 1);
        assert_int_equal(cfg_size(c, "WT_SIZE", "64KiB", 1024, 16 << 20), 65536);
        expect_error(c, cases[i].error);
        cfg_free(c);
    }
#undef SIZE_ALLOWED
}

/* ---- cfg_enum and cfg_str ------------------------------------------------------------ */

static void test_enum_values(void **state)
{
    struct cfg *c = *state;
    assert_int_equal(cfg_enum(c, "WT_LEVEL", "info", levels), 1);
    setenv("WT_LEVEL", "critical", 1);
    assert_int_equal(cfg_enum(c, "WT_LEVEL", "info", levels), 4);
    setenv("WT_LEVEL", "debug", 1);
    assert_int_equal(cfg_enum(c, "WT_LEVEL", "info", levels), 0);
    assert_int_equal(cfg_failed(c), 0);
}

static void test_enum_bad_values(void **state)
{
    static const struct {
        const char *value, *error;
    } cases[] = {
        {"verbose",
         "WT_LEVEL=verbose: unknown value (allowed: debug, info, warn, error, critical)"},
        {"INFO", "WT_LEVEL=INFO: unknown value (allowed: debug, info, warn, error, critical)"},
        {"", "WT_LEVEL=: empty value (allowed: debug, info, warn, error, critical)"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg *c = cfg_create();
        setenv("WT_LEVEL", cases[i].value, 1);
        assert_int_equal(cfg_enum(c, "WT_LEVEL", "warn", levels), 2);
        expect_error(c, cases[i].error);
        cfg_free(c);
    }
}

static int valid_host_port(const char *v)
{
    return strchr(v, ':') != NULL;
}

static int valid_anything_but_x(const char *v)
{
    return strcmp(v, "x") != 0;
}

static void test_str_values(void **state)
{
    struct cfg *c = *state;
    const char *s;

    assert_null(cfg_str(c, "WT_STR", NULL, NULL, NULL));
    s = cfg_str(c, "WT_STR", "127.0.0.1:8080", valid_host_port, "host:port");
    assert_string_equal(s, "127.0.0.1:8080");
    setenv("WT_STR", "[::1]:9000", 1);
    s = cfg_str(c, "WT_STR", "127.0.0.1:8080", valid_host_port, "host:port");
    assert_string_equal(s, "[::1]:9000");
    /* The returned string is the cfg's copy, not the environment's. */
    setenv("WT_STR", "changed:1", 1);
    assert_string_equal(s, "[::1]:9000");
    /* An explicit empty value is returned when valid() accepts it (or there is none). */
    setenv("WT_STR", "", 1);
    assert_string_equal(cfg_str(c, "WT_STR", "d", valid_anything_but_x, "not x"), "");
    assert_string_equal(cfg_str(c, "WT_STR", "d", NULL, NULL), "");
    assert_int_equal(cfg_failed(c), 0);
}

static void test_str_bad_values(void **state)
{
    struct cfg *c = *state;
    setenv("WT_STR", "nohost", 1);
    assert_string_equal(cfg_str(c, "WT_STR", "127.0.0.1:1", valid_host_port, "host:port"),
                        "127.0.0.1:1");
    expect_error(c, "WT_STR=nohost: invalid value (allowed: host:port)");

    c = cfg_create();
    setenv("WT_STR", "", 1);
    assert_null(cfg_str(c, "WT_STR", NULL, valid_host_port, "host:port"));
    expect_error(c, "WT_STR=: invalid value (allowed: host:port)");
    cfg_free(c);
}

/* ---- cfg_secret ----------------------------------------------------------------------- */

static void test_secret_from_env(void **state)
{
    struct cfg *c = *state;
    char *out;

    assert_null(cfg_secret(c, "WT_TOKEN"));
    setenv("WT_TOKEN", "hunter2-token", 1);
    assert_string_equal(cfg_secret(c, "WT_TOKEN"), "hunter2-token");
    assert_int_equal(cfg_failed(c), 0);
    out = print_to_string(c);
    assert_string_equal(out, "WT_TOKEN=<set, 13 bytes>\n");
    assert_null(strstr(out, "hunter2"));
    free(out);
}

static void test_secret_unset_prints_unset(void **state)
{
    struct cfg *c = *state;
    char *out;

    assert_null(cfg_secret(c, "WT_TOKEN"));
    assert_int_equal(cfg_failed(c), 0);
    out = print_to_string(c);
    assert_string_equal(out, "WT_TOKEN=<unset>\n");
    free(out);
}

static void test_secret_from_file(void **state)
{
    static const struct {
        const char *content, *secret;
    } cases[] = {
        {"hunter2\n", "hunter2"},   {"hunter2\r\n", "hunter2"},
        {"hunter2", "hunter2"},     {"hunter2\n\n", "hunter2\n"}, /* only one newline is stripped */
        {" spaced \n", " spaced "},
    };
    char path[64], want[160], *out;
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg *c = cfg_create();
        write_temp(path, cases[i].content, strlen(cases[i].content));
        setenv("WT_TOKEN_FILE", path, 1);
        assert_string_equal(cfg_secret(c, "WT_TOKEN"), cases[i].secret);
        assert_int_equal(cfg_failed(c), 0);
        out = print_to_string(c);
        snprintf(want, sizeof(want), "WT_TOKEN=<set, %zu bytes, from WT_TOKEN_FILE=%s>\n",
                 strlen(cases[i].secret), path);
        assert_string_equal(out, want);
        assert_null(strstr(out, "hunter2"));
        free(out);
        unlink(path);
        cfg_free(c);
    }
}

static void test_secret_both_set(void **state)
{
    struct cfg *c = *state;
    setenv("WT_TOKEN", "hunter2", 1);
    setenv("WT_TOKEN_FILE", "/run/secrets/token", 1);
    assert_null(cfg_secret(c, "WT_TOKEN"));
    expect_error(c, "WT_TOKEN=<secret>, WT_TOKEN_FILE=/run/secrets/token: both set "
                    "(allowed: only one of WT_TOKEN, WT_TOKEN_FILE)");
    assert_null(strstr(cfg_errstr(c), "hunter2"));
}

static void test_secret_file_unreadable(void **state)
{
    struct cfg *c = *state;
    setenv("WT_TOKEN_FILE", "/nonexistent/warden/token", 1);
    assert_null(cfg_secret(c, "WT_TOKEN"));
    expect_error(c, "WT_TOKEN_FILE=/nonexistent/warden/token: cannot read: No such file or "
                    "directory (allowed: a readable file of at most 64KiB holding WT_TOKEN)");

    c = cfg_create();
    setenv("WT_TOKEN_FILE", "/tmp", 1);
    assert_null(cfg_secret(c, "WT_TOKEN"));
    expect_error(c, "WT_TOKEN_FILE=/tmp: cannot read: Is a directory (allowed: a readable file "
                    "of at most 64KiB holding WT_TOKEN)");
    cfg_free(c);
}

static void test_secret_file_size_cap(void **state)
{
    const size_t cap = 64 * 1024;
    char *big = malloc(cap + 1), path[64];
    struct cfg *c = *state;
    const char *s;

    assert_non_null(big);
    memset(big, 'k', cap + 1);
    write_temp(path, big, cap);
    setenv("WT_TOKEN_FILE", path, 1);
    s = cfg_secret(c, "WT_TOKEN");
    assert_non_null(s);
    assert_int_equal(strlen(s), cap);
    unlink(path);

    c = cfg_create();
    write_temp(path, big, cap + 1);
    setenv("WT_TOKEN_FILE", path, 1);
    assert_null(cfg_secret(c, "WT_TOKEN"));
    char want[256];
    snprintf(want, sizeof(want),
             "WT_TOKEN_FILE=%s: file larger than 64KiB (allowed: a readable file of at most 64KiB "
             "holding WT_TOKEN)",
             path);
    expect_error(c, want);
    unlink(path);
    cfg_free(c);
    free(big);
}

static void test_secret_empty_rejected(void **state)
{
    struct cfg *c = *state;
    char path[64], want[256];

    setenv("WT_TOKEN", "", 1);
    assert_null(cfg_secret(c, "WT_TOKEN"));
    expect_error(c, "WT_TOKEN=: empty secret (allowed: a non-empty value, or WT_TOKEN_FILE "
                    "naming a file)");
    unsetenv("WT_TOKEN");

    static const char *const empties[] = {"", "\n", "\r\n"};
    for (size_t i = 0; i < 3; i++) {
        c = cfg_create();
        write_temp(path, empties[i], strlen(empties[i]));
        setenv("WT_TOKEN_FILE", path, 1);
        assert_null(cfg_secret(c, "WT_TOKEN"));
        snprintf(want, sizeof(want),
                 "WT_TOKEN_FILE=%s: file is empty (allowed: a readable file of at most 64KiB "
                 "holding WT_TOKEN)",
                 path);
        expect_error(c, want);
        unlink(path);
        cfg_free(c);
    }

    c = cfg_create();
    setenv("WT_TOKEN_FILE", "", 1);
    assert_null(cfg_secret(c, "WT_TOKEN"));
    expect_error(c, "WT_TOKEN_FILE=: empty path (allowed: a readable file of at most 64KiB "
                    "holding WT_TOKEN)");
    cfg_free(c);
}

static void test_secret_file_with_nul_rejected(void **state)
{
    struct cfg *c = *state;
    char path[64], want[256];

    write_temp(path, "abc\0def", 7);
    setenv("WT_TOKEN_FILE", path, 1);
    assert_null(cfg_secret(c, "WT_TOKEN"));
    snprintf(want, sizeof(want),
             "WT_TOKEN_FILE=%s: file contains a NUL byte (allowed: a readable file of at most "
             "64KiB holding WT_TOKEN)",
             path);
    expect_error(c, want);
    unlink(path);
}

static void test_isset(void **state)
{
    (void)state;
    assert_int_equal(cfg_isset("WT_TOKEN"), 0);
    setenv("WT_TOKEN", "", 1);
    assert_int_equal(cfg_isset("WT_TOKEN"), 1);
    unsetenv("WT_TOKEN");
    setenv("WT_TOKEN_FILE", "/does/not/matter", 1);
    assert_int_equal(cfg_isset("WT_TOKEN"), 1);
}

/* ---- printing, notes, errors -------------------------------------------------------------- */

static void test_print_order_defaults_and_masking(void **state)
{
    struct cfg *c = *state;
    char path[64], want[512], *out;

    setenv("WT_INT", "8", 1);
    setenv("WT_TOKEN", "s3cr3t-value", 1);
    write_temp(path, "file-s3cr3t\n", 12);
    setenv("WT_B_FILE", path, 1);
    cfg_int(c, "WT_INT", 32, 1, 1024);
    cfg_duration_ms(c, "WT_DUR", "24h", 1000, INT64_MAX);
    cfg_size(c, "WT_SIZE", "64KiB", 1, UINT64_MAX);
    cfg_bool(c, "WT_BOOL", 0);
    cfg_enum(c, "WT_LEVEL", "info", levels);
    cfg_str(c, "WT_STR", NULL, NULL, NULL);
    cfg_secret(c, "WT_TOKEN");
    cfg_secret(c, "WT_A");
    cfg_secret(c, "WT_B");
    cfg_note(c, "WT_KEY_V1", "key-material", 1);
    cfg_note(c, "WT_KEY_V2", NULL, 1);
    cfg_note(c, "WT_DERIVED", "fast", 0);
    assert_int_equal(cfg_failed(c), 0);
    out = print_to_string(c);
    snprintf(want, sizeof(want),
             "WT_INT=8\nWT_DUR=24h\nWT_SIZE=64KiB\nWT_BOOL=false\nWT_LEVEL=info\nWT_STR=<unset>\n"
             "WT_TOKEN=<set, 12 bytes>\nWT_A=<unset>\n"
             "WT_B=<set, 11 bytes, from WT_B_FILE=%s>\n"
             "WT_KEY_V1=<set, 12 bytes>\nWT_KEY_V2=<unset>\nWT_DERIVED=fast\n",
             path);
    assert_string_equal(out, want);
    assert_null(strstr(out, "s3cr3t"));
    assert_null(strstr(out, "key-material"));
    free(out);
    unlink(path);
    unsetenv("WT_B_FILE");
}

static void test_print_read_twice_shows_last(void **state)
{
    struct cfg *c = *state;
    char *out;

    cfg_int(c, "WT_INT", 1, 0, 10);
    cfg_bool(c, "WT_BOOL", 1);
    setenv("WT_INT", "7", 1);
    cfg_int(c, "WT_INT", 1, 0, 10);
    out = print_to_string(c);
    assert_string_equal(out, "WT_BOOL=true\nWT_INT=7\n");
    free(out);
}

static void test_print_and_errors_sanitise_control_chars(void **state)
{
    struct cfg *c = *state;
    char *out;

    setenv("WT_STR", "a\nWT_FAKE=1", 1);
    cfg_str(c, "WT_STR", NULL, NULL, NULL);
    out = print_to_string(c);
    assert_string_equal(out, "WT_STR=a?WT_FAKE=1\n");
    free(out);

    c = cfg_create();
    setenv("WT_INT", "1\n2", 1);
    cfg_int(c, "WT_INT", 5, 0, 9);
    expect_error(c, "WT_INT=1?2: not an integer (allowed: 0..9)");
    cfg_free(c);
}

static void test_error_truncates_long_values(void **state)
{
    struct cfg *c = *state;
    char value[300], want[200];

    memset(value, 'x', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    setenv("WT_INT", value, 1);
    cfg_int(c, "WT_INT", 5, 0, 9);
    snprintf(want, sizeof(want), "WT_INT=%.80s...: not an integer (allowed: 0..9)", value);
    expect_error(c, want);
}

static void test_first_error_wins(void **state)
{
    struct cfg *c = *state;

    setenv("WT_A", "abc", 1);
    setenv("WT_B", "xyz", 1);
    setenv("WT_INT", "9", 1);
    assert_int_equal(cfg_int(c, "WT_A", 1, 0, 10), 1);
    assert_int_equal(cfg_int(c, "WT_B", 2, 0, 10), 2);
    /* After an error getters hand out their defaults, even for good values. */
    assert_int_equal(cfg_int(c, "WT_INT", 3, 0, 10), 3);
    cfg_fail(c, "cross-field check failed");
    expect_error(c, "WT_A=abc: not an integer (allowed: 0..10)");
}

static void test_cfg_fail(void **state)
{
    struct cfg *c = *state;

    assert_int_equal(cfg_failed(c), 0);
    cfg_fail(c, "HTTP_THREADS=%d: must be at most REDIS_POOL_SIZE=%d", 64, 32);
    expect_error(c, "HTTP_THREADS=64: must be at most REDIS_POOL_SIZE=32");
    cfg_fail(c, "second error");
    expect_error(c, "HTTP_THREADS=64: must be at most REDIS_POOL_SIZE=32");
    /* A later bad variable does not replace it either. */
    setenv("WT_INT", "abc", 1);
    assert_int_equal(cfg_int(c, "WT_INT", 4, 0, 10), 4);
    expect_error(c, "HTTP_THREADS=64: must be at most REDIS_POOL_SIZE=32");

    c = cfg_create();
    cfg_fail(c, "line one\nline two");
    expect_error(c, "line one line two"); /* always exactly one line */
    cfg_free(c);
}

static void test_free_null(void **state)
{
    (void)state;
    cfg_free(NULL);
    struct cfg *c = cfg_create();
    assert_non_null(c);
    assert_int_equal(cfg_failed(c), 0);
    cfg_free(c);
}

/* ---- parsers ------------------------------------------------------------------------------ */

static void test_parse_duration_edges(void **state)
{
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"0", 0},
        {"00", 0},
        {"0ms", 0},
        {"0d", 0},
        {"1ms", 1},
        {"90s", 90000},
        {"9223372036854775807ms", INT64_MAX},
        {"106751991167d", 106751991167LL * 86400000LL},
    };
    /* clang-format off */
    static const char *const bad[] = {
        "", "5", "1.5s", "-1s", "-0", " 5s", "5s ", "5 s", "s", "ms", "5ms5", "5mss", "5H", "1w",
        "9223372036854775808ms", "9223372036854775807s", "106751991168d",
        "99999999999999999999999", "0x10s", "+5s"};
    /* clang-format on */
    int64_t ms;
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ms = -1;
        assert_int_equal(cfg_parse_duration_ms(good[i].s, &ms), 0);
        assert_true(ms == good[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (cfg_parse_duration_ms(bad[i], &ms) != -1)
            fail_msg("accepted bad duration \"%s\"", bad[i]);
    }
    assert_int_equal(cfg_parse_duration_ms(NULL, &ms), -1);
}

static void test_parse_size_edges(void **state)
{
    static const struct {
        const char *s;
        uint64_t bytes;
    } good[] = {
        {"0B", 0},
        {"1B", 1},
        {"1KiB", 1024},
        {"16GiB", 16ULL << 30},
        {"18446744073709551615B", UINT64_MAX},
        {"17179869183GiB", 17179869183ULL << 30},
    };
    /* clang-format off */
    static const char *const bad[] = {
        "", "0", "64", "1.5MiB", "-1B", "64 KiB", "64KiB ", "64kib", "64KB", "64K", "1TiB",
        "KiB", "18446744073709551616B", "17179869184GiB", "99999999999999999999B"};
    /* clang-format on */
    uint64_t n;
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        n = 12345;
        assert_int_equal(cfg_parse_size(good[i].s, &n), 0);
        assert_true(n == good[i].bytes);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (cfg_parse_size(bad[i], &n) != -1)
            fail_msg("accepted bad size \"%s\"", bad[i]);
    }
    assert_int_equal(cfg_parse_size(NULL, &n), -1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_int_default_when_unset),
        T(test_int_good_values),
        T(test_int_bad_values),
        T(test_int_open_ranges_described),
        T(test_int_brief_example),
        T(test_bool_good_values),
        T(test_bool_bad_values),
        T(test_duration_good_values),
        T(test_duration_bad_values),
        T(test_duration_brief_example_and_ranges),
        T(test_size_good_values),
        T(test_size_bad_values),
        T(test_enum_values),
        T(test_enum_bad_values),
        T(test_str_values),
        T(test_str_bad_values),
        T(test_secret_from_env),
        T(test_secret_unset_prints_unset),
        T(test_secret_from_file),
        T(test_secret_both_set),
        T(test_secret_file_unreadable),
        T(test_secret_file_size_cap),
        T(test_secret_empty_rejected),
        T(test_secret_file_with_nul_rejected),
        T(test_isset),
        T(test_print_order_defaults_and_masking),
        T(test_print_read_twice_shows_last),
        T(test_print_and_errors_sanitise_control_chars),
        T(test_error_truncates_long_values),
        T(test_first_error_wins),
        T(test_cfg_fail),
        T(test_free_null),
        T(test_parse_duration_edges),
        T(test_parse_size_edges),
    };
    if (crypto_init() != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
