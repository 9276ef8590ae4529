/* SPDX-License-Identifier: Apache-2.0 */
/* appender: group commit of audit entries through the audit_append.lua compare-and-set. */
#include "appender.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/log.h"

#define MAX_ATTEMPTS 1000         /* CAS retries of one batch before giving up (503) */
#define AUDIT_COMMIT_ENTRIES 1000 /* entries one compare-and-set carries at most */
#define CATCH_UP_LEAVES 8192      /* leaves of older entries one catch-up call adds */
#define PAGE_ENTRIES 256          /* entries read at a time while catching up */

struct audit_appender {
    struct rpool *pool;
    const struct audit_keys *keys;
    const struct audit_keyring *kr;
    const struct audit_key *active;
    struct audit_appender_config conf;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    struct audit_request *queue_head, *queue_tail;
    int stopping;
    /* appender-thread state */
    int chain_checked; /* head and log found to agree (at startup or before the first commit) */
    enum rreply_class failed; /* how the last Redis call that failed did */
    int head_known;
    long long head_seq;
    char head_hash[AUDIT_HASH_HEX_LEN + 1];
    struct merkle_frontier tree;   /* the stored tree (tree.size = head_seq once caught up) */
    struct audit_tree_delta delta; /* what the call being made adds to it */
    int need_activation;
    struct audit_item activation;
    struct audit_guard *guard;
    /* while an operator's accept is committed: its audit.chain_accepted item, and the
     * head it accepts, which stands in for the guard's floor */
    struct audit_item *accepting;
    struct audit_floor accept_floor;
    /* signing helper: signs the second half of a large batch while the appender signs
     * the first (signatures are independent once every body and hash is built) */
    pthread_t helper;
    int helper_ok;
    pthread_mutex_t hmu;
    pthread_cond_t hcv;
    struct audit_item *const *job;
    size_t job_n;
    int job_pending, helper_stop;
    /* metrics */
    struct metric_series *m_appends, *m_conflicts, *m_batch, *m_duration, *m_head;
};

/* The batch being committed: pointers to the pending items, activation first if any. */
struct batch {
    struct audit_item **items;
    size_t n, cap;
};

static const double BATCH_BUCKETS[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void finish_requests(struct audit_appender *ap, struct audit_request *list,
                            enum audit_append_status st, long long replicas)
{
    pthread_mutex_lock(&ap->mu);
    for (struct audit_request *r = list; r; r = r->next) {
        r->status = st;
        r->replicas_acked = replicas;
        r->done = 1;
        pthread_cond_signal(&r->done_cv); /* wake only this request's thread */
    }
    pthread_mutex_unlock(&ap->mu);
}

static int batch_push(struct batch *b, struct audit_item *it)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct audit_item **p = realloc(b->items, cap * sizeof(struct audit_item *));
        if (!p)
            return -1;
        b->items = p;
        b->cap = cap;
    }
    b->items[b->n++] = it;
    return 0;
}

/* Collect the pending items; an event_id repeated inside the commit is answered with the
 * first one's entry (the script only sees ids already stored). */
static int collect(struct audit_appender *ap, struct audit_request *list, struct batch *b)
{
    json_t *seen = json_object(); /* event_id -> index in b, to spot repeats in O(n) */
    int rc = -1;
    b->n = 0;
    if (!seen || (ap->need_activation && batch_push(b, &ap->activation) != 0))
        goto done;
    for (struct audit_request *r = list; r; r = r->next)
        for (size_t i = 0; i < r->n; i++) {
            struct audit_item *it = &r->items[i];
            if (it->state != AUDIT_ITEM_PENDING)
                continue;
            const char *id = json_string_value(json_object_get(it->event, "event_id"));
            json_t *first = id ? json_object_get(seen, id) : NULL;
            it->dup_of = (first && b->items) ? b->items[json_integer_value(first)] : NULL;
            if (it->dup_of)
                continue;
            if (id && json_object_set_new(seen, id, json_integer((json_int_t)b->n)) != 0)
                goto done;
            if (batch_push(b, it) != 0)
                goto done;
        }
    rc = 0;
done:
    json_decref(seen);
    return rc;
}

#define HELPER_MIN 16 /* smaller batches are signed by the appender alone */

