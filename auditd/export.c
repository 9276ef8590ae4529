/* SPDX-License-Identifier: Apache-2.0 */
/* export: Redis's tree and entries, cut at a checkpoint, into a static tlog-tiles archive. */
#include "export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "tree.h"

/* Tile (level, index) of width w from Redis into the archive (a full one kept if there). */
static int export_tile(struct audit_db *p, const struct audit_keys *k, const char *dir,
                       const struct audit_tile_ref *t, struct audit_export_stats *st, char *err,
                       size_t errsize)
{
    char rel[AUDIT_TILE_PATH_MAX];
    struct audit_tileset s;
    uint8_t zero[AUDIT_TILE_BYTES];
    int rc = -1;
    if (audit_tile_format(t, rel, sizeof(rel)) < 0)
        return -1;
    if (t->width == AUDIT_MERKLE_TILE_WIDTH && audit_archive_has(dir, rel)) {
        st->kept++;
        return 0;
    }
    audit_tileset_init(&s);
    if (audit_tileset_read(&s, t->level, t->index * AUDIT_MERKLE_TILE_WIDTH, t->width, zero) != 1 ||
        audit_store_tiles(p, k, &s, NULL) != RREPLY_OK)
        snprintf(err, errsize, "redis unavailable");
    else if (!s.t[0].data)
        snprintf(err, errsize, "%s is neither in Redis (trimmed?) nor in %s", rel, dir);
    else if (audit_archive_put(dir, rel, s.t[0].data, (size_t)t->width * AUDIT_MERKLE_HASH_LEN, 0,
                               err, errsize) == 0) {
        st->tiles_written++;
        rc = 0;
    }
    audit_tileset_clear(&s);
    return rc;
}

/* Bundle b of width w and its signatures from Redis into the archive. */
static int export_bundle(struct audit_db *p, const struct audit_keys *k, const char *dir,
                         long long b, int w, struct audit_export_stats *st, char *err,
                         size_t errsize)
{
    struct audit_tile_ref t = {AUDIT_TILE_ENTRIES, b, w};
    struct audit_entry e[AUDIT_MERKLE_TILE_WIDTH];
    uint8_t sigs[AUDIT_MERKLE_TILE_WIDTH * CRYPTO_ED25519_SIG_LEN], *bundle = NULL;
    char rel[AUDIT_TILE_PATH_MAX], sig_rel[AUDIT_TILE_PATH_MAX + 16];
    size_t n = 0, len = 0;
    int rc = -1;
    long long first = b * AUDIT_MERKLE_TILE_WIDTH + 1;
    if (audit_tile_format(&t, rel, sizeof(rel)) < 0 ||
        audit_archive_sig_path(b, w, sig_rel, sizeof(sig_rel)) < 0)
        return -1;
    if (w == AUDIT_MERKLE_TILE_WIDTH && audit_archive_has(dir, rel) &&
        audit_archive_has(dir, sig_rel)) {
        st->kept++;
        return 0;
    }
    if (audit_store_range(p, k, first, first + w - 1, (size_t)w, e, &n) != RREPLY_OK) {
        snprintf(err, errsize, "redis unavailable");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (e[i].seq != first + (long long)i ||
            crypto_unb64(e[i].sig, strlen(e[i].sig), sigs + i * CRYPTO_ED25519_SIG_LEN,
                         CRYPTO_ED25519_SIG_LEN) != CRYPTO_ED25519_SIG_LEN)
            n = 0; /* not the entries the tree says: refuse below */
    if (n != (size_t)w)
        snprintf(err, errsize, "entries %lld..%lld are neither in Redis (trimmed?) nor in %s",
                 first, first + w - 1, dir);
    else if (audit_bundle_build(e, n, &bundle, &len) != 0)
        snprintf(err, errsize, "an entry of %lld..%lld does not fit a bundle", first,
                 first + w - 1);
    else if (audit_archive_put(dir, rel, bundle, len, 0, err, errsize) == 0 &&
             audit_archive_put(dir, sig_rel, sigs, n * CRYPTO_ED25519_SIG_LEN, 0, err, errsize) ==
                 0) {
        st->bundles_written++;
        rc = 0;
    }
    for (size_t i = 0; i < n; i++)
        audit_entry_clear(&e[i]);
    free(bundle);
    return rc;
}

int audit_export_tiles(struct audit_db *p, const struct audit_keys *k, const char *dir,
                       const char *note, size_t note_len, struct audit_export_stats *stats,
                       char *err, size_t errsize)
{
    struct audit_cp cp;
    memset(stats, 0, sizeof(*stats));
    if (audit_checkpoint_read(note, note_len, &cp, err, errsize) != 0)
        return -1;
    int holds = cp.has_tree ? audit_tree_holds(p, k, &cp) : 1;
    if (holds != 0) {
        snprintf(err, errsize, "%s",
                 holds < 0      ? "redis unavailable"
                 : !cp.has_tree ? "the checkpoint is a chain head, not a tree checkpoint"
                                : "the checkpoint is not of the tree and chain in Redis");
        return -1;
    }
    for (int l = 0; l <= AUDIT_TILE_LEVEL_MAX; l++)
        for (long long i = 0;; i++) {
            struct audit_tile_ref t = {l, i, audit_tile_width(l, i, cp.size)};
            if (t.width == 0)
                break;
            if (export_tile(p, k, dir, &t, stats, err, errsize) != 0)
                return -1;
        }
    for (long long b = 0;; b++) {
        int w = audit_tile_width(AUDIT_TILE_ENTRIES, b, cp.size);
        if (w == 0)
            break;
        if (export_bundle(p, k, dir, b, w, stats, err, errsize) != 0)
            return -1;
    }
    /* Last: a reader who sees this checkpoint finds everything it covers. */
    return audit_archive_put(dir, "checkpoint", note, note_len, 0, err, errsize);
}
