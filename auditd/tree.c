/* SPDX-License-Identifier: Apache-2.0 */
/* tree: the Merkle tree's head fields and tiles in Redis; proofs from them; append deltas. */
#include "tree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "shared/crypto.h"

static const char *str_or_null(const redisReply *r, int *bad)
{
    if (r->type == REDIS_REPLY_STRING)
        return r->str;
    if (r->type != REDIS_REPLY_NIL)
        *bad = 1;
    return NULL;
}

int audit_head_parse(redisReply *const *f, struct audit_head *h)
{
    int bad = 0;
    const char *seq = str_or_null(f[0], &bad), *hash = str_or_null(f[1], &bad);
    const char *tsize = str_or_null(f[2], &bad), *root = str_or_null(f[3], &bad);
    str_or_null(f[4], &bad);
    if (bad)
        return -1;
    if (tsize && !tsize[0]) /* how the conflict reply of audit_append.lua says "none" */
        tsize = NULL;
    if (root && !root[0])
        root = NULL;
    memset(h, 0, sizeof(*h));
    h->exists = seq && hash;
    h->seq = h->exists ? atoll(seq) : 0;
    snprintf(h->hash, sizeof(h->hash), "%s", h->exists ? hash : AUDIT_ZERO_HASH);
    h->tree_size = tsize ? atoll(tsize) : 0;
    audit_merkle_frontier_init(&h->frontier);
    audit_merkle_empty_root(h->root);
    h->tree_ok = !tsize && !root; /* a chain from before the tree: it catches up from 0 */
    if (tsize && root && strlen(root) == 2 * AUDIT_MERKLE_HASH_LEN &&
        crypto_unhex(root, strlen(root), h->root, AUDIT_MERKLE_HASH_LEN) == 0 &&
        audit_merkle_frontier_load(&h->frontier, h->tree_size,
                                   f[4]->type == REDIS_REPLY_STRING ? f[4]->str : "",
                                   f[4]->type == REDIS_REPLY_STRING ? f[4]->len : 0) == 0) {
        uint8_t want[AUDIT_MERKLE_HASH_LEN];
        audit_merkle_frontier_root(&h->frontier, want);
        h->tree_ok = memcmp(want, h->root, sizeof(want)) == 0 && h->tree_size <= h->seq;
    }
    return 0;
}

/* One computation over the tiles: which, on what sizes, into what. */
struct tree_op {
    int kind; /* 0 root, 1 inclusion, 2 consistency, 3 two roots, 4 frontier */
    long long m, n;
    struct audit_merkle_frontier *f;
    uint8_t (*out)[AUDIT_MERKLE_HASH_LEN];
    int *count;
};

static int run_op(const struct tree_op *op, struct audit_tileset *s)
{
    if (op->kind == 0)
        return audit_merkle_tree_hash(op->n, audit_tileset_read, s, op->out[0]);
    if (op->kind == 4)
        return audit_merkle_frontier_at(op->n, audit_tileset_read, s, op->f);
    if (op->kind == 3)
        return audit_merkle_tree_hash(op->m, audit_tileset_read, s, op->out[0]) == 0 &&
                       audit_merkle_tree_hash(op->n, audit_tileset_read, s, op->out[1]) == 0
                   ? 0
                   : -1;
    if (op->kind == 1)
        return audit_merkle_prove_inclusion(op->m, op->n, audit_tileset_read, s, op->out,
                                            op->count);
    return audit_merkle_prove_consistency(op->m, op->n, audit_tileset_read, s, op->out, op->count);
}

/* What a computation reads depends on its sizes only: run it once to learn the tiles (into
 * s), fetch them in one round trip (with the head when asked), run it again on them. */
static int tiles_needed(const struct tree_op *op, struct audit_tileset *s)
{
    audit_tileset_init(s);
    return run_op(op, s) != 0 || s->failed ? AUDIT_TREE_BAD : AUDIT_TREE_OK;
}

