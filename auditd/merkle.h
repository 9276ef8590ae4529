/* SPDX-License-Identifier: Apache-2.0 */
/* merkle: the RFC 6962 Merkle tree auditd keeps beside its hash chain. Leaf i (0-based) is
 * entry seq i+1; its hash is SHA-256(0x00 || body bytes as stored), an interior node's
 * SHA-256(0x01 || left || right). Here: those hashes, the frontier an appender extends in
 * O(log n) per leaf (and that says which tlog-tiles hashes each leaf completes), and
 * inclusion and consistency proofs — made from stored tile hashes through a reader, and
 * checked offline against roots. Pure computation, no I/O; thread-safe. */
#ifndef AUDIT_MERKLE_H
#define AUDIT_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define MERKLE_HASH_LEN 32
#define MERKLE_TILE_HEIGHT 8 /* tlog-tiles: a tile is 8 levels of the tree */
#define MERKLE_TILE_WIDTH 256
#define MERKLE_MAX_SIZE (1LL << 62) /* the largest tree handled (as AUDIT_SEQ_MAX) */
#define MERKLE_PROOF_MAX 128        /* hashes in any proof of a tree of up to 2^62 leaves */

/* SHA-256(0x00 || data). */
void merkle_leaf_hash(const void *data, size_t len, uint8_t out[MERKLE_HASH_LEN]);
/* SHA-256(0x01 || left || right); out may alias either input. */
void merkle_node_hash(const uint8_t left[MERKLE_HASH_LEN], const uint8_t right[MERKLE_HASH_LEN],
                      uint8_t out[MERKLE_HASH_LEN]);
/* The root of the empty tree, SHA-256 of nothing. */
void merkle_empty_root(uint8_t out[MERKLE_HASH_LEN]);

/* The frontier of a tree of size leaves: the roots of its largest perfect subtrees, one per
 * set bit of size, leftmost (largest) first. Enough to extend the tree and compute its root.
 * A plain value: copy it to keep a snapshot. */
struct merkle_frontier {
    long long size;
    int n; /* = popcount(size) */
    uint8_t h[64][MERKLE_HASH_LEN];
};

void merkle_frontier_init(struct merkle_frontier *f); /* the empty tree */

/* Called for every tile hash a new leaf completes: the leaf itself (level 0, index = its
 * leaf index), and the root of each full tile it closes (level l+1, index = that tile's
 * index at level l). Level l hashes are the roots of 256^l leaves. */
typedef void (*merkle_emit_fn)(void *arg, int level, long long index,
                               const uint8_t hash[MERKLE_HASH_LEN]);

/* Add a leaf hash; emit (may be NULL) hears of the tile hashes it completes, in order of
 * level. Returns 0, or -1 if the tree is full (MERKLE_MAX_SIZE). */
int merkle_frontier_push(struct merkle_frontier *f, const uint8_t leaf[MERKLE_HASH_LEN],
                         merkle_emit_fn emit, void *arg);

/* The root hash of the tree the frontier stands for. */
void merkle_frontier_root(const struct merkle_frontier *f, uint8_t out[MERKLE_HASH_LEN]);

/* Set f to the frontier of size leaves from its n hashes, raw and concatenated (as stored
 * beside the chain head). Returns 0, or -1 if len is not 32 * popcount(size). */
int merkle_frontier_load(struct merkle_frontier *f, long long size, const void *raw, size_t len);

/* Reads count hashes of tree level `level` (the level-l hashes of tlog-tiles: roots of
 * 256^level leaves) starting at index, all inside one tile, into out. Returns 0; 1 when it
 * only noted the read (a first pass learning which tiles a computation reads: the hashes
 * read are not computed with, and the result is not meaningful); -1 if they are not
 * available (trimmed, or a storage error: the caller's reader knows which). */
typedef int (*merkle_read_fn)(void *arg, int level, long long index, int count, uint8_t *out);

/* The root of the first n leaves (n <= the stored tree's size; 0: the empty root), read
 * through rd. Returns 0, or -1 if a read failed. */
int merkle_tree_hash(long long n, merkle_read_fn rd, void *arg, uint8_t out[MERKLE_HASH_LEN]);

/* The frontier of the first n leaves (its subtrees' roots), read through rd. Returns 0, or
 * -1 if a read failed. */
int merkle_frontier_at(long long n, merkle_read_fn rd, void *arg, struct merkle_frontier *f);

/* The RFC 6962 audit path of leaf index m in the tree of size n (0 <= m < n), bottom up,
 * into out[MERKLE_PROOF_MAX]; *count hashes. Returns 0, or -1 on bad sizes or a failed read. */
int merkle_prove_inclusion(long long m, long long n, merkle_read_fn rd, void *arg,
                           uint8_t out[][MERKLE_HASH_LEN], int *count);

/* The RFC 6962 consistency proof from size m to size n (1 <= m <= n; m == n: none) into
 * out[MERKLE_PROOF_MAX]. Returns 0, or -1 on bad sizes or a failed read. */
int merkle_prove_consistency(long long m, long long n, merkle_read_fn rd, void *arg,
                             uint8_t out[][MERKLE_HASH_LEN], int *count);

/* RFC 9162 §2.1.3.2: does proof show leaf at index m in the tree of size n with root?
 * Returns 0 if it does, -1 if not (or the sizes are impossible). */
int merkle_check_inclusion(long long m, long long n, const uint8_t leaf[MERKLE_HASH_LEN],
                           const uint8_t proof[][MERKLE_HASH_LEN], int count,
                           const uint8_t root[MERKLE_HASH_LEN]);

/* RFC 9162 §2.1.4.2: does proof show that the tree of size m with root_m is a prefix of
 * the tree of size n with root_n (1 <= m <= n)? Returns 0 if it does, -1 if not. */
int merkle_check_consistency(long long m, long long n, const uint8_t root_m[MERKLE_HASH_LEN],
                             const uint8_t root_n[MERKLE_HASH_LEN],
                             const uint8_t proof[][MERKLE_HASH_LEN], int count);

#endif
