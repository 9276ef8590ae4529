/* SPDX-License-Identifier: Apache-2.0 */
/* scan: paged verification of a chain in Redis. */
#include "scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree.h"

#define PAGE 1000

/* The hash of entry seq (the trusted starting link of a partial verification). */
static enum rreply_class hash_of(struct audit_db *p, const struct audit_keys *k, long long seq,
                                 char out[AUDIT_HASH_HEX_LEN + 1], int *found)
{
    struct audit_entry e;
    size_t n = 0;
    enum rreply_class st = audit_store_range(p, k, seq, seq, 1, &e, &n);
    *found = st == RREPLY_OK && n == 1;
    if (*found) {
        snprintf(out, AUDIT_HASH_HEX_LEN + 1, "%s", e.hash);
        audit_entry_clear(&e);
    }
    return st;
}

static enum rreply_class feed_pages(struct audit_db *p, const struct audit_keys *k,
                                    struct audit_verifier *v, long long next, long long upto,
                                    const struct audit_scan_opts *o)
{
    struct audit_entry *page = calloc(PAGE, sizeof(*page));
    enum rreply_class st = RREPLY_OK;
    int stop = 0;
    if (!page)
        return RREPLY_INTERNAL;
    while (!stop && next <= upto) {
        size_t n = 0;
        st = audit_store_range(p, k, next, upto, PAGE, page, &n);
        if (st != RREPLY_OK || n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            if (!stop)
                stop = audit_verifier_feed(v, &page[i]);
            audit_entry_clear(&page[i]);
        }
        next = page[n - 1].seq + 1;
        if (o->progress)
            o->progress(next - 1, upto, o->progress_arg);
    }
    free(page);
    return st;
}

/* The checkpoints of o: heads for the chain, roots for the tree (when it is checked). */
static int add_expectations(struct audit_verifier *v, const struct audit_scan_opts *o, int tree)
{
    for (size_t i = 0; i < o->nexpect; i++) {
        if (audit_verifier_expect(v, o->expect[i].chain_seq, o->expect[i].chain_hash) != 0)
            return -1;
        if (tree && o->expect[i].has_tree &&
            audit_verifier_expect_root(v, o->expect[i].size, o->expect[i].root) != 0)
            return -1;
    }
    return 0;
}

/* Redis's tiles, as a source for the tree check: what the tree of `size` leaves has of a
 * tile (a tile wider than that is the tree's future, or a catch-up's: not compared). */
struct redis_tiles {
    struct audit_db *pool;
    const struct audit_keys *keys;
    long long size;
};

static int redis_tile_read(void *arg, int level, long long index, int width, uint8_t *out)
{
    struct redis_tiles *rt = arg;
    if (width > audit_tile_width(level, index, rt->size))
        return 0;
    return audit_store_tile(rt->pool, rt->keys, level, index, width, out);
}

/* The tree check over Redis from seq from: the frontier before it from the tiles, the tiles
 * as a source, the head's root expected. Only where the tree covers from - 1 (a chain from
 * before the tree, catching up, has its chain checked alone). */
static enum rreply_class redis_tree(struct audit_verifier *v, struct redis_tiles *rt,
                                    const struct audit_head *h, long long from, int started)
{
    struct audit_merkle_frontier f;
    if (!h->tree_ok) {
        audit_verifier_fail(v, h->seq, AUDIT_TREE_MISMATCH);
        return RREPLY_OK;
    }
    if (h->tree_size < from - 1 || h->tree_size == 0)
        return RREPLY_OK;
    if (!started) {
        int rc = from > 1 ? audit_tree_frontier(rt->pool, rt->keys, from - 1, &f) : AUDIT_TREE_OK;
        if (rc == AUDIT_TREE_REDIS || rc == AUDIT_TREE_REDIS_ERROR)
            return rc == AUDIT_TREE_REDIS ? RREPLY_UNAVAILABLE : RREPLY_INTERNAL;
        if (rc != AUDIT_TREE_OK) {
            audit_verifier_fail(v, from, AUDIT_TILE_MISMATCH);
            return RREPLY_OK;
        }
        if (audit_verifier_tree(v, from > 1 ? &f : NULL) != 0)
            return RREPLY_INTERNAL;
    }
    if (audit_verifier_tile_source(v, (struct audit_tile_source){redis_tile_read, rt}) != 0 ||
        audit_verifier_expect_root(v, h->tree_size, h->root) != 0)
        return RREPLY_INTERNAL;
    return RREPLY_OK;
}

