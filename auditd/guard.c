/* SPDX-License-Identifier: Apache-2.0 */
/* guard: the floor of what this instance has seen, and the refusal of a chain without it. */
#include "guard.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/crypto.h"
#include "shared/log.h"
#include "state.h"

struct audit_guard {
    pthread_mutex_t mu;
    struct audit_state *state; /* NULL: memory only */
    char chain[AUDIT_CHAIN_MAX + 1];
    struct audit_floor floor;
    long long saved_seq; /* what the state file holds; -1: not written by this process */
    char saved_root[AUDIT_HASH_HEX_LEN + 1];
    int save_failing; /* the last write failed (logged once per streak) */
    /* the refusal, while Redis's chain does not hold the floor */
    enum audit_verdict verdict;
    long long redis_seq;
    char redis_hash[AUDIT_HASH_HEX_LEN + 1];
    struct metric_series *m_refusing;
};

static const char *verdict_name(enum audit_verdict v)
{
    return v == AUDIT_CHAIN_SHORTER     ? "shorter"
           : v == AUDIT_CHAIN_DIFFERENT ? "different"
                                        : "holds";
}

struct audit_guard *audit_guard_create(const char *state_dir, const char *chain, const char *origin,
                                       struct metrics *m, char *err, size_t errsize)
{
    struct audit_guard *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&g->mu, NULL);
    snprintf(g->chain, sizeof(g->chain), "%s", chain);
    memcpy(g->floor.hash, AUDIT_ZERO_HASH, sizeof(g->floor.hash));
    g->saved_seq = -1;
    g->m_refusing = metric_with(
        metrics_gauge(m, "chain_refusing",
                      "1 while Redis shows a chain shorter than or different from what this "
                      "instance has seen (appends refused)",
                      NULL),
        NULL);
    if (state_dir) {
        g->state = audit_state_open(state_dir, chain, origin, err, errsize);
        int rc = g->state ? audit_state_load(g->state, &g->floor.seq, g->floor.hash, g->floor.root,
                                             err, errsize)
                          : -1;
        if (rc < 0) {
            audit_guard_free(g);
            return NULL;
        }
        if (rc == 1) {
            g->saved_seq = g->floor.seq;
            memcpy(g->saved_root, g->floor.root, sizeof(g->saved_root));
        }
    }
    metric_set(g->m_refusing, 0);
    return g;
}

