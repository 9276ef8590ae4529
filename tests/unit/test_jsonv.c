/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for shared/jsonv: every getter against present, absent, required, wrong
 * type, out of range and tricky values; jv_only, jv_fail and the character checks. */
#include <jansson.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "shared/jsonv.h"

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, &err);
    if (!j)
        fail_msg("bad test JSON (%s): %s", err.text, text);
    return j;
}

static void assert_error(const struct jv_error *e, const char *field, const char *detail)
{
    assert_non_null(e->field);
    assert_string_equal(e->field, field);
    assert_string_equal(e->detail, detail);
}

/* ---- jv_string ---------------------------------------------------------------------- */

static void test_string_present(void **state)
{
    (void)state;
    json_t *o = parse("{\"key\":\"abc\",\"empty\":\"\"}");
    struct jv_error e = {0};
    const char *s = NULL;
    size_t len = 99;
    assert_int_equal(jv_string(o, "key", JV_REQUIRED, 1, 255, &s, &len, &e), 1);
    assert_string_equal(s, "abc");
    assert_int_equal(len, 3);
    s = NULL;
    assert_int_equal(jv_string(o, "key", JV_OPTIONAL, 3, 3, &s, NULL, &e), 1); /* len optional */
    assert_string_equal(s, "abc");
    assert_int_equal(jv_string(o, "empty", JV_REQUIRED, 0, 10, &s, &len, &e), 1);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    json_decref(o);
}

static void test_string_absent(void **state)
{
    (void)state;
    json_t *o = parse("{\"other\":1}");
    struct jv_error e = {0};
    const char *s = "untouched";
    size_t len = 7;
    assert_int_equal(jv_string(o, "key", JV_OPTIONAL, 1, 255, &s, &len, &e), 0);
    assert_string_equal(s, "untouched");
    assert_int_equal(len, 7);
    assert_null(e.field);
    assert_int_equal(jv_string(o, "key", JV_REQUIRED, 1, 255, &s, &len, &e), -1);
    assert_error(&e, "key", "is required");
    assert_string_equal(s, "untouched");
    json_decref(o);
}

static void test_string_wrong_type(void **state)
{
    (void)state;
    static const char *const docs[] = {"{\"k\":1}",    "{\"k\":1.5}", "{\"k\":true}",
                                       "{\"k\":null}", "{\"k\":[]}",  "{\"k\":{}}"};
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        json_t *o = parse(docs[i]);
        struct jv_error e = {0};
        const char *s = "untouched";
        assert_int_equal(jv_string(o, "k", JV_OPTIONAL, 1, 255, &s, NULL, &e), -1);
        assert_error(&e, "k", "must be a string of 1..255 bytes");
        assert_string_equal(s, "untouched");
        json_decref(o);
    }
}

static void test_string_length_bounds(void **state)
{
    (void)state;
    json_t *o = parse("{\"a\":\"\",\"b\":\"12345\",\"c\":\"123456\",\"d\":\"\\u00e9\"}");
    struct jv_error e = {0};
    const char *s = NULL;
    size_t len = 0;
    assert_int_equal(jv_string(o, "a", JV_REQUIRED, 1, 5, &s, &len, &e), -1);
    assert_error(&e, "a", "must be a string of 1..5 bytes");
    assert_int_equal(jv_string(o, "b", JV_REQUIRED, 1, 5, &s, &len, &e), 1);
    assert_int_equal(len, 5);
    assert_int_equal(jv_string(o, "c", JV_REQUIRED, 1, 5, &s, &len, &e), -1);
    assert_error(&e, "c", "must be a string of 1..5 bytes");
    assert_int_equal(jv_string(o, "c", JV_REQUIRED, 32, 32, &s, &len, &e), -1);
    assert_error(&e, "c", "must be a string of 32 bytes");
    /* Bytes, not characters: "é" is 2 bytes of UTF-8. */
    assert_int_equal(jv_string(o, "d", JV_REQUIRED, 1, 1, &s, &len, &e), -1);
    assert_int_equal(jv_string(o, "d", JV_REQUIRED, 2, 2, &s, &len, &e), 1);
    assert_int_equal(len, 2);
    json_decref(o);
}

