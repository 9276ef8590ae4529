/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of ratelimitd's circuit breaker state machine, on an injected clock and an
 * injected jitter source (no sleeping, no Redis). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "../../ratelimitd/breaker.h"

struct fake {
    int64_t now;
    double rnd;
    int transitions;
    enum rl_brk_state last_from, last_to;
    int rejected_probes;
};

static int64_t fake_now(void *arg)
{
    return ((struct fake *)arg)->now;
}
static double fake_rand(void *arg)
{
    return ((struct fake *)arg)->rnd;
}
static void fake_transition(void *arg, enum rl_brk_state from, enum rl_brk_state to)
{
    struct fake *f = arg;
    f->transitions++;
    f->last_from = from;
    f->last_to = to;
}
static void fake_rejected(void *arg)
{
    ((struct fake *)arg)->rejected_probes++;
}

static struct rl_brk *make(struct fake *f, int threshold, int probes)
{
    memset(f, 0, sizeof(*f));
    f->now = 1000000;
    f->rnd = 0.5; /* no jitter: 0.9 + 0.2 * 0.5 = 1.0 */
    struct rl_brk_config c = {.failure_threshold = threshold,
                              .open_ms = 1000,
                              .open_max_ms = 5000,
                              .half_open_max_probes = probes};
    struct rl_brk_hooks h = {.now_ms = fake_now,
                             .random01 = fake_rand,
                             .on_transition = fake_transition,
                             .on_rejected_probe = fake_rejected,
                             .arg = f};
    struct rl_brk *b = rl_brk_create(&c, &h);
    assert_non_null(b);
    return b;
}

static enum rl_brk_state state(struct rl_brk *b)
{
    struct rl_brk_snapshot s;
    rl_brk_snapshot(b, &s);
    return s.state;
}

static void fail_n(struct rl_brk *b, int n)
{
    for (int i = 0; i < n; i++) {
        enum rl_brk_ticket t = rl_brk_acquire(b);
        assert_int_equal(t, RL_BRK_PASS);
        rl_brk_release(b, t, 0);
    }
}

static void test_opens_after_threshold_consecutive_failures(void **st)
{
    (void)st;
    struct fake f;
    struct rl_brk *b = make(&f, 3, 1);
    fail_n(b, 2);
    assert_int_equal(state(b), RL_BRK_CLOSED);
    /* A success in between resets the count: failures must be consecutive. */
    rl_brk_release(b, rl_brk_acquire(b), 1);
    fail_n(b, 2);
    assert_int_equal(state(b), RL_BRK_CLOSED);
    fail_n(b, 1);
    assert_int_equal(state(b), RL_BRK_OPEN);
    assert_int_equal(f.transitions, 1);
    assert_int_equal(f.last_from, RL_BRK_CLOSED);
    assert_int_equal(f.last_to, RL_BRK_OPEN);
    assert_int_equal(rl_brk_acquire(b), RL_BRK_REJECT);
    rl_brk_free(b);
}

static void test_half_open_admits_exactly_max_probes(void **st)
{
    (void)st;
    struct fake f;
    struct rl_brk *b = make(&f, 1, 2);
    fail_n(b, 1);
    f.now += 999;
    assert_int_equal(rl_brk_acquire(b), RL_BRK_REJECT); /* still open */
    f.now += 1;
    assert_int_equal(rl_brk_acquire(b), RL_BRK_PROBE);
    assert_int_equal(state(b), RL_BRK_HALF_OPEN);
    assert_int_equal(rl_brk_acquire(b), RL_BRK_PROBE);
    for (int i = 0; i < 10; i++)
        assert_int_equal(rl_brk_acquire(b), RL_BRK_REJECT);
    assert_int_equal(f.rejected_probes, 10);
    struct rl_brk_snapshot s;
    rl_brk_snapshot(b, &s);
    assert_int_equal(s.half_open_in_flight, 2);
    /* Two consecutive successes (= max probes) close it. */
    rl_brk_release(b, RL_BRK_PROBE, 1);
    assert_int_equal(state(b), RL_BRK_HALF_OPEN);
    rl_brk_release(b, RL_BRK_PROBE, 1);
    assert_int_equal(state(b), RL_BRK_CLOSED);
    assert_int_equal(rl_brk_acquire(b), RL_BRK_PASS);
    rl_brk_free(b);
}

