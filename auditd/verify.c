/* SPDX-License-Identifier: Apache-2.0 */
/* verify: sequential chain checks plus signature checks spread over worker threads. */
#include "verify.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SIG_BLOCK 256  /* signatures per job handed to a worker */
#define QUEUE_BLOCKS 8 /* blocks queued before the reader waits: bounds memory */

struct sig_job {
    long long seq;
    const uint8_t *pk;
    uint8_t md[CRYPTO_SHA256_LEN];
    uint8_t sig[CRYPTO_ED25519_SIG_LEN];
};

struct sig_block {
    struct sig_job jobs[SIG_BLOCK];
    size_t n;
    struct sig_block *next;
};

struct audit_verifier {
    const struct audit_keyring *kr;
    long long expect_seq; /* next seq wanted */
    char prev[AUDIT_HASH_HEX_LEN + 1];
    int prev_known;
    long long from_seq, last_seq;
    char last_hash[AUDIT_HASH_HEX_LEN + 1];
    /* expected heads (checkpoints): the chain must hold hash[i] at seq[i] */
    long long exp_seq[AUDIT_VERIFY_EXPECT_MAX];
    char exp_hash[AUDIT_VERIFY_EXPECT_MAX][AUDIT_HASH_HEX_LEN + 1];
    int exp_seen[AUDIT_VERIFY_EXPECT_MAX], nexp;
    struct audit_treecheck *tree; /* NULL: the tree is not checked */
    /* first failure found by the sequential checks */
    long long bad_seq;
    enum audit_reason bad_reason;
    /* signature workers */
    int threads;
    pthread_t *tids;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sig_block *head, *tail, *filling;
    size_t queued;
    int closing;
    long long sig_bad_seq; /* lowest seq with a bad signature, 0 none */
};

static const char *const REASONS[] = {
    "ok",          "hash_mismatch", "prev_mismatch", "bad_signature",
    "gap",         "head_mismatch", "tree_mismatch", "tile_mismatch",
    "unknown_key", "truncated",     "head_missing",  "trimmed"};

const char *audit_reason_name(enum audit_reason r)
{
    return (unsigned)r < sizeof(REASONS) / sizeof(REASONS[0]) ? REASONS[r] : "unknown";
}

int audit_reason_tampered(enum audit_reason r)
{
    return r >= AUDIT_HASH_MISMATCH && r <= AUDIT_TILE_MISMATCH;
}

static void sig_bad(struct audit_verifier *v, long long seq)
{
    pthread_mutex_lock(&v->mu);
    if (v->sig_bad_seq == 0 || seq < v->sig_bad_seq)
        v->sig_bad_seq = seq;
    pthread_mutex_unlock(&v->mu);
}

static void check_block(struct audit_verifier *v, const struct sig_block *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct sig_job *j = &b->jobs[i];
        if (!crypto_ed25519_verify(j->pk, j->md, sizeof(j->md), j->sig)) {
            sig_bad(v, j->seq);
            return; /* later seqs in this block cannot be the first bad one */
        }
    }
}

static void *sig_worker(void *arg)
{
    struct audit_verifier *v = arg;
    for (;;) {
        pthread_mutex_lock(&v->mu);
        while (!v->head && !v->closing)
            pthread_cond_wait(&v->cv, &v->mu);
        struct sig_block *b = v->head;
        if (!b) {
            pthread_mutex_unlock(&v->mu);
            return NULL;
        }
        v->head = b->next;
        if (!v->head)
            v->tail = NULL;
        v->queued--;
        pthread_cond_broadcast(&v->cv);
        pthread_mutex_unlock(&v->mu);
        check_block(v, b);
        free(b);
    }
}

struct audit_verifier *audit_verifier_create(const struct audit_keyring *kr, int threads,
                                             long long from_seq, const char *prev)
{
    struct audit_verifier *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->kr = kr;
    v->from_seq = from_seq < 1 ? 1 : from_seq;
    v->expect_seq = v->from_seq;
    if (prev || v->from_seq == 1) {
        memcpy(v->prev, prev ? prev : AUDIT_ZERO_HASH, AUDIT_HASH_HEX_LEN);
        v->prev_known = 1;
    }
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->cv, NULL);
    /* With threads > 0 the caller's thread only reads and hashes; the signatures, the
     * bulk of the work, are checked by the workers meanwhile. */
    v->threads = threads > 0 ? threads : 0;
    if (v->threads > 0) {
        v->tids = calloc((size_t)v->threads, sizeof(*v->tids));
        for (int i = 0; v->tids && i < v->threads; i++)
            if (pthread_create(&v->tids[i], NULL, sig_worker, v) != 0)
                v->threads = i; /* run with the workers that started */
        if (v->threads == 0) {
            free(v->tids);
            v->tids = NULL;
        }
    }
    return v;
}

static int fail_at(struct audit_verifier *v, long long seq, enum audit_reason r)
{
    v->bad_seq = seq;
    v->bad_reason = r;
    return 1;
}

