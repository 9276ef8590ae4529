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
    merkle_frontier_init(&h->frontier);
    merkle_empty_root(h->root);
    h->tree_ok = !tsize && !root; /* a chain from before the tree: it catches up from 0 */
    if (tsize && root && strlen(root) == 2 * MERKLE_HASH_LEN &&
        crypto_unhex(root, strlen(root), h->root, MERKLE_HASH_LEN) == 0 &&
        merkle_frontier_load(&h->frontier, h->tree_size,
                             f[4]->type == REDIS_REPLY_STRING ? f[4]->str : "",
                             f[4]->type == REDIS_REPLY_STRING ? f[4]->len : 0) == 0) {
        uint8_t want[MERKLE_HASH_LEN];
        merkle_frontier_root(&h->frontier, want);
        h->tree_ok = memcmp(want, h->root, sizeof(want)) == 0 && h->tree_size <= h->seq;
    }
    return 0;
}

enum rpool_status audit_tree_head(struct rpool *p, const struct audit_keys *k, struct audit_head *h)
{
    const char *argv[] = {"HMGET", k->head, AUDIT_HEAD_FIELDS};
    redisReply *r = NULL;
    enum rpool_status st = rpool_command(p, 7, argv, NULL, 0, &r);
    if (st == RPOOL_OK &&
        (r->type != REDIS_REPLY_ARRAY || r->elements != 5 || audit_head_parse(r->element, h) != 0))
        st = RPOOL_REPLY_ERROR;
    freeReplyObject(r);
    return st;
}

/* The "hash" field of the one entry an XRANGE id id reply holds, into out ("" if none). */
static void entry_hash(const redisReply *r, char out[AUDIT_HASH_HEX_LEN + 1])
{
    out[0] = '\0';
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2)
        return;
    const redisReply *f = r->element[0]->element[1];
    for (size_t j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2)
        if (f->element[j]->str && strcmp(f->element[j]->str, "hash") == 0 &&
            f->element[j + 1]->type == REDIS_REPLY_STRING)
            snprintf(out, AUDIT_HASH_HEX_LEN + 1, "%s", f->element[j + 1]->str);
}

enum rpool_status audit_tree_head_at(struct rpool *p, const struct audit_keys *k, long long at_seq,
                                     struct audit_head *h, char hash_at[AUDIT_HASH_HEX_LEN + 1])
{
    char id[32];
    snprintf(id, sizeof(id), "%lld-0", at_seq);
    const char *head_argv[] = {"HMGET", k->head, AUDIT_HEAD_FIELDS};
    const char *at_argv[] = {"XRANGE", k->log, id, id};
    struct rpool_cmd cmds[2] = {{.argc = 7, .argv = head_argv}, {.argc = 4, .argv = at_argv}};
    redisReply *r[2] = {NULL, NULL};
    size_t n = at_seq > 0 ? 2 : 1;
    hash_at[0] = '\0';
    enum rpool_status st = rpool_exec(p, cmds, n, r, 0);
    if (st != RPOOL_OK)
        return st;
    if (r[0]->type != REDIS_REPLY_ARRAY || r[0]->elements != 5 ||
        audit_head_parse(r[0]->element, h) != 0)
        st = RPOOL_REPLY_ERROR;
    if (n == 2)
        entry_hash(r[1], hash_at);
    for (size_t i = 0; i < n; i++)
        freeReplyObject(r[i]);
    return st;
}

void audit_tile_key(const struct audit_keys *k, int level, long long index, char *out, size_t size)
{
    snprintf(out, size, "%s%d:%lld", k->tile, level, index);
}

