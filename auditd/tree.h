/* SPDX-License-Identifier: Apache-2.0 */
/* tree: auditd's Merkle tree in Redis, beside the chain and in its cluster slot:
 *
 *   audit:{c}:head          besides seq and hash: tsize (leaves in the tree; equal to seq
 *                           once the tree has caught up with the chain), root (hex of the
 *                           root at tsize) and frontier (its raw hashes, merkle.h)
 *   audit:{c}:tile:<L>:<N>  tile N of level L: up to 256 hashes of 32 bytes, laid out as
 *                           tlog-tiles does; the rightmost tile of a level grows by APPEND
 *
 * Only audit_append.lua writes them, in the compare-and-set that appends the entries. Redis's
 * Lua has no SHA-256, so the appender computes the hashes (it knows the head it builds on)
 * and the script checks head, tree size and each tile's length before it appends: instances
 * appending together keep one tree. The computations here (proofs, roots, frontiers) read
 * the tiles through store.h. Thread-safe. */
#ifndef AUDIT_TREE_H
#define AUDIT_TREE_H

#include <hiredis/hiredis.h>
#include <stdint.h>

#include "merkle.h"
#include "store.h"
#include "tiles.h"

/* The head with the tree beside it. */
struct audit_head {
    long long seq;
    char hash[AUDIT_HASH_HEX_LEN + 1];
    int exists;
    long long tree_size;
    uint8_t root[AUDIT_MERKLE_HASH_LEN]; /* at tree_size */
    int tree_ok; /* 0: the tree fields are malformed (frontier of the wrong length, a root
                    that is not the frontier's): tampered, not to be built on */
    struct audit_merkle_frontier frontier;
};

/* The head fields' names as audit_append.lua and audit_store_tree_head read them, in this order. */
#define AUDIT_HEAD_FIELDS "seq", "hash", "tsize", "root", "frontier"

/* Fill h from the five replies of the fields above (nil: absent). Returns 0, or -1 if a
 * reply is not a string or nil. */
int audit_head_parse(redisReply *const *f, struct audit_head *h);

/* Results of the computations over the stored tiles below. */
#define AUDIT_TREE_OK 0
#define AUDIT_TREE_REDIS (-1)       /* Redis unavailable (503) */
#define AUDIT_TREE_MISSING (-2)     /* a tile it needs is not stored (trimmed, or tampered) */
#define AUDIT_TREE_BAD (-3)         /* impossible sizes, or past the stored tree */
#define AUDIT_TREE_MALFORMED (-4)   /* the head's tree fields are malformed */
#define AUDIT_TREE_REDIS_ERROR (-5) /* Redis answered an error (500) */

/* The root of the first n leaves, from the stored tiles (two round trips at most). */
int audit_tree_root(struct audit_db *p, const struct audit_keys *k, long long n,
                    uint8_t out[AUDIT_MERKLE_HASH_LEN]);

/* The roots of the first m and of the first n leaves, from one fetch of tiles. */
int audit_tree_roots(struct audit_db *p, const struct audit_keys *k, long long m, long long n,
                     uint8_t root_m[AUDIT_MERKLE_HASH_LEN], uint8_t root_n[AUDIT_MERKLE_HASH_LEN]);

/* The frontier of the first n leaves, from the stored tiles. */
int audit_tree_frontier(struct audit_db *p, const struct audit_keys *k, long long n,
                        struct audit_merkle_frontier *f);

/* The inclusion proof of leaf m in the tree of size n, and the consistency proof from m to
 * n (merkle.h), from the stored tiles: out holds AUDIT_MERKLE_PROOF_MAX hashes. The head is read
 * in the same round trip as the tiles into *head: AUDIT_TREE_BAD when its tree is smaller
 * than n, AUDIT_TREE_MALFORMED when its tree fields are malformed. */
int audit_tree_inclusion(struct audit_db *p, const struct audit_keys *k, long long m, long long n,
                         uint8_t out[][AUDIT_MERKLE_HASH_LEN], int *count, struct audit_head *head);
int audit_tree_consistency(struct audit_db *p, const struct audit_keys *k, long long m, long long n,
                           uint8_t out[][AUDIT_MERKLE_HASH_LEN], int *count,
                           struct audit_head *head);

/* Is checkpoint cp (a tree checkpoint) of the tree and chain in Redis: the tree at least as
 * large, its root at cp's size cp's root (from the tiles), the chain's hash at cp's seq
 * cp's chain hash? Returns 0 if it is, 1 if not, -1 if Redis failed. */
struct audit_cp;
int audit_tree_holds(struct audit_db *p, const struct audit_keys *k, const struct audit_cp *cp);

/* ---- the same on a loop's client ----
 * fn(arg, rc) runs later on the loop with the result as above (the outputs filled; they and
 * cp must stay valid until then). Each returns 0 when fn will run, else the result known
 * now (AUDIT_TREE_BAD for impossible sizes, AUDIT_TREE_REDIS_ERROR out of memory; -1 for
 * audit_tree_holds_async), and fn will not run. */
typedef void (*audit_tree_fn)(void *arg, int rc);

int audit_tree_roots_async(struct rclient *rc, const struct audit_keys *k, long long m, long long n,
                           uint8_t (*roots)[AUDIT_MERKLE_HASH_LEN], audit_tree_fn fn, void *arg);
int audit_tree_inclusion_async(struct rclient *rc, const struct audit_keys *k, long long m,
                               long long n, uint8_t (*out)[AUDIT_MERKLE_HASH_LEN], int *count,
                               struct audit_head *head, audit_tree_fn fn, void *arg);
int audit_tree_consistency_async(struct rclient *rc, const struct audit_keys *k, long long m,
                                 long long n, uint8_t (*out)[AUDIT_MERKLE_HASH_LEN], int *count,
                                 struct audit_head *head, audit_tree_fn fn, void *arg);
int audit_tree_holds_async(struct rclient *rc, const struct audit_keys *k,
                           const struct audit_cp *cp, audit_tree_fn fn, void *arg);

/* ---- what an append adds ---- */

/* The hashes added to one tile: count hashes from position `from` (so the tile must hold
 * exactly `from` hashes before they are appended). */
struct audit_tile_append {
    int level;
    long long index;
    int from, count;
    uint8_t data[AUDIT_TILE_BYTES];
};

/* The tree grown by some leaves: its new frontier and root, and the tile appends. */
struct audit_tree_delta {
    struct audit_merkle_frontier next;
    uint8_t root[AUDIT_MERKLE_HASH_LEN]; /* set by audit_tree_delta_end */
    struct audit_tile_append *t;
    size_t n, cap;
    int failed; /* out of memory while collecting */
};

/* Start growing the tree whose frontier is from (the delta keeps its own copy). */
void audit_tree_delta_start(struct audit_tree_delta *d, const struct audit_merkle_frontier *from);
/* Add the leaf of an entry body. Returns 0, or -1 (out of memory, or the tree is full). */
int audit_tree_delta_add(struct audit_tree_delta *d, const char *body, size_t len);
/* Compute the new root. Returns 0, or -1 if an add failed. */
int audit_tree_delta_end(struct audit_tree_delta *d);
/* Free the appends; NULL does nothing. */
void audit_tree_delta_free(struct audit_tree_delta *d);

#endif
