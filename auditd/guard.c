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
 * the floor's (at its size) and to the head's (at the tree's size). root_hex gets the
 * head's root when the tree has the head's size, else "". */
static enum rreply_class judge_tree(struct rpool *p, const struct audit_keys *k,
                                    const struct audit_floor *f, const struct audit_head *head,
                                    enum audit_verdict *v, char root_hex[AUDIT_HASH_HEX_LEN + 1])
{
    uint8_t at_floor[MERKLE_HASH_LEN], at_head[MERKLE_HASH_LEN];
    char hex[AUDIT_HASH_HEX_LEN + 1];
    int known = f->root[0] != '\0';
    root_hex[0] = '\0';
    *v = AUDIT_CHAIN_DIFFERENT;
    if (!head->tree_ok)
        return RREPLY_OK;
    if (known && head->tree_size < f->seq) {
        *v = AUDIT_CHAIN_SHORTER;
        return RREPLY_OK;
    }
    int rc = audit_tree_roots(p, k, known ? f->seq : 0, head->tree_size, at_floor, at_head);
    if (rc == AUDIT_TREE_REDIS || rc == AUDIT_TREE_REDIS_ERROR)
        return rc == AUDIT_TREE_REDIS ? RREPLY_UNAVAILABLE : RREPLY_INTERNAL;
    crypto_hex(at_floor, sizeof(at_floor), hex);
    if (rc != AUDIT_TREE_OK || (known && strcmp(hex, f->root) != 0) ||
        memcmp(at_head, head->root, sizeof(at_head)) != 0)
        return RREPLY_OK;
    if (head->tree_size == head->seq && head->seq > 0)
        crypto_hex(at_head, sizeof(at_head), root_hex);
    *v = AUDIT_CHAIN_HOLDS;
    return RREPLY_OK;
}

enum rreply_class audit_guard_check(struct audit_guard *g, struct rpool *p,
                                    const struct audit_keys *k, enum audit_verdict *v,
                                    struct audit_head *head)
{
    struct audit_floor f;
    struct audit_head h;
    char at[AUDIT_HASH_HEX_LEN + 1], root[AUDIT_HASH_HEX_LEN + 1];
    audit_guard_floor(g, &f);
    enum rreply_class st = audit_store_head_at(p, k, f.seq, &h, at);
    if (st != RREPLY_OK)
        return st;
    *v = audit_guard_judge(&f, h.seq, h.hash, at[0] ? at : NULL);
    if (*v == AUDIT_CHAIN_HOLDS)
        st = judge_tree(p, k, &f, &h, v, root);
    if (st != RREPLY_OK)
        return st;
    if (*v == AUDIT_CHAIN_HOLDS) {
        audit_guard_advance(g, &f, h.seq, h.hash, root);
        audit_guard_sync(g);
    } else {
        audit_guard_refuse(g, &f, *v, h.seq, h.hash);
    }
    if (head)
        *head = h;
    return RREPLY_OK;
}
