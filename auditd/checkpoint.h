/* SPDX-License-Identifier: Apache-2.0 */
/* checkpoint: signed checkpoints of a chain head in the C2SP signed-note layout:
 *
 *     <origin>\n<seq>\n<base64 of the 32-byte head hash>\n
 *     \n
 *     — <origin> <base64(4-byte key id || 64-byte Ed25519 signature)>\n
 *
 * The signature covers the three text lines (final newline included). */
#ifndef AUDIT_CHECKPOINT_H
#define AUDIT_CHECKPOINT_H

#include <stddef.h>

#include "entry.h"
#include "keyring.h"

#define AUDIT_NOTE_MAX 512

/* Is s a valid origin ([A-Za-z0-9._/-]{1,128})? */
int audit_origin_valid(const char *s);

/* Write the signed note for (seq, hash hex) signed by k (which must hold a private key)
 * into out. Returns its length, or -1 if it does not fit or the hash is not hex. */
int audit_checkpoint_make(const char *origin, long long seq, const char *hash,
                          const struct audit_key *k, char *out, size_t outsize);

/* Parse a note and check its signature against every key of kr (the key id is computed
 * under the note's own origin). Returns 0 with seq and hash (hex) set; -1 with a reason in
 * err if it is malformed or no key of kr signed it. */
int audit_checkpoint_open(const char *note, size_t len, const struct audit_keyring *kr,
                          long long *seq, char hash[AUDIT_HASH_HEX_LEN + 1], char *err,
                          size_t errsize);

#endif