/* The second run, once the fetch ended as c; clears s. */
static int tiles_fetched(const struct tree_op *op, struct audit_tileset *s,
                         const struct audit_head *head, enum rreply_class c)
{
    int rc = c == RREPLY_OK            ? AUDIT_TREE_OK
             : c == RREPLY_UNAVAILABLE ? AUDIT_TREE_REDIS
                                       : AUDIT_TREE_REDIS_ERROR;
    if (rc == AUDIT_TREE_OK && head)
        rc = !head->tree_ok            ? AUDIT_TREE_MALFORMED
             : head->tree_size < op->n ? AUDIT_TREE_BAD
                                       : AUDIT_TREE_OK;
    if (rc == AUDIT_TREE_OK) {
        audit_tileset_serve(s);
        rc = run_op(op, s) == 0 ? AUDIT_TREE_OK : AUDIT_TREE_MISSING;
    }
    audit_tileset_clear(s);
    return rc;
}

static int with_tiles(struct audit_db *p, const struct audit_keys *k, const struct tree_op *op,
                      struct audit_head *head)
{
    struct audit_tileset s;
    if (tiles_needed(op, &s) != AUDIT_TREE_OK) {
        audit_tileset_clear(&s);
        return AUDIT_TREE_BAD;
    }
    return tiles_fetched(op, &s, head, audit_store_tiles(p, k, &s, head));
}

/* The same on a loop's client. */
struct tree_call {
    struct tree_op op;
    struct audit_tileset s;
    struct audit_head *head;
    audit_tree_fn fn;
    void *arg;
};

static void tree_call_fetched(void *arg, enum rreply_class c)
{
    struct tree_call *t = arg;
    int rc = tiles_fetched(&t->op, &t->s, t->head, c);
    audit_tree_fn fn = t->fn;
    void *fn_arg = t->arg;
    free(t);
    fn(fn_arg, rc);
}

static int with_tiles_async(struct rclient *rc, const struct audit_keys *k,
                            const struct tree_op *op, struct audit_head *head, audit_tree_fn fn,
                            void *arg)
{
    struct tree_call *t = calloc(1, sizeof(*t));
    if (!t)
        return AUDIT_TREE_REDIS_ERROR;
    t->op = *op;
    t->head = head;
    t->fn = fn;
    t->arg = arg;
    int rc_ = tiles_needed(op, &t->s);
    if (rc_ == AUDIT_TREE_OK &&
        audit_store_tiles_async(rc, k, &t->s, head, tree_call_fetched, t) != 0)
        rc_ = AUDIT_TREE_REDIS_ERROR;
    if (rc_ != AUDIT_TREE_OK) {
        audit_tileset_clear(&t->s);
        free(t);
    }
    return rc_;
}

int audit_tree_root(struct audit_db *p, const struct audit_keys *k, long long n,
                    uint8_t out[AUDIT_MERKLE_HASH_LEN])
{
    uint8_t(*o)[AUDIT_MERKLE_HASH_LEN] = (uint8_t(*)[AUDIT_MERKLE_HASH_LEN])out;
    struct tree_op op = {.kind = 0, .n = n, .out = o};
    return with_tiles(p, k, &op, NULL);
}

int audit_tree_roots(struct audit_db *p, const struct audit_keys *k, long long m, long long n,
                     uint8_t root_m[AUDIT_MERKLE_HASH_LEN], uint8_t root_n[AUDIT_MERKLE_HASH_LEN])
{
    uint8_t out[2][AUDIT_MERKLE_HASH_LEN];
    struct tree_op op = {.kind = 3, .m = m, .n = n, .out = out};
    int rc = with_tiles(p, k, &op, NULL);
    memcpy(root_m, out[0], AUDIT_MERKLE_HASH_LEN);
    memcpy(root_n, out[1], AUDIT_MERKLE_HASH_LEN);
    return rc;
}

int audit_tree_frontier(struct audit_db *p, const struct audit_keys *k, long long n,
                        struct audit_merkle_frontier *f)
{
    struct tree_op op = {.kind = 4, .n = n, .f = f};
    return with_tiles(p, k, &op, NULL);
}

