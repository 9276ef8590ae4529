/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the event loop (libshared/src/loop.c): timers fire in order and once,
 * re-arming moves them and stopping disarms them; end-of-turn tasks run after the turn's
 * events, once however often deferred; work posted from other threads runs on the loop;
 * a watcher stopped during a turn sees no event of that turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shared/loop.h"

struct rec {
    struct loop *l;
    int order[16];
    int n;
};

static void fired(struct loop_timer *t)
{
    struct rec *r = t->arg;
    r->order[r->n++] = (int)t->at_ms; /* tests below tag timers by their delay */
}

static void stop_loop(struct loop_timer *t)
{
    struct rec *r = t->arg;
    loop_stop(r->l);
}

static void test_timers(void **state)
{
    (void)state;
    char err[128];
    struct loop *l = loop_create(err, sizeof(err));
    assert_non_null(l);
    struct rec r = {.l = l};
    struct loop_timer t[5], end = {.fn = stop_loop, .arg = &r};
    int64_t base = loop_now_ms(l);
    int delays[5] = {30, 10, 20, 40, 50};
    for (int i = 0; i < 5; i++) {
        t[i] = (struct loop_timer){.fn = fired, .arg = &r};
        loop_timer_start(l, &t[i], delays[i]);
        assert_true(loop_timer_armed(&t[i]));
    }
    loop_timer_stop(l, &t[3]); /* 40 never fires */
    assert_false(loop_timer_armed(&t[3]));
    loop_timer_start(l, &t[4], 5); /* 50 moves to 5 */
    loop_timer_start(l, &end, 80);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(r.n, 4);
    int64_t want[4] = {5, 10, 20, 30};
    for (int i = 0; i < 4; i++)
        assert_int_equal(r.order[i], base + want[i]);
    assert_true(loop_now_ms(l) >= base + 80);
    loop_free(l);
}

struct deferred {
    struct loop_task task;
    int runs;
    int events_seen; /* how many reads the watcher had made when the task ran */
    int *reads;
};

static void task_ran(struct loop_task *t)
{
    struct deferred *d = t->arg;
    d->runs++;
    d->events_seen = *d->reads;
}

struct watcher {
    struct loop_io io;
    struct loop *l;
    struct deferred *d;
    int reads;
    struct watcher *victim; /* stopped by this one's callback */
};

static void readable(struct loop_io *io, unsigned ready)
{
    struct watcher *w = io->arg;
    char b[16];
    assert_true(ready & LOOP_READ);
    assert_true(read(io->fd, b, sizeof(b)) > 0);
    w->reads++;
    if (w->d) {
        loop_defer(w->l, &w->d->task);
        loop_defer(w->l, &w->d->task); /* twice: runs once */
    }
    if (w->victim)
        loop_io_stop(w->l, &w->victim->io);
    loop_stop(w->l);
}

static void test_defer_and_stop_in_turn(void **state)
{
    (void)state;
    char err[128];
    struct loop *l = loop_create(err, sizeof(err));
    assert_non_null(l);
    int a[2], b[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    struct watcher wa = {.l = l}, wb = {.l = l};
    struct deferred d = {.reads = &wa.reads};
    d.task = (struct loop_task){.fn = task_ran, .arg = &d};
    wa.io = (struct loop_io){.fd = a[0], .fn = readable, .arg = &wa};
    wb.io = (struct loop_io){.fd = b[0], .fn = readable, .arg = &wb};
    wa.d = &d;
    /* Whichever runs first stops the other: the other must not run in that turn. */
    wa.victim = &wb;
    wb.victim = &wa;
    assert_int_equal(loop_io_start(l, &wa.io, LOOP_READ), 0);
    assert_int_equal(loop_io_start(l, &wb.io, LOOP_READ), 0);
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "y", 1), 1);
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(wa.reads + wb.reads, 1);
    if (wa.reads)
        assert_int_equal(d.runs, 1), assert_int_equal(d.events_seen, 1);
    loop_io_stop(l, &wa.io);
    loop_io_stop(l, &wb.io);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]);
    loop_free(l);
}

struct poster {
    struct loop *l;
    int count;
};

static void count_one(void *arg)
{
    struct poster *p = arg;
    if (++p->count == 4000)
        loop_stop(p->l);
}

static void *post_many(void *arg)
{
    struct poster *p = arg;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(loop_post(p->l, count_one, p), 0);
    return NULL;
}

static void test_post_from_threads(void **state)
{
    (void)state;
    char err[128];
    struct loop *l = loop_create(err, sizeof(err));
    assert_non_null(l);
    struct poster p = {.l = l};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, post_many, &p), 0);
    assert_int_equal(loop_run(l), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(p.count, 4000);
    struct loop_stats st;
    loop_stats(l, &st);
    assert_true(st.turns >= 1);
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_defer_and_stop_in_turn),
        cmocka_unit_test(test_post_from_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
