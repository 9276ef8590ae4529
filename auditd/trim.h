/* SPDX-License-Identifier: Apache-2.0 */
/* trim: retention of a chain in Redis (audit-trim). The entries before a seq N, and the
 * Merkle tree's full tiles that lie wholly before it, leave Redis only once (1) an archive
 * that holds them (archive.h, written by audit-export --tiles) verifies against its signed
 * checkpoint, (2) that checkpoint is of the tree and chain in Redis, and (3) auditd has
 * recorded the trim as an entry of the chain (audit.trimmed, POST /v1/admin/trim); then
 * audit_trim.lua removes them. Proofs and roots for sizes from N - 1 on stay obtainable:
 * the hashes they need lie in tiles that are not full below N, or a level up. */
#ifndef AUDIT_TRIM_H
#define AUDIT_TRIM_H

#include <stddef.h>

#include "keyring.h"
#include "store.h"

struct audit_trim_opts {
    const char *dir;         /* the archive */
    long long before_seq;    /* N: the first seq kept (>= 2) */
    const char *auditd_url;  /* an auditd of the chain: http://host:port or unix:/path */
    const char *admin_token; /* NULL: none */
    int threads;             /* for verifying the archive's signatures */
};

struct audit_trim_result {
    long long first_seq; /* what Redis holds from now on */
    long long record_seq, entries_removed, tiles_removed;
    int already; /* nothing to do: Redis holds nothing before N */
};

#define AUDIT_TRIM_DONE 0
#define AUDIT_TRIM_REFUSED 1 /* no archive that verifies and covers, or not of this tree */
#define AUDIT_TRIM_FAILED 2  /* Redis or auditd failed: run again */

/* Trim as above. Returns one of the results, err saying why when not done. */
int audit_trim(struct audit_db *p, const struct audit_keys *k, const struct audit_keyring *kr,
               const struct audit_trim_opts *o, struct audit_trim_result *res, char *err,
               size_t errsize);

#endif