static void *helper_main(void *arg)
{
    struct audit_appender *ap = arg;
    pthread_mutex_lock(&ap->hmu);
    for (;;) {
        while (!ap->job_pending && !ap->helper_stop)
            pthread_cond_wait(&ap->hcv, &ap->hmu);
        if (ap->helper_stop)
            break;
        struct audit_item *const *items = ap->job;
        size_t n = ap->job_n;
        pthread_mutex_unlock(&ap->hmu);
        for (size_t i = 0; i < n; i++)
            audit_entry_sign(&items[i]->entry, ap->active->sk);
        pthread_mutex_lock(&ap->hmu);
        ap->job_pending = 0;
        pthread_cond_broadcast(&ap->hcv);
    }
    pthread_mutex_unlock(&ap->hmu);
    return NULL;
}

static void helper_stop(struct audit_appender *ap)
{
    if (ap->helper_ok) {
        pthread_mutex_lock(&ap->hmu);
        ap->helper_stop = 1;
        pthread_cond_broadcast(&ap->hcv);
        pthread_mutex_unlock(&ap->hmu);
        pthread_join(ap->helper, NULL);
    }
    pthread_mutex_destroy(&ap->hmu);
    pthread_cond_destroy(&ap->hcv);
}

static void sign_all(struct audit_appender *ap, struct batch *b)
{
    size_t half = b->n / 2;
    if (!ap->helper_ok || b->n < HELPER_MIN)
        half = 0;
    if (half) {
        pthread_mutex_lock(&ap->hmu);
        ap->job = b->items + (b->n - half);
        ap->job_n = half;
        ap->job_pending = 1;
        pthread_cond_broadcast(&ap->hcv);
        pthread_mutex_unlock(&ap->hmu);
    }
    for (size_t i = 0; i < b->n - half; i++)
        audit_entry_sign(&b->items[i]->entry, ap->active->sk);
    if (half) {
        pthread_mutex_lock(&ap->hmu);
        while (ap->job_pending)
            pthread_cond_wait(&ap->hcv, &ap->hmu);
        pthread_mutex_unlock(&ap->hmu);
    }
}

/* Build and hash every entry of the batch on the current head (each body carries the
 * previous hash, so in order), make the tree delta of their leaves, then sign them all. */
static int seal_batch(struct audit_appender *ap, struct batch *b)
{
    char ts[AUDIT_TS_LEN + 1], prev[AUDIT_HASH_HEX_LEN + 1];
    audit_now_ts(ts);
    if (ap->accepting) {
        /* What is accepted is the head this attempt builds on (another instance may have
         * appended since the accept read it). */
        json_t *meta = json_object_get(ap->accepting->event, "metadata");
        if (json_object_set_new(meta, "accepted_seq", json_integer(ap->head_seq)) != 0 ||
            json_object_set_new(meta, "accepted_hash", json_string(ap->head_hash)) != 0)
            return -1;
    }
    memcpy(prev, ap->head_hash, sizeof(prev));
    for (size_t i = 0; i < b->n; i++) {
        struct audit_entry *e = &b->items[i]->entry;
        e->seq = ap->head_seq + 1 + (long long)i;
        memcpy(e->prev, prev, sizeof(e->prev));
        memcpy(e->ts, ts, sizeof(e->ts));
        snprintf(e->kv, sizeof(e->kv), "%s", ap->active->name);
        if (audit_entry_build(e, b->items[i]->event) != 0)
            return -1;
        memcpy(prev, e->hash, sizeof(prev));
    }
    /* The tree grows by the batch's leaves, in the same order (after the head, whose tree
     * has caught up: commit_attempts). */
    audit_tree_delta_start(&ap->delta, &ap->tree);
    for (size_t i = 0; i < b->n; i++)
        if (audit_tree_delta_add(&ap->delta, b->items[i]->entry.body,
                                 b->items[i]->entry.body_len) != 0)
            return -1;
    if (audit_tree_delta_end(&ap->delta) != 0)
        return -1;
    sign_all(ap, b);
    return 0;
}

/* One call of the script for the batch (empty: the tree catching up) on the current head
 * and tree, with the floor f. */
/* What a request hears when Redis failed: 503, or 500 for an error reply. */
static enum audit_append_status redis_failed(struct audit_appender *ap)
{
    return ap->failed == RREPLY_INTERNAL ? AUDIT_APPEND_INTERNAL : AUDIT_APPEND_UNAVAILABLE;
}