/* The trusted link (the hash before the next entry) is known: an expected head exactly
 * there is compared now. Returns 1 on a mismatch. */
static int check_link(struct audit_verifier *v)
{
    for (int i = 0; i < v->nexp; i++) {
        if (v->exp_seq[i] != v->expect_seq - 1 || v->exp_seen[i])
            continue;
        if (strcmp(v->exp_hash[i], v->prev) != 0)
            return fail_at(v, v->exp_seq[i], AUDIT_HEAD_MISMATCH);
        v->exp_seen[i] = 1;
    }
    return 0;
}

int audit_verifier_expect(struct audit_verifier *v, long long seq, const char *hash)
{
    if (v->nexp == AUDIT_VERIFY_EXPECT_MAX)
        return -1;
    v->exp_seq[v->nexp] = seq;
    snprintf(v->exp_hash[v->nexp], sizeof(v->exp_hash[0]), "%s", hash);
    v->exp_seen[v->nexp++] = 0;
    if (v->prev_known && !v->bad_seq)
        check_link(v);
    return 0;
}

int audit_verifier_tree(struct audit_verifier *v, const struct audit_merkle_frontier *start)
{
    if (!v->tree && !(v->tree = malloc(sizeof(*v->tree))))
        return -1;
    audit_treecheck_init(v->tree, start);
    return 0;
}

int audit_verifier_tile_source(struct audit_verifier *v, struct audit_tile_source src)
{
    return v->tree ? audit_treecheck_source(v->tree, src) : -1;
}

int audit_verifier_expect_root(struct audit_verifier *v, long long size,
                               const uint8_t root[AUDIT_MERKLE_HASH_LEN])
{
    return v->tree ? audit_treecheck_expect(v->tree, size, root) : 0;
}

/* The tree's first failure, if any, becomes the verifier's (when it comes first). */
static int tree_failed(struct audit_verifier *v)
{
    if (!v->tree || !v->tree->bad_seq || (v->bad_seq && v->bad_seq <= v->tree->bad_seq))
        return v->bad_seq != 0;
    return fail_at(v, v->tree->bad_seq,
                   v->tree->bad_tile ? AUDIT_TILE_MISMATCH : AUDIT_TREE_MISMATCH);
}

int audit_verifier_flush_tiles(struct audit_verifier *v)
{
    if (v->tree && !v->bad_seq)
        audit_treecheck_flush(v->tree);
    return tree_failed(v);
}

void audit_verifier_fail(struct audit_verifier *v, long long seq, enum audit_reason reason)
{
    if (!v->bad_seq || seq < v->bad_seq)
        fail_at(v, seq, reason);
}

static void submit_block(struct audit_verifier *v)
{
    struct sig_block *b = v->filling;
    v->filling = NULL;
    if (!b)
        return;
    pthread_mutex_lock(&v->mu);
    while (v->queued >= QUEUE_BLOCKS)
        pthread_cond_wait(&v->cv, &v->mu);
    if (v->tail)
        v->tail->next = b;
    else
        v->head = b;
    v->tail = b;
    v->queued++;
    pthread_cond_broadcast(&v->cv);
    pthread_mutex_unlock(&v->mu);
}

/* Queue (or, single-threaded, run) the signature check of one entry. */
static int check_sig(struct audit_verifier *v, const struct audit_entry *e, const uint8_t *pk,
                     const uint8_t md[CRYPTO_SHA256_LEN])
{
    struct sig_job j = {.seq = e->seq, .pk = pk};
    memcpy(j.md, md, sizeof(j.md));
    if (strlen(e->sig) != AUDIT_SIG_B64_LEN ||
        crypto_unb64(e->sig, AUDIT_SIG_B64_LEN, j.sig, sizeof(j.sig)) != CRYPTO_ED25519_SIG_LEN)
        return -1;
    if (v->threads == 0)
        return crypto_ed25519_verify(pk, j.md, sizeof(j.md), j.sig) ? 0 : -1;
    if (!v->filling && !(v->filling = calloc(1, sizeof(*v->filling))))
        return crypto_ed25519_verify(pk, j.md, sizeof(j.md), j.sig) ? 0 : -1;
    v->filling->jobs[v->filling->n++] = j;
    if (v->filling->n == SIG_BLOCK)
        submit_block(v);
    return 0;
}

