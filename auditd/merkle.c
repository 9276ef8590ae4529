/* SPDX-License-Identifier: Apache-2.0 */
/* merkle: RFC 6962 hashing, the appender's frontier, proofs made from tiles and checked. */
#include "merkle.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>

/* Node hashes are most of the work of a proof or a root (hundreds each): OpenSSL's SHA-256
 * with a context kept per thread uses the CPU's SHA instructions where it has them, about
 * three times faster than libsodium's on 65 bytes. libsodium stays the fallback. */
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha_md;
static pthread_key_t sha_key;

static void sha_ctx_free(void *c)
{
    EVP_MD_CTX_free(c);
}

static void sha_init(void)
{
    sha_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (pthread_key_create(&sha_key, sha_ctx_free) != 0) {
        EVP_MD_free(sha_md);
        sha_md = NULL;
    }
}

/* SHA-256 of 65 bytes into out: OpenSSL when it can, else libsodium. */
static void sha256_65(const uint8_t in[65], uint8_t out[AUDIT_MERKLE_HASH_LEN])
{
    unsigned int len;
    pthread_once(&sha_once, sha_init);
    EVP_MD_CTX *c = sha_md ? pthread_getspecific(sha_key) : NULL;
    if (sha_md && !c && (c = EVP_MD_CTX_new()) != NULL && pthread_setspecific(sha_key, c) != 0) {
        EVP_MD_CTX_free(c);
        c = NULL;
    }
    if (!c || EVP_DigestInit_ex(c, sha_md, NULL) != 1 || EVP_DigestUpdate(c, in, 65) != 1 ||
        EVP_DigestFinal_ex(c, out, &len) != 1)
        crypto_hash_sha256(out, in, 65);
}

void audit_merkle_leaf_hash(const void *data, size_t len, uint8_t out[AUDIT_MERKLE_HASH_LEN])
{
    static const uint8_t prefix = 0x00;
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, &prefix, 1);
    crypto_hash_sha256_update(&st, data, len);
    crypto_hash_sha256_final(&st, out);
}

void audit_merkle_node_hash(const uint8_t left[AUDIT_MERKLE_HASH_LEN],
                            const uint8_t right[AUDIT_MERKLE_HASH_LEN],
                            uint8_t out[AUDIT_MERKLE_HASH_LEN])
{
    uint8_t buf[1 + 2 * AUDIT_MERKLE_HASH_LEN];
    buf[0] = 0x01;
    memcpy(buf + 1, left, AUDIT_MERKLE_HASH_LEN);
    memcpy(buf + 1 + AUDIT_MERKLE_HASH_LEN, right, AUDIT_MERKLE_HASH_LEN);
    sha256_65(buf, out);
}

void audit_merkle_empty_root(uint8_t out[AUDIT_MERKLE_HASH_LEN])
{
    crypto_hash_sha256(out, NULL, 0);
}

void audit_merkle_frontier_init(struct audit_merkle_frontier *f)
{
    f->size = 0;
    f->n = 0;
}

/* The subtrees merge like a binary counter: a new leaf is a subtree of height 0, and while
 * the one before it has the same height the two become one, a level up. A merge reaching a
 * height that is a multiple of 8 has just closed a tile of the level below. */
int audit_merkle_frontier_push(struct audit_merkle_frontier *f,
                               const uint8_t leaf[AUDIT_MERKLE_HASH_LEN], audit_merkle_emit_fn emit,
                               void *arg)
{
    long long old = f->size;
    if (old >= AUDIT_MERKLE_MAX_SIZE)
        return -1;
    if (emit)
        emit(arg, 0, old, leaf);
    memcpy(f->h[f->n++], leaf, AUDIT_MERKLE_HASH_LEN);
    f->size = old + 1;
    for (int height = 1; old & 1; height++, old >>= 1) {
        f->n--;
        audit_merkle_node_hash(f->h[f->n - 1], f->h[f->n], f->h[f->n - 1]);
        if (emit && height % AUDIT_MERKLE_TILE_HEIGHT == 0)
            emit(arg, height / AUDIT_MERKLE_TILE_HEIGHT, (f->size >> height) - 1, f->h[f->n - 1]);
    }
    return 0;
}

void audit_merkle_frontier_root(const struct audit_merkle_frontier *f,
                                uint8_t out[AUDIT_MERKLE_HASH_LEN])
{
    if (f->n == 0) {
        audit_merkle_empty_root(out);
        return;
    }
    memcpy(out, f->h[f->n - 1], AUDIT_MERKLE_HASH_LEN);
    for (int i = f->n - 2; i >= 0; i--)
        audit_merkle_node_hash(f->h[i], out, out);
}

int audit_merkle_frontier_load(struct audit_merkle_frontier *f, long long size, const void *raw,
                               size_t len)
{
    int n = __builtin_popcountll((unsigned long long)size);
    if (size < 0 || size > AUDIT_MERKLE_MAX_SIZE || len != (size_t)n * AUDIT_MERKLE_HASH_LEN)
        return -1;
    f->size = size;
    f->n = n;
    if (len)
        memcpy(f->h, raw, len);
    return 0;
}

