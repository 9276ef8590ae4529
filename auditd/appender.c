/* SPDX-License-Identifier: Apache-2.0 */
/* appender: group commit of audit entries through the audit_append.lua compare-and-set, on
 * a loop thread of its own. A commit is a chain of steps, each a Redis call whose reply
 * runs the next: learn the head (checking once that head and log agree), let the tree
 * catch up with older entries, seal the batch and send it, then WAIT for replicas. */
#include "appender.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "seal.h"
#include "shared/log.h"

#define MAX_ATTEMPTS 1000         /* CAS retries of one batch before giving up (503) */
#define AUDIT_COMMIT_ENTRIES 1000 /* entries one compare-and-set carries at most */
#define CATCH_UP_LEAVES 8192      /* leaves of older entries one catch-up call adds */
#define PAGE_ENTRIES 256          /* entries read at a time while catching up */

struct audit_appender;
struct check_call;

/* Whether head and log agree: the head and the last seq, then the last entry. */
struct chain_check {
    long long head_seq, last_seq;
    char head_hash[AUDIT_HASH_HEX_LEN + 1];
    int exists;
    struct audit_entry last;
    size_t n;
    char err[160];
    /* what runs next: rc 0 they agree, -1 they do not (err says how), -2 Redis failed */
    void (*then)(struct audit_appender *ap, int rc);
};

/* The commit in flight: the requests it answers and where it stands. */
struct commit {
    struct audit_request *list;
    struct audit_batch b;
    struct audit_batch none; /* a catch-up step carries no entry */
    int attempt;
    double started;
    struct audit_floor f; /* the floor this attempt is judged on */
    struct audit_head head;
    redisReply *reply;
    long long replicas;
    int commit_rc;
    struct audit_floor remembered; /* an accept's */
    /* catching up: the page read, the next seq to add and the last one of this step */
    struct audit_entry page[PAGE_ENTRIES];
    size_t page_n;
    long long from, upto;
};

struct audit_appender {
    const struct audit_keys *keys;
    const struct audit_keyring *kr;
    const struct audit_key *active;
    struct audit_appender_config conf;
    struct audit_guard *guard;
    struct loop *loop;
    struct rclient *rcl;
    int64_t command_timeout_ms;
    pthread_t thread;
    struct audit_sealer *sealer;
    /* the rest is the loop thread's */
    struct audit_request *queue_head, *queue_tail;
    struct loop_task kick;
    int busy, stopping;
    struct check_call *check_caller; /* a startup check waiting for its answer */
    struct commit cur;
    struct chain_check check;
    int chain_checked; /* head and log found to agree (at startup or before the first commit) */
    enum rreply_class failed; /* how the last Redis call that failed did */
    int head_known;
    long long head_seq;
    char head_hash[AUDIT_HASH_HEX_LEN + 1];
    struct audit_merkle_frontier tree; /* the stored tree (tree.size = head_seq once caught up) */
    struct audit_tree_delta delta;     /* what the call being made adds to it */
    int need_activation;
    struct audit_item activation;
    /* while an operator's accept is committed: its audit.chain_accepted item, and the
     * head it accepts, which stands in for the guard's floor */
    struct audit_item *accepting;
    struct audit_floor accept_floor;
    /* metrics */
    struct metric_series *m_appends, *m_conflicts, *m_batch, *m_duration, *m_head;
};