/* Note how a Redis call ended; returns c. */
static enum rreply_class noted(struct audit_appender *ap, enum rreply_class c)
{
    if (c != RREPLY_OK)
        ap->failed = c;
    return c;
}

static enum rreply_class run_script(struct audit_appender *ap, struct batch *b,
                                    const struct audit_floor *f, redisReply **reply,
                                    long long *replicas)
{
    struct audit_append_args args = {.keys = ap->keys,
                                     .head_seq = ap->head_seq,
                                     .head_hash = ap->head_hash,
                                     .tree_size = ap->tree.size,
                                     .floor = f,
                                     .dedup_window_ms = ap->conf.dedup_window_ms,
                                     .key_version = ap->active->name,
                                     .activation = ap->need_activation,
                                     .items = b->items,
                                     .n = b->n,
                                     .delta = &ap->delta,
                                     .wait_replicas = b->n ? ap->conf.wait_replicas : 0,
                                     .wait_timeout_ms = ap->conf.wait_timeout_ms};
    return noted(ap, audit_store_append(ap->pool, &args, reply, replicas));
}

/* The script said "ok": the batch is in Redis, on a chain that held the floor f. The floor
 * rises to the new head (or, for an accept, is reset to it). Returns 0, or -1 if an
 * accept could not be written to the state file. */
static int commit_done(struct audit_appender *ap, struct batch *b, const struct audit_floor *f,
                       double started)
{
    char root[AUDIT_HASH_HEX_LEN + 1];
    int rc = 0;
    for (size_t i = 0; i < b->n; i++)
        b->items[i]->state = AUDIT_ITEM_APPENDED;
    if (ap->need_activation) {
        log_info(NULL, "signing key activated", LF_S("version", ap->active->name),
                 LF_I("seq", ap->activation.entry.seq));
        ap->need_activation = 0;
    }
    ap->head_seq = b->items[b->n - 1]->entry.seq;
    memcpy(ap->head_hash, b->items[b->n - 1]->entry.hash, sizeof(ap->head_hash));
    ap->tree = ap->delta.next;
    crypto_hex(ap->delta.root, sizeof(ap->delta.root), root);
    if (ap->accepting)
        rc = audit_guard_accept(ap->guard, ap->head_seq, ap->head_hash, root);
    else
        audit_guard_advance(ap->guard, f, ap->head_seq, ap->head_hash, root);
    metric_add(ap->m_appends, b->n);
    metric_observe(ap->m_batch, (double)b->n);
    metric_observe(ap->m_duration, now_s() - started);
    metric_set(ap->m_head, (double)ap->head_seq);
    return rc;
}

/* Items whose event_id was repeated inside the commit share the first one's outcome. */
static void resolve_dups(struct audit_request *list)
{
    for (struct audit_request *r = list; r; r = r->next)
        for (size_t i = 0; i < r->n; i++) {
            struct audit_item *it = &r->items[i];
            if (it->state == AUDIT_ITEM_PENDING && it->dup_of &&
                it->dup_of->state != AUDIT_ITEM_PENDING) {
                it->state = AUDIT_ITEM_DUPLICATE;
                it->dup_seq = it->dup_of->state == AUDIT_ITEM_APPENDED ? it->dup_of->entry.seq
                                                                       : it->dup_of->dup_seq;
            }
        }
}

static void mark_dups(struct batch *b, const redisReply *r)
{
    for (size_t i = 1; i + 1 < r->elements; i += 2) {
        long long idx = audit_reply_int(r, i);
        if (idx >= 1 && (size_t)idx <= b->n) {
            b->items[idx - 1]->state = AUDIT_ITEM_DUPLICATE;
            b->items[idx - 1]->dup_seq = audit_reply_int(r, i + 1);
        }
    }
}

/* Build on head h from now on. Returns 0, or -2 if its tree fields are malformed. */
static int take_head(struct audit_appender *ap, const struct audit_head *h)
{
    if (!h->tree_ok) {
        log_critical(NULL, "audit tree beside the chain head is malformed: refusing to append",
                     LF_I("head_seq", h->seq), LF_I("tree_size", h->tree_size));
        ap->head_known = 0;
        return -2;
    }
    ap->head_seq = h->seq;
    memcpy(ap->head_hash, h->hash, sizeof(ap->head_hash));
    ap->tree = h->frontier;
    ap->head_known = 1;
    return 0;
}

