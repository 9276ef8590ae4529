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

#define AUDIT_MERKLE_HASH_LEN 32
#define AUDIT_MERKLE_TILE_HEIGHT 8 /* tlog-tiles: a tile is 8 levels of the tree */
#define AUDIT_MERKLE_TILE_WIDTH 256
#define AUDIT_MERKLE_MAX_SIZE (1LL << 62) /* the largest tree handled (as AUDIT_SEQ_MAX) */
#define AUDIT_MERKLE_PROOF_MAX 128        /* hashes in any proof of a tree of up to 2^62 leaves */

/* SHA-256(0x00 || data). */
void audit_merkle_leaf_hash(const void *data, size_t len, uint8_t out[AUDIT_MERKLE_HASH_LEN]);
/* SHA-256(0x01 || left || right); out may alias either input. */
void audit_merkle_node_hash(const uint8_t left[AUDIT_MERKLE_HASH_LEN],
                            const uint8_t right[AUDIT_MERKLE_HASH_LEN],
                            uint8_t out[AUDIT_MERKLE_HASH_LEN]);
/* The root of the empty tree, SHA-256 of nothing. */
void audit_merkle_empty_root(uint8_t out[AUDIT_MERKLE_HASH_LEN]);

/* The frontier of a tree of size leaves: the roots of its largest perfect subtrees, one per
 * set bit of size, leftmost (largest) first. Enough to extend the tree and compute its root.
 * A plain value: copy it to keep a snapshot. */
struct audit_merkle_frontier {
    long long size;
    int n; /* = popcount(size) */
    uint8_t h[64][AUDIT_MERKLE_HASH_LEN];
};

void audit_merkle_frontier_init(struct audit_merkle_frontier *f); /* the empty tree */

/* Called for every tile hash a new leaf completes: the leaf itself (level 0, index = its
 * leaf index), and the root of each full tile it closes (level l+1, index = that tile's
 * index at level l). Level l hashes are the roots of 256^l leaves. */
typedef void (*audit_merkle_emit_fn)(void *arg, int level, long long index,
                                     const uint8_t hash[AUDIT_MERKLE_HASH_LEN]);

/* Add a leaf hash; emit (may be NULL) hears of the tile hashes it completes, in order of
 * level. Returns 0, or -1 if the tree is full (AUDIT_MERKLE_MAX_SIZE). */
int audit_merkle_frontier_push(struct audit_merkle_frontier *f,
                               const uint8_t leaf[AUDIT_MERKLE_HASH_LEN], audit_merkle_emit_fn emit,
                               void *arg);

/* The root hash of the tree the frontier stands for. */
void audit_merkle_frontier_root(const struct audit_merkle_frontier *f,
                                uint8_t out[AUDIT_MERKLE_HASH_LEN]);

/* Set f to the frontier of size leaves from its n hashes, raw and concatenated (as stored
 * beside the chain head). Returns 0, or -1 if len is not 32 * popcount(size). */
int audit_merkle_frontier_load(struct audit_merkle_frontier *f, long long size, const void *raw,
                               size_t len);

/* Reads count hashes of tree level `level` (the level-l hashes of tlog-tiles: roots of
 * 256^level leaves) starting at index, all inside one tile, into out. Returns 0; 1 when it
 * only noted the read (a first pass learning which tiles a computation reads: the hashes
 * read are not computed with, and the result is not meaningful); -1 if they are not
 * available (trimmed, or a storage error: the caller's reader knows which). */
typedef int (*audit_merkle_read_fn)(void *arg, int level, long long index, int count, uint8_t *out);

/* The root of the first n leaves (n <= the stored tree's size; 0: the empty root), read
 * through rd. Returns 0, or -1 if a read failed. */
int audit_merkle_tree_hash(long long n, audit_merkle_read_fn rd, void *arg,
                           uint8_t out[AUDIT_MERKLE_HASH_LEN]);

/* The frontier of the first n leaves (its subtrees' roots), read through rd. Returns 0, or
 * -1 if a read failed. */
int audit_merkle_frontier_at(long long n, audit_merkle_read_fn rd, void *arg,
                             struct audit_merkle_frontier *f);

/* The RFC 6962 audit path of leaf index m in the tree of size n (0 <= m < n), bottom up,
 * into out[AUDIT_MERKLE_PROOF_MAX]; *count hashes. Returns 0, or -1 on bad sizes or a failed read.
 */
int audit_merkle_prove_inclusion(long long m, long long n, audit_merkle_read_fn rd, void *arg,
                                 uint8_t out[][AUDIT_MERKLE_HASH_LEN], int *count);

/* The RFC 6962 consistency proof from size m to size n (1 <= m <= n; m == n: none) into
 * out[AUDIT_MERKLE_PROOF_MAX]. Returns 0, or -1 on bad sizes or a failed read. */
int audit_merkle_prove_consistency(long long m, long long n, audit_merkle_read_fn rd, void *arg,
                                   uint8_t out[][AUDIT_MERKLE_HASH_LEN], int *count);

/* RFC 9162 §2.1.3.2: does proof show leaf at index m in the tree of size n with root?
 * Returns 0 if it does, -1 if not (or the sizes are impossible). */
int audit_merkle_check_inclusion(long long m, long long n,
                                 const uint8_t leaf[AUDIT_MERKLE_HASH_LEN],
                                 const uint8_t proof[][AUDIT_MERKLE_HASH_LEN], int count,
                                 const uint8_t root[AUDIT_MERKLE_HASH_LEN]);

/* RFC 9162 §2.1.4.2: does proof show that the tree of size m with root_m is a prefix of
 * the tree of size n with root_n (1 <= m <= n)? Returns 0 if it does, -1 if not. */
int audit_merkle_check_consistency(long long m, long long n,
                                   const uint8_t root_m[AUDIT_MERKLE_HASH_LEN],
                                   const uint8_t root_n[AUDIT_MERKLE_HASH_LEN],
                                   const uint8_t proof[][AUDIT_MERKLE_HASH_LEN], int count);

#endif