/* ---- hashes of ranges, read from tiles ---------------------------------------------- */

struct reader {
    audit_merkle_read_fn rd;
    void *arg;
};

/* The root of the perfect subtree of height h at index k (leaves [k*2^h, (k+1)*2^h)): the
 * fold of 2^(h mod 8) consecutive hashes of tile level h / 8, which lie in one tile. */
static int subtree_hash(const struct reader *r, int h, long long k,
                        uint8_t out[AUDIT_MERKLE_HASH_LEN])
{
    uint8_t buf[AUDIT_MERKLE_TILE_WIDTH / 2][AUDIT_MERKLE_HASH_LEN];
    int level = h / AUDIT_MERKLE_TILE_HEIGHT, rest = h % AUDIT_MERKLE_TILE_HEIGHT,
        count = 1 << rest;
    int rc = r->rd(r->arg, level, k << rest, count, &buf[0][0]);
    if (rc < 0)
        return -1;
    if (rc == 1) { /* only noted: a first pass learning what is read computes nothing */
        memset(out, 0, AUDIT_MERKLE_HASH_LEN);
        return 0;
    }
    for (; count > 1; count /= 2)
        for (int i = 0; i < count / 2; i++)
            audit_merkle_node_hash(buf[2 * i], buf[2 * i + 1], buf[i]);
    memcpy(out, buf[0], AUDIT_MERKLE_HASH_LEN);
    return 0;
}

static long long largest_pow2_below(long long n) /* n >= 2 */
{
    long long k = 1;
    while (k * 2 < n)
        k *= 2;
    return k;
}

static int log2_exact(long long n) /* n a power of two */
{
    return __builtin_ctzll((unsigned long long)n);
}

/* MTH(D[lo:hi]). Every range RFC 6962's recursions ask for starts at a multiple of a power
 * of two at least its length, so it splits into aligned perfect subtrees. */
static int range_hash(const struct reader *r, long long lo, long long hi,
                      uint8_t out[AUDIT_MERKLE_HASH_LEN])
{
    long long n = hi - lo;
    if (n <= 0)
        return -1;
    if ((n & (n - 1)) == 0)
        return subtree_hash(r, log2_exact(n), lo >> log2_exact(n), out);
    long long k = largest_pow2_below(n);
    uint8_t left[AUDIT_MERKLE_HASH_LEN], right[AUDIT_MERKLE_HASH_LEN];
    if (range_hash(r, lo, lo + k, left) != 0 || range_hash(r, lo + k, hi, right) != 0)
        return -1;
    audit_merkle_node_hash(left, right, out);
    return 0;
}

int audit_merkle_tree_hash(long long n, audit_merkle_read_fn rd, void *arg,
                           uint8_t out[AUDIT_MERKLE_HASH_LEN])
{
    struct reader r = {rd, arg};
    if (n < 0 || n > AUDIT_MERKLE_MAX_SIZE)
        return -1;
    if (n == 0) {
        audit_merkle_empty_root(out);
        return 0;
    }
    return range_hash(&r, 0, n, out);
}

int audit_merkle_frontier_at(long long n, audit_merkle_read_fn rd, void *arg,
                             struct audit_merkle_frontier *f)
{
    struct reader r = {rd, arg};
    long long start = 0;
    if (n < 0 || n > AUDIT_MERKLE_MAX_SIZE)
        return -1;
    audit_merkle_frontier_init(f);
    for (int h = 62; h >= 0; h--) {
        if (!(n & (1LL << h)))
            continue;
        if (subtree_hash(&r, h, start >> h, f->h[f->n++]) != 0)
            return -1;
        start += 1LL << h;
    }
    f->size = n;
    return 0;
}

struct proof {
    uint8_t (*h)[AUDIT_MERKLE_HASH_LEN];
    int n;
};

static int proof_add(const struct reader *r, struct proof *p, long long lo, long long hi)
{
    if (p->n >= AUDIT_MERKLE_PROOF_MAX)
        return -1;
    return range_hash(r, lo, hi, p->h[p->n++]);
}

/* RFC 6962 §2.1.1 PATH(m, D[lo:hi]). */
static int path(const struct reader *r, struct proof *p, long long m, long long lo, long long hi)
{
    if (hi - lo == 1)
        return 0;
    long long k = largest_pow2_below(hi - lo);
    if (m < lo + k)
        return path(r, p, m, lo, lo + k) != 0 ? -1 : proof_add(r, p, lo + k, hi);
    return path(r, p, m, lo + k, hi) != 0 ? -1 : proof_add(r, p, lo, lo + k);
}

int audit_merkle_prove_inclusion(long long m, long long n, audit_merkle_read_fn rd, void *arg,
                                 uint8_t out[][AUDIT_MERKLE_HASH_LEN], int *count)
{
    struct reader r = {rd, arg};
    struct proof p = {out, 0};
    *count = 0;
    if (m < 0 || m >= n || n > AUDIT_MERKLE_MAX_SIZE || path(&r, &p, m, 0, n) != 0)
        return -1;
    *count = p.n;
    return 0;
}