int audit_tree_inclusion(struct audit_db *p, const struct audit_keys *k, long long m, long long n,
                         uint8_t out[][AUDIT_MERKLE_HASH_LEN], int *count, struct audit_head *head)
{
    struct tree_op op = {.kind = 1, .m = m, .n = n, .out = out, .count = count};
    return with_tiles(p, k, &op, head);
}

int audit_tree_consistency(struct audit_db *p, const struct audit_keys *k, long long m, long long n,
                           uint8_t out[][AUDIT_MERKLE_HASH_LEN], int *count,
                           struct audit_head *head)
{
    struct tree_op op = {.kind = 2, .m = m, .n = n, .out = out, .count = count};
    return with_tiles(p, k, &op, head);
}

int audit_tree_roots_async(struct rclient *rc, const struct audit_keys *k, long long m, long long n,
                           uint8_t (*roots)[AUDIT_MERKLE_HASH_LEN], audit_tree_fn fn, void *arg)
{
    struct tree_op op = {.kind = 3, .m = m, .n = n, .out = roots};
    return with_tiles_async(rc, k, &op, NULL, fn, arg);
}

int audit_tree_inclusion_async(struct rclient *rc, const struct audit_keys *k, long long m,
                               long long n, uint8_t (*out)[AUDIT_MERKLE_HASH_LEN], int *count,
                               struct audit_head *head, audit_tree_fn fn, void *arg)
{
    struct tree_op op = {.kind = 1, .m = m, .n = n, .out = out, .count = count};
    return with_tiles_async(rc, k, &op, head, fn, arg);
}

int audit_tree_consistency_async(struct rclient *rc, const struct audit_keys *k, long long m,
                                 long long n, uint8_t (*out)[AUDIT_MERKLE_HASH_LEN], int *count,
                                 struct audit_head *head, audit_tree_fn fn, void *arg)
{
    struct tree_op op = {.kind = 2, .m = m, .n = n, .out = out, .count = count};
    return with_tiles_async(rc, k, &op, head, fn, arg);
}

/* The chain's part of audit_tree_holds, on the head h and the hash at cp's seq: 0 if it
 * holds, 1 if not. */
static int chain_holds(const struct audit_cp *cp, const struct audit_head *h, const char *at)
{
    const char *have = cp->chain_seq == 0        ? AUDIT_ZERO_HASH /* every chain holds none */
                       : h->seq == cp->chain_seq ? h->hash
                                                 : at;
    return !cp->has_tree || !h->tree_ok || h->tree_size < cp->size || h->seq < cp->chain_seq ||
                   strcmp(have, cp->chain_hash) != 0
               ? 1
               : 0;
}

int audit_tree_holds(struct audit_db *p, const struct audit_keys *k, const struct audit_cp *cp)
{
    struct audit_head h;
    char at[AUDIT_HASH_HEX_LEN + 1];
    uint8_t root[AUDIT_MERKLE_HASH_LEN];
    if (audit_store_head_at(p, k, cp->chain_seq, &h, at) != RREPLY_OK)
        return -1;
    if (chain_holds(cp, &h, at) != 0)
        return 1;
    int rc = audit_tree_root(p, k, cp->size, root);
    if (rc == AUDIT_TREE_REDIS || rc == AUDIT_TREE_REDIS_ERROR)
        return -1;
    return rc == AUDIT_TREE_OK && memcmp(root, cp->root, sizeof(root)) == 0 ? 0 : 1;
}

struct holds_call {
    struct rclient *rc;
    const struct audit_keys *k;
    const struct audit_cp *cp;
    struct audit_head h;
    char at[AUDIT_HASH_HEX_LEN + 1];
    uint8_t root[1][AUDIT_MERKLE_HASH_LEN];
    audit_tree_fn fn;
    void *arg;
};

