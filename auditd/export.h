/* SPDX-License-Identifier: Apache-2.0 */
/* export: write the tree Redis holds, cut at a signed checkpoint, as the static tlog-tiles
 * archive of archive.h (audit-export --tiles DIR). What an archive already holds of full
 * tiles, bundles and signatures is kept (it never changes), so exporting again only adds
 * what is new, and entries trimmed from Redis since stay in the archive. */
#ifndef AUDIT_EXPORT_H
#define AUDIT_EXPORT_H

#include <stddef.h>

#include "checkpoint.h"
#include "store.h"

struct audit_export_stats {
    long long tiles_written, bundles_written, kept;
};

/* Export the tree of checkpoint note (its size S; it must be a tree checkpoint whose root is
 * the root Redis's tiles give at S) into dir, the checkpoint last. Returns 0, or -1 with the
 * reason in err. */
int audit_export_tiles(struct audit_db *p, const struct audit_keys *k, const char *dir,
                       const char *note, size_t note_len, struct audit_export_stats *stats,
                       char *err, size_t errsize);

#endif