static const double BATCH_BUCKETS[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void attempt_next(struct audit_appender *ap);
static void attempt_go(struct audit_appender *ap);

/* ---- the queue ---- */

/* Start the next commit at the end of this turn, so that it takes everything that arrived
 * during the turn. */
static void kick_later(struct audit_appender *ap)
{
    if (!ap->busy && ap->queue_head)
        loop_defer(ap->loop, &ap->kick);
}

/* Call the done functions of a chain of requests (on the thread this runs on). */
static void run_dones(void *arg)
{
    for (struct audit_request *r = arg, *next; r; r = next) {
        next = r->next; /* done may free r */
        r->done(r);
    }
}

/* Answer a chain of requests: those with a loop on it, one post per loop for all of its
 * requests; the others, and all when a post fails, here. */
static void answer(struct audit_request *list)
{
    struct audit_request *here = NULL, **here_tail = &here;
    while (list) {
        struct loop *l = list->loop;
        struct audit_request *mine = NULL, **tail = &mine, *rest = NULL, **rest_tail = &rest;
        for (struct audit_request *r = list, *next; r; r = next) {
            next = r->next;
            r->next = NULL;
            if (r->loop == l) {
                *tail = r;
                tail = &r->next;
            } else {
                *rest_tail = r;
                rest_tail = &r->next;
            }
        }
        if (!l || loop_post(l, run_dones, mine) != 0) {
            *here_tail = mine;
            here_tail = tail;
        }
        list = rest;
    }
    run_dones(here);
}

/* Answer the requests of the commit, then go on with what waits. */
static void finish(struct audit_appender *ap, enum audit_append_status st)
{
    struct commit *c = &ap->cur;
    struct audit_request *r = c->list;
    if (ap->accepting && st == AUDIT_APPEND_OK) {
        json_t *meta = json_object_get(ap->accepting->event, "metadata");
        log_warn(NULL, "audit chain accepted by an operator: appending on it",
                 LF_S("via", json_string_value(json_object_get(meta, "via"))),
                 LF_I("remembered_seq", c->remembered.seq),
                 LF_S("remembered_hash", c->remembered.hash),
                 LF_I("accepted_seq", json_integer_value(json_object_get(meta, "accepted_seq"))),
                 LF_I("entry_seq", ap->accepting->entry.seq));
    }
    ap->accepting = NULL;
    c->list = NULL;
    ap->busy = 0;
    for (struct audit_request *k = r; k; k = k->next) {
        k->status = st;
        k->replicas_acked = st == AUDIT_APPEND_OK ? c->replicas : 0;
    }
    answer(r);
    kick_later(ap);
    if (ap->stopping && !ap->queue_head)
        loop_stop(ap->loop);
}

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

/* A call could not be sent (out of memory). */
static void not_sent(struct audit_appender *ap)
{
    ap->failed = RREPLY_UNAVAILABLE;
    finish(ap, AUDIT_APPEND_UNAVAILABLE);
}

/* ---- the chain check ---- */

static void check_entry_read(void *arg, enum rreply_class cls)
{
    struct audit_appender *ap = arg;
    struct chain_check *k = &ap->check;
    int rc = -2;
    if (noted(ap, cls) == RREPLY_OK) {
        rc = k->n == 1 && strcmp(k->last.hash, k->head_hash) == 0 ? 0 : -1;
        if (rc != 0)
            snprintf(k->err, sizeof(k->err), "chain head hash differs from the hash of entry %lld",
                     k->last_seq);
        ap->chain_checked = rc == 0;
    }
    if (k->n == 1)
        audit_entry_clear(&k->last);
    k->then(ap, rc);
}

static void check_ends_read(void *arg, enum rreply_class cls)
{
    struct audit_appender *ap = arg;
    struct chain_check *k = &ap->check;
    if (noted(ap, cls) != RREPLY_OK) {
        k->then(ap, -2);
        return;
    }
    if (k->head_seq != k->last_seq) {
        snprintf(k->err, sizeof(k->err), "chain head says seq %lld but the log ends at seq %lld",
                 k->head_seq, k->last_seq);
        k->then(ap, -1);
        return;
    }
    ap->chain_checked = k->last_seq == 0;
    if (k->last_seq == 0) {
        k->then(ap, 0);
        return;
    }
    if (audit_store_range_async(ap->rcl, ap->keys, k->last_seq, k->last_seq, 1, &k->last, &k->n,
                                check_entry_read, ap) != 0) {
        ap->failed = RREPLY_UNAVAILABLE;
        k->then(ap, -2);
    }
}

/* Do head and log agree? then(ap, rc) runs once known (never inside this call). */
static void check_chain(struct audit_appender *ap, void (*then)(struct audit_appender *, int))
{
    struct chain_check *k = &ap->check;
    k->then = then;
    k->err[0] = '\0';
    k->n = 0;
    if (audit_store_ends_async(ap->rcl, ap->keys, &k->head_seq, k->head_hash, &k->exists,
                               &k->last_seq, check_ends_read, ap) != 0) {
        ap->failed = RREPLY_UNAVAILABLE;
        then(ap, -2); /* only ever called from a step of a commit, which may end here */
    }
}

/* ---- the head ---- */

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

static void head_read(void *arg, enum rreply_class cls)
{
    struct audit_appender *ap = arg;
    if (noted(ap, cls) != RREPLY_OK)
        finish(ap, redis_failed(ap));
    else if (take_head(ap, &ap->cur.head) != 0)
        finish(ap, AUDIT_APPEND_BROKEN);
    else
        attempt_go(ap);
}

static void read_head(struct audit_appender *ap)
{
    if (audit_store_tree_head_async(ap->rcl, ap->keys, &ap->cur.head, head_read, ap) != 0)
        not_sent(ap);
}

/* Learn the head. The first time (when Redis was down at startup) check first that the
 * head and the log agree. */
static void checked_for_head(struct audit_appender *ap, int rc)
{
    if (rc == -1)
        log_critical(NULL, "audit chain is inconsistent: refusing to append",
                     LF_S("detail", ap->check.err));
    if (rc != 0)
        finish(ap, rc == -1 ? AUDIT_APPEND_BROKEN : redis_failed(ap));
    else
        read_head(ap);
}

static void load_head(struct audit_appender *ap)
{
    if (!ap->chain_checked)
        check_chain(ap, checked_for_head);
    else
        read_head(ap);
}

/* ---- the script ---- */

/* One call of the script for batch b (empty: the tree catching up) on the current head
 * and tree, with the attempt's floor. Returns 0, or -1 if it could not be sent. */
static int send_script(struct audit_appender *ap, struct audit_batch *b, audit_done_fn done)
{
    struct audit_append_args args = {.keys = ap->keys,
                                     .head_seq = ap->head_seq,
                                     .head_hash = ap->head_hash,
                                     .tree_size = ap->tree.size,
                                     .floor = &ap->cur.f,
                                     .dedup_window_ms = ap->conf.dedup_window_ms,
                                     .key_version = ap->active->name,
                                     .activation = ap->need_activation,
                                     .items = b->items,
                                     .n = b->n,
                                     .delta = &ap->delta};
    return audit_store_append_async(ap->rcl, &args, &ap->cur.reply, done, ap);
}

/* One script reply that is not "ok": adjust and let the caller retry. Returns 0 to retry,
 * -1 for a broken chain (head and log disagree), -2 for a chain without the floor f. */
static int handle_reply(struct audit_appender *ap, struct audit_batch *b,
                        const struct audit_floor *f, const redisReply *r)
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
        audit_batch_mark_dups(b, r);
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

/* ---- catching up ---- */

/* A chain from before the tree, or one an older auditd appended to: add the leaves of its
 * entries past the tree's size, up to CATCH_UP_LEAVES at a step, read PAGE_ENTRIES at a
 * time, then one call of the script with no entry, under the same compare-and-set. */
static void catch_up_failed(struct audit_appender *ap)
{
    ap->head_known = 0;
    finish(ap, redis_failed(ap));
}

static void catch_up_sent(void *arg, enum rreply_class cls)
{
    struct audit_appender *ap = arg;
    struct commit *c = &ap->cur;
    redisReply *r = c->reply;
    c->reply = NULL;
    if (noted(ap, cls) != RREPLY_OK) {
        catch_up_failed(ap);
        return;
    }
    if (strcmp(audit_reply_word(r), "ok") == 0) {
        ap->tree = ap->delta.next;
        if (ap->tree.size == ap->head_seq)
            log_info(NULL, "audit tree caught up with the chain", LF_I("size", ap->tree.size));
        freeReplyObject(r);
        attempt_go(ap); /* a step of the tree is no failed attempt of the batch */
        return;
    }
    int rc = handle_reply(ap, &c->none, &c->f, r);
    freeReplyObject(r);
    if (rc != 0)
        finish(ap, rc == -2 ? AUDIT_APPEND_REFUSED : AUDIT_APPEND_BROKEN);
    else
        attempt_next(ap);
}

static void catch_up_page(struct audit_appender *ap);

static void catch_up_read(void *arg, enum rreply_class cls)
{
    struct audit_appender *ap = arg;
    struct commit *c = &ap->cur;
    int rc = noted(ap, cls) == RREPLY_OK && c->page_n > 0 ? 0 : -1;
    for (size_t i = 0; i < c->page_n; i++) {
        if (rc == 0 &&
            (c->page[i].seq != c->from++ ||
             audit_tree_delta_add(&ap->delta, c->page[i].body, c->page[i].body_len) != 0))
            rc = -1;
        audit_entry_clear(&c->page[i]);
    }
    c->page_n = 0;
    if (rc != 0) {
        ap->failed = cls == RREPLY_OK ? RREPLY_UNAVAILABLE : cls;
        catch_up_failed(ap);
    } else if (c->from <= c->upto) {
        catch_up_page(ap);
    } else if (audit_tree_delta_end(&ap->delta) != 0 ||
               send_script(ap, &c->none, catch_up_sent) != 0) {
        ap->failed = RREPLY_UNAVAILABLE;
        catch_up_failed(ap);
    }
}

static void catch_up_page(struct audit_appender *ap)
{
    struct commit *c = &ap->cur;
    if (audit_store_range_async(ap->rcl, ap->keys, c->from, c->upto, PAGE_ENTRIES, c->page,
                                &c->page_n, catch_up_read, ap) != 0) {
        ap->failed = RREPLY_UNAVAILABLE;
        catch_up_failed(ap);
    }
}

static void catch_up(struct audit_appender *ap)
{
    struct commit *c = &ap->cur;
    c->from = ap->tree.size + 1;
    c->upto = ap->head_seq;
    if (c->upto - ap->tree.size > CATCH_UP_LEAVES)
        c->upto = ap->tree.size + CATCH_UP_LEAVES;
    audit_tree_delta_start(&ap->delta, &ap->tree);
    catch_up_page(ap);
}

/* ---- a commit ---- */

/* The script said "ok": the batch is in Redis, on a chain that held the floor f. The floor
 * rises to the new head (or, for an accept, is reset to it). Returns 0, or -1 if an
 * accept could not be written to the state file. */
static int commit_done(struct audit_appender *ap, struct audit_batch *b,
                       const struct audit_floor *f, double started)
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

/* The state file is written before anyone hears of the entry, so it never holds less than
 * an acknowledged append. */
static void committed(struct audit_appender *ap)
{
    int ok = ap->cur.commit_rc == 0 && audit_guard_sync(ap->guard) == 0;
    finish(ap, ok ? AUDIT_APPEND_OK : AUDIT_APPEND_STATE);
}

static void replicas_waited(void *arg, enum rreply_class cls)
{
    (void)cls; /* no answer from WAIT: no replica is known to have it (replicas_acked 0) */
    committed(arg);
}

static void batch_sent(void *arg, enum rreply_class cls)
{
    struct audit_appender *ap = arg;
    struct commit *c = &ap->cur;
    redisReply *r = c->reply;
    c->reply = NULL;
    if (noted(ap, cls) != RREPLY_OK) {
        ap->head_known = 0; /* the script may have run: learn the head again */
        finish(ap, redis_failed(ap));
        return;
    }
    if (strcmp(audit_reply_word(r), "ok") == 0) {
        freeReplyObject(r);
        c->commit_rc = commit_done(ap, &c->b, &c->f, c->started);
        audit_batch_resolve_dups(c->list);
        /* WAIT on the connection that carried the script: it covers its writes. */
        if (ap->conf.wait_replicas <= 0 ||
            audit_store_wait_async(ap->rcl, ap->conf.wait_replicas, ap->conf.wait_timeout_ms,
                                   ap->conf.wait_timeout_ms + ap->command_timeout_ms, &c->replicas,
                                   replicas_waited, ap) != 0)
            committed(ap);
        return;
    }
    int rc = handle_reply(ap, &c->b, &c->f, r);
    freeReplyObject(r);
    if (rc != 0) {
        ap->head_known = 0;
        finish(ap, rc == -2 ? AUDIT_APPEND_REFUSED : AUDIT_APPEND_BROKEN);
    } else {
        attempt_next(ap);
    }
}

/* The head is known and the tree has caught up: seal what is pending and send it. */
static void send_batch(struct audit_appender *ap)
{
    struct commit *c = &ap->cur;
    audit_batch_resolve_dups(c->list);
    if (ap->accepting) {
        /* What is accepted is the head this attempt builds on (another instance may have
         * appended since the accept read it). */
        json_t *meta = json_object_get(ap->accepting->event, "metadata");
        if (json_object_set_new(meta, "accepted_seq", json_integer(ap->head_seq)) != 0 ||
            json_object_set_new(meta, "accepted_hash", json_string(ap->head_hash)) != 0) {
            finish(ap, AUDIT_APPEND_UNAVAILABLE);
            return;
        }
    }
    if (audit_batch_collect(&c->b, c->list, ap->need_activation ? &ap->activation : NULL) != 0 ||
        audit_batch_seal(ap->sealer, &c->b, ap->head_seq, ap->head_hash, &ap->tree, &ap->delta) !=
            0) {
        finish(ap, AUDIT_APPEND_UNAVAILABLE);
        return;
    }
    if (c->b.n == 0) { /* every item a duplicate: acknowledged only once remembered */
        finish(ap, audit_guard_sync(ap->guard) == 0 ? AUDIT_APPEND_OK : AUDIT_APPEND_STATE);
        return;
    }
    if (send_script(ap, &c->b, batch_sent) != 0)
        not_sent(ap);
}

/* An attempt: on a known head, with a tree that has caught up, send the batch. */
static void attempt_go(struct audit_appender *ap)
{
    if (!ap->head_known)
        load_head(ap);
    else if (ap->tree.size < ap->head_seq)
        catch_up(ap);
    else
        send_batch(ap);
}

static void attempt_next(struct audit_appender *ap)
{
    struct commit *c = &ap->cur;
    if (c->attempt++ >= MAX_ATTEMPTS) {
        finish(ap, AUDIT_APPEND_UNAVAILABLE);
        return;
    }
    c->f = ap->accept_floor;
    if (!ap->accepting)
        audit_guard_floor(ap->guard, &c->f);
    attempt_go(ap);
}

/* ---- an operator's accept ---- */

static void accept_head_read(void *arg, enum rreply_class cls)
{
    struct audit_appender *ap = arg;
    struct commit *c = &ap->cur;
    if (noted(ap, cls) != RREPLY_OK || take_head(ap, &c->head) != 0) {
        finish(ap, cls == RREPLY_OK ? AUDIT_APPEND_UNAVAILABLE : redis_failed(ap));
        return;
    }
    /* The head Redis shows, if head and log agree, stands in for the floor while the entry
     * recording the accept is committed on it; then the floor is reset to that entry. */
    audit_guard_floor(ap->guard, &c->remembered);
    json_t *meta = json_object_get(c->list->items[0].event, "metadata");
    if (json_object_set_new(meta, "remembered_seq", json_integer(c->remembered.seq)) != 0 ||
        json_object_set_new(meta, "remembered_hash", json_string(c->remembered.hash)) != 0) {
        finish(ap, AUDIT_APPEND_UNAVAILABLE);
        return;
    }
    ap->accept_floor = c->remembered;
    ap->accept_floor.seq = ap->head_seq;
    memcpy(ap->accept_floor.hash, ap->head_hash, sizeof(ap->accept_floor.hash));
    ap->accept_floor.root[0] = '\0'; /* whatever tree Redis has: the script's size checks
                                        are the appender's own (tree_size) */
    ap->accepting = &c->list->items[0];
    attempt_next(ap);
}

static void accept_checked(struct audit_appender *ap, int rc)
{
    if (rc == -1)
        log_critical(NULL, "audit chain is inconsistent: cannot accept it",
                     LF_S("detail", ap->check.err));
    if (rc != 0)
        finish(ap, rc == -1 ? AUDIT_APPEND_BROKEN : redis_failed(ap));
    else if (audit_store_tree_head_async(ap->rcl, ap->keys, &ap->cur.head, accept_head_read, ap) !=
             0)
        not_sent(ap);
}

/* ---- the loop ---- */

/* Take up to batch_max requests and AUDIT_COMMIT_ENTRIES entries (a client's own batch
 * always goes whole, even alone above that) and commit them. An accept is committed
 * alone: it changes the floor the others are judged on. */
static void kick(struct loop_task *t)
{
    struct audit_appender *ap = t->arg;
    if (ap->busy || !ap->queue_head)
        return;
    struct audit_request *list = ap->queue_head, *last = list;
    size_t entries = last->n;
    for (int n = 1; n < ap->conf.batch_max && !list->accept && last->next && !last->next->accept &&
                    entries + last->next->n <= AUDIT_COMMIT_ENTRIES;
         n++) {
        last = last->next;
        entries += last->n;
    }
    ap->queue_head = last->next;
    if (!ap->queue_head)
        ap->queue_tail = NULL;
    last->next = NULL;
    ap->busy = 1;
    ap->cur.list = list;
    ap->cur.attempt = 0;
    ap->cur.replicas = 0;
    ap->cur.started = now_s();
    if (list->accept)
        check_chain(ap, accept_checked);
    else
        attempt_next(ap);
}

static void enqueue(void *arg)
{
    struct audit_request *req = arg;
    struct audit_appender *ap = req->ap;
    if (ap->queue_tail)
        ap->queue_tail->next = req;
    else
        ap->queue_head = req;
    ap->queue_tail = req;
    kick_later(ap);
}

static void *appender_main(void *arg)
{
    struct audit_appender *ap = arg;
    loop_run(ap->loop);
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

static void appender_destroy(struct audit_appender *ap)
{
    rcl_free(ap->rcl);
    loop_free(ap->loop);
    audit_sealer_free(ap->sealer);
    audit_batch_free(&ap->cur.b);
    audit_tree_delta_free(&ap->delta);
    audit_entry_clear(&ap->activation.entry);
    json_decref(ap->activation.event);
    free(ap);
}

struct audit_appender *audit_appender_create(const struct rcl_config *rconf,
                                             const struct audit_keys *k,
                                             const struct audit_keyring *kr, struct audit_guard *g,
                                             const struct audit_appender_config *conf,
                                             struct metrics *m, char *err, size_t errsize)
{
    struct audit_appender *ap = calloc(1, sizeof(*ap));
    snprintf(err, errsize, "out of memory");
    if (!ap || kr->active < 0) {
        free(ap);
        return NULL;
    }
    ap->keys = k;
    ap->kr = kr;
    ap->guard = g;
    ap->active = &kr->keys[kr->active];
    ap->conf = *conf;
    if (ap->conf.batch_max < 1)
        ap->conf.batch_max = 1;
    ap->command_timeout_ms = rconf->command_timeout_ms > 0 ? rconf->command_timeout_ms : 1000;
    ap->kick = (struct loop_task){.fn = kick, .arg = ap};
    ap->activation.event =
        json_pack("{s:s, s:s, s:{s:s, s:s}}", "actor", "auditd", "action", "audit.key_activated",
                  "metadata", "version", ap->active->name, "public_key", ap->active->pk_b64);
    init_metrics(ap, m);
    ap->sealer = audit_sealer_create(ap->active);
    ap->loop = ap->activation.event && ap->sealer ? loop_create(err, errsize) : NULL;
    ap->rcl = ap->loop ? rcl_create(ap->loop, rconf, err, errsize) : NULL;
    if (!ap->rcl || pthread_create(&ap->thread, NULL, appender_main, ap) != 0) {
        appender_destroy(ap);
        return NULL;
    }
    return ap;
}

int audit_appender_submit(struct audit_appender *ap, struct audit_request *req)
{
    req->ap = ap;
    req->next = NULL;
    return loop_post(ap->loop, enqueue, req);
}

/* A caller waiting for its answer. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void wake(struct audit_request *req)
{
    struct waiter *w = req->arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void audit_appender_submit_wait(struct audit_appender *ap, struct audit_request *req)
{
    struct waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        req->status = AUDIT_APPEND_UNAVAILABLE;
        return;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    req->done = wake;
    req->arg = w;
    req->loop = NULL;
    if (audit_appender_submit(ap, req) != 0) {
        req->status = AUDIT_APPEND_UNAVAILABLE;
        w->done = 1;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

/* audit_appender_check's call, posted to the loop. */
struct check_call {
    struct audit_appender *ap;
    struct waiter w;
    int rc;
    char err[160];
};

static void check_answered(struct audit_appender *ap, int rc)
{
    struct check_call *k = ap->check_caller;
    k->rc = rc;
    snprintf(k->err, sizeof(k->err), "%s", ap->check.err);
    ap->check_caller = NULL;
    pthread_mutex_lock(&k->w.mu);
    k->w.done = 1;
    pthread_cond_signal(&k->w.cv);
    pthread_mutex_unlock(&k->w.mu);
}

static void check_posted(void *arg)
{
    struct check_call *k = arg;
    k->ap->check_caller = k;
    check_chain(k->ap, check_answered);
}

int audit_appender_check(struct audit_appender *ap, char *err, size_t errsize)
{
    struct check_call k = {.ap = ap, .rc = -2};
    pthread_mutex_init(&k.w.mu, NULL);
    pthread_cond_init(&k.w.cv, NULL);
    if (loop_post(ap->loop, check_posted, &k) == 0) {
        pthread_mutex_lock(&k.w.mu);
        while (!k.w.done)
            pthread_cond_wait(&k.w.cv, &k.w.mu);
        pthread_mutex_unlock(&k.w.mu);
    }
    pthread_mutex_destroy(&k.w.mu);
    pthread_cond_destroy(&k.w.cv);
    snprintf(err, errsize, "%s", k.err);
    return k.rc;
}

static void stop_posted(void *arg)
{
    struct audit_appender *ap = arg;
    ap->stopping = 1;
    if (!ap->busy && !ap->queue_head)
        loop_stop(ap->loop);
}

void audit_appender_free(struct audit_appender *ap)
{
    if (!ap)
        return;
    if (loop_post(ap->loop, stop_posted, ap) != 0)
        loop_stop(ap->loop); /* out of memory: what is queued is answered by no one */
    pthread_join(ap->thread, NULL);
    appender_destroy(ap);
}
