/* SPDX-License-Identifier: Apache-2.0 */
/* verify: the chain verifier shared by POST /v1/verify, audit-verify and its tests. Fed
 * entries in order, it checks seq continuity, the prev link, the body hash, the key
 * version and the signature (optionally on worker threads), then the head and any
 * expected checkpoint, and reports the first bad seq with a reason. With the tree checks
 * on (treecheck.h) it also grows the Merkle tree from the bodies and compares stored tiles
 * and expected roots with it. */
#ifndef AUDIT_VERIFY_H
#define AUDIT_VERIFY_H

#include "entry.h"
#include "keyring.h"
#include "treecheck.h"

enum audit_reason {
    AUDIT_OK = 0,
    /* tampered (audit-verify exit 1) */
    AUDIT_HASH_MISMATCH,
    AUDIT_PREV_MISMATCH,
    AUDIT_BAD_SIGNATURE,
    AUDIT_GAP,
    AUDIT_HEAD_MISMATCH,
    AUDIT_TREE_MISMATCH, /* the Merkle root at a size is not a checkpoint's or the head's */
    AUDIT_TILE_MISMATCH, /* a stored tile hash is not the one recomputed from the entries */
    /* unverifiable or incomplete (exit 2) */
    AUDIT_UNKNOWN_KEY,
    AUDIT_TRUNCATED,
    AUDIT_HEAD_MISSING,
    AUDIT_TRIMMED, /* the entries asked for were trimmed from Redis: give the archive */
};

const char *audit_reason_name(enum audit_reason r);
/* 1 for the tampering reasons, 0 otherwise. */
int audit_reason_tampered(enum audit_reason r);

struct audit_vresult {
    int ok;
    long long checked;       /* entries that passed before the first bad one */
    long long first_bad_seq; /* 0 when ok */
    enum audit_reason reason;
    long long first_seq, last_seq; /* range seen (0 when none) */
    long long head_seq;            /* the stored head's seq (last_seq when unknown) */
    char last_hash[AUDIT_HASH_HEX_LEN + 1];
};

struct audit_verifier;

/* kr is borrowed for the verifier's life. threads 0 checks signatures inline on the
 * caller's thread; N > 0 on N worker threads while the caller goes on reading.
 * from_seq >= 1; prev is the hash before from_seq (NULL: 64 zeros when from_seq is 1,
 * else the first entry's own prev is trusted). NULL when out of memory. */
struct audit_verifier *audit_verifier_create(const struct audit_keyring *kr, int threads,
                                             long long from_seq, const char *prev);

/* The chain must contain hash at seq (a kept checkpoint or --expect-head); up to
 * AUDIT_VERIFY_EXPECT_MAX of them. Returns 0, or -1 if there is no room. */
#define AUDIT_VERIFY_EXPECT_MAX 64
int audit_verifier_expect(struct audit_verifier *v, long long seq, const char *hash);

/* Check the tree too, from the frontier of the entries before from_seq (NULL: the empty
 * tree; from_seq must then be 1). Returns 0, or -1 out of memory. */
int audit_verifier_tree(struct audit_verifier *v, const struct audit_merkle_frontier *start);
/* With the tree on: compare every tile hash src holds (treecheck.h); the root at size must
 * be root (ignored with the tree off). Return 0, or -1 if there is no room. */
int audit_verifier_tile_source(struct audit_verifier *v, struct audit_tile_source src);
int audit_verifier_expect_root(struct audit_verifier *v, long long size,
                               const uint8_t root[AUDIT_MERKLE_HASH_LEN]);
/* With the tree on: compare the partial tiles at the size fed so far (the end of a store).
 * Returns 0 to go on, 1 once a failure is known. */
int audit_verifier_flush_tiles(struct audit_verifier *v);
/* Stop here as though the chain ended (the entries after seq were trimmed, say): reason
 * at seq. */
void audit_verifier_fail(struct audit_verifier *v, long long seq, enum audit_reason reason);

/* Check the next entry. Returns 0 to go on, 1 once a failure is known (stop feeding). */
int audit_verifier_feed(struct audit_verifier *v, const struct audit_entry *e);

/* Wait for the signature threads, check the head (when head_known: head_exists, seq and
 * hash) and the expectation, and fill out. */
void audit_verifier_finish(struct audit_verifier *v, int head_known, int head_exists,
                           long long head_seq, const char *head_hash, struct audit_vresult *out);

void audit_verifier_free(struct audit_verifier *v); /* NULL does nothing */

#endif
