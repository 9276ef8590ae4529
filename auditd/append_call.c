/* SPDX-License-Identifier: Apache-2.0 */
/* append_call: audit_append.lua's arguments, the call, its reply. */
#include "append_call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scripts.h"
#include "shared/crypto.h"

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

enum rpool_status audit_append_call(struct rpool *p, const struct audit_append_args *a,
                                    redisReply **reply, long long *replicas)
{
    struct call_buf b = {0};
    char wn[16], wt[24];
    int argc = build(a, &b);
    enum rpool_status st = RPOOL_CONN;
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
    st = rpool_exec(p, cmds, ncmds, replies, timeout_ms);
    if (st != RPOOL_OK)
        goto done;
    *reply = replies[0];
    if (ncmds == 2) {
        *replicas = replies[1]->type == REDIS_REPLY_INTEGER ? replies[1]->integer : 0;
        freeReplyObject(replies[1]);
    }
    if ((*reply)->type != REDIS_REPLY_ARRAY || (*reply)->elements < 1)
        st = RPOOL_REPLY_ERROR;
done:
    call_buf_free(&b);
    return st;
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
