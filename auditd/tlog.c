/* SPDX-License-Identifier: Apache-2.0 */
/* tlog: proofs and tiles served from the stored tree. */
#include "tlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "pending.h"
#include "request.h"
#include "shared/crypto.h"
#include "tiles.h"
#include "tree.h"

/* ---- proofs ---- */

struct proof_call {
    struct audit_pending p;
    struct audit_ctx *ctx;
    int consistency;
    long long lo, hi;
    uint8_t hashes[AUDIT_MERKLE_PROOF_MAX][AUDIT_MERKLE_HASH_LEN];
    int count;
    struct audit_head head;
};

/* The answer for a proof computed (rc as tree.h). */
static void proof_answer(void *arg, int rc)
{
    struct proof_call *k = arg;
    struct http_req *r = k->p.r;
    const char *hi_name = k->consistency ? "to" : "tree_size";
    char b64[48];
    if (rc == AUDIT_TREE_REDIS || rc == AUDIT_TREE_REDIS_ERROR) {
        audit_redis_failed(r, rc == AUDIT_TREE_REDIS ? RREPLY_UNAVAILABLE : RREPLY_INTERNAL);
    } else if (rc == AUDIT_TREE_MALFORMED) {
        http_problem(r, 503, "chain_broken", "the Merkle tree beside the chain head is malformed");
    } else if (rc == AUDIT_TREE_BAD) {
        http_invalid(r, hi_name, "%s is past the tree's size (%lld)", hi_name, k->head.tree_size);
    } else if (rc != AUDIT_TREE_OK) {
        http_problem(r, 410, "trimmed",
                     "a tile this proof needs is no longer in Redis (trimmed): use the archive");
    } else {
        json_t *out = k->consistency
                          ? json_object()
                          : json_pack("{s:I, s:I}", "leaf_index", (json_int_t)(k->lo - 1),
                                      "tree_size", (json_int_t)k->hi);
        json_t *list = json_array();
        for (int i = 0; i < k->count; i++) {
            crypto_b64(k->hashes[i], AUDIT_MERKLE_HASH_LEN, b64, sizeof(b64));
            json_array_append_new(list, json_string(b64));
        }
        json_object_set_new(out, "hashes", list);
        http_reply_json(r, 200, out);
    }
    audit_pending_done(&k->p);
}

/* The proof routes read the head with the tiles, in one round trip: the tiles a proof
 * needs follow from the sizes asked, and whether those are within the tree is known
 * once the head is there. */
static void proof_step(struct audit_pending *p)
{
    struct proof_call *k = (struct proof_call *)p;
    int rc = k->consistency
                 ? audit_tree_consistency_async(p->rc, k->ctx->keys, k->lo, k->hi, k->hashes,
                                                &k->count, &k->head, proof_answer, k)
                 : audit_tree_inclusion_async(p->rc, k->ctx->keys, k->lo - 1, k->hi, k->hashes,
                                              &k->count, &k->head, proof_answer, k);
    if (rc != AUDIT_TREE_OK) {
        k->head.tree_size = 0;
        proof_answer(k, rc);
    }
}

/* The query values lo and hi of a proof: 1 <= lo <= hi (whether hi is within the tree is
 * learnt with the tiles), then the proof. */
static void proof_start(struct http_req *r, struct audit_ctx *ctx, int consistency)
{
    const char *lo_name = consistency ? "from" : "seq", *hi_name = consistency ? "to" : "tree_size";
    long long lo = audit_req_num(http_query(r, lo_name), 1, AUDIT_SEQ_MAX);
    long long hi = audit_req_num(http_query(r, hi_name), 1, AUDIT_SEQ_MAX);
    if (lo < 0 || hi < 0) {
        http_invalid(r, lo < 0 ? lo_name : hi_name, "%s and %s are whole numbers >= 1", lo_name,
                     hi_name);
        return;
    }
    if (lo > hi) {
        http_invalid(r, lo_name, "need 1 <= %s <= %s", lo_name, hi_name);
        return;
    }
    struct proof_call *k = calloc(1, sizeof(*k));
    if (!k) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    k->ctx = ctx;
    k->consistency = consistency;
    k->lo = lo;
    k->hi = hi;
    audit_pending_start(&k->p, r, proof_step);
}

void audit_tlog_inclusion(struct http_req *r, void *ctx)
{
    proof_start(r, ctx, 0);
}

void audit_tlog_consistency(struct http_req *r, void *ctx)
{
    proof_start(r, ctx, 1);
}

/* ---- tiles ---- */

struct tile_call {
    struct audit_pending p;
    struct audit_ctx *ctx;
    struct audit_tile_ref t;
    struct audit_head head;
    struct audit_tileset s;
    struct audit_entry e[AUDIT_MERKLE_TILE_WIDTH];
    size_t n;
};

