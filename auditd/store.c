/* SPDX-License-Identifier: Apache-2.0 */
/* store: auditd's keys, scripts and Redis calls (see store.h), each one a query (query.h)
 * run by the pool or by a loop's client. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appender.h"
#include "query.h"
#include "scripts.h"
#include "shared/crypto.h"
#include "tree.h"

const struct script *const AUDIT_STORE_SCRIPTS[] = {&script_audit_append, &script_audit_checkpoint,
                                                    NULL};

int audit_chain_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > AUDIT_CHAIN_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
              ch == '-'))
            return 0;
    }
    return 1;
}

void audit_keys_init(struct audit_keys *k, const char *chain)
{
    snprintf(k->head, sizeof(k->head), "audit:{%s}:head", chain);
    snprintf(k->log, sizeof(k->log), "audit:{%s}:log", chain);
    snprintf(k->ids, sizeof(k->ids), "audit:{%s}:ids", chain);
    snprintf(k->idseq, sizeof(k->idseq), "audit:{%s}:idseq", chain);
    snprintf(k->keys, sizeof(k->keys), "audit:{%s}:keys", chain);
    snprintf(k->checkpoints, sizeof(k->checkpoints), "audit:{%s}:checkpoints", chain);
    snprintf(k->tile, sizeof(k->tile), "audit:{%s}:tile:", chain);
    snprintf(k->trim, sizeof(k->trim), "audit:{%s}:trim", chain);
}

void audit_tile_key(const struct audit_keys *k, int level, long long index, char *out, size_t size)
{
    snprintf(out, size, "%s%d:%lld", k->tile, level, index);
}

/* ---- the chain ---- */

/* HMGET head seq hash: out seq, hash, exists (absent head: 0, zero hash). */
static enum rreply_class parse_head(struct audit_query *q, redisReply **r)
{
    long long *seq = q->out[0];
    char *hash = q->out[1];
    int *exists = q->out[2];
    if (r[0]->type != REDIS_REPLY_ARRAY)
        return RREPLY_INTERNAL;
    if (r[0]->elements == 2 && r[0]->element[0]->type == REDIS_REPLY_STRING &&
        r[0]->element[1]->type == REDIS_REPLY_STRING) {
        *seq = atoll(r[0]->element[0]->str);
        snprintf(hash, AUDIT_HASH_HEX_LEN + 1, "%s", r[0]->element[1]->str);
        *exists = 1;
    }
    return RREPLY_OK;
}

static void q_head(struct audit_query *q, const struct audit_keys *k, long long *seq,
                   char hash[AUDIT_HASH_HEX_LEN + 1], int *exists)
{
    *seq = 0;
    *exists = 0;
    memcpy(hash, AUDIT_ZERO_HASH, AUDIT_HASH_HEX_LEN + 1);
    audit_query_add(q, 4, "HMGET", k->head, "seq", "hash");
    q->out[0] = seq;
    q->out[1] = hash;
    q->out[2] = exists;
    q->parse = parse_head;
}

enum rreply_class audit_store_head(struct audit_db *p, const struct audit_keys *k, long long *seq,
                                   char hash[AUDIT_HASH_HEX_LEN + 1], int *exists)
{
    struct audit_query q = {0};
    q_head(&q, k, seq, hash, exists);
    return audit_query_run(p, &q);
}

int audit_store_head_async(struct rclient *rc, const struct audit_keys *k, long long *seq,
                           char hash[AUDIT_HASH_HEX_LEN + 1], int *exists, audit_done_fn fn,
                           void *arg)
{
    struct audit_query *q = audit_query_new();
    if (!q)
        return -1;
    q_head(q, k, seq, hash, exists);
    return audit_query_send(rc, q, fn, arg);
}

/* XREVRANGE log + - COUNT 1 (reply i of the query): out[3] the last seq. */
static enum rreply_class parse_last(struct audit_query *q, redisReply *r)
{
    long long *seq = q->out[3];
    if (r->type != REDIS_REPLY_ARRAY)
        return RREPLY_INTERNAL;
    if (r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 2 && r->element[0]->element[0]->type == REDIS_REPLY_STRING)
        *seq = atoll(r->element[0]->element[0]->str);
    return RREPLY_OK;
}

static enum rreply_class parse_last_seq(struct audit_query *q, redisReply **r)
{
    return parse_last(q, r[0]);
}

