/* SPDX-License-Identifier: Apache-2.0 */
/* checkpointer: on-demand and periodic signed checkpoints. */
#include "checkpointer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "scripts.h"
#include "shared/log.h"

struct audit_checkpointer {
    struct rpool *pool;
    const struct audit_keys *keys;
    const struct audit_key *key;
    const char *origin;
    struct audit_guard *guard;
    int64_t interval_ms;
    struct metric_series *m_total;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
};

/* A signed checkpoint vouches for a head: never sign one of a chain that lost or replaced
 * what this instance has seen, which would make the loss look legitimate to auditors. */
int audit_checkpoint_now(struct rpool *p, const struct audit_keys *k, const struct audit_key *key,
                         const char *origin, struct audit_guard *g, char *out, size_t outsize)
{
    long long seq;
    char hash[AUDIT_HASH_HEX_LEN + 1];
    enum audit_verdict v;
    if (audit_guard_check(g, p, k, &v, &seq, hash) != RPOOL_OK)
        return -1;
    if (v != AUDIT_CHAIN_HOLDS)
        return -3;
    int n = audit_checkpoint_make(origin, seq, hash, key, out, outsize);
    return n < 0 ? -2 : n;
}

static void tick(struct audit_checkpointer *c)
{
    char note[AUDIT_NOTE_MAX], seq[24], interval[24];
    long long head_seq;
    char hash[AUDIT_HASH_HEX_LEN + 1];
    enum audit_verdict v;
    if (audit_guard_check(c->guard, c->pool, c->keys, &v, &head_seq, hash) != RPOOL_OK ||
        v != AUDIT_CHAIN_HOLDS ||
        audit_checkpoint_make(c->origin, head_seq, hash, c->key, note, sizeof(note)) < 0)
        return;
    snprintf(seq, sizeof(seq), "%lld", head_seq);
    snprintf(interval, sizeof(interval), "%lld", (long long)c->interval_ms);
    const char *argv[] = {c->keys->checkpoints, interval, seq, hash, note};
    redisReply *r = NULL;
    enum rpool_status st = rpool_eval(c->pool, &script_audit_checkpoint, 1, 5, argv, NULL, 0, &r);
    if (st == RPOOL_OK && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->str &&
        strcmp(r->element[0]->str, "stored") == 0) {
        metric_inc(c->m_total);
        log_info(NULL, "checkpoint stored", LF_I("seq", head_seq), LF_S("hash", hash));
    }
    freeReplyObject(r);
}

static void *checkpointer_main(void *arg)
{
    struct audit_checkpointer *c = arg;
    /* Tick several times per interval so the first instance to see a new interval fills
     * it soon after it starts; the script keeps it to one per interval. */
    int64_t period = c->interval_ms / 4;
    if (period < 100)
        period = 100;
    if (period > 5000)
        period = 5000;
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        pthread_mutex_unlock(&c->mu);
        tick(c);
        pthread_mutex_lock(&c->mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += period / 1000;
        until.tv_nsec += (period % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        while (!c->stopping && pthread_cond_timedwait(&c->cv, &c->mu, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

struct audit_checkpointer *audit_checkpointer_start(struct rpool *p, const struct audit_keys *k,
                                                    const struct audit_key *key, const char *origin,
                                                    struct audit_guard *g, int64_t interval_ms,
                                                    struct metrics *m)
{
    struct audit_checkpointer *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->pool = p;
    c->keys = k;
    c->key = key;
    c->origin = origin;
    c->guard = g;
    c->interval_ms = interval_ms;
    c->m_total = metric_with(
        metrics_counter(m, "checkpoints_total", "Periodic checkpoints stored", NULL), NULL);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (interval_ms > 0 && pthread_create(&c->thread, NULL, checkpointer_main, c) != 0) {
        free(c);
        return NULL;
    }
    if (interval_ms <= 0)
        c->stopping = 1;
    return c;
}

void audit_checkpointer_stop(struct audit_checkpointer *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    int running = !c->stopping;
    c->stopping = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (running)
        pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}