/* Learn the head. The first time (when Redis was down at startup) check first that the head
 * and the log agree. Returns 0, -1 if Redis is unavailable, -2 if the chain is broken. */
static int load_head(struct audit_appender *ap)
{
    struct audit_head h;
    if (!ap->chain_checked) {
        char err[160];
        int rc = audit_appender_check(ap, err, sizeof(err));
        if (rc == -1)
            log_critical(NULL, "audit chain is inconsistent: refusing to append",
                         LF_S("detail", err));
        if (rc != 0)
            return rc == -1 ? -2 : -1;
    }
    if (noted(ap, audit_store_tree_head(ap->pool, ap->keys, &h)) != RREPLY_OK)
        return -1;
    return take_head(ap, &h);
}

/* One script reply that is not "ok": adjust and let the caller retry. Returns 0 to retry,
 * -1 for a broken chain (head and log disagree), -2 for a chain without the floor f. */
static int handle_reply(struct audit_appender *ap, struct batch *b, const struct audit_floor *f,
                        const redisReply *r)
{
    struct audit_head h;
    const char *w = audit_reply_word(r);
    int lost = strcmp(w, "rolled_back") == 0 || strcmp(w, "diverged") == 0;
    if (lost && r->elements == 3 && r->element[2]->str) {
        audit_guard_refuse(ap->guard, f, w[0] == 'r' ? AUDIT_CHAIN_SHORTER : AUDIT_CHAIN_DIFFERENT,
                           audit_reply_int(r, 1), r->element[2]->str);
        return -2;
    } else if (strcmp(w, "conflict") == 0 && r->elements == 6 &&
               audit_head_parse(r->element + 1, &h) == 0) {
        metric_inc(ap->m_conflicts);
        return take_head(ap, &h) == 0 ? 0 : -1;
    } else if (strcmp(w, "duplicate") == 0) {
        mark_dups(b, r);
    } else if (strcmp(w, "need_activation") == 0) {
        ap->need_activation = 1;
    } else if (strcmp(w, "activated") == 0) {
        ap->need_activation = 0;
    } else {
        log_critical(NULL, "audit chain head, log and tree disagree: refusing to append",
                     LF_S("reply", w), LF_I("at", audit_reply_int(r, 1)),
                     LF_I("found", audit_reply_int(r, 2)));
        return -1;
    }
    return 0;
}

/* The tree of stored entries up to CATCH_UP_LEAVES past the tree's size, from their bodies
 * as stored. Returns 0, or -1 if Redis failed or memory ran out. */
static int catch_up_delta(struct audit_appender *ap)
{
    struct audit_entry page[PAGE_ENTRIES];
    long long from = ap->tree.size + 1, upto = ap->head_seq;
    int rc = 0;
    if (upto - ap->tree.size > CATCH_UP_LEAVES)
        upto = ap->tree.size + CATCH_UP_LEAVES;
    audit_tree_delta_start(&ap->delta, &ap->tree);
    while (rc == 0 && from <= upto) {
        size_t n = 0;
        if (noted(ap, audit_store_range(ap->pool, ap->keys, from, upto, PAGE_ENTRIES, page, &n)) !=
                RREPLY_OK ||
            n == 0)
            return -1;
        for (size_t i = 0; i < n; i++) {
            if (page[i].seq != from++ ||
                audit_tree_delta_add(&ap->delta, page[i].body, page[i].body_len) != 0)
                rc = -1;
            audit_entry_clear(&page[i]);
        }
    }
    return rc == 0 ? audit_tree_delta_end(&ap->delta) : -1;
}

/* A chain from before the tree, or one an older auditd appended to: add the leaves of its
 * entries past the tree's size, a step at a time, with no entry, under the same
 * compare-and-set. Returns 0 (a step taken, or the head moved: go round again), or what
 * handle_reply returns; -3 if Redis failed. */