static void test_string_with_nul_rejected(void **state)
{
    (void)state;
    json_t *o = parse("{\"k\":\"ab\\u0000cd\",\"z\":\"\\u0000\"}");
    struct jv_error e = {0};
    const char *s = "untouched";
    assert_int_equal(jv_string(o, "k", JV_REQUIRED, 1, 255, &s, NULL, &e), -1);
    assert_error(&e, "k", "must not contain NUL bytes");
    assert_int_equal(jv_string(o, "z", JV_REQUIRED, 0, 255, &s, NULL, &e), -1);
    assert_error(&e, "z", "must not contain NUL bytes");
    assert_string_equal(s, "untouched");
    json_decref(o);
}

/* ---- jv_int ------------------------------------------------------------------------- */

static void test_int_present_and_bounds(void **state)
{
    (void)state;
    json_t *o = parse("{\"lo\":1,\"hi\":600000,\"below\":0,\"above\":600001,\"neg\":-5}");
    struct jv_error e = {0};
    long long v = 0;
    assert_int_equal(jv_int(o, "lo", JV_REQUIRED, 1, 600000, &v, &e), 1);
    assert_int_equal(v, 1);
    assert_int_equal(jv_int(o, "hi", JV_REQUIRED, 1, 600000, &v, &e), 1);
    assert_int_equal(v, 600000);
    v = 42;
    assert_int_equal(jv_int(o, "below", JV_REQUIRED, 1, 600000, &v, &e), -1);
    assert_error(&e, "below", "must be an integer in 1..600000");
    assert_int_equal(jv_int(o, "above", JV_OPTIONAL, 1, 600000, &v, &e), -1);
    assert_error(&e, "above", "must be an integer in 1..600000");
    assert_int_equal(v, 42);
    assert_int_equal(jv_int(o, "neg", JV_REQUIRED, -5, 5, &v, &e), 1);
    assert_int_equal(v, -5);
    assert_int_equal(jv_int(o, "neg", JV_REQUIRED, -4, 5, &v, &e), -1);
    assert_error(&e, "neg", "must be an integer in -4..5");
    json_decref(o);
}

static void test_int_absent(void **state)
{
    (void)state;
    json_t *o = parse("{}");
    struct jv_error e = {0};
    long long v = 42;
    assert_int_equal(jv_int(o, "ttl", JV_OPTIONAL, 1, 10, &v, &e), 0);
    assert_int_equal(v, 42);
    assert_int_equal(jv_int(o, "ttl", JV_REQUIRED, 1, 10, &v, &e), -1);
    assert_error(&e, "ttl", "is required");
    assert_int_equal(v, 42);
    json_decref(o);
}

static void test_int_rejects_reals_strings_bools(void **state)
{
    (void)state;
    static const char *const docs[] = {"{\"n\":5.0}",  "{\"n\":5e0}",   "{\"n\":\"5\"}",
                                       "{\"n\":true}", "{\"n\":false}", "{\"n\":null}",
                                       "{\"n\":[5]}",  "{\"n\":1e30}"};
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        json_t *o = parse(docs[i]);
        struct jv_error e = {0};
        long long v = 42;
        assert_int_equal(jv_int(o, "n", JV_REQUIRED, 0, 10, &v, &e), -1);
        assert_error(&e, "n", "must be an integer in 0..10");
        assert_int_equal(v, 42);
        json_decref(o);
    }
}

