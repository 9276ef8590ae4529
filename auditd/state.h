/* SPDX-License-Identifier: Apache-2.0 */
/* state: the file in AUDIT_STATE_DIR where an instance keeps the highest entry of its
 * chain it has seen, and the root of the Merkle tree of that many entries, so that a
 * restart still knows what Redis must hold. One file per
 * chain and origin, audit-<chain>-<first 16 hex of SHA-256(origin)>.json (the chain name
 * is [a-z0-9_.-], safe in a file name behind the prefix; the origin may hold '/', so only
 * its hash is used), holding one line of JSON:
 *
 *     {"chain":"default","hash":"<64 hex>","origin":"warden-audit/default","root":"<64 hex>",
 *      "seq":42,"tree_size":42}
 *
 * root is "" and tree_size 0 while the tree is not known at that seq (a chain from before
 * the tree, still catching up); a file of the earlier form, without root and tree_size, is
 * read as such.
 * Mode 0600, replaced atomically: written to a temporary file in the same directory,
 * fsync'd, renamed over the old one, then the directory is fsync'd. */
#ifndef AUDIT_STATE_H
#define AUDIT_STATE_H

#include <stddef.h>

#include "entry.h"

struct audit_state;

/* Open dir (which must exist and be writable) for chain and origin. NULL with the reason
 * in err. */
struct audit_state *audit_state_open(const char *dir, const char *chain, const char *origin,
                                     char *err, size_t errsize);

/* Read the file: 1 with seq, hash and root (hex, or "") set; 0 if there is none yet; -1 if
 * it is not a state file of this chain and origin (err says why; nothing is changed on
 * disk). */
int audit_state_load(struct audit_state *s, long long *seq, char hash[AUDIT_HASH_HEX_LEN + 1],
                     char root[AUDIT_HASH_HEX_LEN + 1], char *err, size_t errsize);

/* Replace the file with (seq, hash, root; root "" when not known). Returns 0, or -1 with the
 * reason in err. Not thread-safe: the caller serialises. */
int audit_state_save(struct audit_state *s, long long seq, const char *hash, const char *root,
                     char *err, size_t errsize);

/* The file's path, for messages. */
const char *audit_state_path(const struct audit_state *s);

/* Close; NULL does nothing. */
void audit_state_close(struct audit_state *s);

#endif
