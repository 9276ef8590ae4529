/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of ratelimitd's pure parts: GCRA and sliding-window arithmetic against an
 * independent reference model, rules-file parsing, and the bounded LRU map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../ratelimitd/gcra.h"
#include "../../ratelimitd/lru.h"
#include "../../ratelimitd/rules.h"

#define NOW0 1763800000000000LL /* a realistic Redis TIME in us */

/* Reference: a token bucket with exact integer arithmetic in units of 1/limit of a token
 * per us: tokens refill at limit per period, capacity burst. */
struct bucket {
    long long units; /* tokens * period_us */
    int64_t last_us;
};

static void bucket_decide(struct bucket *b, int64_t now, int64_t period, long long limit,
                          long long burst, long long cost, struct rl_decision *out)
{
    long long cap = burst * period;
    b->units += (now - b->last_us) * limit;
    if (b->units > cap)
        b->units = cap;
    b->last_us = now;
    long long need = cost * period;
    out->allowed = b->units >= need;
    if (out->allowed)
        b->units -= need;
    out->remaining = b->units / period;
    out->reset_after_us = (cap - b->units + limit - 1) / limit;
    out->retry_after_us = out->allowed ? 0 : (need - b->units + limit - 1) / limit;
}

static void test_gcra_fresh_key_allows_exactly_burst(void **st)
{
    (void)st;
    int64_t tat = 0;
    struct rl_decision d;
    for (int i = 0; i < 5; i++) {
        rl_gcra_decide(&tat, NOW0, 60000000, 5, 5, 1, 1, &d);
        assert_true(d.allowed);
        assert_int_equal(d.remaining, 4 - i);
        assert_int_equal(d.reset_after_us, (i + 1) * 12000000LL);
    }
    rl_gcra_decide(&tat, NOW0, 60000000, 5, 5, 1, 1, &d);
    assert_false(d.allowed);
    assert_int_equal(d.retry_after_us, 12000000);
    /* One emission interval later exactly one more. */
    rl_gcra_decide(&tat, NOW0 + 12000000, 60000000, 5, 5, 1, 1, &d);
    assert_true(d.allowed);
    rl_gcra_decide(&tat, NOW0 + 12000000, 60000000, 5, 5, 1, 1, &d);
    assert_false(d.allowed);
}

static void test_gcra_cost_is_all_or_nothing(void **st)
{
    (void)st;
    int64_t tat = 0;
    struct rl_decision d;
    rl_gcra_decide(&tat, NOW0, 1000000, 10, 10, 7, 1, &d);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 3);
    int64_t before = tat;
    rl_gcra_decide(&tat, NOW0, 1000000, 10, 10, 4, 1, &d);
    assert_false(d.allowed);
    assert_int_equal(tat, before); /* nothing consumed */
    assert_int_equal(d.remaining, 3);
    assert_int_equal(d.retry_after_us, 100000);
    rl_gcra_decide(&tat, NOW0, 1000000, 10, 10, 3, 1, &d);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 0);
}

/* A long random sequence against the token-bucket reference: same decisions, and the
 * reported times within 1 ms (they agree to the microsecond up to rounding). */
static void test_gcra_matches_token_bucket_reference(void **st)
{
    (void)st;
    srand(7);
    long long limits[] = {5, 10, 100, 3};
    long long bursts[] = {5, 3, 20, 7};
    int64_t periods[] = {60000000, 1000000, 10000000, 9000000};
    for (int p = 0; p < 4; p++) {
        int64_t tat = 0, now = NOW0;
        struct bucket b = {.units = bursts[p] * periods[p], .last_us = now};
        for (int i = 0; i < 5000; i++) {
            now += rand() % (periods[p] / limits[p]);
            long long cost = 1 + rand() % bursts[p];
            struct rl_decision got, want;
            rl_gcra_decide(&tat, now, periods[p], limits[p], bursts[p], cost, 1, &got);
            bucket_decide(&b, now, periods[p], limits[p], bursts[p], cost, &want);
            assert_int_equal(got.allowed, want.allowed);
            assert_int_equal(got.remaining, want.remaining);
            assert_true(llabs(got.reset_after_us - want.reset_after_us) <= 1000);
            assert_true(llabs(got.retry_after_us - want.retry_after_us) <= 1000);
        }
    }
}

static void test_gcra_peek_consumes_nothing(void **st)
{
    (void)st;
    int64_t tat = 0;
    struct rl_decision d;
    rl_gcra_decide(&tat, NOW0, 1000000, 10, 10, 1, 0, &d);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 10);
    assert_int_equal(d.reset_after_us, 0);
    assert_int_equal(tat, 0);
}

