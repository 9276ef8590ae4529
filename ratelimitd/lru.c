/* SPDX-License-Identifier: Apache-2.0 */
/* lru: chained hash table (SipHash with a random key) + doubly linked recency list (see lru.h). */
#include "lru.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *hnext;       /* bucket chain */
    struct entry *prev, *next; /* recency list, most recent at head */
    uint64_t hash;
    int64_t v[RL_LRU_VALUES];
    size_t len;
    char key[];
};

struct rl_lru {
    int shared; /* RL_LRU_SHARED: every operation under lock */
    pthread_mutex_t lock;
    /* Written under the lock (or by the one owning thread), read by rl_lru_count from any
     * thread. */
    _Atomic size_t count;
    size_t capacity, nbuckets;
    struct entry **buckets;
    unsigned char seed[crypto_shorthash_KEYBYTES];
    struct entry head; /* sentinel of the recency list (last: its key[] is empty) */
};

/* Keys come from callers (IPs, user names): with a fixed hash anyone could pick keys that
 * share one bucket and turn every lookup, under the map's one mutex, into a walk over
 * thousands of entries. SipHash with a random per-map key makes that guesswork. */
static uint64_t hash_key(const struct rl_lru *l, const char *key, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    uint64_t h;
    crypto_shorthash(out, (const unsigned char *)key, len, l->seed);
    memcpy(&h, out, sizeof(h));
    return h;
}

static void lock(struct rl_lru *l)
{
    if (l->shared)
        pthread_mutex_lock(&l->lock);
}

static void unlock(struct rl_lru *l)
{
    if (l->shared)
        pthread_mutex_unlock(&l->lock);
}

/* count changes only under the lock or on the owning thread: a load and a store do (no
 * read-modify-write needed), and rl_lru_count reads it from anywhere. */
static size_t count_of(const struct rl_lru *l)
{
    return atomic_load_explicit(&l->count, memory_order_relaxed);
}

static void count_set(struct rl_lru *l, size_t n)
{
    atomic_store_explicit(&l->count, n, memory_order_relaxed);
}

struct rl_lru *rl_lru_create(size_t capacity, enum rl_lru_mode mode)
{
    struct rl_lru *l = calloc(1, sizeof(*l));
    if (!l || capacity < 1)
        goto fail;
    l->shared = mode == RL_LRU_SHARED;
    l->capacity = capacity;
    l->nbuckets = 16;
    while (l->nbuckets < capacity && l->nbuckets < ((size_t)1 << 30))
        l->nbuckets <<= 1;
    l->buckets = calloc(l->nbuckets, sizeof(struct entry *));
    if (!l->buckets)
        goto fail;
    l->head.prev = l->head.next = &l->head;
    randombytes_buf(l->seed, sizeof(l->seed));
    pthread_mutex_init(&l->lock, NULL);
    return l;
fail:
    free(l);
    return NULL;
}

static void list_unlink(struct entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void list_push_front(struct rl_lru *l, struct entry *e)
{
    e->next = l->head.next;
    e->prev = &l->head;
    l->head.next->prev = e;
    l->head.next = e;
}

/* Find the entry and the link pointing at it (for removal). */
static struct entry **find_link(struct rl_lru *l, const char *key, size_t len, uint64_t h)
{
    struct entry **link = &l->buckets[h & (l->nbuckets - 1)];
    while (*link &&
           ((*link)->hash != h || (*link)->len != len || memcmp((*link)->key, key, len) != 0))
        link = &(*link)->hnext;
    return link;
}

static void remove_entry(struct rl_lru *l, struct entry *e)
{
    struct entry **link = find_link(l, e->key, e->len, e->hash);
    *link = e->hnext;
    list_unlink(e);
    count_set(l, count_of(l) - 1);
    free(e);
}

static void insert(struct rl_lru *l, const char *key, size_t len, uint64_t h,
                   const int64_t v[RL_LRU_VALUES])
{
    if (count_of(l) >= l->capacity)
        remove_entry(l, l->head.prev); /* the least recently used */
    struct entry *e = malloc(sizeof(*e) + len);
    if (!e)
        return; /* out of memory: forgetting a limit entry is the safe failure */
    memcpy(e->key, key, len);
    e->len = len;
    e->hash = h;
    memcpy(e->v, v, sizeof(e->v));
    struct entry **bucket = &l->buckets[h & (l->nbuckets - 1)];
    e->hnext = *bucket;
    *bucket = e;
    list_push_front(l, e);
    count_set(l, count_of(l) + 1);
}

enum rl_lru_action rl_lru_update(struct rl_lru *l, const char *key, size_t len, rl_lru_fn fn,
                                 void *ctx)
{
    uint64_t h = hash_key(l, key, len);
    lock(l);
    struct entry *e = *find_link(l, key, len, h);
    int64_t v[RL_LRU_VALUES] = {0};
    if (e)
        memcpy(v, e->v, sizeof(v));
    enum rl_lru_action act = fn(v, e != NULL, ctx);
    if (act == RL_LRU_STORE && e) {
        memcpy(e->v, v, sizeof(v));
        list_unlink(e);
        list_push_front(l, e);
    } else if (act == RL_LRU_STORE) {
        insert(l, key, len, h, v);
    } else if (act == RL_LRU_DELETE && e) {
        remove_entry(l, e);
    }
    unlock(l);
    return act;
}

int rl_lru_get(struct rl_lru *l, const char *key, size_t len, int64_t v[RL_LRU_VALUES])
{
    uint64_t h = hash_key(l, key, len);
    lock(l);
    struct entry *e = *find_link(l, key, len, h);
    if (e)
        memcpy(v, e->v, sizeof(e->v));
    unlock(l);
    return e != NULL;
}

static enum rl_lru_action put_fn(int64_t v[RL_LRU_VALUES], int found, void *ctx)
{
    (void)found;
    memcpy(v, ctx, sizeof(int64_t) * RL_LRU_VALUES);
    return RL_LRU_STORE;
}

void rl_lru_put(struct rl_lru *l, const char *key, size_t len, const int64_t v[RL_LRU_VALUES])
{
    rl_lru_update(l, key, len, put_fn, (void *)v);
}

static enum rl_lru_action delete_fn(int64_t v[RL_LRU_VALUES], int found, void *ctx)
{
    (void)v, (void)found, (void)ctx;
    return RL_LRU_DELETE;
}

void rl_lru_delete(struct rl_lru *l, const char *key, size_t len)
{
    rl_lru_update(l, key, len, delete_fn, NULL);
}

void rl_lru_clear(struct rl_lru *l)
{
    lock(l);
    struct entry *e = l->head.next;
    while (e != &l->head) {
        struct entry *next = e->next;
        free(e);
        e = next;
    }
    l->head.prev = l->head.next = &l->head;
    memset(l->buckets, 0, l->nbuckets * sizeof(struct entry *));
    count_set(l, 0);
    unlock(l);
}

size_t rl_lru_count(struct rl_lru *l)
{
    return count_of(l);
}

void rl_lru_free(struct rl_lru *l)
{
    if (!l)
        return;
    rl_lru_clear(l);
    pthread_mutex_destroy(&l->lock);
    free(l->buckets);
    free(l);
}