static int catch_up(struct audit_appender *ap, const struct audit_floor *f)
{
    struct batch none = {0};
    redisReply *r = NULL;
    long long replicas;
    if (catch_up_delta(ap) != 0 || run_script(ap, &none, f, &r, &replicas) != RREPLY_OK) {
        freeReplyObject(r);
        ap->head_known = 0;
        return -3;
    }
    int rc = 0;
    if (strcmp(audit_reply_word(r), "ok") == 0) {
        ap->tree = ap->delta.next;
        if (ap->tree.size == ap->head_seq)
            log_info(NULL, "audit tree caught up with the chain", LF_I("size", ap->tree.size));
    } else {
        rc = handle_reply(ap, &none, f, r);
    }
    freeReplyObject(r);
    return rc;
}

static enum audit_append_status commit_attempts(struct audit_appender *ap,
                                                struct audit_request *list, struct batch *b,
                                                long long *replicas)
{
    double started = now_s();
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        redisReply *r = NULL;
        struct audit_floor f = ap->accept_floor;
        if (!ap->accepting)
            audit_guard_floor(ap->guard, &f);
        int lh = ap->head_known ? 0 : load_head(ap);
        if (lh != 0)
            return lh == -2 ? AUDIT_APPEND_BROKEN : redis_failed(ap);
        if (ap->tree.size < ap->head_seq) {
            long long before = ap->tree.size;
            int rc = catch_up(ap, &f);
            if (rc != 0)
                return rc == -3   ? redis_failed(ap)
                       : rc == -2 ? AUDIT_APPEND_REFUSED
                                  : AUDIT_APPEND_BROKEN;
            if (ap->tree.size > before)
                attempt--; /* a step of the tree is no failed attempt of the batch */
            continue;
        }
        resolve_dups(list);
        if (collect(ap, list, b) != 0 || seal_batch(ap, b) != 0)
            return AUDIT_APPEND_UNAVAILABLE;
        if (b->n == 0) /* every item a duplicate: acknowledged only once remembered */
            return audit_guard_sync(ap->guard) == 0 ? AUDIT_APPEND_OK : AUDIT_APPEND_STATE;
        if (run_script(ap, b, &f, &r, replicas) != RREPLY_OK) {
            freeReplyObject(r);
            ap->head_known = 0; /* the script may have run: learn the head again */
            return redis_failed(ap);
        }
        if (strcmp(audit_reply_word(r), "ok") == 0) {
            freeReplyObject(r);
            int rc = commit_done(ap, b, &f, started);
            resolve_dups(list);
            /* The state file is written before anyone hears of the entry, so it never
             * holds less than an acknowledged append. */
            return rc == 0 && audit_guard_sync(ap->guard) == 0 ? AUDIT_APPEND_OK
                                                               : AUDIT_APPEND_STATE;
        }
        int rc = handle_reply(ap, b, &f, r);
        freeReplyObject(r);
        if (rc != 0) {
            ap->head_known = 0;
            return rc == -2 ? AUDIT_APPEND_REFUSED : AUDIT_APPEND_BROKEN;
        }
    }
    return AUDIT_APPEND_UNAVAILABLE;
}

/* An operator accepts the chain Redis shows (req->items[0] is the audit.chain_accepted
 * event): its head, if the head and the log agree, stands in for the floor while the
 * entry recording the accept is committed on it; then the floor is reset to that entry. */
static enum audit_append_status accept_chain(struct audit_appender *ap, struct audit_request *req,
                                             struct batch *b, long long *replicas)
{
    char err[160];
    struct audit_floor remembered;
    int rc = audit_appender_check(ap, err, sizeof(err));
    if (rc == -1)
        log_critical(NULL, "audit chain is inconsistent: cannot accept it", LF_S("detail", err));
    if (rc != 0)
        return rc == -1 ? AUDIT_APPEND_BROKEN : redis_failed(ap);
    if (load_head(ap) != 0)
        return redis_failed(ap);
    audit_guard_floor(ap->guard, &remembered);
    json_t *meta = json_object_get(req->items[0].event, "metadata");
    if (json_object_set_new(meta, "remembered_seq", json_integer(remembered.seq)) != 0 ||
        json_object_set_new(meta, "remembered_hash", json_string(remembered.hash)) != 0)
        return AUDIT_APPEND_UNAVAILABLE;
    ap->accept_floor = remembered;
    ap->accept_floor.seq = ap->head_seq;
    memcpy(ap->accept_floor.hash, ap->head_hash, sizeof(ap->accept_floor.hash));
    ap->accept_floor.root[0] = '\0'; /* whatever tree Redis has: the script's size checks
                                        are the appender's own (tree_size) */
    ap->accepting = &req->items[0];
    enum audit_append_status st = commit_attempts(ap, req, b, replicas);
    ap->accepting = NULL;
    if (st == AUDIT_APPEND_OK)
        log_warn(NULL, "audit chain accepted by an operator: appending on it",
                 LF_S("via", json_string_value(json_object_get(meta, "via"))),
                 LF_I("remembered_seq", remembered.seq), LF_S("remembered_hash", remembered.hash),
                 LF_I("accepted_seq", json_integer_value(json_object_get(meta, "accepted_seq"))),
                 LF_I("entry_seq", req->items[0].entry.seq));
    return st;
}

