/* SPDX-License-Identifier: Apache-2.0 */
/* archive: the static tlog-tiles tree `audit-export --tiles DIR` writes (any static file
 * server can publish it) and that audit-verify --tiles and audit-trim read:
 *
 *   DIR/checkpoint                    the signed checkpoint the archive is cut at (size S)
 *   DIR/tile/<L>/<N>[.p/<W>]          the hash tiles of the tree of size S
 *   DIR/tile/entries/<N>[.p/<W>]      the entry bundles (entry bodies, as tlog-tiles says)
 *   DIR/signatures/<N>[.p/<W>]        the entries' Ed25519 signatures, 64 raw bytes each, in
 *                                     the order of the bundle of the same name
 *
 * Full tiles, bundles and signature files never change once written; partial ones are
 * written for the size S of the checkpoint beside them. */
#ifndef AUDIT_ARCHIVE_H
#define AUDIT_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "entry.h"
#include "keyring.h"
#include "tiles.h"
#include "treecheck.h"

struct audit_archive;

/* Open DIR: its checkpoint must be a tree checkpoint signed by a key of kr. NULL with the
 * reason in err. */
struct audit_archive *audit_archive_open(const char *dir, const struct audit_keyring *kr, char *err,
                                         size_t errsize);
void audit_archive_close(struct audit_archive *a); /* NULL does nothing */

/* The checkpoint (its size is the archive's), and the note's text as read. */
const struct audit_cp *audit_archive_checkpoint(const struct audit_archive *a);
const char *audit_archive_note(const struct audit_archive *a, size_t *len);

/* The entries of bundle b (its width at the archive's size) into out[256], each with its
 * seq, body, hash (of the body) and signature (caller clears them). Returns how many, or -1
 * if the bundle or its signatures are missing or malformed. */
int audit_archive_entries(struct audit_archive *a, long long b, struct audit_entry *out);

/* The archive's tiles as a source for the tree check: a tile it should hold at its size and
 * does not is -1 (a mismatch), one past its size 0. */
struct audit_tile_source audit_archive_tiles(struct audit_archive *a);

/* The relative path of the signature file of bundle b at width w into out. */
int audit_archive_sig_path(long long b, int w, char *out, size_t size);

/* Write data as DIR/rel, making its directories: to a temporary file, then renamed into
 * place. With keep, an existing file is left as it is (a full tile: immutable). Returns 0,
 * or -1 with the reason in err. */
int audit_archive_put(const char *dir, const char *rel, const void *data, size_t len, int keep,
                      char *err, size_t errsize);

/* Does DIR/rel exist? */
int audit_archive_has(const char *dir, const char *rel);

#endif
