/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of auditd's Merkle tree (merkle.h) and tlog-tiles layout (tiles.h): the
 * published RFC 6962 roots of the certificate-transparency test leaves, the frontier and
 * proofs against a naive recursive MTH written here, every inclusion and consistency proof
 * of small trees checked and every one of their bit flips refused, the tile hashes the
 * frontier emits and the frontier read back from them, and tile paths and widths as the
 * tlog-tiles spec gives them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../auditd/merkle.h"
#include "../../auditd/tiles.h"
#include "shared/crypto.h"

#define H AUDIT_MERKLE_HASH_LEN
#define MAXN 1100

/* The certificate-transparency test leaves and the roots of their first 1..8. */
static const char *const CT_LEAVES[] = {"",
                                        "00",
                                        "10",
                                        "2021",
                                        "3031",
                                        "40414243",
                                        "5051525354555657",
                                        "606162636465666768696a6b6c6d6e6f"};
static const char *const CT_ROOTS[] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};

/* The tree under test: leaf hashes, and every tile-level hash the frontier emitted. */
static uint8_t leaves[MAXN][H];
static uint8_t levels[3][MAXN][H];
static long long emitted[3];

static void emit(void *arg, int level, long long index, const uint8_t hash[H])
{
    (void)arg;
    assert_true(level < 3);
    assert_int_equal(index, emitted[level]); /* in order, none skipped */
    memcpy(levels[level][index], hash, H);
    emitted[level]++;
}

static int read_levels(void *arg, int level, long long index, int count, uint8_t *out)
{
    (void)arg;
    if (level >= 3 || index + count > emitted[level] ||
        index / AUDIT_MERKLE_TILE_WIDTH != (index + count - 1) / AUDIT_MERKLE_TILE_WIDTH)
        return -1; /* a read must stay inside one tile */
    memcpy(out, levels[level][index], (size_t)count * H);
    return 0;
}

/* MTH by the definition, from the leaf hashes. */
static void naive(long long lo, long long hi, uint8_t out[H])
{
    if (hi - lo == 1) {
        memcpy(out, leaves[lo], H);
        return;
    }
    long long k = 1;
    while (k * 2 < hi - lo)
        k *= 2;
    uint8_t l[H], r[H], buf[1 + 2 * H] = {1};
    naive(lo, lo + k, l);
    naive(lo + k, hi, r);
    memcpy(buf + 1, l, H);
    memcpy(buf + 1 + H, r, H);
    crypto_sha256(buf, sizeof(buf), out);
}

static void build(int n, struct audit_merkle_frontier *f)
{
    char data[32];
    audit_merkle_frontier_init(f);
    memset(emitted, 0, sizeof(emitted));
    for (int i = 0; i < n; i++) {
        snprintf(data, sizeof(data), "entry %d", i);
        audit_merkle_leaf_hash(data, strlen(data), leaves[i]);
        assert_int_equal(audit_merkle_frontier_push(f, leaves[i], emit, NULL), 0);
    }
}

static int setup(void **state)
{
    (void)state;
    return crypto_init();
}

static void test_ct_vectors(void **state)
{
    (void)state;
    struct audit_merkle_frontier f;
    uint8_t data[16], root[H], want[H], empty[H];
    audit_merkle_frontier_init(&f);
    audit_merkle_frontier_root(&f, root);
    crypto_sha256("", 0, empty);
    assert_memory_equal(root, empty, H);
    for (int i = 0; i < 8; i++) {
        size_t len = strlen(CT_LEAVES[i]) / 2;
        assert_int_equal(crypto_unhex(CT_LEAVES[i], 2 * len, data, len), 0);
        audit_merkle_leaf_hash(data, len, leaves[i]);
        audit_merkle_frontier_push(&f, leaves[i], NULL, NULL);
        audit_merkle_frontier_root(&f, root);
        assert_int_equal(crypto_unhex(CT_ROOTS[i], 64, want, H), 0);
        assert_memory_equal(root, want, H);
    }
}

/* The frontier's root and the tiles' tree hash equal the definition at every size, and the
 * frontier survives being stored and loaded. */
