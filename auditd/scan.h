/* SPDX-License-Identifier: Apache-2.0 */
/* scan: verify a chain and its Merkle tree where they are stored — in Redis (read the head
 * first, stream the log up to it in pages through the verifier, compare the tiles and the
 * head's root; POST /v1/verify, audit-verify --redis), in an export file, line by line
 * (audit-verify --file: the chain only), or in an archive of tiles (audit-verify --tiles),
 * alone or followed by what Redis holds after it. */
#ifndef AUDIT_SCAN_H
#define AUDIT_SCAN_H

#include <stdio.h>

#include "archive.h"
#include "checkpoint.h"
#include "keyring.h"
#include "store.h"
#include "verify.h"

struct audit_scan_opts {
    long long from_seq; /* >= 1 */
    long long to_seq;   /* < 0: up to the head */
    int threads;
    /* Checkpoints the chain must hold (their heads) and, for tree checkpoints, whose root
     * the tree must have at their size. */
    const struct audit_cp *expect;
    size_t nexpect;
    int tree; /* check the Merkle tree too (where the store has one) */
    /* Called after every page with the last seq checked and the target (may be NULL). */
    void (*progress)(long long seq, long long target, void *arg);
    void *progress_arg;
};

/* Returns RREPLY_OK with out filled, or the class of the Redis failure. Entries trimmed from Redis
 * that the range asks for are reported as trimmed (unverifiable, not tampered). */
enum rreply_class audit_scan_redis(struct audit_db *p, const struct audit_keys *k,
                                   const struct audit_keyring *kr,
                                   const struct audit_scan_opts *opts, struct audit_vresult *out);

/* Verify an export read from f (JSON lines in the GET /v1/events entry form, never all in
 * memory): entries before from_seq are skipped, an unreadable line breaks the chain where
 * it stands, the expectations in opts are checked (to_seq and tree are not used). Returns
 * 0 with out filled, or -1 on a read error or out of memory. */
int audit_scan_file(FILE *f, const struct audit_keyring *kr, const struct audit_scan_opts *opts,
                    struct audit_vresult *out);

/* Verify archive a from seq 1 to its size (its checkpoint is one of the expectations), with
 * its tiles; then, when p is not NULL, the chain Redis holds after it, up to Redis's head
 * (Redis's tiles compared too). Without p the archive's checkpoint stands for the head.
 * from_seq and to_seq are not used. Returns RREPLY_OK with out filled, or the class of the failure.
 */
enum rreply_class audit_scan_archive(struct audit_archive *a, struct audit_db *p,
                                     const struct audit_keys *k, const struct audit_keyring *kr,
                                     const struct audit_scan_opts *opts, struct audit_vresult *out);

#endif
