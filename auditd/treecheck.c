/* SPDX-License-Identifier: Apache-2.0 */
/* treecheck: the tree grown from the entries, compared with stored tiles and roots. */
#include "treecheck.h"

#include <string.h>

void audit_treecheck_init(struct audit_treecheck *tc, const struct audit_merkle_frontier *start)
{
    memset(tc, 0, sizeof(*tc));
    if (start)
        tc->f = *start;
    else
        audit_merkle_frontier_init(&tc->f);
    for (int l = 0; l <= AUDIT_TILE_LEVEL_MAX; l++)
        tc->tile_index[l] = -1;
}

int audit_treecheck_source(struct audit_treecheck *tc, struct audit_tile_source src)
{
    if (tc->nsrc == AUDIT_TREECHECK_SOURCES)
        return -1;
    tc->src[tc->nsrc++] = src;
    return 0;
}

int audit_treecheck_expect(struct audit_treecheck *tc, long long size,
                           const uint8_t root[AUDIT_MERKLE_HASH_LEN])
{
    if (tc->nroots == AUDIT_TREECHECK_ROOTS)
        return -1;
    tc->root_size[tc->nroots] = size;
    memcpy(tc->root[tc->nroots++], root, AUDIT_MERKLE_HASH_LEN);
    return 0;
}

/* The first seq under hash j of level l. */
static long long first_seq(int l, long long j)
{
    return (j << (AUDIT_MERKLE_TILE_HEIGHT * l)) + 1;
}

static void fail_at(struct audit_treecheck *tc, long long seq, int tile)
{
    if (!tc->bad_seq || seq < tc->bad_seq) {
        tc->bad_seq = seq;
        tc->bad_tile = tile;
    }
}

/* Compare what level l holds of its current tile with every source that has it. */
static void compare(struct audit_treecheck *tc, int l)
{
    uint8_t stored[AUDIT_TILE_BYTES];
    int width = tc->first[l] + tc->count[l];
    long long index = tc->tile_index[l];
    if (tc->count[l] == 0)
        return;
    for (int s = 0; s < tc->nsrc; s++) {
        int rc = tc->src[s].read(tc->src[s].arg, l, index, width, stored);
        if (rc == 0)
            continue;
        if (rc < 0) {
            fail_at(tc, first_seq(l, index * AUDIT_MERKLE_TILE_WIDTH + tc->first[l]), 1);
            return;
        }
        for (int i = tc->first[l]; i < width; i++)
            if (memcmp(stored + (size_t)i * AUDIT_MERKLE_HASH_LEN,
                       tc->tile[l] + (size_t)i * AUDIT_MERKLE_HASH_LEN,
                       AUDIT_MERKLE_HASH_LEN) != 0) {
                fail_at(tc, first_seq(l, index * AUDIT_MERKLE_TILE_WIDTH + i), 1);
                return;
            }
    }
}

/* audit_merkle_emit_fn: a tile hash recomputed; a tile complete is compared at once. */
static void emitted(void *arg, int level, long long index,
                    const uint8_t hash[AUDIT_MERKLE_HASH_LEN])
{
    struct audit_treecheck *tc = arg;
    long long tile = index / AUDIT_MERKLE_TILE_WIDTH;
    int at = (int)(index % AUDIT_MERKLE_TILE_WIDTH);
    if (level > AUDIT_TILE_LEVEL_MAX)
        return;
    if (tc->tile_index[level] != tile) {
        tc->tile_index[level] = tile;
        tc->first[level] = at; /* the first tile may start mid-way (a frontier given) */
        tc->count[level] = 0;
    }
    memcpy(tc->tile[level] + (size_t)at * AUDIT_MERKLE_HASH_LEN, hash, AUDIT_MERKLE_HASH_LEN);
    tc->count[level]++;
    if (at == AUDIT_MERKLE_TILE_WIDTH - 1)
        compare(tc, level);
}

int audit_treecheck_push(struct audit_treecheck *tc, const char *body, size_t len)
{
    uint8_t leaf[AUDIT_MERKLE_HASH_LEN], root[AUDIT_MERKLE_HASH_LEN];
    audit_merkle_leaf_hash(body, len, leaf);
    if (audit_merkle_frontier_push(&tc->f, leaf, emitted, tc) != 0)
        fail_at(tc, tc->f.size + 1, 0);
    for (int i = 0; i < tc->nroots; i++)
        if (tc->root_size[i] == tc->f.size) {
            audit_merkle_frontier_root(&tc->f, root);
            if (memcmp(root, tc->root[i], sizeof(root)) != 0)
                fail_at(tc, tc->f.size, 0);
        }
    return tc->bad_seq != 0;
}

int audit_treecheck_flush(struct audit_treecheck *tc)
{
    for (int l = 0; l <= AUDIT_TILE_LEVEL_MAX; l++)
        if (tc->tile_index[l] >= 0 && tc->first[l] + tc->count[l] < AUDIT_MERKLE_TILE_WIDTH)
            compare(tc, l);
    return tc->bad_seq != 0;
}

void audit_treecheck_root(const struct audit_treecheck *tc, uint8_t out[AUDIT_MERKLE_HASH_LEN])
{
    audit_merkle_frontier_root(&tc->f, out);
}
