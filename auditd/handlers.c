/* SPDX-License-Identifier: Apache-2.0 */
/* handlers: auditd's HTTP handlers and its route table. Each parses (request.c), calls the
 * appender, the store, the tree, the verifier or the checkpointer, and renders. */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "checkpointer.h"
#include "request.h"
#include "scan.h"
#include "shared/jsonv.h"
#include "shared/log.h"
#include "tiles.h"
#include "tree.h"

/* The answer for a Redis call that failed, as in every daemon (redis_reply.h): 503 when
 * Redis cannot serve now, 500 for an error reply. */
static void redis_failed(struct http_req *r, enum rreply_class c)
{
    if (c == RREPLY_INTERNAL)
        http_problem(r, 500, "internal", "unexpected answer from Redis (request %s)",
                     http_request_id(r));
    else
        http_unavailable(r);
}

/* The 201/200 form of an item: its new entry, or the existing one for a duplicate. */
static json_t *item_json(struct audit_ctx *ctx, struct audit_item *it, enum rreply_class *c)
{
    struct audit_entry e;
    size_t n = 0;
    if (it->state == AUDIT_ITEM_APPENDED)
        return audit_entry_json(&it->entry, 0);
    *c = audit_store_range(ctx->pool, ctx->keys, it->dup_seq, it->dup_seq, 1, &e, &n);
    if (*c != RREPLY_OK || n != 1) {
        if (*c == RREPLY_OK) /* gone since the script saw it: ask again */
            *c = RREPLY_UNAVAILABLE;
        return NULL;
    }
    json_t *j = audit_entry_json(&e, 0);
    audit_entry_clear(&e);
    return j;
}

/* The problem for an append (or accept) that did not succeed. Returns 0 when it did. */
static int append_failed(struct http_req *r, struct audit_ctx *ctx, enum audit_append_status st)
{
    char detail[320];
    switch (st) {
    case AUDIT_APPEND_OK: return 0;
    case AUDIT_APPEND_BROKEN:
        http_problem(r, 503, "chain_broken",
                     "the chain head and log disagree (edited behind auditd's back): nothing was "
                     "appended; see the log");
        break;
    case AUDIT_APPEND_REFUSED:
        if (!audit_guard_refusing(ctx->guard, detail, sizeof(detail)))
            snprintf(detail, sizeof(detail),
                     "the chain in Redis is not the one this instance has "
                     "seen: nothing was appended; see the log");
        http_problem(r, 503, "chain_broken", "%s", detail);
        break;
    case AUDIT_APPEND_STATE:
        http_problem(r, 503, "state_unavailable",
                     "AUDIT_STATE_DIR could not be written, so the entry is not acknowledged; it "
                     "may be in the chain: retry with the same event_id");
        break;
    case AUDIT_APPEND_INTERNAL: redis_failed(r, RREPLY_INTERNAL); break;
    default: http_unavailable(r);
    }
    return -1;
}

static void handle_event(struct http_req *r, void *arg)
{
    struct audit_ctx *ctx = arg;
    struct jv_error e;
    struct audit_item item = {0};
    struct audit_request req = {.items = &item, .n = 1};
    enum rreply_class c = RREPLY_OK;
    item.event = audit_event_parse(http_json(r), &e);
    if (!item.event) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    audit_appender_submit_wait(ctx->appender, &req);
    if (append_failed(r, ctx, req.status) == 0) {
        json_t *out = item_json(ctx, &item, &c);
        if (c != RREPLY_OK) {
            redis_failed(r, c);
        } else {
            if (ctx->wait_replicas > 0)
                json_object_set_new(out, "replicas_acked", json_integer(req.replicas_acked));
            http_reply_json(r, item.state == AUDIT_ITEM_DUPLICATE ? 200 : 201, out);
        }
    }
    json_decref(item.event);
    audit_entry_clear(&item.entry);
}

static void handle_batch(struct http_req *r, void *arg)
{
    struct audit_ctx *ctx = arg;
    struct jv_error e;
    struct audit_item *items = NULL;
    size_t n = 0;
    enum rreply_class c = RREPLY_OK;
    int rc = audit_req_batch(http_json(r), &items, &n, &e);
    if (rc == -1) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    if (rc != 0) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    struct audit_request req = {.items = items, .n = n};
    audit_appender_submit_wait(ctx->appender, &req);
    if (append_failed(r, ctx, req.status) == 0) {
        json_t *entries = json_array();
        for (size_t i = 0; i < n && c == RREPLY_OK; i++)
            json_array_append_new(entries, item_json(ctx, &items[i], &c));
        json_t *out = json_pack("{s:o}", "entries", entries);
        if (ctx->wait_replicas > 0)
            json_object_set_new(out, "replicas_acked", json_integer(req.replicas_acked));
        if (c == RREPLY_OK)
            http_reply_json(r, 201, out);
        else {
            json_decref(out);
            redis_failed(r, c);
        }
    }
    audit_items_free(items, n);
}

