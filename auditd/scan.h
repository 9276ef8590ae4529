/* SPDX-License-Identifier: Apache-2.0 */
/* scan: verify a chain stored in Redis — read the head first, stream the log up to it in
 * pages through the verifier, then check the head (POST /v1/verify, audit-verify --redis)
 * — or an export file, line by line (audit-verify --file). */
#ifndef AUDIT_SCAN_H
#define AUDIT_SCAN_H

#include <stdio.h>

#include "keyring.h"
#include "shared/redis_pool.h"
#include "store.h"
#include "verify.h"

struct audit_scan_opts {
    long long from_seq; /* >= 1 */
    long long to_seq;   /* < 0: up to the head */
    int threads;
    long long expect_seq; /* 0: no expectation */
    char expect_hash[AUDIT_HASH_HEX_LEN + 1];
    /* Called after every page with the last seq checked and the target (may be NULL). */
    void (*progress)(long long seq, long long target, void *arg);
    void *progress_arg;
};

/* Returns RPOOL_OK with out filled, or the Redis failure. */
enum rpool_status audit_scan_redis(struct rpool *p, const struct audit_keys *k,
                                   const struct audit_keyring *kr,
                                   const struct audit_scan_opts *opts, struct audit_vresult *out);

/* Verify an export read from f (JSON lines in the GET /v1/events entry form, never all in
 * memory): entries before from_seq are skipped, an unreadable line breaks the chain where
 * it stands, the expectation in opts is checked (to_seq is not used). Returns 0 with out
 * filled, or -1 on a read error or out of memory. */
int audit_scan_file(FILE *f, const struct audit_keyring *kr, const struct audit_scan_opts *opts,
                    struct audit_vresult *out);

#endif
