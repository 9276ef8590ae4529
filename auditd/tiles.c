/* SPDX-License-Identifier: Apache-2.0 */
/* tiles: tlog-tiles paths and widths, and the fetch-once set of tile prefixes. */
#include "tiles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"

/* 256^level, or -1 past the levels handled. */
static long long tile_span(int level)
{
    return level >= 0 && level <= AUDIT_TILE_LEVEL_MAX ? 1LL << (AUDIT_MERKLE_TILE_HEIGHT * level)
                                                       : -1;
}

int audit_tile_width(int level, long long index, long long size)
{
    long long span = tile_span(level < 0 ? 0 : level);
    if (span <= 0 || index < 0 || size <= 0)
        return 0;
    long long hashes = size / span - index * AUDIT_MERKLE_TILE_WIDTH;
    if (hashes <= 0)
        return 0;
    return hashes >= AUDIT_MERKLE_TILE_WIDTH ? AUDIT_MERKLE_TILE_WIDTH : (int)hashes;
}

/* A decimal number of 1..digits digits, no sign, into *out; returns the characters used,
 * or -1. With exact, exactly `digits` digits. */
static int read_digits(const char *s, int digits, int exact, long long *out)
{
    int n = 0;
    long long v = 0;
    while (n < digits && s[n] >= '0' && s[n] <= '9')
        v = v * 10 + (s[n++] - '0');
    if (n == 0 || (exact && n != digits))
        return -1;
    *out = v;
    return n;
}

/* <N>: "x001/x234/067". The groups must not begin with a zero group ("x000/005" is 5
 * written otherwise) and the index must stay below 2^62. Returns the characters used. */
static int parse_index(const char *s, long long *index)
{
    long long v = 0, group;
    int used = 0, groups = 0;
    while (s[used] == 'x') {
        if (read_digits(s + used + 1, 3, 1, &group) != 3 || s[used + 4] != '/' ||
            (groups == 0 && group == 0) || ++groups > 5)
            return -1;
        v = v * 1000 + group;
        used += 5;
    }
    if (read_digits(s + used, 3, 1, &group) != 3)
        return -1;
    *index = v * 1000 + group;
    return used + 3;
}

int audit_tile_parse(const char *path, struct audit_tile_ref *t)
{
    long long level, width = AUDIT_MERKLE_TILE_WIDTH;
    int n;
    if (strncmp(path, "tile/", 5) != 0)
        return -1;
    path += 5;
    if (strncmp(path, "entries/", 8) == 0) {
        t->level = AUDIT_TILE_ENTRIES;
        path += 8;
    } else {
        n = read_digits(path, 2, 0, &level);
        if (n < 0 || path[n] != '/' || (n == 2 && path[0] == '0') || level > AUDIT_TILE_LEVEL_MAX)
            return -1;
        t->level = (int)level;
        path += n + 1;
    }
    n = parse_index(path, &t->index);
    if (n < 0)
        return -1;
    path += n;
    if (strncmp(path, ".p/", 3) == 0) {
        n = read_digits(path + 3, 3, 0, &width);
        if (n < 0 || path[3] == '0' || width >= AUDIT_MERKLE_TILE_WIDTH)
            return -1;
        path += 3 + n;
    }
    t->width = (int)width;
    return *path == '\0' ? 0 : -1;
}

int audit_tile_format(const struct audit_tile_ref *t, char *out, size_t size)
{
    char groups[64];
    size_t used = 0;
    long long index = t->index, div = 1;
    if (index < 0 || t->width < 1 || t->width > AUDIT_MERKLE_TILE_WIDTH ||
        (t->level != AUDIT_TILE_ENTRIES && tile_span(t->level) < 0))
        return -1;
    while (index / div >= 1000)
        div *= 1000;
    for (; div >= 1; div /= 1000) {
        used += (size_t)snprintf(groups + used, sizeof(groups) - used, "%s%03lld",
                                 div > 1 ? "x" : "", index / div % 1000);
        if (div > 1)
            groups[used++] = '/';
    }
    groups[used] = '\0';
    int n;
    if (t->level == AUDIT_TILE_ENTRIES)
        n = snprintf(out, size, "tile/entries/%s", groups);
    else
        n = snprintf(out, size, "tile/%d/%s", t->level, groups);
    if (n >= 0 && t->width < AUDIT_MERKLE_TILE_WIDTH && (size_t)n < size)
        n += snprintf(out + n, size - (size_t)n, ".p/%d", t->width);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

int audit_bundle_build(const struct audit_entry *e, size_t n, uint8_t **out, size_t *len)
{
    size_t total = 0, at = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].body_len > AUDIT_BUNDLE_ENTRY_MAX)
            return -1;
        total += 2 + e[i].body_len;
    }
    *out = malloc(total ? total : 1);
    if (!*out)
        return -1;
    for (size_t i = 0; i < n; i++) {
        (*out)[at++] = (uint8_t)(e[i].body_len >> 8);
        (*out)[at++] = (uint8_t)(e[i].body_len & 0xff);
        memcpy(*out + at, e[i].body, e[i].body_len);
        at += e[i].body_len;
    }
    *len = total;
    return 0;
}

int audit_bundle_split(const uint8_t *data, size_t size, int width, size_t off[], size_t len[])
{
    size_t at = 0;
    for (int i = 0; i < width; i++) {
        if (size - at < 2)
            return -1;
        len[i] = (size_t)data[at] << 8 | data[at + 1];
        off[i] = at + 2;
        if (size - off[i] < len[i])
            return -1;
        at = off[i] + len[i];
    }
    return at == size ? 0 : -1;
}

void audit_tileset_init(struct audit_tileset *s)
{
    memset(s, 0, sizeof(*s));
    s->recording = 1;
}

static struct audit_tile *find(struct audit_tileset *s, int level, long long index)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->t[i].level == level && s->t[i].index == index)
            return &s->t[i];
    return NULL;
}

/* Note that hashes [index, index+count) of level are read: their tile, wide enough. */
static int note(struct audit_tileset *s, int level, long long index, int count)
{
    long long tile = index / AUDIT_MERKLE_TILE_WIDTH;
    int width = (int)(index % AUDIT_MERKLE_TILE_WIDTH) + count;
    struct audit_tile *t = find(s, level, tile);
    if (!t) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 16;
            struct audit_tile *p = realloc(s->t, cap * sizeof(*p));
            if (!p)
                return -1;
            s->t = p;
            s->cap = cap;
        }
        t = &s->t[s->n++];
        *t = (struct audit_tile){.level = level, .index = tile};
    }
    if (width > t->width)
        t->width = width;
    return 0;
}

int audit_tileset_read(void *arg, int level, long long index, int count, uint8_t *out)
{
    struct audit_tileset *s = arg;
    if (s->recording) {
        if (note(s, level, index, count) != 0) {
            s->failed = 1;
            return -1;
        }
        return 1;
    }
    struct audit_tile *t = find(s, level, index / AUDIT_MERKLE_TILE_WIDTH);
    int from = (int)(index % AUDIT_MERKLE_TILE_WIDTH);
    if (!t || !t->data || from + count > t->width)
        return -1;
    memcpy(out, t->data + (size_t)from * AUDIT_MERKLE_HASH_LEN,
           (size_t)count * AUDIT_MERKLE_HASH_LEN);
    return 0;
}

void audit_tileset_serve(struct audit_tileset *s)
{
    s->recording = 0;
}

void audit_tileset_clear(struct audit_tileset *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->t[i].data);
    free(s->t);
    audit_tileset_init(s);
}
