/* SPDX-License-Identifier: Apache-2.0 */
/* wait: claims parked on their loop until their key is decided (wait_ms), re-checked by a
 * loop timer. See wait.h. */
#include "wait.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* A parked claim. */
struct waiting {
    struct waiting *next; /* in its group, oldest first */
    struct group *g;
    struct http_req *req;
    struct idem_claim_in in;
    char token[33];
    int64_t deadline_ms; /* on the loop's clock */
    int checking;        /* its own claim is in flight */
};

/* The parked claims of one loop for the same record and request: while one of them is
 * undecided, so are the others. */
struct group {
    struct group *prev, *next; /* in the loop's list */
    struct idem_waiters *w;
    struct waiting *head, *tail;
    struct waiting *leader; /* whose claim is in flight as the group's check */
    int outstanding;        /* claims of the group in flight */
    int64_t poll_ms;        /* the interval to the next check */
    struct loop_timer timer;
};

struct idem_waiters {
    struct idem_waiters *prev, *next; /* in the set */
    struct idem_wait_set *set;
    struct loop *loop;
    struct idem_store_loop *store;
    struct rclient *rcl; /* the loop's client, given by the first park */
    struct group *groups;
    int draining;
};

struct idem_wait_set {
    idem_wait_answer_fn answer;
    void *arg;
    pthread_mutex_t mu; /* guards head and draining: taken at start, stop and drain only */
    struct idem_waiters *head;
    int draining;
};

static void check(struct group *g);

static int undecided(enum rreply_class cls, const struct idem_result *res)
{
    return cls == RREPLY_OK && (res->outcome == IDEM_IN_PROGRESS || res->outcome == IDEM_BLOCKED);
}

static int same_claim(const struct idem_claim_in *a, const struct idem_claim_in *b)
{
    return strcmp(a->ref.rkey, b->ref.rkey) == 0 && strcmp(a->fingerprint, b->fingerprint) == 0;
}

static void append(struct group *g, struct waiting *x)
{
    x->next = NULL;
    if (g->tail)
        g->tail->next = x;
    else
        g->head = x;
    g->tail = x;
}

/* Take x out of its group's list. */
static void unlink_waiting(struct waiting *x)
{
    struct group *g = x->g;
    struct waiting *prev = NULL;
    for (struct waiting *y = g->head; y; prev = y, y = y->next) {
        if (y != x)
            continue;
        if (prev)
            prev->next = x->next;
        else
            g->head = x->next;
        if (g->tail == x)
            g->tail = prev;
        return;
    }
}

static void free_group(struct group *g)
{
    struct idem_waiters *w = g->w;
    loop_timer_stop(w->loop, &g->timer);
    if (g->prev)
        g->prev->next = g->next;
    else
        w->groups = g->next;
    if (g->next)
        g->next->prev = g->prev;
    free(g);
}

/* Answer x (out of its group's list) with cls/res, resume its request and forget it. */
static void answer_waiting(struct waiting *x, enum rreply_class cls, const struct idem_result *res)
{
    struct idem_wait_set *set = x->g->w->set;
    set->answer(x->req, &x->in, cls, cls == RREPLY_OK ? res : NULL, set->arg);
    http_resume(x->req);
    free(x);
}

/* Nothing of g in flight: free it when empty; else its next check, at once when draining,
 * else after its interval or at the first deadline of its claims, whichever is sooner. */
static void schedule(struct group *g)
{
    struct idem_waiters *w = g->w;
    if (!g->head) {
        free_group(g);
        return;
    }
    if (w->draining) {
        check(g);
        return;
    }
    int64_t now = loop_now_ms(w->loop), after = g->poll_ms;
    for (struct waiting *x = g->head; x; x = x->next)
        if (x->deadline_ms - now < after)
            after = x->deadline_ms - now;
    loop_timer_start(w->loop, &g->timer, after < 0 ? 0 : after);
}

static void settle(struct group *g)
{
    if (--g->outstanding == 0)
        schedule(g);
}

/* A claim of the group's second round (after the leader's was decided): answered once
 * decided, or when its wait has ended; else it waits on. */
static void on_member(void *arg, enum rreply_class cls, const struct idem_result *res)
{
    struct waiting *x = arg;
    struct group *g = x->g;
    x->checking = 0;
    if (!undecided(cls, res) || g->w->draining || loop_now_ms(g->w->loop) >= x->deadline_ms) {
        unlink_waiting(x);
        answer_waiting(x, cls, res);
    }
    settle(g);
}

/* Answer every claim of g not in flight whose wait has ended (all of them when draining)
 * with cls/res. */
static void expire(struct group *g, enum rreply_class cls, const struct idem_result *res)
{
    struct idem_waiters *w = g->w;
    int64_t now = loop_now_ms(w->loop);
    struct waiting *x = g->head;
    g->head = g->tail = NULL; /* rebuilt with the claims that wait on */
    while (x) {
        struct waiting *next = x->next;
        if (!x->checking && (w->draining || now >= x->deadline_ms))
            answer_waiting(x, cls, res);
        else
            append(g, x);
        x = next;
    }
}

/* The leader's check. Undecided: every claim whose wait has ended gets that answer.
 * Decided: the leader gets it, and every other claim runs its own (one of them may now win
 * the key), all sent in this turn's write; one that cannot be sent waits for the next
 * check. */
