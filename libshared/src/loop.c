/* SPDX-License-Identifier: Apache-2.0 */
/* loop: one thread's event loop — epoll, a timer heap, end-of-turn tasks, posted work. */
#include "shared/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 128

struct posted {
    struct posted *next;
    void (*fn)(void *arg);
    void *arg;
};

struct loop {
    int epfd;
    int wake_fd; /* eventfd: posted work, or a stop */
    struct loop_io wake_io;
    int64_t now_ms;
    _Atomic int stopping;

    struct loop_timer **heap; /* min-heap on at_ms */
    size_t nheap, heap_cap;

    struct loop_task *tasks, *tasks_tail; /* to run at the end of the turn */

    pthread_mutex_t posted_mu;
    struct posted *posted, *posted_tail;
    _Atomic int woken; /* a wake-up is on its way: no need for another write */

    /* The events of the turn being run: a watcher stopped during the turn is taken out
     * of those not yet run, so its memory may be freed at once. */
    struct epoll_event *batch;
    int batch_n;

    struct loop_stats stats;
};

static int64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t epoll_bits(unsigned events)
{
    return ((events & LOOP_READ) ? EPOLLIN | EPOLLRDHUP : 0u) |
           ((events & LOOP_WRITE) ? EPOLLOUT : 0u);
}

/* ---- posted work ------------------------------------------------------------------- */

static void run_posted(struct loop *l)
{
    pthread_mutex_lock(&l->posted_mu);
    struct posted *p = l->posted;
    l->posted = l->posted_tail = NULL;
    atomic_store(&l->woken, 0);
    pthread_mutex_unlock(&l->posted_mu);
    while (p) {
        struct posted *next = p->next;
        p->fn(p->arg);
        free(p);
        p = next;
    }
}

static void on_wake(struct loop_io *io, unsigned ready)
{
    struct loop *l = io->arg;
    uint64_t n;
    (void)ready;
    if (read(l->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        return;
    run_posted(l);
}

static void wake(struct loop *l)
{
    if (atomic_exchange(&l->woken, 1))
        return;
    uint64_t one = 1;
    ssize_t n = write(l->wake_fd, &one, sizeof(one));
    (void)n; /* a full counter (EAGAIN) has already woken the loop */
}

int loop_post(struct loop *l, void (*fn)(void *arg), void *arg)
{
    struct posted *p = malloc(sizeof(*p));
    if (!p)
        return -1;
    p->next = NULL;
    p->fn = fn;
    p->arg = arg;
    pthread_mutex_lock(&l->posted_mu);
    if (l->posted_tail)
        l->posted_tail->next = p;
    else
        l->posted = p;
    l->posted_tail = p;
    /* Woken under the lock: the work cannot run (and its owner cannot free the loop)
     * before this thread is done with l. */
    wake(l);
    pthread_mutex_unlock(&l->posted_mu);
    return 0;
}

void loop_stop(struct loop *l)
{
    atomic_store(&l->stopping, 1);
    atomic_store(&l->woken, 0);
    wake(l);
}

/* ---- lifecycle --------------------------------------------------------------------- */

struct loop *loop_create(char *err, size_t errsize)
{
    struct loop *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    l->wake_fd = -1;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd >= 0)
        l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&l->posted_mu, NULL);
    l->wake_io = (struct loop_io){.fd = l->wake_fd, .fn = on_wake, .arg = l};
    if (l->epfd < 0 || l->wake_fd < 0 || loop_io_start(l, &l->wake_io, LOOP_READ) != 0) {
        snprintf(err, errsize, "cannot create an event loop: %s", strerror(errno));
        loop_free(l);
        return NULL;
    }
    l->now_ms = clock_ms();
    return l;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    for (struct posted *p = l->posted, *next; p; p = next) {
        next = p->next;
        free(p);
    }
    pthread_mutex_destroy(&l->posted_mu);
    free(l->heap);
    free(l);
}

int64_t loop_now_ms(const struct loop *l)
{
    return l->now_ms;
}

int64_t loop_update_now(struct loop *l)
{
    return l->now_ms = clock_ms();
}

void loop_stats(const struct loop *l, struct loop_stats *out)
{
    *out = l->stats;
}

/* ---- descriptors ------------------------------------------------------------------- */

int loop_io_start(struct loop *l, struct loop_io *io, unsigned events)
{
    struct epoll_event ev = {.events = epoll_bits(events), .data.ptr = io};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev) != 0)
        return -1;
    io->events = events | 0x80000000u; /* the high bit: registered */
    return 0;
}

int loop_io_set(struct loop *l, struct loop_io *io, unsigned events)
{
    if ((io->events & ~0x80000000u) == events)
        return 0;
    struct epoll_event ev = {.events = epoll_bits(events), .data.ptr = io};
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) != 0)
        return -1;
    io->events = events | 0x80000000u;
    return 0;
}