static void test_sliding_window_estimate(void **st)
{
    (void)st;
    const int64_t period = 10000000; /* 10 s */
    int64_t start = (NOW0 / period) * period;
    struct rl_window w = {.index = -1};
    struct rl_decision d;
    for (int i = 0; i < 10; i++) {
        rl_sliding_decide(&w, start + 1000, period, 10, 1, 1, &d);
        assert_true(d.allowed);
    }
    rl_sliding_decide(&w, start + 1000, period, 10, 1, 1, &d);
    assert_false(d.allowed);
    /* Current full (10 + 1 > 10): wait to the next window, then until 10*(1-e/p)+1 <= 10,
     * i.e. e >= p/10: retry = (p - 1000) + p/10. */
    assert_int_equal(d.retry_after_us, period - 1000 + period / 10);
    /* In the next window at 30% elapsed: estimate = 10 * 0.7 = 7 -> 3 more allowed. */
    int64_t t = start + period + 3 * period / 10;
    for (int i = 0; i < 3; i++) {
        rl_sliding_decide(&w, t, period, 10, 1, 1, &d);
        assert_true(d.allowed);
    }
    rl_sliding_decide(&w, t, period, 10, 1, 1, &d);
    assert_false(d.allowed);
    assert_int_equal(d.remaining, 0);
    /* 7 + 3 + 1 > 10 with cur = 3: estimate must lose 1: prev*(p-e-x)/p <= 6 -> x = p/10. */
    assert_int_equal(d.retry_after_us, period / 10);
    /* Two windows later everything is forgotten. */
    rl_sliding_decide(&w, start + 3 * period, period, 10, 10, 1, &d);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 0);
}

static struct rl_ruleset *parse(const char *text, char *err)
{
    return rl_rules_parse(text, strlen(text), err, 256);
}

static void test_rules_parse_fills_defaults(void **st)
{
    (void)st;
    char err[256];
    struct rl_ruleset *s =
        parse("{\"rules\":[{\"name\":\"login\",\"limit\":5,\"period\":\"1m\"},"
              "{\"name\":\"api\",\"algorithm\":\"sliding_window\",\"limit\":1000,\"period\":\"1m\","
              "\"on_redis_failure\":\"open\",\"shadow\":true}]}",
              err);
    assert_non_null(s);
    assert_int_equal(s->count, 2);
    const struct rl_rule *r = rl_ruleset_find(s, "login");
    assert_non_null(r);
    assert_int_equal(r->algorithm, RL_GCRA);
    assert_int_equal(r->burst, 5);
    assert_int_equal(r->period_ms, 60000);
    assert_int_equal(r->on_failure, RL_FALLBACK_LOCAL);
    assert_false(r->shadow);
    r = rl_ruleset_find(s, "api");
    assert_int_equal(r->algorithm, RL_SLIDING);
    assert_int_equal(r->on_failure, RL_FALLBACK_OPEN);
    assert_true(r->shadow);
    assert_int_equal(rl_rule_max_cost(r), 1000);
    assert_null(rl_ruleset_find(s, "nope"));
    rl_ruleset_unref(s);
    s = rl_rules_default();
    assert_int_equal(s->count, 1);
    assert_int_equal(rl_ruleset_find(s, "default")->limit, 100);
    assert_int_equal(rl_ruleset_find(s, "default")->period_ms, 1000);
    rl_ruleset_unref(s);
}

static void test_rules_parse_refuses_bad_files(void **st)
{
    (void)st;
    /* Long cases are split over two lines on purpose. */
    // NOLINTBEGIN(bugprone-suspicious-missing-comma)
    static const char *const bad[] = {
        "",
        "[]",
        "{\"rules\":[]}",
        "{\"rules\":[{\"name\":\"a\",\"limit\":5,\"period\":\"1m\"}],\"x\":1}",
        "{\"rules\":[{\"name\":\"A\",\"limit\":5,\"period\":\"1m\"}]}",
        "{\"rules\":[{\"name\":\"a b\",\"limit\":5,\"period\":\"1m\"}]}",
        "{\"rules\":[{\"name\":\"a\",\"limit\":0,\"period\":\"1m\"}]}",
        "{\"rules\":[{\"name\":\"a\",\"limit\":5,\"period\":\"60\"}]}",
        "{\"rules\":[{\"name\":\"a\",\"limit\":5,\"period\":\"1m\",\"burst\":0}]}",
        "{\"rules\":[{\"name\":\"a\",\"limit\":5,\"period\":\"1m\",\"algorithm\":\"x\"}]}",
        "{\"rules\":[{\"name\":\"a\",\"limit\":5,\"period\":\"500ms\","
        "\"algorithm\":\"sliding_window\"}]}",
        "{\"rules\":[{\"name\":\"a\",\"limit\":5,\"period\":\"1m\","
        "\"algorithm\":\"sliding_window\",\"burst\":3}]}",
        "{\"rules\":[{\"name\":\"a\",\"limit\":5,\"period\":\"1m\",\"on_redis_failure\":\"x\"}]}",
        "{\"rules\":[{\"name\":\"a\",\"limit\":5,\"period\":\"1m\",\"shadow\":1}]}",
        "{\"rules\":[{\"name\":\"a\",\"limit\":5,\"period\":\"1m\",\"extra\":1}]}",
        "{\"rules\":[{\"name\":\"a\",\"limit\":5,\"period\":\"1m\"},"
        "{\"name\":\"a\",\"limit\":6,\"period\":\"1m\"}]}",
        "{\"rules\":[{\"name\":\"a\",\"limit\":5,\"limit\":6,\"period\":\"1m\"}]}",
        NULL,
    };
    // NOLINTEND(bugprone-suspicious-missing-comma)
    for (int i = 0; bad[i]; i++) {
        char err[256] = "";
        struct rl_ruleset *s = parse(bad[i], err);
        if (s)
            fail_msg("accepted bad rules file #%d: %s", i, bad[i]);
        assert_true(err[0] != '\0');
    }
}