static void test_int_huge_numbers(void **state)
{
    (void)state;
    struct jv_error e = {0};
    long long v = 0;
    json_t *o = parse("{\"max\":9223372036854775807,\"min\":-9223372036854775808}");
    assert_int_equal(jv_int(o, "max", JV_REQUIRED, LLONG_MIN, LLONG_MAX, &v, &e), 1);
    assert_true(v == LLONG_MAX);
    assert_int_equal(jv_int(o, "min", JV_REQUIRED, LLONG_MIN, LLONG_MAX, &v, &e), 1);
    assert_true(v == LLONG_MIN);
    assert_int_equal(jv_int(o, "max", JV_REQUIRED, 0, 1000, &v, &e), -1);
    assert_error(&e, "max", "must be an integer in 0..1000");
    json_decref(o);
    /* Beyond 64 bits jansson refuses the document (-> invalid_json), or, if asked to,
     * reads it as a real, which jv_int refuses. Either way it never wraps around. */
    json_error_t err;
    assert_null(json_loads("{\"n\":99999999999999999999}", 0, &err));
    o = json_loads("{\"n\":99999999999999999999}", JSON_DECODE_INT_AS_REAL, &err);
    assert_non_null(o);
    assert_int_equal(jv_int(o, "n", JV_REQUIRED, LLONG_MIN, LLONG_MAX, &v, &e), -1);
    json_decref(o);
}

/* ---- jv_bool, jv_object, jv_array --------------------------------------------------- */

static void test_bool(void **state)
{
    (void)state;
    json_t *o = parse("{\"t\":true,\"f\":false,\"one\":1,\"s\":\"true\",\"n\":null}");
    struct jv_error e = {0};
    int b = 42;
    assert_int_equal(jv_bool(o, "t", JV_REQUIRED, &b, &e), 1);
    assert_int_equal(b, 1);
    assert_int_equal(jv_bool(o, "f", JV_REQUIRED, &b, &e), 1);
    assert_int_equal(b, 0);
    b = 42;
    assert_int_equal(jv_bool(o, "one", JV_REQUIRED, &b, &e), -1);
    assert_error(&e, "one", "must be true or false");
    assert_int_equal(jv_bool(o, "s", JV_OPTIONAL, &b, &e), -1);
    assert_error(&e, "s", "must be true or false");
    assert_int_equal(jv_bool(o, "n", JV_OPTIONAL, &b, &e), -1);
    assert_int_equal(jv_bool(o, "missing", JV_OPTIONAL, &b, &e), 0);
    assert_int_equal(b, 42);
    assert_int_equal(jv_bool(o, "missing", JV_REQUIRED, &b, &e), -1);
    assert_error(&e, "missing", "is required");
    json_decref(o);
}

static void test_object(void **state)
{
    (void)state;
    json_t *o = parse("{\"meta\":{\"a\":1},\"arr\":[],\"s\":\"x\"}");
    struct jv_error e = {0};
    json_t *out = NULL;
    assert_int_equal(jv_object(o, "meta", JV_REQUIRED, &out, &e), 1);
    assert_ptr_equal(out, json_object_get(o, "meta")); /* borrowed, not a copy */
    out = NULL;
    assert_int_equal(jv_object(o, "arr", JV_OPTIONAL, &out, &e), -1);
    assert_error(&e, "arr", "must be an object");
    assert_int_equal(jv_object(o, "s", JV_OPTIONAL, &out, &e), -1);
    assert_null(out);
    assert_int_equal(jv_object(o, "missing", JV_OPTIONAL, &out, &e), 0);
    assert_int_equal(jv_object(o, "missing", JV_REQUIRED, &out, &e), -1);
    assert_error(&e, "missing", "is required");
    assert_null(out);
    json_decref(o);
}