static void test_roots_and_tiles(void **state)
{
    (void)state;
    struct audit_merkle_frontier f, g;
    uint8_t a[H], b[H], c[H];
    build(MAXN, &f);
    assert_int_equal(emitted[0], MAXN);
    assert_int_equal(emitted[1], MAXN / 256);
    for (long long i = 0; i < emitted[1]; i++) { /* a level-1 hash is a full tile's root */
        naive(i * 256, i * 256 + 256, a);
        assert_memory_equal(levels[1][i], a, H);
    }
    for (int n = 1; n <= MAXN; n++) {
        naive(0, n, a);
        assert_int_equal(audit_merkle_tree_hash(n, read_levels, NULL, b), 0);
        assert_memory_equal(a, b, H);
        audit_merkle_frontier_init(&g);
        for (int i = 0; i < n; i++)
            audit_merkle_frontier_push(&g, leaves[i], NULL, NULL);
        f = g;
        audit_merkle_frontier_root(&f, c);
        assert_memory_equal(a, c, H);
        assert_int_equal(audit_merkle_frontier_load(&g, f.size, f.h, (size_t)f.n * H), 0);
        audit_merkle_frontier_root(&g, c);
        assert_memory_equal(a, c, H);
        if (n > 1)
            assert_int_equal(audit_merkle_frontier_load(&g, f.size, f.h, (size_t)f.n * H - 1), -1);
    }
}

static void flip_each(long long m, long long n, const uint8_t leaf[H], uint8_t (*proof)[H],
                      int count, const uint8_t root[H])
{
    for (int i = 0; i < count; i++) {
        proof[i][i % H] ^= 0x20;
        assert_int_equal(
            audit_merkle_check_inclusion(m, n, leaf, (const uint8_t(*)[H])proof, count, root), -1);
        proof[i][i % H] ^= 0x20;
    }
}

/* Every inclusion proof of every tree up to 70 leaves, and a spread over larger ones. */
static void test_inclusion(void **state)
{
    (void)state;
    struct audit_merkle_frontier f;
    uint8_t proof[AUDIT_MERKLE_PROOF_MAX][H], root[H];
    int count;
    build(MAXN, &f);
    for (long long n = 1; n <= MAXN; n += n < 70 ? 1 : 37) {
        naive(0, n, root);
        for (long long m = 0; m < n; m += n < 70 ? 1 : 13) {
            assert_int_equal(audit_merkle_prove_inclusion(m, n, read_levels, NULL, proof, &count),
                             0);
            const uint8_t(*p)[H] = (const uint8_t(*)[H])proof;
            assert_int_equal(audit_merkle_check_inclusion(m, n, leaves[m], p, count, root), 0);
            if (audit_merkle_check_inclusion(m, n, leaves[(m + 1) % n], p, count, root) !=
                (n == 1 ? 0 : -1))
                fail_msg("m %lld n %lld: another leaf passes", m, n);
            assert_int_equal(audit_merkle_check_inclusion(m, m, leaves[m], p, count, root), -1);
            if (count > 0)
                assert_int_equal(audit_merkle_check_inclusion(m, n, leaves[m], p, count - 1, root),
                                 -1);
            flip_each(m, n, leaves[m], proof, count, root);
        }
    }
    assert_int_equal(audit_merkle_prove_inclusion(5, 5, read_levels, NULL, proof, &count), -1);
    assert_int_equal(audit_merkle_prove_inclusion(-1, 5, read_levels, NULL, proof, &count), -1);
}

static void test_consistency(void **state)
{
    (void)state;
    struct audit_merkle_frontier f;
    uint8_t proof[AUDIT_MERKLE_PROOF_MAX][H], rm[H], rn[H];
    int count;
    build(MAXN, &f);
    for (long long n = 1; n <= MAXN; n += n < 70 ? 1 : 41) {
        naive(0, n, rn);
        for (long long m = 1; m <= n; m += n < 70 ? 1 : 17) {
            naive(0, m, rm);
            assert_int_equal(audit_merkle_prove_consistency(m, n, read_levels, NULL, proof, &count),
                             0);
            const uint8_t(*p)[H] = (const uint8_t(*)[H])proof;
            assert_int_equal(audit_merkle_check_consistency(m, n, rm, rn, p, count), 0);
            if (m == n) {
                assert_int_equal(count, 0);
                continue;
            }
            assert_int_equal(audit_merkle_check_consistency(m, n, rn, rn, p, count), -1);
            assert_int_equal(audit_merkle_check_consistency(m, n, rm, rm, p, count), -1);
            assert_int_equal(audit_merkle_check_consistency(m, n, rm, rn, p, count - 1), -1);
            for (int i = 0; i < count; i++) {
                proof[i][7] ^= 1;
                assert_int_equal(audit_merkle_check_consistency(m, n, rm, rn, p, count), -1);
                proof[i][7] ^= 1;
            }
        }
    }
    assert_int_equal(audit_merkle_prove_consistency(0, 5, read_levels, NULL, proof, &count), -1);
    assert_int_equal(audit_merkle_prove_consistency(6, 5, read_levels, NULL, proof, &count), -1);
}

