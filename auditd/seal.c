/* SPDX-License-Identifier: Apache-2.0 */
/* seal: a compare-and-set's batch gathered, built on the head, hashed and signed. */
#include "seal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELPER_MIN 16 /* smaller batches are signed by the appender alone */

struct audit_sealer {
    const struct audit_key *key;
    pthread_t helper;
    int helper_ok;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct audit_item *const *job;
    size_t job_n;
    int job_pending, stop;
};

static int batch_push(struct audit_batch *b, struct audit_item *it)
{
    if (b->n == b->cap || !b->items) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct audit_item **p = realloc(b->items, cap * sizeof(struct audit_item *));
        if (!p)
            return -1;
        b->items = p;
        b->cap = cap;
    }
    b->items[b->n++] = it;
    return 0;
}

int audit_batch_collect(struct audit_batch *b, struct audit_request *list,
                        struct audit_item *activation)
{
    json_t *seen = json_object(); /* event_id -> index in b, to spot repeats in O(n) */
    int rc = -1;
    b->n = 0;
    if (!seen || (activation && batch_push(b, activation) != 0))
        goto done;
    for (struct audit_request *r = list; r; r = r->next)
        for (size_t i = 0; i < r->n; i++) {
            struct audit_item *it = &r->items[i];
            if (it->state != AUDIT_ITEM_PENDING)
                continue;
            const char *id = json_string_value(json_object_get(it->event, "event_id"));
            json_t *first = id ? json_object_get(seen, id) : NULL;
            it->dup_of = (first && b->items) ? b->items[json_integer_value(first)] : NULL;
            if (it->dup_of)
                continue;
            if (id && json_object_set_new(seen, id, json_integer((json_int_t)b->n)) != 0)
                goto done;
            if (batch_push(b, it) != 0)
                goto done;
        }
    rc = 0;
done:
    json_decref(seen);
    return rc;
}

static void *helper_main(void *arg)
{
    struct audit_sealer *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->job_pending && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop)
            break;
        struct audit_item *const *items = s->job;
        size_t n = s->job_n;
        pthread_mutex_unlock(&s->mu);
        for (size_t i = 0; i < n; i++)
            audit_entry_sign(&items[i]->entry, s->key->sk);
        pthread_mutex_lock(&s->mu);
        s->job_pending = 0;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

struct audit_sealer *audit_sealer_create(const struct audit_key *key)
{
    struct audit_sealer *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->key = key;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->helper_ok = pthread_create(&s->helper, NULL, helper_main, s) == 0;
    return s;
}

void audit_sealer_free(struct audit_sealer *s)
{
    if (!s)
        return;
    if (s->helper_ok) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->helper, NULL);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static void sign_all(struct audit_sealer *s, struct audit_batch *b)
{
    size_t half = b->n / 2;
    if (!s->helper_ok || b->n < HELPER_MIN)
        half = 0;
    if (half) {
        pthread_mutex_lock(&s->mu);
        s->job = b->items + (b->n - half);
        s->job_n = half;
        s->job_pending = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    for (size_t i = 0; i < b->n - half; i++)
        audit_entry_sign(&b->items[i]->entry, s->key->sk);
    if (half) {
        pthread_mutex_lock(&s->mu);
        while (s->job_pending)
            pthread_cond_wait(&s->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
    }
}

int audit_batch_seal(struct audit_sealer *s, struct audit_batch *b, long long head_seq,
                     const char *head_hash, const struct audit_merkle_frontier *tree,
                     struct audit_tree_delta *delta)
{
    char ts[AUDIT_TS_LEN + 1], prev[AUDIT_HASH_HEX_LEN + 1];
    audit_now_ts(ts);
    snprintf(prev, sizeof(prev), "%s", head_hash);
    /* Each body carries the previous hash, so in order. */
    for (size_t i = 0; i < b->n; i++) {
        struct audit_entry *e = &b->items[i]->entry;
        e->seq = head_seq + 1 + (long long)i;
        memcpy(e->prev, prev, sizeof(e->prev));
        memcpy(e->ts, ts, sizeof(e->ts));
        snprintf(e->kv, sizeof(e->kv), "%s", s->key->name);
        if (audit_entry_build(e, b->items[i]->event) != 0)
            return -1;
        memcpy(prev, e->hash, sizeof(prev));
    }
    /* The tree grows by the batch's leaves, in the same order. */
    audit_tree_delta_start(delta, tree);
    for (size_t i = 0; i < b->n; i++)
        if (audit_tree_delta_add(delta, b->items[i]->entry.body, b->items[i]->entry.body_len) != 0)
            return -1;
    if (audit_tree_delta_end(delta) != 0)
        return -1;
    sign_all(s, b);
    return 0;
}

void audit_batch_resolve_dups(struct audit_request *list)
{
    for (struct audit_request *r = list; r; r = r->next)
        for (size_t i = 0; i < r->n; i++) {
            struct audit_item *it = &r->items[i];
            if (it->state == AUDIT_ITEM_PENDING && it->dup_of &&
                it->dup_of->state != AUDIT_ITEM_PENDING) {
                it->state = AUDIT_ITEM_DUPLICATE;
                it->dup_seq = it->dup_of->state == AUDIT_ITEM_APPENDED ? it->dup_of->entry.seq
                                                                       : it->dup_of->dup_seq;
            }
        }
}

void audit_batch_mark_dups(struct audit_batch *b, const redisReply *r)
{
    for (size_t i = 1; i + 1 < r->elements; i += 2) {
        long long idx = audit_reply_int(r, i);
        if (idx >= 1 && (size_t)idx <= b->n) {
            b->items[idx - 1]->state = AUDIT_ITEM_DUPLICATE;
            b->items[idx - 1]->dup_seq = audit_reply_int(r, i + 1);
        }
    }
}

void audit_batch_free(struct audit_batch *b)
{
    free(b->items);
    b->items = NULL;
    b->n = b->cap = 0;
}