enum rpool_status audit_tree_fetch(struct rpool *p, const struct audit_keys *k,
                                   struct audit_tileset *s, struct audit_head *head)
{
    size_t first = head ? 1 : 0, n = first + s->n; /* the head's HMGET goes first */
    struct rpool_cmd *cmds = calloc(n, sizeof(*cmds));
    redisReply **replies = calloc(n, sizeof(redisReply *));
    char(*keys)[128] = calloc(s->n + 1, 128), (*ends)[24] = calloc(s->n + 1, 24);
    const char **argv = calloc(4 * s->n + 1, sizeof(*argv));
    const char *head_argv[] = {"HMGET", k->head, AUDIT_HEAD_FIELDS};
    enum rpool_status st = RPOOL_CONN;
    if (!cmds || !replies || !keys || !ends || !argv)
        goto done;
    if (head)
        cmds[0] = (struct rpool_cmd){.argc = 7, .argv = head_argv};
    for (size_t i = 0; i < s->n; i++) {
        audit_tile_key(k, s->t[i].level, s->t[i].index, keys[i], 128);
        snprintf(ends[i], 24, "%d", s->t[i].width * MERKLE_HASH_LEN - 1);
        const char **a = argv + 4 * i;
        a[0] = "GETRANGE";
        a[1] = keys[i];
        a[2] = "0";
        a[3] = ends[i];
        cmds[first + i] = (struct rpool_cmd){.argc = 4, .argv = a};
    }
    st = n ? rpool_exec(p, cmds, n, replies, 0) : RPOOL_OK;
    if (st == RPOOL_OK && head &&
        (replies[0]->type != REDIS_REPLY_ARRAY || replies[0]->elements != 5 ||
         audit_head_parse(replies[0]->element, head) != 0))
        st = RPOOL_REPLY_ERROR;
    for (size_t i = 0; i < s->n && replies[first + i]; i++) {
        const redisReply *r = replies[first + i];
        size_t want = (size_t)s->t[i].width * MERKLE_HASH_LEN;
        if (st == RPOOL_OK && r->type == REDIS_REPLY_STRING && r->len == want &&
            (s->t[i].data = malloc(want)) != NULL)
            memcpy(s->t[i].data, r->str, want);
    }
    for (size_t i = 0; i < n; i++)
        freeReplyObject(replies[i]);
done:
    free(cmds);
    free(replies);
    free(keys);
    free(ends);
    free(argv);
    return st;
}

/* One computation over the tiles: which, on what sizes, into what. */
struct tree_op {
    int kind; /* 0 root, 1 inclusion, 2 consistency, 3 two roots, 4 frontier */
    long long m, n;
    struct merkle_frontier *f;
    uint8_t (*out)[MERKLE_HASH_LEN];
    int *count;
};

static int run_op(const struct tree_op *op, struct audit_tileset *s)
{
    if (op->kind == 0)
        return merkle_tree_hash(op->n, audit_tileset_read, s, op->out[0]);
    if (op->kind == 4)
        return merkle_frontier_at(op->n, audit_tileset_read, s, op->f);
    if (op->kind == 3)
        return merkle_tree_hash(op->m, audit_tileset_read, s, op->out[0]) == 0 &&
                       merkle_tree_hash(op->n, audit_tileset_read, s, op->out[1]) == 0
                   ? 0
                   : -1;
    if (op->kind == 1)
        return merkle_prove_inclusion(op->m, op->n, audit_tileset_read, s, op->out, op->count);
    return merkle_prove_consistency(op->m, op->n, audit_tileset_read, s, op->out, op->count);
}

/* What a computation reads depends on its sizes only: run it once to learn the tiles,
 * fetch them in one round trip (with the head when asked), run it again on them. */
static int with_tiles(struct rpool *p, const struct audit_keys *k, const struct tree_op *op,
                      struct audit_head *head)
{
    struct audit_tileset s;
    int rc = AUDIT_TREE_BAD;
    audit_tileset_init(&s);
    if (run_op(op, &s) != 0 || s.failed)
        goto done;
    rc = AUDIT_TREE_REDIS;
    if (audit_tree_fetch(p, k, &s, head) != RPOOL_OK)
        goto done;
    rc = !head                     ? AUDIT_TREE_OK
         : !head->tree_ok          ? AUDIT_TREE_MALFORMED
         : head->tree_size < op->n ? AUDIT_TREE_BAD
                                   : AUDIT_TREE_OK;
    if (rc != AUDIT_TREE_OK)
        goto done;
    audit_tileset_serve(&s);
    rc = run_op(op, &s) == 0 ? AUDIT_TREE_OK : AUDIT_TREE_MISSING;
done:
    audit_tileset_clear(&s);
    return rc;
}

