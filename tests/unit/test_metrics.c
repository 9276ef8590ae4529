/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for shared/metrics: exact Prometheus exposition text, label escaping, the
 * overflow series, number formatting, render hooks and exact totals under contention. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/metrics.h"

/* Render m and compare with the expected text exactly. */
static void assert_render(struct metrics *m, const char *want)
{
    size_t len = 0;
    char *text = metrics_render(m, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    assert_string_equal(text, want);
    free(text);
}

static size_t count_substr(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_counter_with_labels_exact_text(void **state)
{
    (void)state;
    struct metrics *m = metrics_create("idemd");
    struct metric *c =
        metrics_counter(m, "http_requests_total", "HTTP requests by route.", "route,method,code");
    metric_inc(metric_with(c, "/v1/claim", "POST", "200"));
    metric_inc(metric_with(c, "/v1/claim", "POST", "200"));
    metric_add(metric_with(c, "/health", "GET", "200"), 5);
    metric_with(c, "/v1/claim", "POST", "409"); /* created, never incremented */
    assert_render(
        m, "# HELP idemd_http_requests_total HTTP requests by route.\n"
           "# TYPE idemd_http_requests_total counter\n"
           "idemd_http_requests_total{route=\"/v1/claim\",method=\"POST\",code=\"200\"} 2\n"
           "idemd_http_requests_total{route=\"/health\",method=\"GET\",code=\"200\"} 5\n"
           "idemd_http_requests_total{route=\"/v1/claim\",method=\"POST\",code=\"409\"} 0\n");
    assert_true(metric_value(metric_with(c, "/health", "GET", "200")) == 5.0);
    metrics_free(m);
}

static void test_counter_large_values_are_integers(void **state)
{
    (void)state;
    struct metrics *m = metrics_create("t");
    struct metric_series *s = metric_series(metrics_counter(m, "big_total", "Big.", NULL), NULL);
    metric_add(s, UINT64_C(18446744073709551000));
    metric_add(s, 15);
    assert_render(m, "# HELP t_big_total Big.\n"
                     "# TYPE t_big_total counter\n"
                     "t_big_total 18446744073709551015\n");
    metrics_free(m);
}

static void test_gauge_exact_text(void **state)
{
    (void)state;
    struct metrics *m = metrics_create("idemd");
    struct metric_series *g =
        metric_series(metrics_gauge(m, "redis_pool_idle_connections", "Idle.", NULL), NULL);
    assert_render(m, "# HELP idemd_redis_pool_idle_connections Idle.\n"
                     "# TYPE idemd_redis_pool_idle_connections gauge\n"
                     "idemd_redis_pool_idle_connections 0\n");
    metric_set(g, 3);
    metric_gauge_add(g, 0.5);
    assert_true(metric_value(g) == 3.5);
    assert_render(m, "# HELP idemd_redis_pool_idle_connections Idle.\n"
                     "# TYPE idemd_redis_pool_idle_connections gauge\n"
                     "idemd_redis_pool_idle_connections 3.5\n");
    metric_gauge_add(g, -10);
    assert_true(metric_value(g) == -6.5);
    metrics_free(m);
}

static void test_number_formatting(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {1e20, "100000000000000000000"},
        {1.5e-7, "1.5e-07"},
        {-0.5, "-0.5"},
        {123456789.125, "123456789.125"},
        {1.0 / 3.0, "0.3333333333333333"},
        {1e300, "1e+300"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {42, "42"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct metrics *m = metrics_create("");
        metric_set(metric_series(metrics_gauge(m, "g", "G.", NULL), NULL), cases[i].v);
        char want[160];
        snprintf(want, sizeof(want), "# HELP g G.\n# TYPE g gauge\ng %s\n", cases[i].text);
        assert_render(m, want);
        metrics_free(m);
    }
}

static void test_histogram_exact_text(void **state)
{
    (void)state;
    static const double bounds[] = {0.25, 0.5, 1};
    struct metrics *m = metrics_create("idemd");
    struct metric *h = metrics_histogram(m, "latency_seconds", "Latency.", "route", bounds, 3);
    struct metric_series *s = metric_with(h, "/a");
    metric_observe(s, 0.25); /* a bound belongs to its own bucket (le = less or equal) */
    metric_observe(s, 0.5);
    metric_observe(s, 0.75);
    metric_observe(s, 3);
    assert_render(m, "# HELP idemd_latency_seconds Latency.\n"
                     "# TYPE idemd_latency_seconds histogram\n"
                     "idemd_latency_seconds_bucket{route=\"/a\",le=\"0.25\"} 1\n"
                     "idemd_latency_seconds_bucket{route=\"/a\",le=\"0.5\"} 2\n"
                     "idemd_latency_seconds_bucket{route=\"/a\",le=\"1\"} 3\n"
                     "idemd_latency_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n"
                     "idemd_latency_seconds_sum{route=\"/a\"} 4.5\n"
                     "idemd_latency_seconds_count{route=\"/a\"} 4\n");
    assert_int_equal(metric_hist_count(s), 4);
    assert_int_equal(metric_hist_count_le(s, 0.25), 1);
    assert_int_equal(metric_hist_count_le(s, 0.5), 2);
    assert_int_equal(metric_hist_count_le(s, 1), 3);
    assert_int_equal(metric_hist_count_le(s, 0.1), 0);
    assert_int_equal(metric_hist_count_le(s, INFINITY), 4);
    metrics_free(m);
}

static void test_histogram_without_labels(void **state)
{
    (void)state;
    static const double bounds[] = {0.005, 2.5};
    struct metrics *m = metrics_create("rl");
    struct metric_series *s =
        metric_series(metrics_histogram(m, "d_seconds", "D.", NULL, bounds, 2), NULL);
    metric_observe(s, 0.001);
    metric_observe(s, NAN); /* counted, in +Inf only */
    assert_render(m, "# HELP rl_d_seconds D.\n"
                     "# TYPE rl_d_seconds histogram\n"
                     "rl_d_seconds_bucket{le=\"0.005\"} 1\n"
                     "rl_d_seconds_bucket{le=\"2.5\"} 1\n"
                     "rl_d_seconds_bucket{le=\"+Inf\"} 2\n"
                     "rl_d_seconds_sum NaN\n"
                     "rl_d_seconds_count 2\n");
    metrics_free(m);
}

static void test_latency_buckets(void **state)
{
    (void)state;
    static const double want[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                  0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
    assert_int_equal(METRICS_LATENCY_BUCKETS_N, 16);
    for (size_t i = 0; i < 16; i++)
        assert_true(METRICS_LATENCY_BUCKETS[i] == want[i]);
    struct metrics *m = metrics_create("x");
    struct metric_series *s = metric_series(
        metrics_histogram(m, "h", "H.", NULL, METRICS_LATENCY_BUCKETS, METRICS_LATENCY_BUCKETS_N),
        NULL);
    metric_observe(s, 0.0003);
    size_t len;
    char *text = metrics_render(m, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "x_h_bucket{le=\"0.00025\"} 0\nx_h_bucket{le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(text, "x_h_bucket{le=\"10\"} 1\nx_h_bucket{le=\"+Inf\"} 1\n"));
    assert_int_equal(count_substr(text, "x_h_bucket{"), 17);
    free(text);
    metrics_free(m);
}

static void test_label_and_help_escaping(void **state)
{
    (void)state;
    struct metrics *m = metrics_create("t");
    struct metric *c =
        metrics_counter(m, "e_total", "Help with \\ and \"quotes\"\nand a newline.", "path");
    metric_inc(metric_with(c, "a\\b\"c\nd"));
    assert_render(m, "# HELP t_e_total Help with \\\\ and \"quotes\"\\nand a newline.\n"
                     "# TYPE t_e_total counter\n"
                     "t_e_total{path=\"a\\\\b\\\"c\\nd\"} 1\n");
    metrics_free(m);
}

static void test_families_in_registration_order(void **state)
{
    (void)state;
    struct metrics *m = metrics_create("d");
    metrics_gauge(m, "b", "B.", NULL);
    metrics_counter(m, "a_total", "A.", NULL);
    struct metric *k = metrics_counter(m, "c_total", "C.", "kind");
    metric_inc(metric_with(k, "z"));
    metric_inc(metric_with(k, "a"));
    assert_render(m, "# HELP d_b B.\n# TYPE d_b gauge\nd_b 0\n"
                     "# HELP d_a_total A.\n# TYPE d_a_total counter\nd_a_total 0\n"
                     "# HELP d_c_total C.\n# TYPE d_c_total counter\n"
                     "d_c_total{kind=\"z\"} 1\nd_c_total{kind=\"a\"} 1\n");
    metrics_free(m);
    metrics_free(NULL);
}

static void test_same_labels_same_series(void **state)
{
    (void)state;
    struct metrics *m = metrics_create("t");
    struct metric *c = metrics_counter(m, "s_total", "S.", "a,b");
    char a1[] = "x", b1[] = "yz";
    char a2[] = "x", b2[] = "yz";
    struct metric_series *s1 = metric_with(c, a1, b1);
    assert_ptr_equal(metric_with(c, a2, b2), s1); /* equal strings, other buffers */
    /* Values are copied: changing the caller's buffer changes nothing. */
    a1[0] = 'q';
    assert_ptr_equal(metric_with(c, "x", "yz"), s1);
    /* ("xy","z") must not be confused with ("x","yz"). */
    assert_ptr_not_equal(metric_with(c, "xy", "z"), s1);
    assert_ptr_not_equal(metric_with(c, "x", "y"), s1);
    struct metric *plain = metrics_counter(m, "p_total", "P.", NULL);
    assert_ptr_equal(metric_series(plain, NULL), metric_series(plain, NULL));
    metrics_free(m);
}

static void test_overflow_series_after_max(void **state)
{
    (void)state;
    struct metrics *m = metrics_create("t");
    struct metric *c = metrics_counter(m, "o_total", "O.", "user,kind");
    struct metric_series *seen[METRICS_MAX_SERIES];
    char v[32];
    for (int i = 0; i < METRICS_MAX_SERIES; i++) {
        snprintf(v, sizeof(v), "u%d", i);
        seen[i] = metric_with(c, v, "k");
        metric_inc(seen[i]);
        for (int j = 0; j < i; j += 97)
            assert_ptr_not_equal(seen[i], seen[j]);
    }
    size_t len;
    char *text = metrics_render(m, &len);
    assert_null(strstr(text, "_overflow")); /* not rendered before it is used */
    free(text);

    struct metric_series *ovf = metric_with(c, "one-too-many", "k");
    for (int i = 0; i < METRICS_MAX_SERIES; i++)
        assert_ptr_not_equal(ovf, seen[i]);
    assert_ptr_equal(metric_with(c, "another", "x"), ovf);
    assert_ptr_equal(metric_with(c, "_overflow", "_overflow"), ovf);
    snprintf(v, sizeof(v), "u%d", 7);
    assert_ptr_equal(metric_with(c, v, "k"), seen[7]); /* existing ones still found */
    metric_add(ovf, 3);
    text = metrics_render(m, &len);
    assert_int_equal(count_substr(text, "\nt_o_total{"), METRICS_MAX_SERIES + 1);
    assert_non_null(strstr(text, "\nt_o_total{user=\"u511\",kind=\"k\"} 1\n"
                                 "t_o_total{user=\"_overflow\",kind=\"_overflow\"} 3\n"));
    free(text);
    metrics_free(m);
}

static void test_overflow_value_before_full(void **state)
{
    (void)state;
    struct metrics *m = metrics_create("t");
    struct metric *c = metrics_counter(m, "v_total", "V.", "k");
    /* A caller sending "_overflow" gets the overflow series, never a second one. */
    metric_inc(metric_with(c, "_overflow"));
    metric_inc(metric_with(c, "a"));
    assert_render(m, "# HELP t_v_total V.\n# TYPE t_v_total counter\n"
                     "t_v_total{k=\"a\"} 1\nt_v_total{k=\"_overflow\"} 1\n");
    metrics_free(m);
}

/* ---- contention --------------------------------------------------------------------- */

enum { THREADS = 8, PER_THREAD = 100000, KEYS = 100 };

struct shared_metrics {
    struct metric *counter;
    struct metric *by_key;
    struct metric_series *gauge;
    struct metric_series *hist;
};

static void *hammer(void *arg)
{
    struct shared_metrics *sm = arg;
    char key[16];
    for (int i = 0; i < PER_THREAD; i++) {
        metric_inc(metric_with(sm->counter, "shared"));
        metric_gauge_add(sm->gauge, 1.0);
        metric_observe(sm->hist, (i % 2) ? 0.5 : 2.0);
        /* Every thread creates the same KEYS series in the same order: races on creation. */
        snprintf(key, sizeof(key), "k%d", i % KEYS);
        metric_inc(metric_with(sm->by_key, key));
    }
    return NULL;
}

static void test_concurrent_updates_exact(void **state)
{
    (void)state;
    static const double bounds[] = {1};
    struct metrics *m = metrics_create("c");
    struct shared_metrics sm = {
        .counter = metrics_counter(m, "n_total", "N.", "k"),
        .by_key = metrics_counter(m, "by_key_total", "K.", "key"),
        .gauge = metric_series(metrics_gauge(m, "g", "G.", NULL), NULL),
        .hist = metric_series(metrics_histogram(m, "h", "H.", NULL, bounds, 1), NULL),
    };
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, hammer, &sm), 0);
    /* Render while they run: must not crash or tear. */
    for (int r = 0; r < 20; r++) {
        size_t len;
        free(metrics_render(m, &len));
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);

    assert_true(metric_value(metric_with(sm.counter, "shared")) == (double)THREADS * PER_THREAD);
    assert_true(metric_value(sm.gauge) == (double)THREADS * PER_THREAD);
    assert_int_equal(metric_hist_count(sm.hist), THREADS * PER_THREAD);
    assert_int_equal(metric_hist_count_le(sm.hist, 1), THREADS * PER_THREAD / 2);
    assert_true(metric_value(sm.hist) == 1.25 * THREADS * PER_THREAD);
    size_t len;
    char *text = metrics_render(m, &len);
    assert_int_equal(count_substr(text, "\nc_by_key_total{"), KEYS); /* no duplicates */
    assert_non_null(strstr(text, "c_by_key_total{key=\"k0\"} 8000\n"));
    assert_non_null(strstr(text, "c_by_key_total{key=\"k99\"} 8000\n"));
    assert_non_null(strstr(text, "c_n_total{k=\"shared\"} 800000\n"));
    assert_non_null(strstr(text, "c_h_sum 1000000\nc_h_count 800000\n"));
    free(text);
    metrics_free(m);
}

/* ---- hooks -------------------------------------------------------------------------- */

struct hook_state {
    struct metric_series *gauge;
    int calls;
};

static void refresh(void *arg)
{
    struct hook_state *h = arg;
    h->calls++;
    metric_set(h->gauge, h->calls * 10);
}

static void test_render_hooks_run_first(void **state)
{
    (void)state;
    struct metrics *m = metrics_create("t");
    struct hook_state h = {.gauge = metric_series(metrics_gauge(m, "idle", "I.", NULL), NULL)};
    metrics_on_render(m, refresh, &h);
    assert_int_equal(h.calls, 0);
    /* The value the hook sets is the one rendered, so the hook ran before rendering. */
    assert_render(m, "# HELP t_idle I.\n# TYPE t_idle gauge\nt_idle 10\n");
    assert_render(m, "# HELP t_idle I.\n# TYPE t_idle gauge\nt_idle 20\n");
    assert_int_equal(h.calls, 2);
    metrics_free(m);
}

static void test_empty_registry_and_prefixless(void **state)
{
    (void)state;
    struct metrics *m = metrics_create(NULL);
    assert_render(m, "");
    metric_inc(metric_series(metrics_counter(m, "up_total", "U.", NULL), NULL));
    assert_render(m, "# HELP up_total U.\n# TYPE up_total counter\nup_total 1\n");
    metrics_free(m);
}

/* metrics_find: a family by its unprefixed name, NULL for another registry's or none. */
static void test_find(void **state)
{
    (void)state;
    struct metrics *m = metrics_create("d");
    struct metric *c = metrics_counter(m, "errors_total", "Errors.", "kind");
    assert_ptr_equal(metrics_find(m, "errors_total"), c);
    assert_null(metrics_find(m, "d_errors_total"));
    assert_null(metrics_find(m, "errors"));
    metric_with(metrics_find(m, "errors_total"), "timeout");
    size_t len;
    char *text = metrics_render(m, &len);
    assert_non_null(strstr(text, "d_errors_total{kind=\"timeout\"} 0\n"));
    free(text);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_with_labels_exact_text),
        cmocka_unit_test(test_counter_large_values_are_integers),
        cmocka_unit_test(test_gauge_exact_text),
        cmocka_unit_test(test_number_formatting),
        cmocka_unit_test(test_histogram_exact_text),
        cmocka_unit_test(test_histogram_without_labels),
        cmocka_unit_test(test_latency_buckets),
        cmocka_unit_test(test_label_and_help_escaping),
        cmocka_unit_test(test_families_in_registration_order),
        cmocka_unit_test(test_same_labels_same_series),
        cmocka_unit_test(test_overflow_series_after_max),
        cmocka_unit_test(test_overflow_value_before_full),
        cmocka_unit_test(test_concurrent_updates_exact),
        cmocka_unit_test(test_render_hooks_run_first),
        cmocka_unit_test(test_empty_registry_and_prefixless),
        cmocka_unit_test(test_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