enum rreply_class audit_store_last_seq(struct audit_db *p, const struct audit_keys *k,
                                       long long *seq)
{
    struct audit_query q = {0};
    *seq = 0;
    audit_query_add(&q, 6, "XREVRANGE", k->log, "+", "-", "COUNT", "1");
    q.out[3] = seq;
    q.parse = parse_last_seq;
    return audit_query_run(p, &q);
}

static enum rreply_class parse_ends(struct audit_query *q, redisReply **r)
{
    enum rreply_class c = parse_head(q, r);
    return c == RREPLY_OK ? parse_last(q, r[1]) : c;
}

int audit_store_ends_async(struct rclient *rc, const struct audit_keys *k, long long *head_seq,
                           char hash[AUDIT_HASH_HEX_LEN + 1], int *exists, long long *last_seq,
                           audit_done_fn fn, void *arg)
{
    struct audit_query *q = audit_query_new();
    if (!q)
        return -1;
    q_head(q, k, head_seq, hash, exists);
    *last_seq = 0;
    audit_query_add(q, 6, "XREVRANGE", k->log, "+", "-", "COUNT", "1");
    q->out[3] = last_seq;
    q->parse = parse_ends;
    return audit_query_send(rc, q, fn, arg);
}

int audit_entry_from_stored(struct audit_entry *e, long long seq, const char *body, size_t body_len,
                            const char *hash, const char *sig)
{
    long long body_seq;
    memset(e, 0, sizeof(*e));
    e->seq = seq;
    snprintf(e->hash, sizeof(e->hash), "%s", hash ? hash : "");
    snprintf(e->sig, sizeof(e->sig), "%s", sig ? sig : "");
    e->body = malloc(body_len + 1);
    if (!e->body)
        return -1;
    memcpy(e->body, body, body_len);
    e->body[body_len] = '\0';
    e->body_len = body_len;
    if (audit_body_parse(body, body_len, &body_seq, e->prev, e->ts, e->kv, NULL) != 0) {
        e->prev[0] = e->ts[0] = e->kv[0] = '\0';
    }
    return 0;
}

