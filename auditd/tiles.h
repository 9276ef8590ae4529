/* SPDX-License-Identifier: Apache-2.0 */
/* tiles: the C2SP tlog-tiles layout of auditd's tree. Paths of hash tiles and entry
 * bundles (tile/<L>/<N>[.p/<W>], tile/entries/<N>[.p/<W>], <N> in 3-digit groups all but
 * the last prefixed 'x'), the width a tile has at a tree size, and a tile set: the tile
 * prefixes a computation reads, gathered by a first, recording run of it (what is read
 * depends on the sizes only, never on the hashes), then fetched in one go (from Redis,
 * files...), then read by a second run. */
#ifndef AUDIT_TILES_H
#define AUDIT_TILES_H

#include <stddef.h>
#include <stdint.h>

#include "merkle.h"

#define AUDIT_TILE_ENTRIES (-1) /* the level of an entry bundle */
#define AUDIT_TILE_LEVEL_MAX 7  /* 256^8 leaves is past any tree handled */
#define AUDIT_TILE_PATH_MAX 96
#define AUDIT_TILE_BYTES (AUDIT_MERKLE_TILE_WIDTH * AUDIT_MERKLE_HASH_LEN)
#define AUDIT_BUNDLE_ENTRY_MAX 65535 /* an entry's length is a big-endian uint16 in a bundle */

/* One tile or bundle: width is 256 for a full one, 1..255 for a partial one. */
struct audit_tile_ref {
    int level; /* 0..AUDIT_TILE_LEVEL_MAX, or AUDIT_TILE_ENTRIES */
    long long index;
    int width;
};

/* Parse a path under the log's root ("tile/0/x001/234.p/17"), canonical form only (no
 * leading zero groups, no width 0 or 256). Returns 0, or -1 if it is no tile path. */
int audit_tile_parse(const char *path, struct audit_tile_ref *t);

/* The path of t into out. Returns its length, or -1 if it does not fit or t is bad. */
int audit_tile_format(const struct audit_tile_ref *t, char *out, size_t size);

/* The width of tile (level, index) in a tree of size leaves (entry bundles: level 0's):
 * 256 when full, 1..255 when it is the partial tile at the right edge, 0 when the tree has
 * none of its hashes yet. */
int audit_tile_width(int level, long long index, long long size);

struct audit_entry;

/* The entry bundle of n entries (bodies of at most AUDIT_BUNDLE_ENTRY_MAX bytes) into *out
 * (malloc'd, caller frees): each as a big-endian uint16 length and the bytes. Returns 0, or
 * -1 (out of memory, or a body too long). */
int audit_bundle_build(const struct audit_entry *e, size_t n, uint8_t **out, size_t *len);

/* Split a bundle of exactly width entries: entry i at data + off[i], len[i] bytes. Returns
 * 0, or -1 if data is not exactly that (truncated, trailing bytes, another count). */
int audit_bundle_split(const uint8_t *data, size_t size, int width, size_t off[], size_t len[]);

/* A set of tile prefixes with their hashes once fetched. */
struct audit_tile {
    int level;
    long long index;
    int width;     /* hashes wanted (the widest any read asked for) */
    uint8_t *data; /* width * 32 bytes once fetched (malloc'd), else NULL */
};

struct audit_tileset {
    struct audit_tile *t;
    size_t n, cap;
    int recording; /* 1: reads are noted and answered with zeros */
    int failed;    /* a read could not be noted (out of memory) */
};

/* An empty set, recording. */
void audit_tileset_init(struct audit_tileset *s);

/* The audit_merkle_read_fn over a set (arg: the set). Recording: note the tile and width and
 * return 1 (nothing read; -1 out of memory). Else copy from the fetched data (0): -1 if that
 * tile was not fetched or is narrower. */
int audit_tileset_read(void *arg, int level, long long index, int count, uint8_t *out);

/* Stop recording; reads are answered from what the caller has put into each t[i].data. */
void audit_tileset_serve(struct audit_tileset *s);

/* Free the data and the list; the set can be used again (recording). NULL does nothing. */
void audit_tileset_clear(struct audit_tileset *s);

#endif
