/* SPDX-License-Identifier: Apache-2.0 */
/* conn_guard: connection slots and request deadlines for the HTTP layer, with the
 * watchdog thread that enforces the deadlines. */
#include "shared/conn_guard.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

/* How often the watchdog looks: a request is cut off at most this late. */
#define GUARD_TICK_MS 100

struct guard_conn {
    struct conn_guard *guard;
    struct guard_conn *prev, *next;
    int fd;
    _Atomic int64_t deadline_ms; /* 0: not receiving a request */
};

struct conn_guard {
    int limit;
    int64_t timeout_ms;
    struct guard_metrics m;
    _Atomic int open; /* slots taken */

    pthread_mutex_t mu; /* the list, and the descriptors in it staying open */
    pthread_cond_t wake;
    struct guard_conn *head;
    int stopping;
    pthread_t watchdog;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count(struct metric_series *s)
{
    if (s)
        metric_inc(s);
}

static void gauge_add(struct metric_series *s, double delta)
{
    if (s)
        metric_gauge_add(s, delta);
}

/* Shut down every socket past its deadline. The exchange makes each cut happen once and
 * lets a guard_disarm() that lands at the same moment win or lose cleanly. Called with
 * the mutex held, so every fd in the list is still the connection's own. */
static void cut_overdue(struct conn_guard *g, int64_t now)
{
    for (struct guard_conn *c = g->head; c; c = c->next) {
        int64_t d = atomic_load(&c->deadline_ms);
        if (d == 0 || d > now || !atomic_compare_exchange_strong(&c->deadline_ms, &d, 0))
            continue;
        shutdown(c->fd, SHUT_RDWR);
        count(g->m.timed_out);
    }
}

static void *watchdog_main(void *arg)
{
    struct conn_guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        cut_overdue(g, now_ms());
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += GUARD_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->wake, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

void guard_metrics_init(struct guard_metrics *gm, struct metrics *m)
{
    gm->open =
        metric_series(metrics_gauge(m, "http_connections", "Open HTTP connections.", NULL), NULL);
    gm->refused = metric_series(
        metrics_counter(m, "http_connections_refused_total",
                        "Connections closed at once: HTTP_CONNECTION_LIMIT reached.", NULL),
        NULL);
    gm->timed_out = metric_series(
        metrics_counter(m, "http_request_timeouts_total",
                        "Connections cut off: no whole request within HTTP_CONNECTION_TIMEOUT.",
                        NULL),
        NULL);
}

struct conn_guard *guard_create(int limit, int64_t timeout_ms, const struct guard_metrics *m)
{
    struct conn_guard *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->limit = limit;
    g->timeout_ms = timeout_ms;
    if (m)
        g->m = *m;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&g->mu, NULL);
    if (pthread_create(&g->watchdog, NULL, watchdog_main, g) != 0) {
        pthread_cond_destroy(&g->wake);
        pthread_mutex_destroy(&g->mu);
        free(g);
        return NULL;
    }
    return g;
}

void guard_free(struct conn_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stopping = 1;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->watchdog, NULL);
    while (g->head) { /* none expected; do not leak if the server left some */
        struct guard_conn *next = g->head->next;
        free(g->head);
        g->head = next;
    }
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

int guard_admit(struct conn_guard *g)
{
    /* Reserve first, then check: two threads accepting at once cannot both take the
     * last slot. */
    if (atomic_fetch_add(&g->open, 1) >= g->limit) {
        atomic_fetch_sub(&g->open, 1);
        count(g->m.refused);
        return 0;
    }
    gauge_add(g->m.open, 1);
    return 1;
}

struct guard_conn *guard_open(struct conn_guard *g, int fd)
{
    struct guard_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->guard = g;
    c->fd = fd;
    atomic_init(&c->deadline_ms, now_ms() + g->timeout_ms);
    pthread_mutex_lock(&g->mu);
    c->next = g->head;
    if (g->head)
        g->head->prev = c;
    g->head = c;
    pthread_mutex_unlock(&g->mu);
    return c;
}

void guard_arm(struct guard_conn *c)
{
    if (c)
        atomic_store(&c->deadline_ms, now_ms() + c->guard->timeout_ms);
}

void guard_disarm(struct guard_conn *c)
{
    if (c)
        atomic_store(&c->deadline_ms, 0);
}

void guard_close(struct conn_guard *g, struct guard_conn *c)
{
    if (c) {
        pthread_mutex_lock(&g->mu);
        if (c->prev)
            c->prev->next = c->next;
        else
            g->head = c->next;
        if (c->next)
            c->next->prev = c->prev;
        pthread_mutex_unlock(&g->mu);
        free(c);
    }
    atomic_fetch_sub(&g->open, 1);
    gauge_add(g->m.open, -1);
}

int guard_open_count(struct conn_guard *g)
{
    return atomic_load(&g->open);
}