static void on_leader(void *arg, enum rreply_class cls, const struct idem_result *res)
{
    struct group *g = arg;
    struct idem_waiters *w = g->w;
    struct waiting *leader = g->leader;
    g->leader = NULL;
    leader->checking = 0;
    if (undecided(cls, res)) {
        expire(g, cls, res);
    } else {
        unlink_waiting(leader);
        answer_waiting(leader, cls, res);
        for (struct waiting *x = g->head; x; x = x->next) {
            if (x->checking)
                continue;
            if (idem_store_claim(w->store, w->rcl, &x->in, x->token, on_member, x) == 0) {
                x->checking = 1;
                g->outstanding++;
            }
        }
    }
    settle(g); /* the leader's part */
}

/* Re-run the first claim of g for the whole group. When it cannot even be sent (out of
 * memory), nothing is learned: the claims whose wait has ended are answered 503. */
static void check(struct group *g)
{
    struct idem_waiters *w = g->w;
    struct waiting *leader = g->head;
    if (idem_store_claim(w->store, w->rcl, &leader->in, leader->token, on_leader, g) == 0) {
        g->leader = leader;
        leader->checking = 1;
        g->outstanding = 1;
        return;
    }
    if (w->draining) {
        expire(g, RREPLY_UNAVAILABLE, NULL);
        free_group(g); /* every claim was answered */
        return;
    }
    expire(g, RREPLY_UNAVAILABLE, NULL);
    schedule(g);
}

static void on_tick(struct loop_timer *t)
{
    struct group *g = t->arg;
    g->poll_ms += g->poll_ms / 2;
    if (g->poll_ms > IDEM_WAIT_POLL_MAX_MS)
        g->poll_ms = IDEM_WAIT_POLL_MAX_MS;
    check(g);
}

static struct group *group_of(struct idem_waiters *w, const struct idem_claim_in *in)
{
    for (struct group *g = w->groups; g; g = g->next)
        if (g->head && same_claim(&g->head->in, in))
            return g;
    struct group *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->w = w;
    g->poll_ms = IDEM_WAIT_POLL_MS;
    g->timer.fn = on_tick;
    g->timer.arg = g;
    g->next = w->groups;
    if (w->groups)
        w->groups->prev = g;
    w->groups = g;
    return g;
}

int idem_waiters_park(struct idem_waiters *w, struct rclient *c, struct http_req *r,
                      const struct idem_claim_in *in, const char *token, int64_t wait_ms)
{
    if (w->draining)
        return -1;
    struct waiting *x = calloc(1, sizeof(*x));
    struct group *g = x ? group_of(w, in) : NULL;
    if (!g) {
        free(x);
        return -1;
    }
    w->rcl = c;
    x->g = g;
    x->req = r;
    x->in = *in;
    memcpy(x->token, token, sizeof(x->token));
    x->token[sizeof(x->token) - 1] = '\0';
    x->deadline_ms = loop_now_ms(w->loop) + wait_ms;
    append(g, x);
    /* A check in flight schedules the next; an armed timer only moves earlier, so claims
     * parking one after another never put off the group's check. */
    int64_t now = loop_now_ms(w->loop);
    if (loop_timer_armed(&g->timer)) {
        if (x->deadline_ms < g->timer.at_ms)
            loop_timer_start(w->loop, &g->timer, x->deadline_ms - now);
    } else if (g->outstanding == 0) {
        schedule(g);
    }
    return 0;
}

/* ---- the set, and the drain ------------------------------------------------------------ */

struct idem_wait_set *idem_wait_set_create(idem_wait_answer_fn answer, void *arg)
{
    struct idem_wait_set *set = calloc(1, sizeof(*set));
    if (!set)
        return NULL;
    set->answer = answer;
    set->arg = arg;
    pthread_mutex_init(&set->mu, NULL);
    return set;
}

void idem_wait_set_free(struct idem_wait_set *set)
{
    if (!set)
        return;
    pthread_mutex_destroy(&set->mu);
    free(set);
}

struct idem_waiters *idem_waiters_create(struct idem_wait_set *set, struct loop *l,
                                         struct idem_store_loop *store)
{
    struct idem_waiters *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->set = set;
    w->loop = l;
    w->store = store;
    pthread_mutex_lock(&set->mu);
    w->draining = set->draining;
    w->next = set->head;
    if (set->head)
        set->head->prev = w;
    set->head = w;
    pthread_mutex_unlock(&set->mu);
    return w;
}

void idem_waiters_free(struct idem_waiters *w)
{
    if (!w)
        return;
    struct idem_wait_set *set = w->set;
    pthread_mutex_lock(&set->mu);
    if (w->prev)
        w->prev->next = w->next;
    else
        set->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&set->mu);
    struct group *g = w->groups;
    while (g) {
        struct group *next_group = g->next;
        struct waiting *x = g->head;
        while (x) {
            struct waiting *next = x->next;
            free(x);
            x = next;
        }
        loop_timer_stop(w->loop, &g->timer);
        free(g);
        g = next_group;
    }
    free(w);
}

/* On the loop: check every group now, as the last time. */
static void drain_loop(void *arg)
{
    struct idem_waiters *w = arg;
    struct group *next;
    w->draining = 1;
    for (struct group *g = w->groups; g; g = next) {
        next = g->next;
        if (g->outstanding == 0) { /* else the check in flight ends it */
            loop_timer_stop(w->loop, &g->timer);
            check(g);
        }
    }
}

void idem_wait_set_drain(struct idem_wait_set *set)
{
    pthread_mutex_lock(&set->mu);
    set->draining = 1;
    for (struct idem_waiters *w = set->head; w; w = w->next)
        loop_post(w->loop, drain_loop, w);
    pthread_mutex_unlock(&set->mu);
}