int audit_tree_root(struct rpool *p, const struct audit_keys *k, long long n,
                    uint8_t out[MERKLE_HASH_LEN])
{
    uint8_t(*o)[MERKLE_HASH_LEN] = (uint8_t(*)[MERKLE_HASH_LEN])out;
    struct tree_op op = {.kind = 0, .n = n, .out = o};
    return with_tiles(p, k, &op, NULL);
}

int audit_tree_roots(struct rpool *p, const struct audit_keys *k, long long m, long long n,
                     uint8_t root_m[MERKLE_HASH_LEN], uint8_t root_n[MERKLE_HASH_LEN])
{
    uint8_t out[2][MERKLE_HASH_LEN];
    struct tree_op op = {.kind = 3, .m = m, .n = n, .out = out};
    int rc = with_tiles(p, k, &op, NULL);
    memcpy(root_m, out[0], MERKLE_HASH_LEN);
    memcpy(root_n, out[1], MERKLE_HASH_LEN);
    return rc;
}

int audit_tree_frontier(struct rpool *p, const struct audit_keys *k, long long n,
                        struct merkle_frontier *f)
{
    struct tree_op op = {.kind = 4, .n = n, .f = f};
    return with_tiles(p, k, &op, NULL);
}

int audit_tree_inclusion(struct rpool *p, const struct audit_keys *k, long long m, long long n,
                         uint8_t out[][MERKLE_HASH_LEN], int *count, struct audit_head *head)
{
    struct tree_op op = {.kind = 1, .m = m, .n = n, .out = out, .count = count};
    return with_tiles(p, k, &op, head);
}

int audit_tree_consistency(struct rpool *p, const struct audit_keys *k, long long m, long long n,
                           uint8_t out[][MERKLE_HASH_LEN], int *count, struct audit_head *head)
{
    struct tree_op op = {.kind = 2, .m = m, .n = n, .out = out, .count = count};
    return with_tiles(p, k, &op, head);
}

int audit_tree_holds(struct rpool *p, const struct audit_keys *k, const struct audit_cp *cp)
{
    struct audit_head h;
    char at[AUDIT_HASH_HEX_LEN + 1];
    uint8_t root[MERKLE_HASH_LEN];
    if (audit_tree_head_at(p, k, cp->chain_seq, &h, at) != RPOOL_OK)
        return -1;
    const char *have = cp->chain_seq == 0       ? AUDIT_ZERO_HASH /* every chain holds none */
                       : h.seq == cp->chain_seq ? h.hash
                                                : at;
    if (!cp->has_tree || !h.tree_ok || h.tree_size < cp->size || h.seq < cp->chain_seq ||
        strcmp(have, cp->chain_hash) != 0)
        return 1;
    int rc = audit_tree_root(p, k, cp->size, root);
    if (rc == AUDIT_TREE_REDIS)
        return -1;
    return rc == AUDIT_TREE_OK && memcmp(root, cp->root, sizeof(root)) == 0 ? 0 : 1;
}

/* ---- deltas ---- */

void audit_tree_delta_start(struct audit_tree_delta *d, const struct merkle_frontier *from)
{
    d->next = *from;
    d->n = 0;
    d->failed = 0;
}

/* merkle_emit_fn: a tile hash joins the append of its tile (a new one when it starts a
 * tile; then the tile was empty, unless it is the first append of its level). */
static void collect(void *arg, int level, long long index, const uint8_t hash[MERKLE_HASH_LEN])
{
    struct audit_tree_delta *d = arg;
    long long tile = index / MERKLE_TILE_WIDTH;
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
        a->from = (int)(index % MERKLE_TILE_WIDTH);
        a->count = 0;
    }
    memcpy(a->data + (size_t)a->count * MERKLE_HASH_LEN, hash, MERKLE_HASH_LEN);
    a->count++;
}

int audit_tree_delta_add(struct audit_tree_delta *d, const char *body, size_t len)
{
    uint8_t leaf[MERKLE_HASH_LEN];
    merkle_leaf_hash(body, len, leaf);
    return merkle_frontier_push(&d->next, leaf, collect, d) == 0 && !d->failed ? 0 : -1;
}

int audit_tree_delta_end(struct audit_tree_delta *d)
{
    merkle_frontier_root(&d->next, d->root);
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