/* The head, how far to go, the first seq Redis holds. */
static enum rreply_class redis_range(struct audit_db *p, const struct audit_keys *k,
                                     const struct audit_scan_opts *o, struct audit_head *h,
                                     long long *upto, long long *first)
{
    enum rreply_class st = audit_store_tree_head(p, k, h);
    if (st != RREPLY_OK)
        return st;
    *upto = h->seq;
    if (!h->exists) /* no head: verify whatever the log holds, then report head_missing */
        st = audit_store_last_seq(p, k, upto);
    if (st == RREPLY_OK && o->to_seq >= 0 && o->to_seq < *upto)
        *upto = o->to_seq;
    return st == RREPLY_OK ? audit_store_first_seq(p, k, first) : st;
}

enum rreply_class audit_scan_redis(struct audit_db *p, const struct audit_keys *k,
                                   const struct audit_keyring *kr, const struct audit_scan_opts *o,
                                   struct audit_vresult *out)
{
    struct audit_head h;
    struct redis_tiles rt = {p, k, 0};
    char prev[AUDIT_HASH_HEX_LEN + 1];
    long long upto, first;
    int found = 0;
    enum rreply_class st = redis_range(p, k, o, &h, &upto, &first);
    if (st == RREPLY_OK && o->from_seq > first)
        st = hash_of(p, k, o->from_seq - 1, prev, &found);
    if (st != RREPLY_OK)
        return st;
    struct audit_verifier *v =
        audit_verifier_create(kr, o->threads, o->from_seq, found ? prev : NULL);
    if (!v)
        return RREPLY_INTERNAL;
    rt.size = h.tree_size;
    if ((o->tree && (st = redis_tree(v, &rt, &h, o->from_seq, 0)) != RREPLY_OK) ||
        add_expectations(v, o, o->tree) != 0) {
        audit_verifier_free(v);
        return st == RREPLY_OK ? RREPLY_INTERNAL : st;
    }
    if (o->from_seq < first) /* trimmed: the archive has them (audit-verify --tiles) */
        audit_verifier_fail(v, o->from_seq, AUDIT_TRIMMED);
    else
        st = feed_pages(p, k, v, o->from_seq, upto, o);
    int whole = o->to_seq < 0 || o->to_seq >= h.seq;
    audit_verifier_finish(v, whole, h.exists, h.seq, h.hash, out);
    out->head_seq = h.seq;
    audit_verifier_free(v);
    return st;
}

/* Feed the archive's entries, bundle by bundle. Returns 1 once the verifier has stopped. */
static int feed_archive(struct audit_archive *a, struct audit_verifier *v,
                        const struct audit_scan_opts *o)
{
    struct audit_entry *e = calloc(AUDIT_MERKLE_TILE_WIDTH, sizeof(*e));
    long long size = audit_archive_checkpoint(a)->size;
    int stop = !e;
    for (long long b = 0; !stop && b * AUDIT_MERKLE_TILE_WIDTH < size; b++) {
        int n = audit_archive_entries(a, b, e);
        if (n < 0) { /* a bundle missing or malformed breaks the chain where it stands */
            audit_verifier_fail(v, b * AUDIT_MERKLE_TILE_WIDTH + 1, AUDIT_GAP);
            stop = 1;
        }
        for (int i = 0; i < n; i++) {
            if (!stop)
                stop = audit_verifier_feed(v, &e[i]);
            audit_entry_clear(&e[i]);
        }
        if (o->progress)
            o->progress((b + 1) * AUDIT_MERKLE_TILE_WIDTH, size, o->progress_arg);
    }
    free(e);
    return stop || audit_verifier_flush_tiles(v);
}