static void handle_list(struct http_req *r, void *arg)
{
    struct audit_ctx *ctx = arg;
    struct jv_error e;
    long long from, limit;
    size_t n = 0;
    if (audit_req_list(http_query(r, "from_seq"), http_query(r, "limit"), &from, &limit, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    struct audit_entry *page = calloc((size_t)limit, sizeof(*page));
    if (!page) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    enum rreply_class c =
        audit_store_range(ctx->pool, ctx->keys, from, -1, (size_t)limit, page, &n);
    if (c != RREPLY_OK) {
        free(page);
        redis_failed(r, c);
        return;
    }
    json_t *entries = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(entries, audit_entry_json(&page[i], 1));
        audit_entry_clear(&page[i]);
    }
    json_t *next = n == (size_t)limit ? json_integer(page[n - 1].seq + 1) : json_null();
    free(page);
    http_reply_json(r, 200, json_pack("{s:o, s:o}", "entries", entries, "next_from_seq", next));
}

static void handle_get(struct http_req *r, void *arg)
{
    struct audit_ctx *ctx = arg;
    long long seq = audit_req_num(http_param(r, "seq"), 1, AUDIT_SEQ_MAX);
    struct audit_entry e;
    size_t n = 0;
    if (seq < 0) {
        http_problem(r, 404, "not_found", "no entry with that seq");
        return;
    }
    enum rreply_class c = audit_store_range(ctx->pool, ctx->keys, seq, seq, 1, &e, &n);
    if (c != RREPLY_OK) {
        redis_failed(r, c);
        return;
    }
    if (n == 0) {
        http_problem(r, 404, "not_found", "no entry with seq %lld", seq);
        return;
    }
    http_reply_json(r, 200, audit_entry_json(&e, 1));
    audit_entry_clear(&e);
}

static void handle_head(struct http_req *r, void *arg)
{
    struct audit_ctx *ctx = arg;
    long long seq;
    char hash[AUDIT_HASH_HEX_LEN + 1];
    int exists;
    struct audit_entry e;
    size_t n = 0;
    enum rreply_class c = audit_store_head(ctx->pool, ctx->keys, &seq, hash, &exists);
    if (c == RREPLY_OK && seq > 0)
        c = audit_store_range(ctx->pool, ctx->keys, seq, seq, 1, &e, &n);
    if (c != RREPLY_OK) {
        redis_failed(r, c);
        return;
    }
    json_t *ts = n == 1 && e.ts[0] ? json_string(e.ts) : json_null();
    if (n == 1)
        audit_entry_clear(&e);
    http_reply_json(r, 200,
                    json_pack("{s:I, s:s, s:o}", "seq", (json_int_t)seq, "hash", hash, "ts", ts));
}

static void handle_keys(struct http_req *r, void *arg)
{
    struct audit_ctx *ctx = arg;
    json_t *table = NULL;
    enum rreply_class c = audit_store_key_table(ctx->pool, ctx->keys, &table);
    if (c != RREPLY_OK) {
        json_decref(table);
        redis_failed(r, c);
        return;
    }
    http_reply_json(r, 200, audit_keyring_json(ctx->kr, table));
    json_decref(table);
}

static void handle_verify(struct http_req *r, void *arg)
{
    struct audit_ctx *ctx = arg;
    struct jv_error e;
    struct audit_scan_opts o = {.from_seq = 1, .to_seq = -1, .threads = 0, .tree = 1};
    struct audit_vresult res;
    if (audit_req_verify(http_json(r), &o, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    enum rreply_class c = audit_scan_redis(ctx->pool, ctx->keys, ctx->kr, &o, &res);
    if (c != RREPLY_OK) {
        redis_failed(r, c);
        return;
    }
    if (res.ok)
        http_reply_json(r, 200,
                        json_pack("{s:b, s:I, s:I}", "ok", 1, "checked", (json_int_t)res.checked,
                                  "head_seq", (json_int_t)res.head_seq));
    else
        http_reply_json(r, 200,
                        json_pack("{s:b, s:I, s:I, s:s}", "ok", 0, "checked",
                                  (json_int_t)res.checked, "first_bad_seq",
                                  (json_int_t)res.first_bad_seq, "reason",
                                  audit_reason_name(res.reason)));
}

static void handle_checkpoint(struct http_req *r, void *arg)
{
    struct audit_ctx *ctx = arg;
    char note[AUDIT_NOTE_MAX];
    int n = audit_checkpointer_now(ctx->checkpointer, note, sizeof(note));
    if (n == AUDIT_CP_REDIS || n == AUDIT_CP_REDIS_ERROR) {
        redis_failed(r, n == AUDIT_CP_REDIS ? RREPLY_UNAVAILABLE : RREPLY_INTERNAL);
        return;
    }
    if (n == AUDIT_CP_REFUSED) {
        append_failed(r, ctx, AUDIT_APPEND_REFUSED);
        return;
    }
    if (n == AUDIT_CP_BEHIND) {
        http_add_header(r, "Retry-After", "1");
        http_problem(r, 503, "tree_catching_up",
                     "the Merkle tree is being built for the entries of an older chain; "
                     "a checkpoint is signed once it has caught up");
        return;
    }
    if (n < 0) {
        http_problem(r, 500, "internal", "could not sign the checkpoint");
        return;
    }
    http_reply_raw(r, 200, "text/plain; charset=utf-8", note, (size_t)n);
}

static json_t *head_json(long long seq, const char *hash)
{
    return json_pack("{s:I, s:s}", "seq", (json_int_t)seq, "hash", hash);
}

/* Admin: go on with the chain Redis shows (an older backup was restored on purpose). */
static void handle_accept(struct http_req *r, void *arg)
{
    struct audit_ctx *ctx = arg;
    struct audit_acceptance acc;
    enum audit_append_status st =
        audit_appender_accept(ctx->appender, "POST /v1/admin/chain/accept", &acc);
    if (append_failed(r, ctx, st) != 0)
        return;
    json_t *out =
        json_pack("{s:o, s:o, s:o*}", "accepted", head_json(acc.accepted_seq, acc.accepted_hash),
                  "remembered", head_json(acc.remembered_seq, acc.remembered_hash), "entry",
                  audit_entry_json(&acc.entry, 0));
    audit_entry_clear(&acc.entry);
    if (out)
        http_reply_json(r, 200, out);
    else /* accepted and recorded all the same: the log says so */
        http_problem(r, 500, "internal", "out of memory");
}

/* Admin: record in the chain that the entries before before_seq are trimmed from Redis,
 * relying on a signed checkpoint of this tree and chain (audit-trim asks, once an archive
 * of them verifies; it removes them only after this entry is in the chain). */
static void handle_trim(struct http_req *r, void *arg)
{
    struct audit_ctx *ctx = arg;
    struct jv_error e;
    struct audit_cp cp;
    struct audit_item item = {0};
    struct audit_request req = {.items = &item, .n = 1};
    long long before;
    const char *note;
    size_t len;
    char err[200];
    if (audit_req_trim(http_json(r), &before, &note, &len, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    if (audit_checkpoint_open(note, len, ctx->kr, &cp, err, sizeof(err)) != 0 || !cp.has_tree ||
        strcmp(cp.origin, ctx->origin) != 0 || before > cp.size + 1) {
        http_invalid(r, "checkpoint",
                     "a tree checkpoint of this log, signed by its keys, of a "
                     "size at least before_seq - 1");
        return;
    }
    int holds = audit_tree_holds(ctx->pool, ctx->keys, &cp);
    if (holds != 0) {
        if (holds < 0)
            http_unavailable(r);
        else
            http_problem(r, 409, "checkpoint_mismatch",
                         "the checkpoint is not of the tree and chain in Redis: nothing recorded");
        return;
    }
    item.event =
        json_pack("{s:s, s:s, s:{s:I, s:s%, s:I, s:s}}", "actor", "auditd", "action",
                  "audit.trimmed", "metadata", "before_seq", (json_int_t)before, "checkpoint", note,
                  len, "checkpoint_size", (json_int_t)cp.size, "via", "POST /v1/admin/trim");
    if (!item.event) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    audit_appender_submit_wait(ctx->appender, &req);
    if (append_failed(r, ctx, req.status) == 0)
        http_reply_json(r, 200, json_pack("{s:o}", "entry", audit_entry_json(&item.entry, 1)));
    json_decref(item.event);
    audit_entry_clear(&item.entry);
}

/* The stored tree's size, or -1 after answering 503 (Redis) or 503 chain_broken (the tree
 * fields are malformed: nothing is served from a tree that does not hold together). */
static long long tree_size(struct http_req *r, struct audit_ctx *ctx)
{
    struct audit_head h;
    enum rreply_class c = audit_store_tree_head(ctx->pool, ctx->keys, &h);
    if (c != RREPLY_OK) {
        redis_failed(r, c);
        return -1;
    }
    if (!h.tree_ok) {
        http_problem(r, 503, "chain_broken", "the Merkle tree beside the chain head is malformed");
        return -1;
    }
    return h.tree_size;
}

/* The answer for a proof computed (rc as tree.h, on head) with count hashes. lo_name and
 * hi_name name the query values (for a 400 past the tree). */
static void proof_reply(struct http_req *r, int rc, const struct audit_head *head,
                        const char *hi_name, json_t *out, uint8_t (*hashes)[MERKLE_HASH_LEN],
                        int count)
{
    char b64[48];
    if (rc != AUDIT_TREE_OK) {
        json_decref(out);
        if (rc == AUDIT_TREE_REDIS || rc == AUDIT_TREE_REDIS_ERROR)
            redis_failed(r, rc == AUDIT_TREE_REDIS ? RREPLY_UNAVAILABLE : RREPLY_INTERNAL);
        else if (rc == AUDIT_TREE_MALFORMED)
            http_problem(r, 503, "chain_broken",
                         "the Merkle tree beside the chain head is malformed");
        else if (rc == AUDIT_TREE_BAD)
            http_invalid(r, hi_name, "%s is past the tree's size (%lld)", hi_name, head->tree_size);
        else
            http_problem(r, 410, "trimmed",
                         "a tile this proof needs is no longer in Redis (trimmed): use the "
                         "archive");
        return;
    }
    json_t *list = json_array();
    for (int i = 0; i < count; i++) {
        crypto_b64(hashes[i], MERKLE_HASH_LEN, b64, sizeof(b64));
        json_array_append_new(list, json_string(b64));
    }
    json_object_set_new(out, "hashes", list);
    http_reply_json(r, 200, out);
}

/* The query values lo and hi of a proof: 1 <= lo <= hi (whether hi is within the tree is
 * learnt with the tiles). Returns 0, or -1 after answering 400 naming the value. */
static int proof_sizes(struct http_req *r, const char *lo_name, const char *hi_name, long long *lo,
                       long long *hi)
{
    *lo = audit_req_num(http_query(r, lo_name), 1, AUDIT_SEQ_MAX);
    *hi = audit_req_num(http_query(r, hi_name), 1, AUDIT_SEQ_MAX);
    if (*lo < 0 || *hi < 0) {
        http_invalid(r, *lo < 0 ? lo_name : hi_name, "%s and %s are whole numbers >= 1", lo_name,
                     hi_name);
        return -1;
    }
    if (*lo > *hi) {
        http_invalid(r, lo_name, "need 1 <= %s <= %s", lo_name, hi_name);
        return -1;
    }
    return 0;
}

/* The proof routes read the head with the tiles, in one round trip: the tiles a proof
 * needs follow from the sizes asked, and whether those are within the tree is known
 * once the head is there. */
static void handle_inclusion(struct http_req *r, void *arg)
{
    struct audit_ctx *ctx = arg;
    uint8_t hashes[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
    struct audit_head head;
    int count = 0;
    long long seq, size;
    if (proof_sizes(r, "seq", "tree_size", &seq, &size) != 0)
        return;
    int rc = audit_tree_inclusion(ctx->pool, ctx->keys, seq - 1, size, hashes, &count, &head);
    proof_reply(
        r, rc, &head, "tree_size",
        json_pack("{s:I, s:I}", "leaf_index", (json_int_t)(seq - 1), "tree_size", (json_int_t)size),
        hashes, count);
}

static void handle_consistency(struct http_req *r, void *arg)
{
    struct audit_ctx *ctx = arg;
    uint8_t hashes[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
    struct audit_head head;
    int count = 0;
    long long from, to;
    if (proof_sizes(r, "from", "to", &from, &to) != 0)
        return;
    int rc = audit_tree_consistency(ctx->pool, ctx->keys, from, to, hashes, &count, &head);
    proof_reply(r, rc, &head, "to", json_object(), hashes, count);
}

/* A tile's hashes, the first width of them, from Redis into out (width * 32 bytes).
 * Returns 0, 1 if not stored, -1 if Redis failed. */
static int read_tile(struct audit_ctx *ctx, const struct audit_tile_ref *t, uint8_t *out)
{
    struct audit_tileset s;
    int rc = -1;
    audit_tileset_init(&s);
    if (audit_tileset_read(&s, t->level, t->index * MERKLE_TILE_WIDTH, t->width, out) == 1 &&
        audit_store_tiles(ctx->pool, ctx->keys, &s, NULL) == RREPLY_OK) {
        rc = s.t[0].data ? 0 : 1;
        if (rc == 0)
            memcpy(out, s.t[0].data, (size_t)t->width * MERKLE_HASH_LEN);
    }
    audit_tileset_clear(&s);
    return rc;
}

/* The entry bundle of t into *out (malloc'd): each body as a big-endian uint16 length and
 * its bytes. Returns 0, 1 if an entry is not stored, -1 if Redis failed or memory ran out. */
static int read_bundle(struct audit_ctx *ctx, const struct audit_tile_ref *t, uint8_t **out,
                       size_t *len)
{
    struct audit_entry *e = calloc(MERKLE_TILE_WIDTH, sizeof(*e));
    long long first = t->index * MERKLE_TILE_WIDTH + 1;
    size_t n = 0;
    int rc = -1;
    *out = NULL;
    *len = 0;
    if (!e || audit_store_range(ctx->pool, ctx->keys, first, first + t->width - 1, (size_t)t->width,
                                e, &n) != RREPLY_OK)
        goto done;
    rc = 1;
    for (size_t i = 0; i < n; i++)
        if (e[i].seq != first + (long long)i || e[i].body_len > AUDIT_BUNDLE_ENTRY_MAX)
            goto done;
    rc = n == (size_t)t->width ? audit_bundle_build(e, n, out, len) : 1;
done:
    for (size_t i = 0; e && i < n; i++)
        audit_entry_clear(&e[i]);
    free(e);
    return rc;
}

/* GET /tile/...: the path says which tile; one that the tree does not have yet, or no
 * longer stores (trimmed), is 404. Full tiles never change; partial ones grow. */
static void handle_tile(struct http_req *r, void *arg)
{
    struct audit_ctx *ctx = arg;
    struct audit_tile_ref t;
    uint8_t tile[AUDIT_TILE_BYTES], *bundle = NULL;
    size_t len = 0;
    int rc;
    if (audit_tile_parse(http_path(r) + 1, &t) != 0) { /* past "/" */
        http_problem(r, 404, "not_found", "not a tlog-tiles path");
        return;
    }
    long long have = tree_size(r, ctx);
    if (have < 0)
        return;
    if (t.width > audit_tile_width(t.level, t.index, have)) {
        http_problem(r, 404, "not_found", "the tree (size %lld) has no such tile", have);
        return;
    }
    if (t.level == AUDIT_TILE_ENTRIES)
        rc = read_bundle(ctx, &t, &bundle, &len);
    else
        rc = read_tile(ctx, &t, tile);
    if (rc < 0)
        http_unavailable(r);
    else if (rc > 0)
        http_problem(r, 404, "not_found", "that tile is no longer in Redis (trimmed)");
    else {
        /* A full tile or bundle never changes (tlog-tiles): it may be cached for good. */
        if (t.width == MERKLE_TILE_WIDTH)
            http_add_header(r, "Cache-Control", "max-age=31536000, immutable");
        if (bundle)
            http_reply_raw(r, 200, "application/octet-stream", bundle, len);
        else
            http_reply_raw(r, 200, "application/octet-stream", tile,
                           (size_t)t.width * MERKLE_HASH_LEN);
    }
    free(bundle);
}

void audit_routes(struct app *a, struct audit_ctx *ctx)
{
    app_route(a, "POST", "/v1/events", handle_event, ctx, 0);
    app_route(a, "POST", "/v1/events/batch", handle_batch, ctx, 0);
    app_route(a, "GET", "/v1/events", handle_list, ctx, 0);
    app_route(a, "GET", "/v1/events/:seq", handle_get, ctx, 0);
    app_route(a, "GET", "/v1/head", handle_head, ctx, 0);
    app_route(a, "GET", "/v1/keys", handle_keys, ctx, 0);
    app_route(a, "POST", "/v1/verify", handle_verify, ctx, 0);
    app_route(a, "GET", "/v1/checkpoint", handle_checkpoint, ctx, 0);
    app_route(a, "POST", "/v1/admin/chain/accept", handle_accept, ctx, HTTP_ADMIN | HTTP_NO_BODY);
    app_route(a, "POST", "/v1/admin/trim", handle_trim, ctx, HTTP_ADMIN);
    app_route(a, "GET", "/v1/proofs/inclusion", handle_inclusion, ctx, 0);
    app_route(a, "GET", "/v1/proofs/consistency", handle_consistency, ctx, 0);
    /* The tlog-tiles paths (tile/<L>/<N>[.p/<W>], tile/entries/...), outside /v1/ as the
     * format lays them out, under the API token all the same: bundles hold the entries. */
    app_route(a, "GET", "/tile/*path", handle_tile, ctx, HTTP_TOKEN);
}