static void test_array(void **state)
{
    (void)state;
    json_t *o = parse("{\"empty\":[],\"three\":[1,2,3],\"four\":[1,2,3,4],\"obj\":{}}");
    struct jv_error e = {0};
    json_t *out = NULL;
    assert_int_equal(jv_array(o, "three", JV_REQUIRED, 1, 3, &out, &e), 1);
    assert_ptr_equal(out, json_object_get(o, "three"));
    out = NULL;
    assert_int_equal(jv_array(o, "empty", JV_REQUIRED, 1, 3, &out, &e), -1);
    assert_error(&e, "empty", "must be an array of 1..3 elements");
    assert_int_equal(jv_array(o, "four", JV_REQUIRED, 1, 3, &out, &e), -1);
    assert_error(&e, "four", "must be an array of 1..3 elements");
    assert_int_equal(jv_array(o, "obj", JV_REQUIRED, 0, 3, &out, &e), -1);
    assert_error(&e, "obj", "must be an array of 0..3 elements");
    assert_int_equal(jv_array(o, "four", JV_REQUIRED, 2, 2, &out, &e), -1);
    assert_error(&e, "four", "must be an array of 2 elements");
    assert_null(out);
    assert_int_equal(jv_array(o, "empty", JV_OPTIONAL, 0, 3, &out, &e), 1);
    assert_int_equal(jv_array(o, "missing", JV_OPTIONAL, 0, 3, &out, &e), 0);
    assert_int_equal(jv_array(o, "missing", JV_REQUIRED, 0, 3, &out, &e), -1);
    assert_error(&e, "missing", "is required");
    json_decref(o);
}

/* ---- jv_only, jv_fail --------------------------------------------------------------- */

static void test_only(void **state)
{
    (void)state;
    static const char *const allowed[] = {"key", "ttl_ms", NULL};
    struct jv_error e = {0};
    json_t *o = parse("{\"key\":\"a\",\"ttl_ms\":5}");
    assert_int_equal(jv_only(o, allowed, &e), 0);
    assert_null(e.field);
    json_decref(o);
    o = parse("{}");
    assert_int_equal(jv_only(o, allowed, &e), 0);
    json_decref(o);
    o = parse("{\"key\":\"a\",\"extra\":1,\"more\":2}");
    assert_int_equal(jv_only(o, allowed, &e), -1);
    assert_error(&e, "extra", "unknown field"); /* the first one, in document order */
    json_decref(o);
    o = parse("{\"ke\":1}"); /* a prefix of an allowed name is not that name */
    assert_int_equal(jv_only(o, allowed, &e), -1);
    assert_error(&e, "ke", "unknown field");
    json_decref(o);
}

static void test_only_key_with_nul(void **state)
{
    (void)state;
    static const char *const allowed[] = {"key", NULL};
    struct jv_error e = {0};
    json_t *o = json_object();
    assert_int_equal(json_object_setn_new(o, "key\0x", 5, json_true()), 0);
    assert_int_equal(jv_only(o, allowed, &e), -1);
    assert_string_equal(e.detail, "unknown field");
    json_decref(o);
}

/* A string jansson can put into a JSON answer (valid UTF-8). */
static void assert_renderable(const char *s)
{
    json_t *j = json_string(s);
    if (!j)
        fail_msg("not valid UTF-8: \"%s\"", s);
    json_decref(j);
}

/* Found by fuzzing: an unknown member with a long non-ASCII name was named cut in the
 * middle of a character, so the 400 answer could not carry its field. */
static void test_only_long_utf8_key(void **state)
{
    (void)state;
    static const char *const allowed[] = {"key", NULL};
    char name[2 * 40 + 1] = "";
    for (int i = 0; i < 40; i++) /* é: 80 bytes, more than field_buf holds */
        snprintf(name + 2 * i, sizeof(name) - 2 * i, "%s", "\xc3\xa9");
    struct jv_error e = {0};
    json_t *o = json_object();
    json_object_set_new(o, name, json_true());
    assert_int_equal(jv_only(o, allowed, &e), -1);
    assert_renderable(e.field);
    assert_int_equal(strlen(e.field), 62); /* 31 whole characters */
    assert_int_equal(strncmp(e.field, name, 62), 0);
    json_decref(o);
}