int audit_verifier_feed(struct audit_verifier *v, const struct audit_entry *e)
{
    uint8_t md[CRYPTO_SHA256_LEN];
    char hex[AUDIT_HASH_HEX_LEN + 1], prev[AUDIT_HASH_HEX_LEN + 1], ts[AUDIT_TS_LEN + 1], kv[8];
    long long body_seq;
    if (v->bad_seq)
        return 1;
    if (e->seq != v->expect_seq)
        return fail_at(v, v->expect_seq, AUDIT_GAP);
    audit_body_hash(e->body, e->body_len, hex, md);
    if (strcmp(hex, e->hash) != 0 ||
        audit_body_parse(e->body, e->body_len, &body_seq, prev, ts, kv, NULL) != 0)
        return fail_at(v, e->seq, AUDIT_HASH_MISMATCH);
    if (body_seq != e->seq)
        return fail_at(v, e->seq, AUDIT_GAP);
    if (v->prev_known && strcmp(prev, v->prev) != 0)
        return fail_at(v, e->seq, AUDIT_PREV_MISMATCH);
    if (!v->prev_known) { /* --from-seq without the previous entry: trust this link */
        memcpy(v->prev, prev, sizeof(v->prev));
        v->prev_known = 1;
        if (check_link(v))
            return 1;
    }
    const struct audit_key *k = audit_keyring_find(v->kr, kv);
    if (!k)
        return fail_at(v, e->seq, AUDIT_UNKNOWN_KEY);
    if (check_sig(v, e, k->pk, md) != 0)
        return fail_at(v, e->seq, AUDIT_BAD_SIGNATURE);
    for (int i = 0; i < v->nexp; i++)
        if (v->exp_seq[i] == e->seq) {
            if (strcmp(v->exp_hash[i], hex) != 0)
                return fail_at(v, e->seq, AUDIT_HEAD_MISMATCH);
            v->exp_seen[i] = 1;
        }
    if (v->tree && audit_treecheck_push(v->tree, e->body, e->body_len) != 0)
        return tree_failed(v);
    memcpy(v->prev, hex, sizeof(v->prev));
    v->prev_known = 1;
    memcpy(v->last_hash, hex, sizeof(v->last_hash));
    v->last_seq = e->seq;
    v->expect_seq++;
    return 0;
}

static void join_workers(struct audit_verifier *v)
{
    if (v->threads == 0 || !v->tids)
        return;
    submit_block(v);
    pthread_mutex_lock(&v->mu);
    v->closing = 1;
    pthread_cond_broadcast(&v->cv);
    pthread_mutex_unlock(&v->mu);
    for (int i = 0; i < v->threads; i++)
        pthread_join(v->tids[i], NULL);
    free(v->tids);
    v->tids = NULL;
}

/* The head and expectation checks, once every entry passed. end is the last seq
 * verified, or from_seq - 1 when none was; v->prev is the hash there (when known). */
static void check_end(struct audit_verifier *v, int head_known, int head_exists, long long head_seq,
                      const char *head_hash)
{
    long long end = v->expect_seq - 1;
    if (head_known && !head_exists && v->last_seq > 0)
        fail_at(v, v->last_seq + 1, AUDIT_HEAD_MISSING);
    else if (head_known && head_exists && end > head_seq) /* asked to start past the head */
        fail_at(v, head_seq + 1, AUDIT_TRUNCATED);
    else if (head_known && head_exists &&
             (end < head_seq ||
              (head_seq > 0 && (!v->prev_known || strcmp(v->prev, head_hash) != 0))))
        fail_at(v, end < head_seq ? end + 1 : head_seq, AUDIT_HEAD_MISMATCH);
    else
        for (int i = 0; i < v->nexp && !v->bad_seq; i++)
            if (!v->exp_seen[i] && end < v->exp_seq[i])
                fail_at(v, end + 1, AUDIT_TRUNCATED);
    if (!v->bad_seq)
        audit_verifier_flush_tiles(v);
}

void audit_verifier_finish(struct audit_verifier *v, int head_known, int head_exists,
                           long long head_seq, const char *head_hash, struct audit_vresult *out)
{
    join_workers(v);
    if (!v->bad_seq)
        check_end(v, head_known, head_exists, head_seq, head_hash);
    memset(out, 0, sizeof(*out));
    out->first_bad_seq = v->bad_seq;
    out->reason = v->bad_reason;
    if (v->sig_bad_seq && (!v->bad_seq || v->sig_bad_seq <= v->bad_seq)) {
        out->first_bad_seq = v->sig_bad_seq;
        out->reason = AUDIT_BAD_SIGNATURE;
    }
    out->ok = out->first_bad_seq == 0;
    out->first_seq = v->last_seq ? v->from_seq : 0;
    out->last_seq = v->last_seq;
    out->head_seq = head_known ? head_seq : v->last_seq;
    out->checked = out->ok ? (v->last_seq ? v->last_seq - v->from_seq + 1 : 0)
                           : out->first_bad_seq - v->from_seq;
    if (out->checked < 0)
        out->checked = 0;
    memcpy(out->last_hash,
           v->last_seq     ? v->last_hash
           : v->prev_known ? v->prev
                           : AUDIT_ZERO_HASH,
           AUDIT_HASH_HEX_LEN + 1);
}

void audit_verifier_free(struct audit_verifier *v)
{
    if (!v)
        return;
    join_workers(v);
    free(v->tree);
    free(v->filling);
    pthread_mutex_destroy(&v->mu);
    pthread_cond_destroy(&v->cv);
    free(v);
}