static void holds_answer(struct holds_call *t, int rc)
{
    audit_tree_fn fn = t->fn;
    void *arg = t->arg;
    free(t);
    fn(arg, rc);
}

static void holds_root_read(void *arg, int rc)
{
    struct holds_call *t = arg;
    if (rc == AUDIT_TREE_REDIS || rc == AUDIT_TREE_REDIS_ERROR)
        holds_answer(t, -1);
    else
        holds_answer(t, rc == AUDIT_TREE_OK &&
                                memcmp(t->root[0], t->cp->root, AUDIT_MERKLE_HASH_LEN) == 0
                            ? 0
                            : 1);
}

static void holds_head_read(void *arg, enum rreply_class c)
{
    struct holds_call *t = arg;
    struct tree_op op = {.kind = 0, .n = t->cp->size, .out = t->root};
    if (c != RREPLY_OK) {
        holds_answer(t, -1);
        return;
    }
    if (chain_holds(t->cp, &t->h, t->at) != 0) {
        holds_answer(t, 1);
        return;
    }
    int rc = with_tiles_async(t->rc, t->k, &op, NULL, holds_root_read, t);
    if (rc != AUDIT_TREE_OK)
        holds_answer(t, rc == AUDIT_TREE_BAD ? 1 : -1);
}

int audit_tree_holds_async(struct rclient *rc, const struct audit_keys *k,
                           const struct audit_cp *cp, audit_tree_fn fn, void *arg)
{
    struct holds_call *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    *t = (struct holds_call){.rc = rc, .k = k, .cp = cp, .fn = fn, .arg = arg};
    if (audit_store_head_at_async(rc, k, cp->chain_seq, &t->h, t->at, holds_head_read, t) != 0) {
        free(t);
        return -1;
    }
    return 0;
}

/* ---- deltas ---- */

void audit_tree_delta_start(struct audit_tree_delta *d, const struct audit_merkle_frontier *from)
{
    d->next = *from;
    d->n = 0;
    d->failed = 0;
}

/* audit_merkle_emit_fn: a tile hash joins the append of its tile (a new one when it starts a
 * tile; then the tile was empty, unless it is the first append of its level). */
static void collect(void *arg, int level, long long index,
                    const uint8_t hash[AUDIT_MERKLE_HASH_LEN])
{
    struct audit_tree_delta *d = arg;
    long long tile = index / AUDIT_MERKLE_TILE_WIDTH;
    struct audit_tile_append *a = NULL;
    for (size_t i = d->n; i-- > 0 && !a;)
        if (d->t[i].level == level)
            a = &d->t[i];
    if (!a || a->index != tile) {
        if (d->n == d->cap) {
            size_t cap = d->cap ? d->cap * 2 : 8;
            struct audit_tile_append *t = realloc(d->t, cap * sizeof(*t));
            if (!t) {
                d->failed = 1;
                return;
            }
            d->t = t;
            d->cap = cap;
        }
        a = &d->t[d->n++];
        a->level = level;
        a->index = tile;
        a->from = (int)(index % AUDIT_MERKLE_TILE_WIDTH);
        a->count = 0;
    }
    memcpy(a->data + (size_t)a->count * AUDIT_MERKLE_HASH_LEN, hash, AUDIT_MERKLE_HASH_LEN);
    a->count++;
}

int audit_tree_delta_add(struct audit_tree_delta *d, const char *body, size_t len)
{
    uint8_t leaf[AUDIT_MERKLE_HASH_LEN];
    audit_merkle_leaf_hash(body, len, leaf);
    return audit_merkle_frontier_push(&d->next, leaf, collect, d) == 0 && !d->failed ? 0 : -1;
}

int audit_tree_delta_end(struct audit_tree_delta *d)
{
    audit_merkle_frontier_root(&d->next, d->root);
    return d->failed ? -1 : 0;
}

void audit_tree_delta_free(struct audit_tree_delta *d)
{
    if (!d)
        return;
    free(d->t);
    d->t = NULL;
    d->n = d->cap = 0;
}
