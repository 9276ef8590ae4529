/* SPDX-License-Identifier: Apache-2.0 */
/* store: auditd's keys, scripts and Redis calls (see store.h). */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appender.h"
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

/* The class of a call's outcome; a reply of type want (0: any) when it is OK, or the
 * call is internal (auditd never writes another shape). */
static enum rreply_class classify(enum rpool_status st, const redisReply *r, int want)
{
    enum rreply_class c = rreply_classify(st, r);
    if (c == RREPLY_OK && want && r->type != want)
        c = RREPLY_INTERNAL;
    return c;
}

/* One command, its reply of type want (freed here) passed to parse when OK. */
static enum rreply_class command(struct rpool *p, int argc, const char *const *argv, int want,
                                 redisReply **reply)
{
    *reply = NULL;
    enum rpool_status st = rpool_command(p, argc, argv, NULL, 0, reply);
    return classify(st, *reply, want);
}

/* ---- the chain ---- */

/* An HMGET seq hash reply into seq, hash and exists (absent head: 0, zero hash). */
static void parse_head(const redisReply *r, long long *seq, char hash[AUDIT_HASH_HEX_LEN + 1],
                       int *exists)
{
    if (r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        *seq = atoll(r->element[0]->str);
        snprintf(hash, AUDIT_HASH_HEX_LEN + 1, "%s", r->element[1]->str);
        *exists = 1;
    }
}

enum rreply_class audit_store_head(struct rpool *p, const struct audit_keys *k, long long *seq,
                                   char hash[AUDIT_HASH_HEX_LEN + 1], int *exists)
{
    const char *argv[] = {"HMGET", k->head, "seq", "hash"};
    redisReply *r;
    enum rreply_class c = command(p, 4, argv, REDIS_REPLY_ARRAY, &r);
    *seq = 0;
    *exists = 0;
    memcpy(hash, AUDIT_ZERO_HASH, AUDIT_HASH_HEX_LEN + 1);
    if (c == RREPLY_OK)
        parse_head(r, seq, hash, exists);
    freeReplyObject(r);
    return c;
}

