/* SPDX-License-Identifier: Apache-2.0 */
/* treecheck: the verifier's half for the Merkle tree. Fed the entries' bodies in order, it
 * grows the tree from them and checks that every tile hash a store holds (Redis, an
 * archive) is the one recomputed, and that the root at each checkpoint's size is the
 * checkpoint's. It reports the first seq where they part: tile_mismatch or tree_mismatch.
 * Not thread-safe: one reader feeds it. */
#ifndef AUDIT_TREECHECK_H
#define AUDIT_TREECHECK_H

#include <stdint.h>

#include "merkle.h"
#include "tiles.h"

/* A store of tiles to compare with: reads the first width hashes of tile (level, index)
 * into out. Returns 1 if it has them, 0 if it has not (trimmed, or past what it holds:
 * nothing to compare), -1 if a tile it should hold is missing or unreadable (a mismatch). */
struct audit_tile_source {
    int (*read)(void *arg, int level, long long index, int width, uint8_t *out);
    void *arg;
};

#define AUDIT_TREECHECK_SOURCES 2
#define AUDIT_TREECHECK_ROOTS 64

struct audit_treecheck {
    struct audit_merkle_frontier f;
    /* the hashes of the current tile of each level, from position first[l] */
    uint8_t tile[AUDIT_TILE_LEVEL_MAX + 1][AUDIT_TILE_BYTES];
    long long tile_index[AUDIT_TILE_LEVEL_MAX + 1];
    int first[AUDIT_TILE_LEVEL_MAX + 1], count[AUDIT_TILE_LEVEL_MAX + 1];
    struct audit_tile_source src[AUDIT_TREECHECK_SOURCES];
    int nsrc;
    /* roots expected at sizes (checkpoints), in any order */
    long long root_size[AUDIT_TREECHECK_ROOTS];
    uint8_t root[AUDIT_TREECHECK_ROOTS][AUDIT_MERKLE_HASH_LEN];
    int nroots;
    long long bad_seq; /* first failure: 0 none */
    int bad_tile;      /* 1: tile_mismatch, 0: tree_mismatch */
};

/* Start from the frontier of the entries before the first one fed (NULL: the empty tree). */
void audit_treecheck_init(struct audit_treecheck *tc, const struct audit_merkle_frontier *start);

/* Compare tiles with src too (up to AUDIT_TREECHECK_SOURCES; every one that holds a tile
 * is compared). Returns 0, or -1 if there is no room. */
int audit_treecheck_source(struct audit_treecheck *tc, struct audit_tile_source src);

/* The root at size must be root. Returns 0, or -1 if there is no room. */
int audit_treecheck_expect(struct audit_treecheck *tc, long long size,
                           const uint8_t root[AUDIT_MERKLE_HASH_LEN]);

/* Add the next entry's body. Returns 0 to go on, 1 once a failure is known. */
int audit_treecheck_push(struct audit_treecheck *tc, const char *body, size_t len);

/* Compare the partial tiles at the current size with the sources (at the end of what a
 * store holds: an archive's size, the head). Returns 0, or 1 on a failure. */
int audit_treecheck_flush(struct audit_treecheck *tc);

/* The root of the tree so far. */
void audit_treecheck_root(const struct audit_treecheck *tc, uint8_t out[AUDIT_MERKLE_HASH_LEN]);

#endif
