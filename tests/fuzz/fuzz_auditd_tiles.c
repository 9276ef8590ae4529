/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for what audit-verify --tiles reads of an archive: tile paths
 * (audit_tile_parse), entry bundles (audit_bundle_split) and the checkpoint file read
 * without its signature (audit_checkpoint_read). The first byte picks which:
 *   0: a path — what parses formats back to exactly the same path, and its width fits;
 *   1: a bundle of the width in the next byte (1..256) — what splits lies inside the data,
 *      end to end, and builds back to the same bytes;
 *   2: a checkpoint — what reads has a valid origin, a size and a head of 0..2^62. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../auditd/checkpoint.h"
#include "../../auditd/entry.h"
#include "../../auditd/tiles.h"
#include "fuzz.h"

static void path(const char *s)
{
    struct audit_tile_ref t;
    char out[AUDIT_TILE_PATH_MAX];
    if (audit_tile_parse(s, &t) != 0)
        return;
    if (t.width < 1 || t.width > AUDIT_MERKLE_TILE_WIDTH || t.index < 0 ||
        audit_tile_format(&t, out, sizeof(out)) < 0 || strcmp(out, s) != 0)
        abort();
}

static void bundle(const uint8_t *data, size_t size, int width)
{
    size_t off[AUDIT_MERKLE_TILE_WIDTH], len[AUDIT_MERKLE_TILE_WIDTH], total = 0;
    struct audit_entry e[AUDIT_MERKLE_TILE_WIDTH];
    uint8_t *again = NULL;
    size_t again_len = 0;
    if (audit_bundle_split(data, size, width, off, len) != 0)
        return;
    for (int i = 0; i < width; i++) {
        if (off[i] != total + 2 || off[i] + len[i] > size || len[i] > AUDIT_BUNDLE_ENTRY_MAX)
            abort();
        total = off[i] + len[i];
        memset(&e[i], 0, sizeof(e[i]));
        e[i].body = (char *)data + off[i];
        e[i].body_len = len[i];
    }
    if (total != size || audit_bundle_build(e, (size_t)width, &again, &again_len) != 0 ||
        again_len != size || memcmp(again, data, size) != 0)
        abort();
    free(again);
}

static void checkpoint(const char *note, size_t len)
{
    struct audit_cp cp;
    char err[160];
    err[0] = '\0';
    if (audit_checkpoint_read(note, len, &cp, err, sizeof(err)) != 0) {
        if (!err[0])
            abort();
        return;
    }
    if (!audit_origin_valid(cp.origin) || cp.size < 0 || cp.size > AUDIT_MERKLE_MAX_SIZE ||
        cp.chain_seq < 0 || (cp.has_tree && cp.chain_seq != cp.size) ||
        strlen(cp.chain_hash) != AUDIT_HASH_HEX_LEN)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (data[0] == 1) {
        bundle(data + 2, size - 2, 1 + data[1] % AUDIT_MERKLE_TILE_WIDTH);
        return 0;
    }
    char *s = fuzz_cstr(data + 1, size - 1);
    if (!s)
        return 0;
    if (data[0] == 0)
        path(s);
    else if (data[0] == 2)
        checkpoint(s, size - 1);
    free(s);
    return 0;
}