void loop_io_stop(struct loop *l, struct loop_io *io)
{
    if (!(io->events & 0x80000000u))
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->events = 0;
    for (int i = 0; i < l->batch_n; i++)
        if (l->batch[i].data.ptr == io)
            l->batch[i].data.ptr = NULL;
}

/* ---- timers: a binary min-heap; slot is the index + 1 ------------------------------ */

static void heap_set(struct loop *l, size_t i, struct loop_timer *t)
{
    l->heap[i] = t;
    t->slot = i + 1;
}

static void sift_up(struct loop *l, size_t i)
{
    struct loop_timer *t = l->heap[i];
    while (i > 0 && l->heap[(i - 1) / 2]->at_ms > t->at_ms) {
        heap_set(l, i, l->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(l, i, t);
}

static void sift_down(struct loop *l, size_t i)
{
    struct loop_timer *t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->nheap)
            break;
        if (c + 1 < l->nheap && l->heap[c + 1]->at_ms < l->heap[c]->at_ms)
            c++;
        if (l->heap[c]->at_ms >= t->at_ms)
            break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
    if (!t->slot)
        return;
    size_t i = t->slot - 1;
    t->slot = 0;
    struct loop_timer *last = l->heap[--l->nheap];
    if (i == l->nheap)
        return;
    heap_set(l, i, last);
    sift_down(l, i);
    sift_up(l, last->slot - 1);
}

void loop_timer_start(struct loop *l, struct loop_timer *t, int64_t after_ms)
{
    loop_timer_stop(l, t);
    if (l->nheap == l->heap_cap) {
        size_t cap = l->heap_cap ? l->heap_cap * 2 : 64;
        struct loop_timer **h = realloc(l->heap, cap * sizeof(struct loop_timer *));
        if (!h)
            abort(); /* a timer that silently never fires would hang a request forever */
        l->heap = h;
        l->heap_cap = cap;
    }
    t->at_ms = l->now_ms + after_ms;
    heap_set(l, l->nheap++, t);
    sift_up(l, l->nheap - 1);
}

int loop_timer_armed(const struct loop_timer *t)
{
    return t->slot != 0;
}

static void run_timers(struct loop *l)
{
    while (l->nheap > 0 && l->heap[0]->at_ms <= l->now_ms) {
        struct loop_timer *t = l->heap[0];
        loop_timer_stop(l, t);
        t->fn(t);
    }
}

/* ---- end-of-turn tasks ----------------------------------------------------------- */

void loop_defer(struct loop *l, struct loop_task *t)
{
    if (t->queued)
        return;
    t->queued = 1;
    t->next = NULL;
    if (l->tasks_tail)
        l->tasks_tail->next = t;
    else
        l->tasks = t;
    l->tasks_tail = t;
}

void loop_cancel(struct loop *l, struct loop_task *t)
{
    if (!t->queued)
        return;
    struct loop_task *prev = NULL;
    for (struct loop_task *q = l->tasks; q; prev = q, q = q->next)
        if (q == t) {
            if (prev)
                prev->next = t->next;
            else
                l->tasks = t->next;
            if (l->tasks_tail == t)
                l->tasks_tail = prev;
            break;
        }
    t->queued = 0;
}

/* Tasks deferred while these run (a flush that makes more work) run in the same pass. */
static void run_tasks(struct loop *l)
{
    while (l->tasks) {
        struct loop_task *t = l->tasks;
        l->tasks = t->next;
        if (!l->tasks)
            l->tasks_tail = NULL;
        t->queued = 0;
        t->fn(t);
    }
}

/* ---- turns ------------------------------------------------------------------------- */

int loop_run(struct loop *l)
{
    struct epoll_event evs[LOOP_MAX_EVENTS];
    while (!atomic_load(&l->stopping)) {
        int timeout = -1;
        if (l->tasks)
            timeout = 0;
        else if (l->nheap > 0) {
            int64_t wait = l->heap[0]->at_ms - clock_ms();
            timeout = wait <= 0 ? 0 : wait > 60000 ? 60000 : (int)wait;
        }
        int n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR)
            return -1;
        l->now_ms = clock_ms();
        l->stats.turns++;
        l->batch = evs;
        l->batch_n = n > 0 ? n : 0;
        for (int i = 0; i < n; i++) {
            struct loop_io *io = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            if (!io)
                continue; /* stopped earlier in this turn */
            unsigned ready = ((e & (EPOLLIN | EPOLLRDHUP)) ? LOOP_READ : 0u) |
                             ((e & EPOLLOUT) ? LOOP_WRITE : 0u) |
                             ((e & (EPOLLERR | EPOLLHUP)) ? LOOP_ERROR : 0u);
            io->fn(io, ready);
        }
        l->batch_n = 0;
        l->stats.events += (uint64_t)(n > 0 ? n : 0);
        run_timers(l);
        run_tasks(l);
    }
    atomic_store(&l->stopping, 0);
    return 0;
}