void audit_guard_free(struct audit_guard *g)
{
    if (!g)
        return;
    audit_state_close(g->state);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

void audit_guard_floor(struct audit_guard *g, struct audit_floor *f)
{
    pthread_mutex_lock(&g->mu);
    *f = g->floor;
    pthread_mutex_unlock(&g->mu);
}

enum audit_verdict audit_guard_judge(const struct audit_floor *f, long long head_seq,
                                     const char *head_hash, const char *hash_at_floor)
{
    if (f->seq == 0)
        return AUDIT_CHAIN_HOLDS;
    if (head_seq < f->seq)
        return AUDIT_CHAIN_SHORTER;
    const char *at = head_seq == f->seq ? head_hash : hash_at_floor;
    return at && strcmp(at, f->hash) == 0 ? AUDIT_CHAIN_HOLDS : AUDIT_CHAIN_DIFFERENT;
}

void audit_guard_advance(struct audit_guard *g, const struct audit_floor *f, long long seq,
                         const char *hash, const char *root)
{
    pthread_mutex_lock(&g->mu);
    if (f->epoch == g->floor.epoch) {
        if (seq > g->floor.seq) {
            g->floor.seq = seq;
            snprintf(g->floor.hash, sizeof(g->floor.hash), "%s", hash);
            snprintf(g->floor.root, sizeof(g->floor.root), "%s", root);
        } else if (seq == g->floor.seq && !g->floor.root[0]) { /* the tree caught up */
            snprintf(g->floor.root, sizeof(g->floor.root), "%s", root);
        }
        if (g->verdict != AUDIT_CHAIN_HOLDS) {
            log_warn(NULL, "audit chain holds what this instance has seen again: appending",
                     LF_S("chain", g->chain), LF_I("head_seq", seq));
            g->verdict = AUDIT_CHAIN_HOLDS;
            metric_set(g->m_refusing, 0);
        }
    }
    pthread_mutex_unlock(&g->mu);
}

void audit_guard_refuse(struct audit_guard *g, const struct audit_floor *f, enum audit_verdict v,
                        long long seq, const char *hash)
{
    pthread_mutex_lock(&g->mu);
    if (f->epoch == g->floor.epoch && v != AUDIT_CHAIN_HOLDS) {
        /* Once per refusal, not per request: the first line is the page, the rest would
         * bury it. */
        if (g->verdict == AUDIT_CHAIN_HOLDS)
            log_critical(NULL,
                         "audit chain in redis is not the one this instance has seen: refusing to "
                         "append until it is restored or accepted (POST /v1/admin/chain/accept)",
                         LF_S("chain", g->chain), LF_S("redis_chain", verdict_name(v)),
                         LF_I("redis_head_seq", seq), LF_S("redis_head_hash", hash),
                         LF_I("seen_seq", g->floor.seq), LF_S("seen_hash", g->floor.hash));
        g->verdict = v;
        g->redis_seq = seq;
        snprintf(g->redis_hash, sizeof(g->redis_hash), "%s", hash);
        metric_set(g->m_refusing, 1);
    }
    pthread_mutex_unlock(&g->mu);
}

int audit_guard_refusing(struct audit_guard *g, char *detail, size_t size)
{
    pthread_mutex_lock(&g->mu);
    int refusing = g->verdict != AUDIT_CHAIN_HOLDS;
    if (refusing && detail)
        snprintf(detail, size,
                 "the chain in Redis is %s than the one this instance has seen (Redis head seq "
                 "%lld, seen seq %lld): nothing was appended; restore it, or accept it with POST "
                 "/v1/admin/chain/accept",
                 g->verdict == AUDIT_CHAIN_SHORTER ? "shorter" : "different from", g->redis_seq,
                 g->floor.seq);
    pthread_mutex_unlock(&g->mu);
    return refusing;
}

/* Write the floor; called with mu held. */
static int save_locked(struct audit_guard *g)
{
    char err[4400];
    if (!g->state || (g->saved_seq == g->floor.seq && strcmp(g->saved_root, g->floor.root) == 0))
        return 0;
    if (audit_state_save(g->state, g->floor.seq, g->floor.hash, g->floor.root, err, sizeof(err)) !=
        0) {
        if (!g->save_failing)
            log_error(NULL, "cannot write the audit state file: appends answer 503 until it works",
                      LF_S("detail", err));
        g->save_failing = 1;
        return -1;
    }
    if (g->save_failing)
        log_info(NULL, "audit state file written again", LF_S("path", audit_state_path(g->state)));
    g->save_failing = 0;
    g->saved_seq = g->floor.seq;
    memcpy(g->saved_root, g->floor.root, sizeof(g->saved_root));
    return 0;
}

int audit_guard_sync(struct audit_guard *g)
{
    pthread_mutex_lock(&g->mu);
    int rc = save_locked(g);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

int audit_guard_accept(struct audit_guard *g, long long seq, const char *hash, const char *root)
{
    pthread_mutex_lock(&g->mu);
    g->floor.seq = seq;
    snprintf(g->floor.hash, sizeof(g->floor.hash), "%s", hash);
    snprintf(g->floor.root, sizeof(g->floor.root), "%s", root);
    g->floor.epoch++;
    g->verdict = AUDIT_CHAIN_HOLDS;
    metric_set(g->m_refusing, 0);
    g->saved_seq = -1; /* the file must follow, even where the seq is the same */
    int rc = save_locked(g);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

/* The tree's part of the rule, once the chain holds f: the head's tree fields well formed,
 * the tree at least as large as the floor, and the roots recomputed from the tiles equal to
 * the floor's (at its size) and to the head's (at the tree's size). tree_early says when
 * the verdict needs no roots (returns 1 with *v set); the roots to compute are those at
 * *m and at the tree's size. */
static int tree_early(const struct audit_floor *f, const struct audit_head *head,
                      enum audit_verdict *v, long long *m)
{
    int known = f->root[0] != '\0';
    *v = AUDIT_CHAIN_DIFFERENT;
    *m = known ? f->seq : 0;
    if (!head->tree_ok)
        return 1;
    if (known && head->tree_size < f->seq) {
        *v = AUDIT_CHAIN_SHORTER;
        return 1;
    }
    return 0;
}

/* The verdict from the roots computed (rc as tree.h). root_hex gets the head's root when
 * the tree has the head's size, else "". */
static enum rreply_class tree_verdict(const struct audit_floor *f, const struct audit_head *head,
                                      int rc, uint8_t (*roots)[AUDIT_MERKLE_HASH_LEN],
                                      enum audit_verdict *v, char root_hex[AUDIT_HASH_HEX_LEN + 1])
{
    char hex[AUDIT_HASH_HEX_LEN + 1];
    int known = f->root[0] != '\0';
    *v = AUDIT_CHAIN_DIFFERENT;
    if (rc == AUDIT_TREE_REDIS || rc == AUDIT_TREE_REDIS_ERROR)
        return rc == AUDIT_TREE_REDIS ? RREPLY_UNAVAILABLE : RREPLY_INTERNAL;
    crypto_hex(roots[0], AUDIT_MERKLE_HASH_LEN, hex);
    if (rc != AUDIT_TREE_OK || (known && strcmp(hex, f->root) != 0) ||
        memcmp(roots[1], head->root, AUDIT_MERKLE_HASH_LEN) != 0)
        return RREPLY_OK;
    if (head->tree_size == head->seq && head->seq > 0)
        crypto_hex(roots[1], AUDIT_MERKLE_HASH_LEN, root_hex);
    *v = AUDIT_CHAIN_HOLDS;
    return RREPLY_OK;
}

/* The verdict v on the head h against f: advance or refuse, and sync. */
static void conclude(struct audit_guard *g, const struct audit_floor *f, enum audit_verdict v,
                     const struct audit_head *h, const char *root)
{
    if (v == AUDIT_CHAIN_HOLDS) {
        audit_guard_advance(g, f, h->seq, h->hash, root);
        audit_guard_sync(g);
    } else {
        audit_guard_refuse(g, f, v, h->seq, h->hash);
    }
}

enum rreply_class audit_guard_check(struct audit_guard *g, struct audit_db *p,
                                    const struct audit_keys *k, enum audit_verdict *v,
                                    struct audit_head *head)
{
    struct audit_floor f;
    struct audit_head h;
    char at[AUDIT_HASH_HEX_LEN + 1], root[AUDIT_HASH_HEX_LEN + 1] = "";
    uint8_t roots[2][AUDIT_MERKLE_HASH_LEN];
    long long m;
    audit_guard_floor(g, &f);
    enum rreply_class st = audit_store_head_at(p, k, f.seq, &h, at);
    if (st != RREPLY_OK)
        return st;
    *v = audit_guard_judge(&f, h.seq, h.hash, at[0] ? at : NULL);
    if (*v == AUDIT_CHAIN_HOLDS && !tree_early(&f, &h, v, &m)) {
        int rc = audit_tree_roots(p, k, m, h.tree_size, roots[0], roots[1]);
        st = tree_verdict(&f, &h, rc, roots, v, root);
    }
    if (st != RREPLY_OK)
        return st;
    conclude(g, &f, *v, &h, root);
    if (head)
        *head = h;
    return RREPLY_OK;
}

/* audit_guard_check_async's steps. */
struct guard_call {
    struct audit_guard *g;
    const struct audit_keys *k;
    struct rclient *rc;
    struct audit_floor f;
    struct audit_head h;
    char at[AUDIT_HASH_HEX_LEN + 1];
    uint8_t roots[2][AUDIT_MERKLE_HASH_LEN];
    enum audit_verdict *v;
    struct audit_head *head;
    int looked_again;
    audit_guard_fn fn;
    void *arg;
};

static void guard_head_read(void *arg, enum rreply_class c);

static void guard_answer(struct guard_call *t, enum rreply_class c, const char *root)
{
    if (c == RREPLY_OK) {
        conclude(t->g, &t->f, *t->v, &t->h, root);
        if (t->head)
            *t->head = t->h;
    }
    audit_guard_fn fn = t->fn;
    void *arg = t->arg;
    free(t);
    fn(arg, c);
}

static void guard_roots_read(void *arg, int rc)
{
    struct guard_call *t = arg;
    char root[AUDIT_HASH_HEX_LEN + 1] = "";
    enum rreply_class c = tree_verdict(&t->f, &t->h, rc, t->roots, t->v, root);
    /* The tiles come a round trip after the head: a chain changed in between (emptied,
     * restored) reads as a tree that does not match. Before refusing, look once more from
     * the head, so the refusal names what Redis holds now. */
    if (c == RREPLY_OK && *t->v != AUDIT_CHAIN_HOLDS && !t->looked_again) {
        t->looked_again = 1;
        if (audit_store_head_at_async(t->rc, t->k, t->f.seq, &t->h, t->at, guard_head_read, t) == 0)
            return;
    }
    guard_answer(t, c, root);
}

static void guard_head_read(void *arg, enum rreply_class c)
{
    struct guard_call *t = arg;
    long long m;
    if (c != RREPLY_OK) {
        guard_answer(t, c, "");
        return;
    }
    *t->v = audit_guard_judge(&t->f, t->h.seq, t->h.hash, t->at[0] ? t->at : NULL);
    if (*t->v != AUDIT_CHAIN_HOLDS || tree_early(&t->f, &t->h, t->v, &m)) {
        guard_answer(t, RREPLY_OK, "");
        return;
    }
    int rc = audit_tree_roots_async(t->rc, t->k, m, t->h.tree_size, t->roots, guard_roots_read, t);
    if (rc != AUDIT_TREE_OK)
        guard_roots_read(t, rc);
}

int audit_guard_check_async(struct audit_guard *g, struct rclient *rc, const struct audit_keys *k,
                            enum audit_verdict *v, struct audit_head *head, audit_guard_fn fn,
                            void *arg)
{
    struct guard_call *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    *t = (struct guard_call){.g = g, .k = k, .rc = rc, .v = v, .head = head, .fn = fn, .arg = arg};
    audit_guard_floor(g, &t->f);
    if (audit_store_head_at_async(rc, k, t->f.seq, &t->h, t->at, guard_head_read, t) != 0) {
        free(t);
        return -1;
    }
    return 0;
}