static void *appender_main(void *arg)
{
    struct audit_appender *ap = arg;
    struct batch b = {0};
    for (;;) {
        pthread_mutex_lock(&ap->mu);
        while (!ap->queue_head && !ap->stopping)
            pthread_cond_wait(&ap->work_cv, &ap->mu);
        if (!ap->queue_head) {
            pthread_mutex_unlock(&ap->mu);
            break;
        }
        /* Up to batch_max requests and AUDIT_COMMIT_ENTRIES entries (a client's own
         * batch always goes whole, even alone above that). */
        struct audit_request *list = ap->queue_head, *last = list;
        size_t entries = last->n;
        /* An accept is committed alone: it changes the floor the others are judged on. */
        for (int n = 1; n < ap->conf.batch_max && !list->accept && last->next &&
                        !last->next->accept && entries + last->next->n <= AUDIT_COMMIT_ENTRIES;
             n++) {
            last = last->next;
            entries += last->n;
        }
        ap->queue_head = last->next;
        if (!ap->queue_head)
            ap->queue_tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&ap->mu);
        long long replicas = 0;
        enum audit_append_status st = list->accept ? accept_chain(ap, list, &b, &replicas)
                                                   : commit_attempts(ap, list, &b, &replicas);
        finish_requests(ap, list, st, replicas);
    }
    free(b.items);
    return NULL;
}

static void init_metrics(struct audit_appender *ap, struct metrics *m)
{
    ap->m_appends =
        metric_with(metrics_counter(m, "appends_total", "Entries appended", NULL), NULL);
    ap->m_conflicts = metric_with(
        metrics_counter(m, "cas_conflicts_total", "Head compare-and-set conflicts", NULL), NULL);
    ap->m_batch = metric_with(metrics_histogram(m, "append_batch_size",
                                                "Entries per compare-and-set", NULL, BATCH_BUCKETS,
                                                sizeof(BATCH_BUCKETS) / sizeof(BATCH_BUCKETS[0])),
                              NULL);
    ap->m_duration =
        metric_with(metrics_histogram(m, "append_duration_seconds", "Time to commit a batch", NULL,
                                      METRICS_LATENCY_BUCKETS, METRICS_LATENCY_BUCKETS_N),
                    NULL);
    ap->m_head = metric_with(metrics_gauge(m, "chain_head_seq", "Last committed seq", NULL), NULL);
}

struct audit_appender *audit_appender_create(struct rpool *p, const struct audit_keys *k,
                                             const struct audit_keyring *kr, struct audit_guard *g,
                                             const struct audit_appender_config *conf,
                                             struct metrics *m)
{
    struct audit_appender *ap = calloc(1, sizeof(*ap));
    if (!ap || kr->active < 0)
        goto fail;
    ap->pool = p;
    ap->keys = k;
    ap->kr = kr;
    ap->guard = g;
    ap->active = &kr->keys[kr->active];
    ap->conf = *conf;
    if (ap->conf.batch_max < 1)
        ap->conf.batch_max = 1;
    ap->activation.event =
        json_pack("{s:s, s:s, s:{s:s, s:s}}", "actor", "auditd", "action", "audit.key_activated",
                  "metadata", "version", ap->active->name, "public_key", ap->active->pk_b64);
    if (!ap->activation.event)
        goto fail;
    init_metrics(ap, m);
    pthread_mutex_init(&ap->mu, NULL);
    pthread_cond_init(&ap->work_cv, NULL);
    pthread_mutex_init(&ap->hmu, NULL);
    pthread_cond_init(&ap->hcv, NULL);
    ap->helper_ok = pthread_create(&ap->helper, NULL, helper_main, ap) == 0;
    if (pthread_create(&ap->thread, NULL, appender_main, ap) != 0) {
        helper_stop(ap);
        json_decref(ap->activation.event);
        goto fail;
    }
    return ap;
fail:
    free(ap);
    return NULL;
}