static void test_probe_failure_reopens_with_doubling_up_to_max(void **st)
{
    (void)st;
    struct fake f;
    struct rl_brk *b = make(&f, 1, 1);
    fail_n(b, 1);
    int64_t expect[] = {2000, 4000, 5000, 5000};
    for (int i = 0; i < 4; i++) {
        struct rl_brk_snapshot s;
        rl_brk_snapshot(b, &s);
        f.now = s.open_until_ms;
        assert_int_equal(rl_brk_acquire(b), RL_BRK_PROBE);
        int64_t t0 = f.now;
        rl_brk_release(b, RL_BRK_PROBE, 0);
        rl_brk_snapshot(b, &s);
        assert_int_equal(s.state, RL_BRK_OPEN);
        assert_int_equal(s.open_until_ms - t0, expect[i]);
    }
    /* Success closes and brings the period back to its base. */
    struct rl_brk_snapshot s;
    rl_brk_snapshot(b, &s);
    f.now = s.open_until_ms;
    assert_int_equal(rl_brk_acquire(b), RL_BRK_PROBE);
    rl_brk_release(b, RL_BRK_PROBE, 1);
    assert_int_equal(state(b), RL_BRK_CLOSED);
    int64_t t0 = f.now;
    fail_n(b, 1);
    rl_brk_snapshot(b, &s);
    assert_int_equal(s.open_until_ms - t0, 1000);
    rl_brk_free(b);
}

static void test_jitter_is_plus_minus_ten_percent(void **st)
{
    (void)st;
    struct fake f;
    struct rl_brk *b = make(&f, 1, 1);
    f.rnd = 0.0;
    fail_n(b, 1);
    struct rl_brk_snapshot s;
    rl_brk_snapshot(b, &s);
    assert_int_equal(s.open_until_ms - f.now, 900);
    rl_brk_reset(b);
    f.rnd = 0.999999;
    fail_n(b, 1);
    rl_brk_snapshot(b, &s);
    assert_int_equal(s.open_until_ms - f.now, 1099);
    rl_brk_free(b);
}

static void test_admin_states(void **st)
{
    (void)st;
    struct fake f;
    struct rl_brk *b = make(&f, 1, 1);
    rl_brk_force_open(b);
    assert_int_equal(state(b), RL_BRK_FORCED_OPEN);
    f.now += 100000; /* forced_open never goes half-open by itself */
    assert_int_equal(rl_brk_acquire(b), RL_BRK_REJECT);
    rl_brk_disable(b);
    assert_int_equal(state(b), RL_BRK_DISABLED);
    fail_n(b, 50); /* disabled never opens */
    assert_int_equal(state(b), RL_BRK_DISABLED);
    rl_brk_reset(b);
    assert_int_equal(state(b), RL_BRK_CLOSED);
    assert_int_equal(f.last_from, RL_BRK_DISABLED);
    assert_int_equal(f.last_to, RL_BRK_CLOSED);
    struct rl_brk_snapshot s;
    rl_brk_snapshot(b, &s);
    assert_int_equal(s.consecutive_failures, 0);
    rl_brk_free(b);
}

static struct rl_brk *race_breaker;
static atomic_int race_probes;
static atomic_int race_go;

static void *race_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&race_go))
        ;
    if (rl_brk_acquire(race_breaker) == RL_BRK_PROBE)
        atomic_fetch_add(&race_probes, 1);
    return NULL;
}

/* Many threads hitting a half-open breaker at once: exactly max_probes get through. */
static void test_concurrent_half_open_grants_exactly_max(void **st)
{
    (void)st;
    struct fake f;
    for (int round = 0; round < 20; round++) {
        race_breaker = make(&f, 1, 3);
        fail_n(race_breaker, 1);
        f.now += 2000;
        atomic_store(&race_probes, 0);
        atomic_store(&race_go, 0);
        pthread_t t[16];
        for (int i = 0; i < 16; i++)
            pthread_create(&t[i], NULL, race_thread, NULL);
        atomic_store(&race_go, 1);
        for (int i = 0; i < 16; i++)
            pthread_join(t[i], NULL);
        assert_int_equal(atomic_load(&race_probes), 3);
        rl_brk_free(race_breaker);
    }
}

static void test_bad_config_is_refused(void **st)
{
    (void)st;
    struct rl_brk_config c = {
        .failure_threshold = 0, .open_ms = 1, .open_max_ms = 1, .half_open_max_probes = 1};
    assert_null(rl_brk_create(&c, NULL));
    c.failure_threshold = 1;
    c.open_max_ms = 0;
    assert_null(rl_brk_create(&c, NULL));
    assert_string_equal(rl_brk_state_name(RL_BRK_HALF_OPEN), "half_open");
    assert_string_equal(rl_brk_state_name(RL_BRK_FORCED_OPEN), "forced_open");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_after_threshold_consecutive_failures),
        cmocka_unit_test(test_half_open_admits_exactly_max_probes),
        cmocka_unit_test(test_probe_failure_reopens_with_doubling_up_to_max),
        cmocka_unit_test(test_jitter_is_plus_minus_ten_percent),
        cmocka_unit_test(test_admin_states),
        cmocka_unit_test(test_concurrent_half_open_grants_exactly_max),
        cmocka_unit_test(test_bad_config_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