/* The frontier read from tiles is the one the leaves were pushed into, at every size. */
static void test_frontier_at(void **state)
{
    (void)state;
    struct audit_merkle_frontier f, g;
    build(MAXN, &f);
    audit_merkle_frontier_init(&f);
    for (int n = 0; n <= MAXN; n++) {
        assert_int_equal(audit_merkle_frontier_at(n, read_levels, NULL, &g), 0);
        assert_int_equal(g.size, f.size);
        assert_int_equal(g.n, f.n);
        assert_memory_equal(g.h, f.h, (size_t)f.n * H);
        if (n < MAXN)
            audit_merkle_frontier_push(&f, leaves[n], NULL, NULL);
    }
    assert_int_equal(audit_merkle_frontier_at(MAXN + 1, read_levels, NULL, &g), -1);
}

/* The spec's example: a tree of 70,000 leaves. */
static void test_tile_widths(void **state)
{
    (void)state;
    assert_int_equal(audit_tile_width(0, 272, 70000), 256);
    assert_int_equal(audit_tile_width(0, 273, 70000), 112);
    assert_int_equal(audit_tile_width(0, 274, 70000), 0);
    assert_int_equal(audit_tile_width(1, 0, 70000), 256);
    assert_int_equal(audit_tile_width(1, 1, 70000), 17);
    assert_int_equal(audit_tile_width(2, 0, 70000), 1);
    assert_int_equal(audit_tile_width(3, 0, 70000), 0);
    assert_int_equal(audit_tile_width(AUDIT_TILE_ENTRIES, 273, 70000), 112);
    assert_int_equal(audit_tile_width(0, 0, 0), 0);
}

static void test_tile_paths(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        long long index;
        int level, width;
    } ok[] = {{"tile/0/005", 5, 0, 256},
              {"tile/0/x001/x234/067", 1234067, 0, 256},
              {"tile/1/x001/234.p/17", 1234, 1, 17},
              {"tile/entries/000.p/1", 0, AUDIT_TILE_ENTRIES, 1},
              {"tile/entries/x003/906", 3906, AUDIT_TILE_ENTRIES, 256},
              {"tile/2/000.p/255", 0, 2, 255}};
    static const char *const bad[] = {
        "tile/0/5",         "tile/0/0005",
        "tile/0/x000/005",  "tile/00/005",
        "tile/8/000",       "tile/0/005.p/0",
        "tile/0/005.p/256", "tile/0/005.p/017",
        "tile/0/005/",      "tile/0/x1/005",
        "tile/entries/5",   "tile/-1/000",
        "tile/0/005.p/",    "tile//005",
        "tiles/0/005",      "tile/0/x001/x002/x003/x004/x005/x006/007"};
    struct audit_tile_ref t;
    char out[AUDIT_TILE_PATH_MAX];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (audit_tile_parse(ok[i].path, &t) != 0)
            fail_msg("%s did not parse", ok[i].path);
        assert_int_equal(t.level, ok[i].level);
        assert_int_equal(t.index, ok[i].index);
        assert_int_equal(t.width, ok[i].width);
        assert_true(audit_tile_format(&t, out, sizeof(out)) > 0);
        assert_string_equal(out, ok[i].path);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (audit_tile_parse(bad[i], &t) == 0)
            fail_msg("%s parsed", bad[i]);
}

/* A tile set records what a computation reads, then answers it from fetched data. */
static void test_tileset(void **state)
{
    (void)state;
    struct audit_merkle_frontier f;
    struct audit_tileset s;
    uint8_t root[H], want[H];
    build(MAXN, &f);
    audit_tileset_init(&s);
    assert_int_equal(audit_merkle_tree_hash(MAXN, audit_tileset_read, &s, root), 0);
    assert_true(s.n >= 2 && s.n <= 4);
    for (size_t i = 0; i < s.n; i++) {
        s.t[i].data = malloc((size_t)s.t[i].width * H);
        memcpy(s.t[i].data, levels[s.t[i].level][s.t[i].index * 256], (size_t)s.t[i].width * H);
    }
    audit_tileset_serve(&s);
    assert_int_equal(audit_merkle_tree_hash(MAXN, audit_tileset_read, &s, root), 0);
    naive(0, MAXN, want);
    assert_memory_equal(root, want, H);
    s.t[0].width--; /* narrower than a read needs */
    assert_int_equal(audit_merkle_tree_hash(MAXN, audit_tileset_read, &s, root), -1);
    audit_tileset_clear(&s);
    audit_tileset_clear(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ct_vectors),  cmocka_unit_test(test_roots_and_tiles),
        cmocka_unit_test(test_inclusion),   cmocka_unit_test(test_consistency),
        cmocka_unit_test(test_frontier_at), cmocka_unit_test(test_tile_widths),
        cmocka_unit_test(test_tile_paths),  cmocka_unit_test(test_tileset),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