enum rreply_class audit_scan_archive(struct audit_archive *a, struct audit_db *p,
                                     const struct audit_keys *k, const struct audit_keyring *kr,
                                     const struct audit_scan_opts *o, struct audit_vresult *out)
{
    const struct audit_cp *cp = audit_archive_checkpoint(a);
    struct audit_scan_opts all = *o;
    struct audit_head h = {.seq = cp->chain_seq, .exists = 1};
    struct redis_tiles rt = {p, k, 0};
    long long upto = cp->size, first = 1;
    enum rreply_class st = RREPLY_OK;
    memcpy(h.hash, cp->chain_hash, sizeof(h.hash));
    all.tree = 1;
    struct audit_verifier *v = audit_verifier_create(kr, o->threads, 1, NULL);
    if (!v || add_expectations(v, &all, 1) != 0 ||
        audit_verifier_expect(v, cp->chain_seq, cp->chain_hash) != 0 ||
        audit_verifier_tree(v, NULL) != 0 ||
        audit_verifier_tile_source(v, audit_archive_tiles(a)) != 0 ||
        audit_verifier_expect_root(v, cp->size, cp->root) != 0) {
        audit_verifier_free(v);
        return RREPLY_INTERNAL;
    }
    if (p && (st = redis_range(p, k, &all, &h, &upto, &first)) == RREPLY_OK) {
        rt.size = h.tree_size;
        st = redis_tree(v, &rt, &h, cp->size + 1, 1);
    }
    if (st == RREPLY_OK && !feed_archive(a, v, o) && p && upto > cp->size) {
        if (first > cp->size + 1) /* trimmed past the archive */
            audit_verifier_fail(v, cp->size + 1, AUDIT_TRIMMED);
        else
            st = feed_pages(p, k, v, cp->size + 1, upto, o);
    }
    audit_verifier_finish(v, 1, h.exists, h.seq, h.hash, out);
    out->head_seq = h.seq;
    audit_verifier_free(v);
    return st;
}

/* The verifier for an export, created at the first entry worth checking. */
static struct audit_verifier *file_verifier(const struct audit_keyring *kr, int threads,
                                            const struct audit_scan_opts *o)
{
    struct audit_verifier *v = audit_verifier_create(kr, threads, o->from_seq, NULL);
    if (v && add_expectations(v, o, 0) != 0) {
        audit_verifier_free(v);
        v = NULL;
    }
    return v;
}

int audit_scan_file(FILE *f, const struct audit_keyring *kr, const struct audit_scan_opts *o,
                    struct audit_vresult *out)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int stop = 0, first = 1;
    struct audit_verifier *v = NULL;
    while (!stop && (len = getline(&line, &cap, f)) > 0) {
        struct audit_entry e;
        if (len == 1 && line[0] == '\n')
            continue;
        if (audit_entry_from_line(&e, line, (size_t)len) != 0) {
            /* An unreadable line breaks the chain where it stands. */
            e.seq = -1;
            e.body = NULL;
        }
        if (e.seq >= 0 && e.seq < o->from_seq) {
            audit_entry_clear(&e);
            continue;
        }
        if (first) {
            v = file_verifier(kr, o->threads, o);
            first = 0;
        }
        stop = v ? audit_verifier_feed(v, &e) : 1;
        if (o->progress && e.seq > 0 && e.seq % 10000 == 0)
            o->progress(e.seq, 0, o->progress_arg);
        audit_entry_clear(&e);
    }
    free(line);
    if (ferror(f) || (!v && !first))
        return -1;
    if (!v && !(v = file_verifier(kr, 1, o)))
        return -1;
    audit_verifier_finish(v, 0, 0, 0, NULL, out);
    audit_verifier_free(v);
    return 0;
}