static void test_utf8_prefix_and_nest(void **state)
{
    (void)state;
    assert_int_equal(jv_utf8_prefix("abc", 10), 3);
    assert_int_equal(jv_utf8_prefix("abc", 2), 2);
    assert_int_equal(jv_utf8_prefix("a\xc3\xa9", 2), 1); /* not half of é */
    assert_int_equal(jv_utf8_prefix("a\xc3\xa9", 3), 3);
    assert_int_equal(jv_utf8_prefix("\xe2\x80\x94x", 2), 0); /* not two thirds of — */
    assert_int_equal(jv_utf8_prefix("\xe2\x80\x94x", 3), 3);
    assert_int_equal(jv_utf8_prefix("", 5), 0);

    struct jv_error e = {0};
    jv_fail(&e, "actor", "is required");
    jv_nest(&e, "events", 3);
    assert_error(&e, "events[3].actor", "is required");
    char name[2 * 40 + 1] = "";
    for (int i = 0; i < 40; i++)
        snprintf(name + 2 * i, sizeof(name) - 2 * i, "%s", "\xc3\xa9");
    jv_fail(&e, name, "unknown field");
    jv_nest(&e, "events", 999);
    assert_renderable(e.field);
    assert_int_equal(strncmp(e.field, "events[999].\xc3\xa9", 14), 0);
    assert_true(strlen(e.field) < sizeof(e.field_buf));
}

static void test_fail(void **state)
{
    (void)state;
    struct jv_error e = {0};
    assert_int_equal(jv_fail(&e, "window", "must be at most %d times %s", 3, "limit"), -1);
    assert_error(&e, "window", "must be at most 3 times limit");
    char big[400];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(jv_fail(&e, "f", "%s", big), -1);
    assert_int_equal(strlen(e.detail), sizeof(e.detail) - 1); /* truncated, terminated */
    assert_int_equal(jv_fail(NULL, "f", "x"), -1);
}

/* ---- character checks --------------------------------------------------------------- */

static void test_token_ok(void **state)
{
    (void)state;
    assert_true(jv_token_ok("abcXYZ019", 9, NULL));
    assert_true(jv_token_ok("req-1.a_b:c", 11, "._:-"));
    assert_false(jv_token_ok("req-1", 5, NULL)); /* '-' only when listed */
    assert_false(jv_token_ok("", 0, "-"));
    assert_false(jv_token_ok("a b", 3, "-"));
    assert_false(jv_token_ok("a{b}", 4, "-"));
    assert_false(jv_token_ok("ab\0c", 4, "-")); /* NUL is never in extra */
    assert_false(jv_token_ok("caf\xc3\xa9", 5, "-"));
    assert_false(jv_token_ok("a\n", 2, "-"));
    assert_true(jv_token_ok("ab!", 2, NULL)); /* only s[0..len) is looked at */
}

static void test_printable_ok(void **state)
{
    (void)state;
    assert_true(jv_printable_ok(" Hello, ~world!", 15));
    assert_true(jv_printable_ok("", 0));
    assert_false(jv_printable_ok("tab\there", 8));
    assert_false(jv_printable_ok("nl\n", 3));
    assert_false(jv_printable_ok("\x1f", 1));
    assert_false(jv_printable_ok("\x7f", 1));
    assert_false(jv_printable_ok("\x80", 1));
    assert_false(jv_printable_ok("caf\xc3\xa9", 5));
    assert_false(jv_printable_ok("a\0b", 3));
    assert_true(jv_printable_ok("ok\n", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_present),
        cmocka_unit_test(test_string_absent),
        cmocka_unit_test(test_string_wrong_type),
        cmocka_unit_test(test_string_length_bounds),
        cmocka_unit_test(test_string_with_nul_rejected),
        cmocka_unit_test(test_int_present_and_bounds),
        cmocka_unit_test(test_int_absent),
        cmocka_unit_test(test_int_rejects_reals_strings_bools),
        cmocka_unit_test(test_int_huge_numbers),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_object),
        cmocka_unit_test(test_array),
        cmocka_unit_test(test_only),
        cmocka_unit_test(test_only_key_with_nul),
        cmocka_unit_test(test_only_long_utf8_key),
        cmocka_unit_test(test_utf8_prefix_and_nest),
        cmocka_unit_test(test_fail),
        cmocka_unit_test(test_token_ok),
        cmocka_unit_test(test_printable_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
