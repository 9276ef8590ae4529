/* SPDX-License-Identifier: Apache-2.0 */
/* wait: the thread that answers suspended claims waiting for an in-flight key
 * (wait_ms). See wait.h. */
#include "wait.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Claims re-checked per round trip; more wait for the next tick. */
#define IDEM_WAIT_BATCH 256

struct waiting {
    struct waiting *next;
    struct http_req *req;
    struct idem_claim_in in;
    char token[33];
    int64_t deadline_ms;
};

struct idem_waiter {
    struct idem_store *st;
    idem_wait_answer_fn answer;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    struct waiting *head;
    int count;
    int stopping;
    int joined; /* the thread has ended (idem_waiter_stop) */
    pthread_t thread;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int idem_waiter_add(struct idem_waiter *w, struct http_req *r, const struct idem_claim_in *in,
                    const char *token, int64_t wait_ms)
{
    struct waiting *x = calloc(1, sizeof(*x));
    if (!x)
        return -1;
    x->req = r;
    x->in = *in;
    memcpy(x->token, token, sizeof(x->token));
    x->token[sizeof(x->token) - 1] = '\0';
    x->deadline_ms = mono_ms() + wait_ms;
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        free(x);
        return -1;
    }
    x->next = w->head;
    w->head = x;
    w->count++;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int idem_waiter_count(struct idem_waiter *w)
{
    pthread_mutex_lock(&w->mu);
    int n = w->count;
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* Take up to max waiting claims off the list. */
static size_t take(struct idem_waiter *w, struct waiting **out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&w->mu);
    while (w->head && n < max) {
        out[n] = w->head;
        w->head = w->head->next;
        w->count--;
        n++;
    }
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* Return the claims of list (still waiting) to the waiter. */
static void put_back(struct idem_waiter *w, struct waiting *list)
{
    pthread_mutex_lock(&w->mu);
    while (list) {
        struct waiting *x = list;
        list = list->next;
        x->next = w->head;
        w->head = x;
        w->count++;
    }
    pthread_mutex_unlock(&w->mu);
}

static void finish(struct idem_waiter *w, struct waiting *x, int rc, struct idem_result *res)
{
    w->answer(x->req, &x->in, rc, res, w->arg);
    http_resume(x->req);
    free(x);
}

static int undecided(int rc, const struct idem_result *res)
{
    return rc == RREPLY_OK && (res->outcome == IDEM_IN_PROGRESS || res->outcome == IDEM_BLOCKED);
}

/* Same record and same request: while one of them is undecided, so is the other. */
static int same_claim(const struct waiting *a, const struct waiting *b)
{
    return strcmp(a->in.ref.rkey, b->in.ref.rkey) == 0 &&
           strcmp(a->in.fingerprint, b->in.fingerprint) == 0;
}

/* Run the claims of batch[idx[0..n)] in one round trip into res/rc (rc is the class of the
 * round trip for all when it failed). */
static void run_claims(struct idem_waiter *w, struct waiting **batch, const size_t *idx, size_t n,
                       struct idem_result *res, int *rc)
{
    const struct idem_claim_in *ins[IDEM_WAIT_BATCH] = {0};
    const char *tokens[IDEM_WAIT_BATCH] = {0};
    for (size_t i = 0; i < n; i++) {
        ins[i] = &batch[idx[i]]->in;
        tokens[i] = batch[idx[i]]->token;
    }
    memset(res, 0, n * sizeof(*res));
    if (n == 0)
        return;
    enum rreply_class trip = idem_store_claim_many(w->st, ins, tokens, n, res, rc);
    if (trip != RREPLY_OK)
        for (size_t i = 0; i < n; i++)
            rc[i] = trip;
}

/* Pick a leader for each group of waiters with the same record and request: leader[i] is
 * the first of i's group; the leaders' indexes go to idx[0..*nl) and each leader's slot
 * there to where[leader]. */
static void group(struct waiting **batch, size_t n, size_t *leader, size_t *where, size_t *idx,
                  size_t *nl)
{
    *nl = 0;
    for (size_t i = 0; i < n; i++) {
        leader[i] = i;
        for (size_t j = 0; j < *nl && leader[i] == i; j++)
            if (same_claim(batch[idx[j]], batch[i]))
                leader[i] = idx[j];
        if (leader[i] == i) {
            where[i] = *nl;
            idx[(*nl)++] = i;
        }
    }
}

/* Re-check a batch. Waiters of the same record and request are grouped: only the first
 * of each group (its leader) runs the claim, and the others share its answer while it is
 * undecided, so a hundred duplicates waiting on one key cost one script per tick. When
 * the leader's claim is decided, the others run their own in a second round trip (one of
 * them may now win the key). A claim still undecided whose wait has not ended goes onto
 * *keep; every other one is answered. final: answer them all (shutdown). */
static void check_batch(struct idem_waiter *w, struct waiting **batch, size_t n, int final,
                        struct waiting **keep)
{
    /* Zeroed whole (not only the slots used) so no path can read an unset result. */
    struct idem_result res[2][IDEM_WAIT_BATCH] = {{{0}}};
    int rc[2][IDEM_WAIT_BATCH] = {{0}};
    size_t idx[2][IDEM_WAIT_BATCH] = {{0}}, cnt[2] = {0, 0};
    size_t leader[IDEM_WAIT_BATCH], where[IDEM_WAIT_BATCH];
    int round[IDEM_WAIT_BATCH];

    group(batch, n, leader, where, idx[0], &cnt[0]);
    run_claims(w, batch, idx[0], cnt[0], res[0], rc[0]);
    for (size_t i = 0; i < n; i++) {
        round[i] = 0;
        if (leader[i] == i)
            continue;
        where[i] = where[leader[i]];
        if (!undecided(rc[0][where[i]], &res[0][where[i]])) {
            round[i] = 1;
            where[i] = cnt[1];
            idx[1][cnt[1]++] = i;
        }
    }
    run_claims(w, batch, idx[1], cnt[1], res[1], rc[1]);

    int64_t now = mono_ms();
    for (size_t i = 0; i < n; i++) {
        int r = rc[round[i]][where[i]];
        struct idem_result *x = &res[round[i]][where[i]];
        if (undecided(r, x) && !final && now < batch[i]->deadline_ms) {
            batch[i]->next = *keep;
            *keep = batch[i];
        } else {
            finish(w, batch[i], r, r == RREPLY_OK ? x : NULL);
        }
    }
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < cnt[k]; i++)
            idem_result_free(&res[k][i]);
}

static void *waiter_main(void *arg)
{
    struct idem_waiter *w = arg;
    struct waiting *batch[IDEM_WAIT_BATCH];
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->wake, &w->mu);
        int stopping = w->stopping;
        pthread_mutex_unlock(&w->mu);
        if (stopping)
            break;
        struct timespec tick = {.tv_sec = 0, .tv_nsec = IDEM_WAIT_POLL_MS * 1000000L};
        nanosleep(&tick, NULL);
        /* Each waiting claim is checked once per tick; the undecided come back after. */
        struct waiting *keep = NULL;
        size_t n;
        while ((n = take(w, batch, IDEM_WAIT_BATCH)) > 0)
            check_batch(w, batch, n, 0, &keep);
        put_back(w, keep);
    }
    struct waiting *none = NULL;
    size_t n;
    while ((n = take(w, batch, IDEM_WAIT_BATCH)) > 0)
        check_batch(w, batch, n, 1, &none);
    return NULL;
}

struct idem_waiter *idem_waiter_create(struct idem_store *st, idem_wait_answer_fn answer, void *arg)
{
    struct idem_waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->st = st;
    w->answer = answer;
    w->arg = arg;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (pthread_create(&w->thread, NULL, waiter_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->wake);
        free(w);
        return NULL;
    }
    return w;
}

void idem_waiter_stop(struct idem_waiter *w)
{
    if (w->joined)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    w->joined = 1;
}

void idem_waiter_free(struct idem_waiter *w)
{
    if (!w)
        return;
    idem_waiter_stop(w);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->wake);
    free(w);
}
