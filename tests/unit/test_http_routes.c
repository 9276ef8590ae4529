/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the HTTP layer's route table (libshared/src/http_routes.c): literal and
 * :param segments, decoding after splitting, the Allow list of a path matched under other
 * methods, and values that would decode to a NUL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../libshared/src/http_routes.h"

static void handler_a(struct http_req *r, void *ctx)
{
    (void)r, (void)ctx;
}

static void handler_b(struct http_req *r, void *ctx)
{
    (void)r, (void)ctx;
}

struct fixture {
    struct route_table t;
    struct owned_str *owned;
    const char *params[HTTP_MAX_SEGS];
    char allow[64];
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    routes_add(&f.t, "POST", "/v1/claim", handler_a, NULL, 0);
    routes_add(&f.t, "GET", "/v1/sessions/:user", handler_b, NULL, 0);
    routes_add(&f.t, "DELETE", "/v1/sessions/:user/:family", handler_a, NULL, 0);
    routes_add(&f.t, "GET", "/v1/claim", handler_b, NULL, 0);
    routes_add(&f.t, "GET", "/tile/:level/*index", handler_a, NULL, 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    owned_free(&f->owned);
    assert_null(f->owned);
    routes_free(&f->t);
    return 0;
}

static const struct route *find(struct fixture *f, const char *method, const char *path)
{
    return routes_find(&f->t, method, path, f->params, &f->owned, f->allow, sizeof(f->allow));
}

static void test_literal_routes_by_method(void **state)
{
    struct fixture *f = *state;
    const struct route *r = find(f, "POST", "/v1/claim");
    assert_non_null(r);
    assert_ptr_equal(r->handler, handler_a);
    r = find(f, "GET", "/v1/claim");
    assert_non_null(r);
    assert_ptr_equal(r->handler, handler_b);
    assert_string_equal(r->pattern, "/v1/claim");
    assert_null(find(f, "GET", "/v1/claims"));
    assert_string_equal(f->allow, "");
    assert_null(find(f, "POST", "/v1"));
    assert_null(find(f, "POST", "/v1/claim/extra"));
}

/* "*name" takes the rest of the path (one segment or more), raw. */
static void test_rest_of_path(void **state)
{
    struct fixture *f = *state;
    const struct route *r = find(f, "GET", "/tile/0/x001/x234/067.p/5");
    assert_non_null(r);
    assert_string_equal(routes_param(r, f->params, "level"), "0");
    assert_string_equal(routes_param(r, f->params, "index"), "x001/x234/067.p/5");
    r = find(f, "GET", "/tile/entries/%41");
    assert_non_null(r);
    assert_string_equal(routes_param(r, f->params, "index"), "%41"); /* not decoded */
    assert_null(find(f, "GET", "/tile/0"));
    assert_null(find(f, "GET", "/tile"));
    assert_null(find(f, "POST", "/tile/0/1"));
    assert_string_equal(f->allow, "GET");
}

static void test_params_are_decoded_after_splitting(void **state)
{
    struct fixture *f = *state;
    const struct route *r = find(f, "DELETE", "/v1/sessions/u%2F1/f%7B2%7D+x");
    assert_non_null(r);
    /* an encoded '/' stays in its segment; '+' is a plus in a path */
    assert_string_equal(routes_param(r, f->params, "user"), "u/1");
    assert_string_equal(routes_param(r, f->params, "family"), "f{2}+x");
    assert_null(routes_param(r, f->params, "sessions"));
    assert_null(routes_param(r, f->params, "nope"));
}

static void test_other_methods_fill_allow(void **state)
{
    struct fixture *f = *state;
    assert_null(find(f, "PUT", "/v1/claim"));
    assert_string_equal(f->allow, "POST, GET");
    assert_null(find(f, "POST", "/v1/sessions/alice"));
    assert_string_equal(f->allow, "GET");
}

static void test_encoded_nul_never_matches(void **state)
{
    struct fixture *f = *state;
    assert_null(find(f, "GET", "/v1/sessions/a%00b"));
    assert_string_equal(f->allow, "");
    assert_null(owned_decode(&f->owned, "x%00y", 5, 1));
}

static void test_decode(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(owned_decode(&f->owned, "a+b%21%zz%4", 11, 1), "a b!%zz%4");
    assert_string_equal(owned_decode(&f->owned, "a+b", 3, 0), "a+b");
    assert_string_equal(owned_decode(&f->owned, "%41%62", 6, 0), "Ab");
    assert_string_equal(owned_decode(&f->owned, "", 0, 0), "");
}

static void test_too_many_segments(void **state)
{
    struct fixture *f = *state;
    assert_null(find(f, "GET", "/a/b/c/d/e/f/g/h/i/j"));
    assert_string_equal(f->allow, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_literal_routes_by_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest_of_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params_are_decoded_after_splitting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_methods_fill_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encoded_nul_never_matches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_segments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