/* RFC 6962 §2.1.2 SUBPROOF(m, D[lo:hi], b), m counted from leaf 0. */
static int subproof(const struct reader *r, struct proof *p, long long m, long long lo,
                    long long hi, int whole)
{
    if (m == hi)
        return whole ? 0 : proof_add(r, p, lo, hi);
    long long k = largest_pow2_below(hi - lo);
    if (m - lo <= k)
        return subproof(r, p, m, lo, lo + k, whole) != 0 ? -1 : proof_add(r, p, lo + k, hi);
    return subproof(r, p, m, lo + k, hi, 0) != 0 ? -1 : proof_add(r, p, lo, lo + k);
}

int audit_merkle_prove_consistency(long long m, long long n, audit_merkle_read_fn rd, void *arg,
                                   uint8_t out[][AUDIT_MERKLE_HASH_LEN], int *count)
{
    struct reader r = {rd, arg};
    struct proof p = {out, 0};
    *count = 0;
    if (m < 1 || m > n || n > AUDIT_MERKLE_MAX_SIZE)
        return -1;
    if (m < n && subproof(&r, &p, m, 0, n, 1) != 0)
        return -1;
    *count = p.n;
    return 0;
}

/* ---- checking proofs (RFC 9162's step-by-step algorithms) ---------------------------- */

/* A proof hash that is a left sibling: hash it in on the left of every running root, then
 * climb past the levels where the node is a right child with no sibling in the proof. */
static void left_sibling(const uint8_t sib[AUDIT_MERKLE_HASH_LEN],
                         uint8_t (*roots)[AUDIT_MERKLE_HASH_LEN], int nroots,
                         unsigned long long *fn, unsigned long long *sn)
{
    for (int i = 0; i < nroots; i++)
        audit_merkle_node_hash(sib, roots[i], roots[i]);
    while (!(*fn & 1) && *fn != 0) {
        *fn >>= 1;
        *sn >>= 1;
    }
}

int audit_merkle_check_inclusion(long long m, long long n,
                                 const uint8_t leaf[AUDIT_MERKLE_HASH_LEN],
                                 const uint8_t proof[][AUDIT_MERKLE_HASH_LEN], int count,
                                 const uint8_t root[AUDIT_MERKLE_HASH_LEN])
{
    uint8_t r[1][AUDIT_MERKLE_HASH_LEN];
    if (m < 0 || m >= n || n > AUDIT_MERKLE_MAX_SIZE || count < 0 || count > AUDIT_MERKLE_PROOF_MAX)
        return -1;
    unsigned long long fn = (unsigned long long)m, sn = (unsigned long long)(n - 1);
    memcpy(r[0], leaf, AUDIT_MERKLE_HASH_LEN);
    for (int i = 0; i < count; i++) {
        if (sn == 0)
            return -1;
        if ((fn & 1) || fn == sn)
            left_sibling(proof[i], r, 1, &fn, &sn);
        else
            audit_merkle_node_hash(r[0], proof[i], r[0]);
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && sodium_memcmp(r[0], root, AUDIT_MERKLE_HASH_LEN) == 0 ? 0 : -1;
}

int audit_merkle_check_consistency(long long m, long long n,
                                   const uint8_t root_m[AUDIT_MERKLE_HASH_LEN],
                                   const uint8_t root_n[AUDIT_MERKLE_HASH_LEN],
                                   const uint8_t proof[][AUDIT_MERKLE_HASH_LEN], int count)
{
    uint8_t roots[2][AUDIT_MERKLE_HASH_LEN]; /* the first tree's root, the second's */
    if (m < 1 || m > n || n > AUDIT_MERKLE_MAX_SIZE || count < 0 || count > AUDIT_MERKLE_PROOF_MAX)
        return -1;
    if (m == n)
        return count == 0 && sodium_memcmp(root_m, root_n, AUDIT_MERKLE_HASH_LEN) == 0 ? 0 : -1;
    if (count == 0)
        return -1;
    /* When m is a power of two the old root is itself the first node of the path. */
    int exact = (m & (m - 1)) == 0, i = exact ? 0 : 1;
    unsigned long long fn = (unsigned long long)(m - 1), sn = (unsigned long long)(n - 1);
    const uint8_t *first = exact ? root_m : proof[0];
    memcpy(roots[0], first, AUDIT_MERKLE_HASH_LEN);
    memcpy(roots[1], first, AUDIT_MERKLE_HASH_LEN);
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    for (; i < count; i++) {
        if (sn == 0)
            return -1;
        if ((fn & 1) || fn == sn)
            left_sibling(proof[i], roots, 2, &fn, &sn);
        else
            audit_merkle_node_hash(roots[1], proof[i], roots[1]);
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && sodium_memcmp(roots[0], root_m, AUDIT_MERKLE_HASH_LEN) == 0 &&
                   sodium_memcmp(roots[1], root_n, AUDIT_MERKLE_HASH_LEN) == 0
               ? 0
               : -1;
}