static void tile_done(struct tile_call *k)
{
    for (size_t i = 0; i < k->n; i++)
        audit_entry_clear(&k->e[i]);
    audit_tileset_clear(&k->s);
    audit_pending_done(&k->p);
}

/* The tile's bytes (rc 0), or 404 for one no longer stored (rc 1). A full tile or bundle
 * never changes (tlog-tiles): it may be cached for good. */
static void tile_answer(struct tile_call *k, int rc, const void *data, size_t len)
{
    struct http_req *r = k->p.r;
    if (rc > 0) {
        http_problem(r, 404, "not_found", "that tile is no longer in Redis (trimmed)");
        return;
    }
    if (k->t.width == AUDIT_MERKLE_TILE_WIDTH)
        http_add_header(r, "Cache-Control", "max-age=31536000, immutable");
    http_reply_raw(r, 200, "application/octet-stream", data, len);
}

static void bundle_read(void *arg, enum rreply_class c)
{
    struct tile_call *k = arg;
    long long first = k->t.index * AUDIT_MERKLE_TILE_WIDTH + 1;
    uint8_t *bundle = NULL;
    size_t len = 0;
    int rc = 0;
    if (c != RREPLY_OK) {
        audit_redis_failed(k->p.r, c);
        tile_done(k);
        return;
    }
    for (size_t i = 0; i < k->n; i++)
        if (k->e[i].seq != first + (long long)i || k->e[i].body_len > AUDIT_BUNDLE_ENTRY_MAX)
            rc = 1;
    if (rc == 0 && k->n != (size_t)k->t.width)
        rc = 1;
    if (rc == 0 && audit_bundle_build(k->e, k->n, &bundle, &len) != 0)
        http_problem(k->p.r, 500, "internal", "out of memory");
    else
        tile_answer(k, rc, bundle, len);
    free(bundle);
    tile_done(k);
}

static void hashes_read(void *arg, enum rreply_class c)
{
    struct tile_call *k = arg;
    if (c != RREPLY_OK)
        audit_redis_failed(k->p.r, c);
    else
        tile_answer(k, k->s.t[0].data ? 0 : 1, k->s.t[0].data,
                    (size_t)k->t.width * AUDIT_MERKLE_HASH_LEN);
    tile_done(k);
}

/* The head is there: is the tile within the tree? Then read it. */
static void tile_head_read(void *arg, enum rreply_class c)
{
    struct tile_call *k = arg;
    struct http_req *r = k->p.r;
    uint8_t scratch[AUDIT_TILE_BYTES];
    long long first = k->t.index * AUDIT_MERKLE_TILE_WIDTH + 1;
    int rc;
    if (c != RREPLY_OK) {
        audit_redis_failed(r, c);
    } else if (!k->head.tree_ok) { /* nothing is served from a tree that does not hold together */
        http_problem(r, 503, "chain_broken", "the Merkle tree beside the chain head is malformed");
    } else if (k->t.width > audit_tile_width(k->t.level, k->t.index, k->head.tree_size)) {
        http_problem(r, 404, "not_found", "the tree (size %lld) has no such tile",
                     k->head.tree_size);
    } else {
        if (k->t.level == AUDIT_TILE_ENTRIES)
            rc = audit_store_range_async(k->p.rc, k->ctx->keys, first, first + k->t.width - 1,
                                         (size_t)k->t.width, k->e, &k->n, bundle_read, k);
        else
            rc = audit_tileset_read(&k->s, k->t.level, k->t.index * AUDIT_MERKLE_TILE_WIDTH,
                                    k->t.width, scratch) == 1
                     ? audit_store_tiles_async(k->p.rc, k->ctx->keys, &k->s, NULL, hashes_read, k)
                     : -1;
        if (rc == 0)
            return;
        http_problem(r, 500, "internal", "out of memory");
    }
    tile_done(k);
}

static void tile_step(struct audit_pending *p)
{
    struct tile_call *k = (struct tile_call *)p;
    if (audit_store_tree_head_async(p->rc, k->ctx->keys, &k->head, tile_head_read, k) != 0) {
        http_problem(p->r, 500, "internal", "out of memory");
        tile_done(k);
    }
}

/* The path says which tile; one that the tree does not have yet, or no longer stores
 * (trimmed), is 404. Full tiles never change; partial ones grow. */
void audit_tlog_tile(struct http_req *r, void *ctx)
{
    struct audit_tile_ref t;
    if (audit_tile_parse(http_path(r) + 1, &t) != 0) { /* past "/" */
        http_problem(r, 404, "not_found", "not a tlog-tiles path");
        return;
    }
    struct tile_call *k = calloc(1, sizeof(*k));
    if (!k) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    k->ctx = ctx;
    k->t = t;
    audit_tileset_init(&k->s);
    audit_pending_start(&k->p, r, tile_step);
}