/* One stream entry [id, [field, value, ...]] into e. Returns 1 filled, 0 skipped. */
static int stream_entry(const redisReply *it, struct audit_entry *e)
{
    const redisReply *f;
    const char *body = NULL, *hash = NULL, *sig = NULL;
    size_t body_len = 0;
    char *end;
    if (it->type != REDIS_REPLY_ARRAY || it->elements != 2 ||
        it->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    long long seq = strtoll(it->element[0]->str, &end, 10);
    if (strcmp(end, "-0") != 0)
        return 0;
    f = it->element[1];
    for (size_t j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2) {
        const char *name = f->element[j]->str;
        const redisReply *v = f->element[j + 1];
        if (!name || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(name, "body") == 0) {
            body = v->str;
            body_len = v->len;
        } else if (strcmp(name, "hash") == 0) {
            hash = v->str;
        } else if (strcmp(name, "sig") == 0) {
            sig = v->str;
        }
    }
    if (audit_entry_from_stored(e, seq, body ? body : "", body_len, hash, sig) != 0)
        return 0;
    return 1;
}

static enum rreply_class parse_range(struct audit_query *q, redisReply **r)
{
    struct audit_entry *out = q->out[0];
    size_t *n = q->out[1];
    if (r[0]->type != REDIS_REPLY_ARRAY)
        return RREPLY_INTERNAL;
    for (size_t i = 0; i < r[0]->elements && *n < (size_t)q->max; i++)
        *n += (size_t)stream_entry(r[0]->element[i], &out[*n]);
    return RREPLY_OK;
}

static void q_range(struct audit_query *q, const struct audit_keys *k, long long from, long long to,
                    size_t max, struct audit_entry *out, size_t *n)
{
    *n = 0;
    snprintf(q->num[0], sizeof(q->num[0]), "%lld-0", from);
    if (to < 0)
        snprintf(q->num[1], sizeof(q->num[1]), "+");
    else
        snprintf(q->num[1], sizeof(q->num[1]), "%lld-0", to);
    snprintf(q->num[2], sizeof(q->num[2]), "%zu", max);
    audit_query_add(q, 6, "XRANGE", k->log, q->num[0], q->num[1], "COUNT", q->num[2]);
    q->out[0] = out;
    q->out[1] = n;
    q->max = (long long)max;
    q->parse = parse_range;
}

enum rreply_class audit_store_range(struct audit_db *p, const struct audit_keys *k, long long from,
                                    long long to, size_t max, struct audit_entry *out, size_t *n)
{
    struct audit_query q = {0};
    q_range(&q, k, from, to, max, out, n);
    return audit_query_run(p, &q);
}

int audit_store_range_async(struct rclient *rc, const struct audit_keys *k, long long from,
                            long long to, size_t max, struct audit_entry *out, size_t *n,
                            audit_done_fn fn, void *arg)
{
    struct audit_query *q = audit_query_new();
    if (!q)
        return -1;
    q_range(q, k, from, to, max, out, n);
    return audit_query_send(rc, q, fn, arg);
}

static enum rreply_class parse_key_table(struct audit_query *q, redisReply **r)
{
    json_t **out = q->out[0];
    if (r[0]->type != REDIS_REPLY_ARRAY)
        return RREPLY_INTERNAL;
    for (size_t i = 0; i + 1 < r[0]->elements; i += 2)
        if (r[0]->element[i]->str && r[0]->element[i + 1]->str)
            json_object_set_new(*out, r[0]->element[i]->str,
                                json_integer(atoll(r[0]->element[i + 1]->str)));
    return RREPLY_OK;
}

static void q_key_table(struct audit_query *q, const struct audit_keys *k, json_t **out)
{
    *out = json_object();
    audit_query_add(q, 2, "HGETALL", k->keys);
    q->out[0] = out;
    q->parse = parse_key_table;
}

enum rreply_class audit_store_key_table(struct audit_db *p, const struct audit_keys *k,
                                        json_t **out)
{
    struct audit_query q = {0};
    q_key_table(&q, k, out);
    return audit_query_run(p, &q);
}

int audit_store_key_table_async(struct rclient *rc, const struct audit_keys *k, json_t **out,
                                audit_done_fn fn, void *arg)
{
    struct audit_query *q = audit_query_new();
    if (!q)
        return -1;
    q_key_table(q, k, out);
    return audit_query_send(rc, q, fn, arg);
}

static enum rreply_class parse_first_seq(struct audit_query *q, redisReply **r)
{
    long long *first = q->out[0];
    if (r[0]->type == REDIS_REPLY_STRING && atoll(r[0]->str) > 1)
        *first = atoll(r[0]->str);
    return RREPLY_OK;
}

static void q_first_seq(struct audit_query *q, const struct audit_keys *k, long long *first)
{
    *first = 1;
    audit_query_add(q, 3, "HGET", k->trim, "first_seq");
    q->out[0] = first;
    q->parse = parse_first_seq;
}

enum rreply_class audit_store_first_seq(struct audit_db *p, const struct audit_keys *k,
                                        long long *first)
{
    struct audit_query q = {0};
    q_first_seq(&q, k, first);
    return audit_query_run(p, &q);
}

int audit_store_first_seq_async(struct rclient *rc, const struct audit_keys *k, long long *first,
                                audit_done_fn fn, void *arg)
{
    struct audit_query *q = audit_query_new();
    if (!q)
        return -1;
    q_first_seq(q, k, first);
    return audit_query_send(rc, q, fn, arg);
}

/* ---- the tree ---- */

/* The HMGET of the head's fields (AUDIT_HEAD_FIELDS) into h. */
static enum rreply_class tree_head_reply(const redisReply *r, struct audit_head *h)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == 5 && audit_head_parse(r->element, h) == 0
               ? RREPLY_OK
               : RREPLY_INTERNAL;
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

/* The head and, when out[1] is set, the hash of the entry the second command read. */
static enum rreply_class parse_head_at(struct audit_query *q, redisReply **r)
{
    enum rreply_class c = tree_head_reply(r[0], q->out[0]);
    if (c == RREPLY_OK && q->out[1])
        entry_hash(r[1], q->out[1]);
    return c;
}

static void q_tree_head(struct audit_query *q, const struct audit_keys *k, struct audit_head *h)
{
    audit_query_add(q, 7, "HMGET", k->head, AUDIT_HEAD_FIELDS);
    q->out[0] = h;
    q->parse = parse_head_at;
}

enum rreply_class audit_store_tree_head(struct audit_db *p, const struct audit_keys *k,
                                        struct audit_head *h)
{
    struct audit_query q = {0};
    q_tree_head(&q, k, h);
    return audit_query_run(p, &q);
}

int audit_store_tree_head_async(struct rclient *rc, const struct audit_keys *k,
                                struct audit_head *h, audit_done_fn fn, void *arg)
{
    struct audit_query *q = audit_query_new();
    if (!q)
        return -1;
    q_tree_head(q, k, h);
    return audit_query_send(rc, q, fn, arg);
}

static void q_head_at(struct audit_query *q, const struct audit_keys *k, long long at_seq,
                      struct audit_head *h, char hash_at[AUDIT_HASH_HEX_LEN + 1])
{
    hash_at[0] = '\0';
    q_tree_head(q, k, h);
    if (at_seq > 0) {
        snprintf(q->num[0], sizeof(q->num[0]), "%lld-0", at_seq);
        audit_query_add(q, 4, "XRANGE", k->log, q->num[0], q->num[0]);
        q->out[1] = hash_at;
    }
}

enum rreply_class audit_store_head_at(struct audit_db *p, const struct audit_keys *k,
                                      long long at_seq, struct audit_head *h,
                                      char hash_at[AUDIT_HASH_HEX_LEN + 1])
{
    struct audit_query q = {0};
    q_head_at(&q, k, at_seq, h, hash_at);
    return audit_query_run(p, &q);
}

int audit_store_head_at_async(struct rclient *rc, const struct audit_keys *k, long long at_seq,
                              struct audit_head *h, char hash_at[AUDIT_HASH_HEX_LEN + 1],
                              audit_done_fn fn, void *arg)
{
    struct audit_query *q = audit_query_new();
    if (!q)
        return -1;
    q_head_at(q, k, at_seq, h, hash_at);
    return audit_query_send(rc, q, fn, arg);
}

/* The head first when asked (out[1]), then a GETRANGE per tile of the set (out[0]). */
static enum rreply_class parse_tiles(struct audit_query *q, redisReply **r)
{
    struct audit_tileset *s = q->out[0];
    size_t first = q->out[1] ? 1 : 0;
    if (first && tree_head_reply(r[0], q->out[1]) != RREPLY_OK)
        return RREPLY_INTERNAL;
    for (size_t i = 0; i < s->n; i++) {
        const redisReply *t = r[first + i];
        size_t want = (size_t)s->t[i].width * AUDIT_MERKLE_HASH_LEN;
        if (t->type == REDIS_REPLY_STRING && t->len == want &&
            (s->t[i].data = malloc(want)) != NULL)
            memcpy(s->t[i].data, t->str, want);
    }
    return RREPLY_OK;
}

static void q_tiles(struct audit_query *q, const struct audit_keys *k, struct audit_tileset *s,
                    struct audit_head *head)
{
    size_t first = head ? 1 : 0, n = first + s->n; /* the head's HMGET goes first */
    struct audit_cmd *cmds = calloc(n + 1, sizeof(*cmds));
    char(*keys)[128] = calloc(s->n + 1, 128), (*ends)[24] = calloc(s->n + 1, 24);
    const char **argv = calloc(4 * s->n + 1, sizeof(*argv));
    q->mem[0] = keys;
    q->mem[1] = ends;
    q->mem[2] = argv;
    q->mem[3] = cmds;
    q->out[0] = s;
    q->out[1] = head;
    q->parse = parse_tiles;
    if (!cmds || !keys || !ends || !argv) {
        q->failed = 1;
        return;
    }
    if (head)
        audit_query_add(q, 7, "HMGET", k->head, AUDIT_HEAD_FIELDS);
    memcpy(cmds, q->fixed, first * sizeof(*cmds));
    q->cmd = cmds;
    for (size_t i = 0; i < s->n; i++) {
        audit_tile_key(k, s->t[i].level, s->t[i].index, keys[i], 128);
        snprintf(ends[i], 24, "%d", s->t[i].width * AUDIT_MERKLE_HASH_LEN - 1);
        const char **a = argv + 4 * i;
        a[0] = "GETRANGE";
        a[1] = keys[i];
        a[2] = "0";
        a[3] = ends[i];
        cmds[first + i] = (struct audit_cmd){.argc = 4, .argv = a};
    }
    q->n = n;
}

enum rreply_class audit_store_tiles(struct audit_db *p, const struct audit_keys *k,
                                    struct audit_tileset *s, struct audit_head *head)
{
    struct audit_query q = {0};
    q_tiles(&q, k, s, head);
    return audit_query_run(p, &q);
}

int audit_store_tiles_async(struct rclient *rc, const struct audit_keys *k, struct audit_tileset *s,
                            struct audit_head *head, audit_done_fn fn, void *arg)
{
    struct audit_query *q = audit_query_new();
    if (!q)
        return -1;
    q_tiles(q, k, s, head);
    return audit_query_send(rc, q, fn, arg);
}

static enum rreply_class parse_tile(struct audit_query *q, redisReply **r)
{
    int *rc = q->out[1];
    if (r[0]->type != REDIS_REPLY_STRING)
        return RREPLY_INTERNAL;
    *rc = r[0]->len == 0 ? 0 : r[0]->len == (size_t)q->max * AUDIT_MERKLE_HASH_LEN ? 1 : -1;
    if (*rc == 1)
        memcpy(q->out[0], r[0]->str, r[0]->len);
    return RREPLY_OK;
}

int audit_store_tile(struct audit_db *p, const struct audit_keys *k, int level, long long index,
                     int width, uint8_t *out)
{
    struct audit_query q = {0};
    int rc = -1;
    audit_tile_key(k, level, index, q.num[0], sizeof(q.num[0]));
    snprintf(q.num[1], sizeof(q.num[1]), "%d", width * AUDIT_MERKLE_HASH_LEN - 1);
    audit_query_add(&q, 4, "GETRANGE", q.num[0], "0", q.num[1]);
    q.out[0] = out;
    q.out[1] = &rc;
    q.max = width;
    q.parse = parse_tile;
    return audit_query_run(p, &q) == RREPLY_OK ? rc : -1;
}

/* ---- the append ---- */

#define NKEYS_FIXED 5  /* head, log, ids, idseq, keys */
#define NARGS_FIXED 14 /* ARGV[1..14] */

/* Everything the argument vector points into. */
struct call_buf {
    const char **argv;
    size_t *lens;
    char (*tile_keys)[128];
    char (*tile_lens)[16];
    char seq[24], floor_seq[24], window[24], n[24], t[24], tsize[24], new_tsize[24];
    char root[AUDIT_HASH_HEX_LEN + 1];
};

static void call_buf_free(struct call_buf *b)
{
    free(b->argv);
    free(b->lens);
    free(b->tile_keys);
    free(b->tile_lens);
}

/* The arguments after the fixed ones, from position at: the entries, then the tiles. */
static void add_entries_and_tiles(const struct audit_append_args *a, struct call_buf *b, size_t at)
{
    const struct audit_tree_delta *d = a->delta;
    for (size_t i = 0; i < a->n; i++) {
        const struct audit_item *it = a->items[i];
        const char *id = json_string_value(json_object_get(it->event, "event_id"));
        b->argv[at++] = id ? id : "";
        b->lens[at] = it->entry.body_len;
        b->argv[at++] = it->entry.body;
        b->argv[at++] = it->entry.hash;
        b->argv[at++] = it->entry.sig;
    }
    for (size_t i = 0; i < d->n; i++) {
        snprintf(b->tile_lens[i], sizeof(b->tile_lens[i]), "%d",
                 d->t[i].from * AUDIT_MERKLE_HASH_LEN);
        b->argv[at++] = b->tile_lens[i];
        b->lens[at] = (size_t)d->t[i].count * AUDIT_MERKLE_HASH_LEN;
        b->argv[at++] = (const char *)d->t[i].data;
    }
}

/* Fill b: the keys (5 + t), then the fixed arguments, the entries and the tile appends, as
 * audit_append.lua's contract lays them out. Returns the count, or -1 out of memory. */
static int build(const struct audit_append_args *a, struct call_buf *b)
{
    const struct audit_tree_delta *d = a->delta;
    size_t t = d->n, total = NKEYS_FIXED + t + NARGS_FIXED + 4 * a->n + 2 * t, at = 0;
    b->argv = calloc(total, sizeof(*b->argv));
    b->lens = calloc(total, sizeof(*b->lens));
    b->tile_keys = calloc(t + 1, sizeof(*b->tile_keys));
    b->tile_lens = calloc(t + 1, sizeof(*b->tile_lens));
    if (!b->argv || !b->lens || !b->tile_keys || !b->tile_lens)
        return -1;
    snprintf(b->seq, sizeof(b->seq), "%lld", a->head_seq);
    snprintf(b->floor_seq, sizeof(b->floor_seq), "%lld", a->floor->seq);
    snprintf(b->window, sizeof(b->window), "%lld", (long long)a->dedup_window_ms);
    snprintf(b->n, sizeof(b->n), "%zu", a->n);
    snprintf(b->t, sizeof(b->t), "%zu", t);
    snprintf(b->tsize, sizeof(b->tsize), "%lld", a->tree_size);
    snprintf(b->new_tsize, sizeof(b->new_tsize), "%lld", d->next.size);
    crypto_hex(d->root, sizeof(d->root), b->root);
    const char *keys[NKEYS_FIXED] = {a->keys->head, a->keys->log, a->keys->ids, a->keys->idseq,
                                     a->keys->keys};
    for (size_t i = 0; i < NKEYS_FIXED; i++)
        b->argv[at++] = keys[i];
    for (size_t i = 0; i < t; i++) {
        audit_tile_key(a->keys, d->t[i].level, d->t[i].index, b->tile_keys[i],
                       sizeof(b->tile_keys[i]));
        b->argv[at++] = b->tile_keys[i];
    }
    const char *fixed[NARGS_FIXED] = {b->seq,
                                      a->head_hash,
                                      b->window,
                                      a->key_version,
                                      a->activation ? "1" : "0",
                                      b->floor_seq,
                                      a->floor->hash,
                                      a->floor->root,
                                      b->n,
                                      b->t,
                                      b->tsize,
                                      "",
                                      b->root,
                                      b->new_tsize};
    for (size_t i = 0; i < NARGS_FIXED; i++)
        b->argv[at++] = fixed[i];
    b->lens[at - 3] = (size_t)d->next.n * AUDIT_MERKLE_HASH_LEN; /* the frontier, raw */
    b->argv[at - 3] = d->next.n ? (const char *)d->next.h : "";
    add_entries_and_tiles(a, b, at);
    for (size_t i = 0; i < total; i++) /* a length set above is binary data's; else a string */
        if (b->lens[i] == 0)
            b->lens[i] = strlen(b->argv[i]);
    return (int)total;
}

/* The script's reply, kept for the caller (an array with a first word). */
static enum rreply_class parse_append(struct audit_query *q, redisReply **r)
{
    redisReply **reply = q->out[0];
    if (r[0]->type != REDIS_REPLY_ARRAY || r[0]->elements < 1)
        return RREPLY_INTERNAL;
    *reply = r[0];
    r[0] = NULL;
    return RREPLY_OK;
}

static void append_buf_free(void *arg)
{
    struct call_buf *b = arg;
    if (b)
        call_buf_free(b);
    free(b);
}

int audit_store_append_async(struct rclient *rc, const struct audit_append_args *a,
                             redisReply **reply, audit_done_fn fn, void *arg)
{
    struct audit_query *q = audit_query_new();
    struct call_buf *b = calloc(1, sizeof(*b));
    int argc = b ? build(a, b) : -1;
    if (!q || argc < 0) {
        append_buf_free(b);
        free(q);
        return -1;
    }
    *reply = NULL;
    q->cmd = q->fixed;
    q->fixed[0] = (struct audit_cmd){.script = &script_audit_append,
                                     .nkeys = (int)(NKEYS_FIXED + a->delta->n),
                                     .argc = argc,
                                     .argv = b->argv,
                                     .argvlen = b->lens};
    q->n = 1;
    q->out[0] = reply;
    q->parse = parse_append;
    q->cleanup = append_buf_free; /* kept until the reply */
    q->cleanup_arg = b;
    return audit_query_send(rc, q, fn, arg);
}

static enum rreply_class parse_integer(struct audit_query *q, redisReply **r)
{
    long long *out = q->out[0];
    *out = r[0]->type == REDIS_REPLY_INTEGER ? r[0]->integer : 0;
    return RREPLY_OK;
}

int audit_store_wait_async(struct rclient *rc, int replicas, int64_t wait_ms, int64_t timeout_ms,
                           long long *acked, audit_done_fn fn, void *arg)
{
    struct audit_query *q = audit_query_new();
    if (!q)
        return -1;
    *acked = 0;
    snprintf(q->num[0], sizeof(q->num[0]), "%d", replicas);
    snprintf(q->num[1], sizeof(q->num[1]), "%lld", (long long)wait_ms);
    audit_query_add(q, 3, "WAIT", q->num[0], q->num[1]);
    q->timeout_ms = timeout_ms;
    q->out[0] = acked;
    q->parse = parse_integer;
    return audit_query_send(rc, q, fn, arg);
}

const char *audit_reply_word(const redisReply *r)
{
    return r->element[0]->type == REDIS_REPLY_STRING ? r->element[0]->str : "";
}

long long audit_reply_int(const redisReply *r, size_t i)
{
    if (i >= r->elements)
        return 0;
    const redisReply *e = r->element[i];
    return e->type == REDIS_REPLY_INTEGER ? e->integer : (e->str ? atoll(e->str) : 0);
}

/* ---- checkpoints and trims ---- */

static enum rreply_class parse_checkpoint(struct audit_query *q, redisReply **r)
{
    int *stored = q->out[0];
    if (r[0]->type != REDIS_REPLY_ARRAY)
        return RREPLY_INTERNAL;
    *stored = r[0]->elements == 2 && r[0]->element[0]->str &&
              strcmp(r[0]->element[0]->str, "stored") == 0;
    return RREPLY_OK;
}

static void q_checkpoint(struct audit_query *q, const struct audit_keys *k, int64_t interval_ms,
                         long long seq, const char *hash, const char *note, int *stored)
{
    *stored = 0;
    snprintf(q->num[0], sizeof(q->num[0]), "%lld", (long long)interval_ms);
    snprintf(q->num[1], sizeof(q->num[1]), "%lld", seq);
    audit_query_add(q, 5, k->checkpoints, q->num[0], q->num[1], hash, note);
    q->fixed[0].script = &script_audit_checkpoint;
    q->fixed[0].nkeys = 1;
    q->out[0] = stored;
    q->parse = parse_checkpoint;
}

enum rreply_class audit_store_checkpoint(struct audit_db *p, const struct audit_keys *k,
                                         int64_t interval_ms, long long seq, const char *hash,
                                         const char *note, int *stored)
{
    struct audit_query q = {0};
    q_checkpoint(&q, k, interval_ms, seq, hash, note, stored);
    return audit_query_run(p, &q);
}

int audit_store_checkpoint_async(struct rclient *rc, const struct audit_keys *k,
                                 int64_t interval_ms, long long seq, const char *hash,
                                 const char *note, int *stored, audit_done_fn fn, void *arg)
{
    struct audit_query *q = audit_query_new();
    if (!q)
        return -1;
    q_checkpoint(q, k, interval_ms, seq, hash, note, stored);
    return audit_query_send(rc, q, fn, arg);
}

/* XREVRANGE checkpoints + - COUNT 1: the note into out[0] (max bytes), its length out[1]. */
static enum rreply_class parse_last_checkpoint(struct audit_query *q, redisReply **r)
{
    char *note = q->out[0];
    int *n = q->out[1];
    if (r[0]->type != REDIS_REPLY_ARRAY)
        return RREPLY_INTERNAL;
    const redisReply *e = r[0]->elements == 1 ? r[0]->element[0] : NULL;
    const redisReply *f =
        e && e->type == REDIS_REPLY_ARRAY && e->elements == 2 ? e->element[1] : NULL;
    for (size_t i = 0; f && f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2)
        if (f->element[i]->str && strcmp(f->element[i]->str, "note") == 0 &&
            f->element[i + 1]->type == REDIS_REPLY_STRING) {
            *n = f->element[i + 1]->len < (size_t)q->max ? (int)f->element[i + 1]->len : -1;
            if (*n > 0)
                memcpy(note, f->element[i + 1]->str, (size_t)*n + 1);
        }
    return RREPLY_OK;
}

int audit_store_last_checkpoint(struct audit_db *p, const struct audit_keys *k, char *note,
                                size_t size)
{
    struct audit_query q = {0};
    int n = 0;
    audit_query_add(&q, 6, "XREVRANGE", k->checkpoints, "+", "-", "COUNT", "1");
    q.out[0] = note;
    q.out[1] = &n;
    q.max = (long long)size;
    q.parse = parse_last_checkpoint;
    return audit_query_run(p, &q) == RREPLY_OK ? n : -1;
}