static void test_rules_holder_swap_keeps_readers_safe(void **st)
{
    (void)st;
    struct rl_rules_holder *h = rl_rules_holder_create(rl_rules_default());
    struct rl_ruleset *held = rl_rules_current(h);
    char err[256];
    rl_rules_swap(h, parse("{\"rules\":[{\"name\":\"b\",\"limit\":1,\"period\":\"1s\"}]}", err));
    /* The old set is still intact for its reader. */
    assert_non_null(rl_ruleset_find(held, "default"));
    rl_ruleset_unref(held);
    struct rl_ruleset *now = rl_rules_current(h);
    assert_non_null(rl_ruleset_find(now, "b"));
    rl_ruleset_unref(now);
    rl_rules_holder_free(h);
}

/* Put n keys k0, k1, ... */
static void lru_fill(struct rl_lru *l, int n)
{
    int64_t v[RL_LRU_VALUES] = {0};
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        rl_lru_put(l, k, strlen(k), v);
    }
}

/* Both modes behave alike (a worker's deny cache only skips the lock). */
static void test_lru_evicts_least_recently_used(void **st)
{
    enum rl_lru_mode mode = *(enum rl_lru_mode *)*st;
    struct rl_lru *l = rl_lru_create(3, mode);
    int64_t v[RL_LRU_VALUES] = {1, 2, 3}, out[RL_LRU_VALUES];
    rl_lru_put(l, "a", 1, v);
    v[0] = 10;
    rl_lru_put(l, "b", 1, v);
    rl_lru_put(l, "c", 1, v);
    assert_true(rl_lru_get(l, "a", 1, out));
    rl_lru_put(l, "a", 1, out); /* touch a: b is now the oldest */
    rl_lru_put(l, "d", 1, v);
    assert_int_equal(rl_lru_count(l), 3);
    assert_false(rl_lru_get(l, "b", 1, out));
    assert_true(rl_lru_get(l, "a", 1, out));
    assert_int_equal(out[0], 1);
    assert_int_equal(out[2], 3);
    rl_lru_delete(l, "a", 1);
    assert_false(rl_lru_get(l, "a", 1, out));
    lru_fill(l, 1000);
    assert_int_equal(rl_lru_count(l), 3);
    rl_lru_clear(l);
    assert_int_equal(rl_lru_count(l), 0);
    rl_lru_free(l);
}

static void *lru_hammer(void *arg)
{
    struct rl_lru *l = arg;
    int64_t v[RL_LRU_VALUES] = {1, 2, 3, 4}, out[RL_LRU_VALUES];
    char k[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(k, sizeof(k), "h%d", i % 500); /* the same keys in every thread */
        rl_lru_put(l, k, strlen(k), v);
        rl_lru_get(l, k, strlen(k), out);
        if (i % 3 == 0)
            rl_lru_delete(l, k, strlen(k));
    }
    return NULL;
}

/* A shared map under threads at once: it stays consistent and within its bound. */
static void test_lru_shared_is_thread_safe(void **st)
{
    (void)st;
    struct rl_lru *l = rl_lru_create(64, RL_LRU_SHARED);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, lru_hammer, l), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_true(rl_lru_count(l) <= 64);
    lru_fill(l, 500);
    assert_int_equal(rl_lru_count(l), 64);
    rl_lru_free(l);
}

int main(void)
{
    static enum rl_lru_mode shared = RL_LRU_SHARED, one_thread = RL_LRU_ONE_THREAD;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gcra_fresh_key_allows_exactly_burst),
        cmocka_unit_test(test_gcra_cost_is_all_or_nothing),
        cmocka_unit_test(test_gcra_matches_token_bucket_reference),
        cmocka_unit_test(test_gcra_peek_consumes_nothing),
        cmocka_unit_test(test_sliding_window_estimate),
        cmocka_unit_test(test_rules_parse_fills_defaults),
        cmocka_unit_test(test_rules_parse_refuses_bad_files),
        cmocka_unit_test(test_rules_holder_swap_keeps_readers_safe),
        cmocka_unit_test_prestate(test_lru_evicts_least_recently_used, &shared),
        cmocka_unit_test_prestate(test_lru_evicts_least_recently_used, &one_thread),
        cmocka_unit_test(test_lru_shared_is_thread_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
