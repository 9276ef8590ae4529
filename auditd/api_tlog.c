/* SPDX-License-Identifier: Apache-2.0 */
/* api_tlog: auditd's transparency-log routes — inclusion and consistency proofs, and the
 * tlog-tiles hash tiles and entry bundles under the log prefix /v1/ (beside /v1/checkpoint),
 * all computed from the stored tiles, never by scanning the log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "request.h"
#include "shared/log.h"
#include "tiles.h"
#include "tree.h"

/* The stored tree's size, or -1 after answering 503 (Redis) or 503 chain_broken (the tree
 * fields are malformed: nothing is served from a tree that does not hold together). */
static long long tree_size(struct http_req *r, struct audit_api *api)
{
    struct audit_head h;
    if (audit_tree_head(api->pool, api->keys, &h) != RPOOL_OK) {
        http_unavailable(r);
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
        if (rc == AUDIT_TREE_REDIS)
            http_unavailable(r);
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
static void handle_inclusion(struct http_req *r, void *ctx)
{
    struct audit_api *api = ctx;
    uint8_t hashes[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
    struct audit_head head;
    int count = 0;
    long long seq, size;
    if (proof_sizes(r, "seq", "tree_size", &seq, &size) != 0)
        return;
    int rc = audit_tree_inclusion(api->pool, api->keys, seq - 1, size, hashes, &count, &head);
    proof_reply(
        r, rc, &head, "tree_size",
        json_pack("{s:I, s:I}", "leaf_index", (json_int_t)(seq - 1), "tree_size", (json_int_t)size),
        hashes, count);
}

static void handle_consistency(struct http_req *r, void *ctx)
{
    struct audit_api *api = ctx;
    uint8_t hashes[MERKLE_PROOF_MAX][MERKLE_HASH_LEN];
    struct audit_head head;
    int count = 0;
    long long from, to;
    if (proof_sizes(r, "from", "to", &from, &to) != 0)
        return;
    int rc = audit_tree_consistency(api->pool, api->keys, from, to, hashes, &count, &head);
    proof_reply(r, rc, &head, "to", json_object(), hashes, count);
}

/* A tile's hashes, the first width of them, from Redis into out (width * 32 bytes).
 * Returns 0, 1 if not stored, -1 if Redis failed. */
static int read_tile(struct audit_api *api, const struct audit_tile_ref *t, uint8_t *out)
{
    struct audit_tileset s;
    int rc = -1;
    audit_tileset_init(&s);
    if (audit_tileset_read(&s, t->level, t->index * MERKLE_TILE_WIDTH, t->width, out) == 1 &&
        audit_tree_fetch(api->pool, api->keys, &s, NULL) == RPOOL_OK) {
        rc = s.t[0].data ? 0 : 1;
        if (rc == 0)
            memcpy(out, s.t[0].data, (size_t)t->width * MERKLE_HASH_LEN);
    }
    audit_tileset_clear(&s);
    return rc;
}

/* The entry bundle of t into *out (malloc'd): each body as a big-endian uint16 length and
 * its bytes. Returns 0, 1 if an entry is not stored, -1 if Redis failed or memory ran out. */
static int read_bundle(struct audit_api *api, const struct audit_tile_ref *t, uint8_t **out,
                       size_t *len)
{
    struct audit_entry *e = calloc(MERKLE_TILE_WIDTH, sizeof(*e));
    long long first = t->index * MERKLE_TILE_WIDTH + 1;
    size_t n = 0;
    int rc = -1;
    *out = NULL;
    *len = 0;
    if (!e || audit_store_range(api->pool, api->keys, first, first + t->width - 1, (size_t)t->width,
                                e, &n) != RPOOL_OK)
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
static void handle_tile(struct http_req *r, void *ctx)
{
    struct audit_api *api = ctx;
    struct audit_tile_ref t;
    uint8_t tile[AUDIT_TILE_BYTES], *bundle = NULL;
    size_t len = 0;
    int rc;
    if (audit_tile_parse(http_path(r) + 1, &t) != 0) { /* past "/" */
        http_problem(r, 404, "not_found", "not a tlog-tiles path");
        return;
    }
    long long have = tree_size(r, api);
    if (have < 0)
        return;
    if (t.width > audit_tile_width(t.level, t.index, have)) {
        http_problem(r, 404, "not_found", "the tree (size %lld) has no such tile", have);
        return;
    }
    if (t.level == AUDIT_TILE_ENTRIES)
        rc = read_bundle(api, &t, &bundle, &len);
    else
        rc = read_tile(api, &t, tile);
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

void audit_api_tlog_routes(struct app *a, struct audit_api *api)
{
    app_route(a, "GET", "/v1/proofs/inclusion", handle_inclusion, api, 0);
    app_route(a, "GET", "/v1/proofs/consistency", handle_consistency, api, 0);
    /* The tlog-tiles paths (tile/<L>/<N>[.p/<W>], tile/entries/...), outside /v1/ as the
     * format lays them out, under the API token all the same: bundles hold the entries. */
    app_route(a, "GET", "/tile/*path", handle_tile, api, HTTP_TOKEN);
}
