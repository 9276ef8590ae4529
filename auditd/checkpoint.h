/* SPDX-License-Identifier: Apache-2.0 */
/* checkpoint: signed checkpoints of the tree and the chain — a C2SP tlog-checkpoint in a
 * C2SP signed note:
 *
 *     <origin>\n<tree size>\n<base64 of the 32-byte tree root>\n
 *     chain <seq> <64 hex of the chain head hash>\n
 *     \n
 *     — <origin> <base64(4-byte key id || 64-byte Ed25519 signature)>\n
 *
 * The signature covers the note text (every line before the blank one, final newline
 * included); the key name is the origin and the key id the first 4 bytes of
 * SHA-256(origin || 0x0A || 0x01 || public key). The "chain" extension line carries the
 * chain head at the same seq, so a checkpoint vouches for both. Notes of the earlier form
 * (three lines, the third a chain head hash, no tree) are still read. */
#ifndef AUDIT_CHECKPOINT_H
#define AUDIT_CHECKPOINT_H

#include <stddef.h>

#include "entry.h"
#include "keyring.h"
#include "merkle.h"

#define AUDIT_NOTE_MAX 1024 /* ours are ~300 bytes; a note with witnesses' lines may be more */

/* What a checkpoint says. */
struct audit_cp {
    long long size;      /* the tree size (has_tree) */
    long long chain_seq; /* the chain head */
    int has_tree;        /* 0: a note of the earlier form, a chain head only */
    uint8_t root[AUDIT_MERKLE_HASH_LEN];
    char chain_hash[AUDIT_HASH_HEX_LEN + 1];
    char origin[129];
};

/* Is s a valid origin ([A-Za-z0-9._/-]{1,128})? */
int audit_origin_valid(const char *s);

/* Write the signed note of cp (has_tree must be set; size = chain_seq) signed by k (which
 * must hold a private key) under cp->origin into out. Returns its length, or -1 if it does
 * not fit or the hash is not hex. */
int audit_checkpoint_make(const struct audit_cp *cp, const struct audit_key *k, char *out,
                          size_t outsize);

/* Parse a note (either form) without checking any signature (it has at least one line
 * after the blank line). Returns 0 with cp filled, or -1 with a reason in err. */
int audit_checkpoint_read(const char *note, size_t len, struct audit_cp *cp, char *err,
                          size_t errsize);

/* Parse a note (either form) and check that a key of kr signed it (the key id is computed
 * under the note's own origin; any of its signature lines may be the one). Returns 0 with
 * cp filled; -1 with a reason in err if it is malformed or no key of kr signed it. */
int audit_checkpoint_open(const char *note, size_t len, const struct audit_keyring *kr,
                          struct audit_cp *cp, char *err, size_t errsize);

#endif
