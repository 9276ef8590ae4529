/* SPDX-License-Identifier: Apache-2.0 */
/* proof: the proofs auditd serves, as audit-verify checks them offline — the JSON of
 * GET /v1/proofs/inclusion ({"leaf_index","tree_size","hashes"}) and /v1/proofs/consistency
 * ({"hashes"}) parsed strictly, then checked against signed checkpoints (checkpoint.h) and,
 * for inclusion, an entry as GET /v1/events/<seq> shows it. Thread-safe. */
#ifndef AUDIT_PROOF_H
#define AUDIT_PROOF_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "entry.h"
#include "keyring.h"
#include "merkle.h"

struct audit_proof {
    long long leaf_index; /* -1 when absent (a consistency proof) */
    long long tree_size;  /* -1 when absent */
    int count;
    uint8_t hashes[AUDIT_MERKLE_PROOF_MAX][AUDIT_MERKLE_HASH_LEN];
};

/* Parse a proof document: an object of "hashes" (an array of at most AUDIT_MERKLE_PROOF_MAX
 * standard base64 strings of 32 bytes) and optionally "leaf_index" and "tree_size" (whole
 * numbers, 0..2^62); nothing else. Returns 0, or -1 with the reason in err. */
int audit_proof_parse(const char *text, size_t len, struct audit_proof *p, char *err,
                      size_t errsize);

/* Does p put entry e in the tree of checkpoint cp? The entry's body must hash to its hash
 * and be signed by the key of kr its body names; p's leaf_index must be e's seq - 1 and its
 * tree_size cp's size. Returns 0 if it does; 1 if not (tampered: why says what); 2 if the
 * entry's key is not in kr; -1 if cp has no tree or p no leaf_index (why says so). */
int audit_proof_inclusion(const struct audit_proof *p, const struct audit_entry *e,
                          const struct audit_cp *cp, const struct audit_keyring *kr, char *why,
                          size_t whysize);

/* Does p show the tree of checkpoint a to be a prefix of the tree of checkpoint b (either
 * order)? Returns 0 if it does, 1 if not, -1 if either has no tree or they are of other
 * origins. */
int audit_proof_consistency(const struct audit_proof *p, const struct audit_cp *a,
                            const struct audit_cp *b, char *why, size_t whysize);

#endif