void audit_appender_submit(struct audit_appender *ap, struct audit_request *req)
{
    req->done = 0;
    req->next = NULL;
    pthread_cond_init(&req->done_cv, NULL);
    pthread_mutex_lock(&ap->mu);
    if (ap->queue_tail)
        ap->queue_tail->next = req;
    else
        ap->queue_head = req;
    ap->queue_tail = req;
    pthread_cond_signal(&ap->work_cv);
    while (!req->done)
        pthread_cond_wait(&req->done_cv, &ap->mu);
    pthread_mutex_unlock(&ap->mu);
    pthread_cond_destroy(&req->done_cv);
}

enum audit_append_status audit_appender_accept(struct audit_appender *ap, const char *via,
                                               struct audit_acceptance *out)
{
    struct audit_item item = {0};
    struct audit_request req = {.items = &item, .n = 1, .accept = 1};
    memset(out, 0, sizeof(*out));
    item.event = json_pack("{s:s, s:s, s:{s:s}}", "actor", "auditd", "action",
                           "audit.chain_accepted", "metadata", "via", via);
    if (!item.event)
        return AUDIT_APPEND_UNAVAILABLE;
    audit_appender_submit(ap, &req);
    if (req.status == AUDIT_APPEND_OK) {
        json_t *meta = json_object_get(item.event, "metadata");
        out->remembered_seq = json_integer_value(json_object_get(meta, "remembered_seq"));
        snprintf(out->remembered_hash, sizeof(out->remembered_hash), "%s",
                 json_string_value(json_object_get(meta, "remembered_hash")));
        out->accepted_seq = json_integer_value(json_object_get(meta, "accepted_seq"));
        snprintf(out->accepted_hash, sizeof(out->accepted_hash), "%s",
                 json_string_value(json_object_get(meta, "accepted_hash")));
        out->entry = item.entry;
    } else {
        audit_entry_clear(&item.entry);
    }
    json_decref(item.event);
    return req.status;
}

int audit_appender_check(struct audit_appender *ap, char *err, size_t errsize)
{
    long long head_seq, last_seq;
    char head_hash[AUDIT_HASH_HEX_LEN + 1];
    int exists;
    struct audit_entry e;
    size_t n = 0;
    if (noted(ap, audit_store_head(ap->pool, ap->keys, &head_seq, head_hash, &exists)) !=
            RREPLY_OK ||
        noted(ap, audit_store_last_seq(ap->pool, ap->keys, &last_seq)) != RREPLY_OK)
        return -2;
    if (head_seq != last_seq) {
        snprintf(err, errsize, "chain head says seq %lld but the log ends at seq %lld", head_seq,
                 last_seq);
        return -1;
    }
    ap->chain_checked = last_seq == 0;
    if (last_seq == 0)
        return 0;
    if (noted(ap, audit_store_range(ap->pool, ap->keys, last_seq, last_seq, 1, &e, &n)) !=
        RREPLY_OK)
        return -2;
    int rc = (n == 1 && strcmp(e.hash, head_hash) == 0) ? 0 : -1;
    if (rc != 0)
        snprintf(err, errsize, "chain head hash differs from the hash of entry %lld", last_seq);
    if (n == 1)
        audit_entry_clear(&e);
    ap->chain_checked = rc == 0;
    return rc;
}

void audit_appender_free(struct audit_appender *ap)
{
    if (!ap)
        return;
    pthread_mutex_lock(&ap->mu);
    ap->stopping = 1;
    pthread_cond_signal(&ap->work_cv);
    pthread_mutex_unlock(&ap->mu);
    pthread_join(ap->thread, NULL);
    helper_stop(ap);
    audit_tree_delta_free(&ap->delta);
    audit_entry_clear(&ap->activation.entry);
    json_decref(ap->activation.event);
    pthread_mutex_destroy(&ap->mu);
    pthread_cond_destroy(&ap->work_cv);
    free(ap);
}