enum rreply_class audit_store_last_seq(struct rpool *p, const struct audit_keys *k, long long *seq)
{
    const char *argv[] = {"XREVRANGE", k->log, "+", "-", "COUNT", "1"};
    redisReply *r;
    enum rreply_class c = command(p, 6, argv, REDIS_REPLY_ARRAY, &r);
    *seq = 0;
    if (c == RREPLY_OK && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 2)
        *seq = atoll(r->element[0]->element[0]->str);
    freeReplyObject(r);
    return c;
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
    if (it->type != REDIS_REPLY_ARRAY || it->elements != 2)
        return 0;
    long long seq = strtoll(it->element[0]->str, &end, 10);
    if (strcmp(end, "-0") != 0)
        return 0;
    f = it->element[1];
    for (size_t j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2) {
        const char *name = f->element[j]->str;
        const redisReply *v = f->element[j + 1];
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

enum rreply_class audit_store_range(struct rpool *p, const struct audit_keys *k, long long from,
                                    long long to, size_t max, struct audit_entry *out, size_t *n)
{
    char start[32], end[32], count[24];
    snprintf(start, sizeof(start), "%lld-0", from);
    if (to < 0)
        snprintf(end, sizeof(end), "+");
    else
        snprintf(end, sizeof(end), "%lld-0", to);
    snprintf(count, sizeof(count), "%zu", max);
    const char *argv[] = {"XRANGE", k->log, start, end, "COUNT", count};
    redisReply *r;
    enum rreply_class c = command(p, 6, argv, REDIS_REPLY_ARRAY, &r);
    *n = 0;
    for (size_t i = 0; c == RREPLY_OK && i < r->elements && *n < max; i++)
        *n += (size_t)stream_entry(r->element[i], &out[*n]);
    freeReplyObject(r);
    return c;
}

enum rreply_class audit_store_key_table(struct rpool *p, const struct audit_keys *k, json_t **out)
{
    const char *argv[] = {"HGETALL", k->keys};
    redisReply *r;
    enum rreply_class c = command(p, 2, argv, REDIS_REPLY_ARRAY, &r);
    *out = json_object();
    for (size_t i = 0; c == RREPLY_OK && i + 1 < r->elements; i += 2)
        json_object_set_new(*out, r->element[i]->str, json_integer(atoll(r->element[i + 1]->str)));
    freeReplyObject(r);
    return c;
}

enum rreply_class audit_store_first_seq(struct rpool *p, const struct audit_keys *k,
                                        long long *first)
{
    const char *argv[] = {"HGET", k->trim, "first_seq"};
    redisReply *r;
    enum rreply_class c = command(p, 3, argv, 0, &r);
    *first = 1;
    if (c == RREPLY_OK && r->type == REDIS_REPLY_STRING && atoll(r->str) > 1)
        *first = atoll(r->str);
    freeReplyObject(r);
    return c;
}

/* ---- the tree ---- */

/* The HMGET of the head's fields (AUDIT_HEAD_FIELDS) into h. */
static enum rreply_class tree_head_reply(const redisReply *r, struct audit_head *h)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == 5 && audit_head_parse(r->element, h) == 0
               ? RREPLY_OK
               : RREPLY_INTERNAL;
}

enum rreply_class audit_store_tree_head(struct rpool *p, const struct audit_keys *k,
                                        struct audit_head *h)
{
    const char *argv[] = {"HMGET", k->head, AUDIT_HEAD_FIELDS};
    redisReply *r;
    enum rreply_class c = command(p, 7, argv, 0, &r);
    if (c == RREPLY_OK)
        c = tree_head_reply(r, h);
    freeReplyObject(r);
    return c;
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

/* The class of a pipeline's outcome: its status, then each reply's. */
static enum rreply_class exec_class(enum rpool_status st, redisReply *const *r, size_t n)
{
    enum rreply_class c = rreply_classify(st, NULL);
    for (size_t i = 0; c == RREPLY_OK && i < n; i++)
        c = rreply_classify(st, r[i]);
    return c;
}

enum rreply_class audit_store_head_at(struct rpool *p, const struct audit_keys *k, long long at_seq,
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
    enum rreply_class c = exec_class(rpool_exec(p, cmds, n, r, 0), r, n);
    if (c == RREPLY_OK)
        c = tree_head_reply(r[0], h);
    if (c == RREPLY_OK && n == 2)
        entry_hash(r[1], hash_at);
    for (size_t i = 0; i < n; i++)
        freeReplyObject(r[i]);
    return c;
}

enum rreply_class audit_store_tiles(struct rpool *p, const struct audit_keys *k,
                                    struct audit_tileset *s, struct audit_head *head)
{
    size_t first = head ? 1 : 0, n = first + s->n; /* the head's HMGET goes first */
    struct rpool_cmd *cmds = calloc(n, sizeof(*cmds));
    redisReply **replies = calloc(n, sizeof(redisReply *));
    char(*keys)[128] = calloc(s->n + 1, 128), (*ends)[24] = calloc(s->n + 1, 24);
    const char **argv = calloc(4 * s->n + 1, sizeof(*argv));
    const char *head_argv[] = {"HMGET", k->head, AUDIT_HEAD_FIELDS};
    enum rreply_class c = RREPLY_INTERNAL;
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
    c = n ? exec_class(rpool_exec(p, cmds, n, replies, 0), replies, n) : RREPLY_OK;
    if (c == RREPLY_OK && head)
        c = tree_head_reply(replies[0], head);
    for (size_t i = 0; c == RREPLY_OK && i < s->n; i++) {
        const redisReply *r = replies[first + i];
        size_t want = (size_t)s->t[i].width * MERKLE_HASH_LEN;
        if (r->type == REDIS_REPLY_STRING && r->len == want &&
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
    return c;
}

int audit_store_tile(struct rpool *p, const struct audit_keys *k, int level, long long index,
                     int width, uint8_t *out)
{
    char key[128], end[24];
    audit_tile_key(k, level, index, key, sizeof(key));
    snprintf(end, sizeof(end), "%d", width * MERKLE_HASH_LEN - 1);
    const char *argv[] = {"GETRANGE", key, "0", end};
    redisReply *r;
    int rc = -1;
    if (command(p, 4, argv, REDIS_REPLY_STRING, &r) == RREPLY_OK) {
        rc = r->len == 0 ? 0 : r->len == (size_t)width * MERKLE_HASH_LEN ? 1 : -1;
        if (rc == 1)
            memcpy(out, r->str, r->len);
    }
    freeReplyObject(r);
    return rc;
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
        snprintf(b->tile_lens[i], sizeof(b->tile_lens[i]), "%d", d->t[i].from * MERKLE_HASH_LEN);
        b->argv[at++] = b->tile_lens[i];
        b->lens[at] = (size_t)d->t[i].count * MERKLE_HASH_LEN;
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
    b->lens[at - 3] = (size_t)d->next.n * MERKLE_HASH_LEN; /* the frontier, raw */
    b->argv[at - 3] = d->next.n ? (const char *)d->next.h : "";
    add_entries_and_tiles(a, b, at);
    for (size_t i = 0; i < total; i++) /* a length set above is binary data's; else a string */
        if (b->lens[i] == 0)
            b->lens[i] = strlen(b->argv[i]);
    return (int)total;
}

enum rreply_class audit_store_append(struct rpool *p, const struct audit_append_args *a,
                                     redisReply **reply, long long *replicas)
{
    struct call_buf b = {0};
    char wn[16], wt[24];
    int argc = build(a, &b);
    enum rreply_class c = RREPLY_INTERNAL;
    *reply = NULL;
    *replicas = 0;
    if (argc < 0)
        goto done;
    snprintf(wn, sizeof(wn), "%d", a->wait_replicas);
    snprintf(wt, sizeof(wt), "%lld", (long long)a->wait_timeout_ms);
    const char *wait_argv[] = {"WAIT", wn, wt};
    struct rpool_cmd cmds[2] = {
        {.script = &script_audit_append,
         .nkeys = (int)(NKEYS_FIXED + a->delta->n),
         .argc = argc,
         .argv = b.argv,
         .argvlen = b.lens},
        {.argc = 3, .argv = wait_argv},
    };
    redisReply *replies[2] = {NULL, NULL};
    size_t ncmds = a->wait_replicas > 0 ? 2 : 1;
    /* REDIS_COMMAND_TIMEOUT for the compare-and-set, plus the replicas' wait when asked. */
    int64_t timeout_ms = rpool_command_timeout_ms(p) + (ncmds == 2 ? a->wait_timeout_ms : 0);
    c = exec_class(rpool_exec(p, cmds, ncmds, replies, timeout_ms), replies, 1);
    if (ncmds == 2 && replies[1]) {
        *replicas = replies[1]->type == REDIS_REPLY_INTEGER ? replies[1]->integer : 0;
        freeReplyObject(replies[1]);
    }
    if (c == RREPLY_OK && (replies[0]->type != REDIS_REPLY_ARRAY || replies[0]->elements < 1))
        c = RREPLY_INTERNAL;
    if (c == RREPLY_OK)
        *reply = replies[0];
    else
        freeReplyObject(replies[0]);
done:
    call_buf_free(&b);
    return c;
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

enum rreply_class audit_store_checkpoint(struct rpool *p, const struct audit_keys *k,
                                         int64_t interval_ms, long long seq, const char *hash,
                                         const char *note, int *stored)
{
    char seq_s[24], interval[24];
    snprintf(seq_s, sizeof(seq_s), "%lld", seq);
    snprintf(interval, sizeof(interval), "%lld", (long long)interval_ms);
    const char *argv[] = {k->checkpoints, interval, seq_s, hash, note};
    redisReply *r = NULL;
    enum rpool_status st = rpool_eval(p, &script_audit_checkpoint, 1, 5, argv, NULL, 0, &r);
    enum rreply_class c = classify(st, r, REDIS_REPLY_ARRAY);
    *stored = c == RREPLY_OK && r->elements == 2 && r->element[0]->str &&
              strcmp(r->element[0]->str, "stored") == 0;
    freeReplyObject(r);
    return c;
}

int audit_store_last_checkpoint(struct rpool *p, const struct audit_keys *k, char *note,
                                size_t size)
{
    const char *argv[] = {"XREVRANGE", k->checkpoints, "+", "-", "COUNT", "1"};
    redisReply *r;
    int n = 0;
    if (command(p, 6, argv, REDIS_REPLY_ARRAY, &r) != RREPLY_OK) {
        freeReplyObject(r);
        return -1;
    }
    const redisReply *f = r->elements == 1 ? r->element[0]->element[1] : NULL;
    for (size_t i = 0; f && i + 1 < f->elements; i += 2)
        if (f->element[i]->str && strcmp(f->element[i]->str, "note") == 0) {
            n = f->element[i + 1]->len < size ? (int)f->element[i + 1]->len : -1;
            if (n > 0)
                memcpy(note, f->element[i + 1]->str, (size_t)n + 1);
        }
    freeReplyObject(r);
    return n;
}

int audit_store_trim(struct rpool *p, const struct audit_keys *k, long long before_seq,
                     long long rec, char (*tile_keys)[128], size_t n, long long *entries,
                     long long *tiles)
{
    char first[24], seq[24];
    const char **argv = calloc(n + 4, sizeof(*argv));
    redisReply *r = NULL;
    int rc = -1;
    if (!argv)
        return -1;
    snprintf(first, sizeof(first), "%lld", before_seq);
    snprintf(seq, sizeof(seq), "%lld", rec);
    argv[0] = k->log;
    argv[1] = k->trim;
    for (size_t i = 0; i < n; i++)
        argv[2 + i] = tile_keys[i];
    argv[2 + n] = first;
    argv[3 + n] = seq;
    enum rpool_status st =
        rpool_eval(p, &script_audit_trim, (int)(2 + n), (int)(4 + n), argv, NULL, 0, &r);
    if (classify(st, r, REDIS_REPLY_ARRAY) == RREPLY_OK && r->elements == 3) {
        *entries += r->element[1]->integer;
        *tiles += r->element[2]->integer;
        rc = 0;
    }
    freeReplyObject(r);
    free(argv);
    return rc;
}
