/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for shared/conn_guard: slots up to the limit and no further, and the watchdog
 * shutting down a socket at its deadline — not before, not while disarmed, never after
 * guard_close() — on socketpairs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../lib/harness.h"
#include "shared/conn_guard.h"

#define TIMEOUT_MS 300

struct fixture {
    struct metrics *m;
    struct guard_metrics gm;
    struct conn_guard *g;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
    static struct fixture f;
    f.m = metrics_create("test");
    guard_metrics_init(&f.gm, f.m);
    f.g = guard_create(3, TIMEOUT_MS, &f.gm);
    *state = &f;
    return f.g ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    guard_free(f->g);
    metrics_free(f->m);
    return 0;
}

/* Has the peer of fd been shut down (EOF on a read from our end)? */
static int is_shut(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n == 0;
}

/* Milliseconds until fd reads EOF, polling every 10 ms, or -1 after limit_ms. */
static int64_t ms_until_shut(int fd, int64_t from, int limit_ms)
{
    while (now_ms() - from < limit_ms) {
        if (is_shut(fd))
            return now_ms() - from;
        usleep(10000);
    }
    return -1;
}

/* A socketpair whose first end is admitted and guarded (deadline armed). */
static struct guard_conn *open_guarded(struct fixture *f, int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(guard_admit(f->g), 1);
    struct guard_conn *c = guard_open(f->g, sv[0]);
    assert_non_null(c);
    return c;
}

static void close_pair(int sv[2])
{
    close(sv[0]);
    close(sv[1]);
}

static void test_slots_up_to_the_limit(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 3; i++)
        assert_int_equal(guard_admit(f->g), 1);
    assert_int_equal(guard_admit(f->g), 0);
    assert_int_equal(guard_admit(f->g), 0);
    assert_int_equal(guard_open_count(f->g), 3);
    assert_true(metric_value(f->gm.open) == 3.0);
    assert_true(metric_value(f->gm.refused) == 2.0);
    /* A slot given back (here for a connection that went unguarded) can be taken again. */
    guard_close(f->g, NULL);
    assert_int_equal(guard_open_count(f->g), 2);
    assert_int_equal(guard_admit(f->g), 1);
    assert_int_equal(guard_admit(f->g), 0);
    for (int i = 0; i < 3; i++)
        guard_close(f->g, NULL);
    assert_int_equal(guard_open_count(f->g), 0);
    assert_true(metric_value(f->gm.open) == 0.0);
    assert_true(metric_value(f->gm.refused) == 3.0);
}

/* An armed socket is shut down once its deadline passes, not before. */
static void test_cut_at_the_deadline(void **state)
{
    struct fixture *f = *state;
    int sv[2];
    double cut_before = metric_value(f->gm.timed_out);
    int64_t t0 = now_ms();
    struct guard_conn *c = open_guarded(f, sv);
    int64_t after = ms_until_shut(sv[1], t0, TIMEOUT_MS + th_ms(1000));
    assert_true(after >= TIMEOUT_MS - 20);
    assert_true(after >= 0 && after < TIMEOUT_MS + th_ms(500));
    assert_true(metric_value(f->gm.timed_out) == cut_before + 1);
    guard_close(f->g, c);
    close_pair(sv);
}

/* Disarmed (a request being handled), a socket is left alone past its deadline; armed
 * again, it gets a whole new timeout. */
static void test_disarmed_is_left_alone(void **state)
{
    struct fixture *f = *state;
    int sv[2];
    struct guard_conn *c = open_guarded(f, sv);
    guard_disarm(c);
    usleep((TIMEOUT_MS + 300) * 1000);
    assert_false(is_shut(sv[1]));
    int64_t t0 = now_ms();
    guard_arm(c);
    int64_t after = ms_until_shut(sv[1], t0, TIMEOUT_MS + th_ms(1000));
    assert_true(after >= TIMEOUT_MS - 20 && after < TIMEOUT_MS + th_ms(500));
    guard_close(f->g, c);
    close_pair(sv);
}

/* After guard_close() the descriptor is the caller's again: never shut down. */
static void test_closed_is_never_touched(void **state)
{
    struct fixture *f = *state;
    int sv[2];
    struct guard_conn *c = open_guarded(f, sv);
    guard_close(f->g, c);
    usleep((TIMEOUT_MS + 300) * 1000);
    assert_false(is_shut(sv[1]));
    assert_int_equal(send(sv[0], "x", 1, 0), 1);
    char got = 0;
    assert_int_equal(recv(sv[1], &got, 1, 0), 1);
    assert_int_equal(got, 'x');
    assert_int_equal(guard_open_count(f->g), 0);
    close_pair(sv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slots_up_to_the_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_at_the_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disarmed_is_left_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_is_never_touched, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
