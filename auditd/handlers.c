/* SPDX-License-Identifier: Apache-2.0 */
/* handlers: auditd's HTTP handlers and its route table. Each parses (request.c), then the
 * request waits (pending.h) for the appender, the store or the checkpointer without
 * holding a thread, and the step that has the answer renders it. */
#include "handlers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accept.h"
#include "checkpoint.h"
#include "pending.h"
#include "request.h"
#include "scan.h"
#include "shared/jsonv.h"
#include "shared/log.h"
#include "tlog.h"
#include "tree.h"

void audit_redis_failed(struct http_req *r, enum rreply_class c)
{
    if (c == RREPLY_INTERNAL)
        http_problem(r, 500, "internal", "unexpected answer from Redis (request %s)",
                     http_request_id(r));
    else
        http_unavailable(r);
}

/* The problem for an append (or accept) that did not succeed. Returns 0 when it did. */
static int append_failed(struct http_req *r, struct audit_ctx *ctx, enum audit_append_status st)
{
    char detail[320];
    switch (st) {
    case AUDIT_APPEND_OK: return 0;
    case AUDIT_APPEND_BROKEN:
        http_problem(r, 503, "chain_broken",
                     "the chain head and log disagree (edited behind auditd's back): nothing was "
                     "appended; see the log");
        break;
    case AUDIT_APPEND_REFUSED:
        if (!audit_guard_refusing(ctx->guard, detail, sizeof(detail)))
            snprintf(detail, sizeof(detail),
                     "the chain in Redis is not the one this instance has "
                     "seen: nothing was appended; see the log");
        http_problem(r, 503, "chain_broken", "%s", detail);
        break;
    case AUDIT_APPEND_STATE:
        http_problem(r, 503, "state_unavailable",
                     "AUDIT_STATE_DIR could not be written, so the entry is not acknowledged; it "
                     "may be in the chain: retry with the same event_id");
        break;
    case AUDIT_APPEND_INTERNAL: audit_redis_failed(r, RREPLY_INTERNAL); break;
    default: http_unavailable(r);
    }
    return -1;
}

/* ---- appends: events, batches, trims, accepts ---- */

enum append_kind { APPEND_EVENT, APPEND_BATCH, APPEND_TRIM, APPEND_ACCEPT };

struct append_call {
    struct audit_pending p;
    struct audit_ctx *ctx;
    enum append_kind kind;
    struct audit_request req;
    struct audit_item one, *items; /* items: &one, or a batch's */
    size_t n;
    /* the stored entries of duplicates, read before answering */
    struct audit_entry *dups;
    size_t *dup_n, left;
    enum rreply_class c;
    struct audit_cp cp; /* a trim's */
};

static void append_free(struct append_call *a)
{
    for (size_t i = 0; a->dups && i < a->n; i++)
        if (a->dup_n[i])
            audit_entry_clear(&a->dups[i]);
    free(a->dups);
    free(a->dup_n);
    if (a->items == &a->one) {
        json_decref(a->one.event);
        audit_entry_clear(&a->one.entry);
    } else {
        audit_items_free(a->items, a->n);
    }
    audit_pending_done(&a->p);
}

/* The 201/200 form of item i: its new entry, or the stored one of a duplicate (NULL if it
 * could not be read). */
static json_t *item_json(struct append_call *a, size_t i)
{
    if (a->items[i].state == AUDIT_ITEM_APPENDED)
        return audit_entry_json(&a->items[i].entry, 0);
    return a->dup_n && a->dup_n[i] == 1 ? audit_entry_json(&a->dups[i], 0) : NULL;
}

static json_t *head_json(long long seq, const char *hash)
{
    return json_pack("{s:I, s:s}", "seq", (json_int_t)seq, "hash", hash);
}

static void render_accept(struct append_call *a)
{
    struct audit_acceptance acc;
    audit_acceptance_read(&a->one, &acc);
    json_t *out =
        json_pack("{s:o, s:o, s:o*}", "accepted", head_json(acc.accepted_seq, acc.accepted_hash),
                  "remembered", head_json(acc.remembered_seq, acc.remembered_hash), "entry",
                  audit_entry_json(&acc.entry, 0));
    audit_entry_clear(&acc.entry);
    if (out)
        http_reply_json(a->p.r, 200, out);
    else /* accepted and recorded all the same: the log says so */
        http_problem(a->p.r, 500, "internal", "out of memory");
}

/* Every entry is known: the answer. */
static void render_append(struct append_call *a)
{
    struct http_req *r = a->p.r;
    json_t *out = NULL, *entries = json_array();
    int ok = a->c == RREPLY_OK;
    for (size_t i = 0; ok && i < a->n; i++) {
        json_t *j = item_json(a, i);
        ok = j != NULL;
        json_array_append_new(entries, j);
    }
    if (!ok) {
        json_decref(entries);
        audit_redis_failed(r, a->c == RREPLY_OK ? RREPLY_UNAVAILABLE : a->c);
        return;
    }
    if (a->kind == APPEND_BATCH) {
        out = json_pack("{s:o}", "entries", entries);
    } else {
        out = json_incref(json_array_get(entries, 0));
        json_decref(entries);
    }
    if (a->ctx->wait_replicas > 0)
        json_object_set_new(out, "replicas_acked", json_integer(a->req.replicas_acked));
    if (a->kind == APPEND_TRIM) {
        json_decref(out);
        out = json_pack("{s:o}", "entry", audit_entry_json(&a->one.entry, 1));
    }
    int status = a->kind == APPEND_TRIM                                            ? 200
                 : a->kind == APPEND_EVENT && a->one.state == AUDIT_ITEM_DUPLICATE ? 200
                                                                                   : 201;
    http_reply_json(r, status, out);
}

static void dup_read(void *arg, enum rreply_class c)
{
    struct append_call *a = arg;
    if (c != RREPLY_OK && a->c == RREPLY_OK)
        a->c = c;
    if (--a->left > 0)
        return;
    render_append(a);
    append_free(a);
}

/* On the request's loop: the answer, after reading the entries of duplicates. */
static void appended_step(struct audit_pending *p)
{
    struct append_call *a = (struct append_call *)p;
    if (append_failed(p->r, a->ctx, a->req.status) != 0) {
        append_free(a);
        return;
    }
    if (a->kind == APPEND_ACCEPT) {
        render_accept(a);
        append_free(a);
        return;
    }
    size_t ndups = 0;
    for (size_t i = 0; i < a->n; i++)
        ndups += a->items[i].state == AUDIT_ITEM_DUPLICATE;
    if (ndups == 0) {
        render_append(a);
        append_free(a);
        return;
    }
    a->dups = calloc(a->n, sizeof(*a->dups));
    a->dup_n = calloc(a->n, sizeof(*a->dup_n));
    a->left = 1; /* held until every read is sent */
    for (size_t i = 0; a->dups && a->dup_n && i < a->n; i++) {
        const struct audit_item *it = &a->items[i];
        if (it->state != AUDIT_ITEM_DUPLICATE)
            continue;
        a->left++;
        if (audit_store_range_async(p->rc, a->ctx->keys, it->dup_seq, it->dup_seq, 1, &a->dups[i],
                                    &a->dup_n[i], dup_read, a) != 0) {
            a->left--;
            a->c = RREPLY_INTERNAL;
        }
    }
    if (!a->dups || !a->dup_n)
        a->c = RREPLY_INTERNAL;
    dup_read(a, RREPLY_OK);
}

/* On the request's loop, once the appender has answered. */
static void appended(struct audit_request *req)
{
    struct append_call *a = req->arg;
    appended_step(&a->p);
}

/* Hand the items to the appender (p suspended already). */
static void submit(struct append_call *a)
{
    a->req.items = a->items;
    a->req.n = a->n;
    a->req.done = appended;
    a->req.arg = a;
    a->req.loop = a->p.loop;
    if (audit_appender_submit(a->ctx->appender, &a->req) != 0) {
        http_unavailable(a->p.r);
        append_free(a);
    }
}

static struct append_call *append_new(struct http_req *r, struct audit_ctx *ctx,
                                      enum append_kind kind)
{
    struct append_call *a = calloc(1, sizeof(*a));
    if (!a) {
        http_problem(r, 500, "internal", "out of memory");
        return NULL;
    }
    a->ctx = ctx;
    a->kind = kind;
    a->items = &a->one;
    a->n = 1;
    return a;
}

/* Suspend and submit. */
static void append_start(struct append_call *a, struct http_req *r)
{
    audit_pending_suspend(&a->p, r);
    submit(a);
}

static void handle_event(struct http_req *r, void *arg)
{
    struct jv_error e;
    json_t *event = audit_event_parse(http_json(r), &e);
    if (!event) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    struct append_call *a = append_new(r, arg, APPEND_EVENT);
    if (!a) {
        json_decref(event);
        return;
    }
    a->one.event = event;
    append_start(a, r);
}

static void handle_batch(struct http_req *r, void *arg)
{
    struct jv_error e;
    struct audit_item *items = NULL;
    size_t n = 0;
    int rc = audit_req_batch(http_json(r), &items, &n, &e);
    if (rc == -1) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    struct append_call *a = rc == 0 ? append_new(r, arg, APPEND_BATCH) : NULL;
    if (!a) {
        if (rc != 0)
            http_problem(r, 500, "internal", "out of memory");
        audit_items_free(items, n);
        return;
    }
    a->items = items;
    a->n = n;
    append_start(a, r);
}

/* Admin: go on with the chain Redis shows (an older backup was restored on purpose). */
static void handle_accept(struct http_req *r, void *arg)
{
    struct append_call *a = append_new(r, arg, APPEND_ACCEPT);
    if (!a)
        return;
    if (audit_accept_item(&a->one, "POST /v1/admin/chain/accept") != 0) {
        http_problem(r, 500, "internal", "out of memory");
        free(a);
        return;
    }
    a->req.accept = 1;
    append_start(a, r);
}

/* Admin: record in the chain that the entries before before_seq are trimmed from Redis,
 * relying on a signed checkpoint of this tree and chain (audit-trim asks, once an archive
 * of them verifies; it removes them only after this entry is in the chain). */
static void trim_held(void *arg, int holds)
{
    struct append_call *a = arg;
    if (holds == 0) {
        submit(a);
        return;
    }
    if (holds < 0)
        http_unavailable(a->p.r);
    else
        http_problem(a->p.r, 409, "checkpoint_mismatch",
                     "the checkpoint is not of the tree and chain in Redis: nothing recorded");
    append_free(a);
}

static void trim_step(struct audit_pending *p)
{
    struct append_call *a = (struct append_call *)p;
    if (audit_tree_holds_async(p->rc, a->ctx->keys, &a->cp, trim_held, a) != 0)
        trim_held(a, -1);
}

static void handle_trim(struct http_req *r, void *arg)
{
    struct audit_ctx *ctx = arg;
    struct jv_error e;
    long long before;
    const char *note;
    size_t len;
    char err[200];
    struct append_call *a = append_new(r, ctx, APPEND_TRIM);
    if (!a)
        return;
    if (audit_req_trim(http_json(r), &before, &note, &len, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        free(a);
        return;
    }
    if (audit_checkpoint_open(note, len, ctx->kr, &a->cp, err, sizeof(err)) != 0 ||
        !a->cp.has_tree || strcmp(a->cp.origin, ctx->origin) != 0 || before > a->cp.size + 1) {
        http_invalid(r, "checkpoint",
                     "a tree checkpoint of this log, signed by its keys, of a "
                     "size at least before_seq - 1");
        free(a);
        return;
    }
    a->one.event =
        json_pack("{s:s, s:s, s:{s:I, s:s%, s:I, s:s}}", "actor", "auditd", "action",
                  "audit.trimmed", "metadata", "before_seq", (json_int_t)before, "checkpoint", note,
                  len, "checkpoint_size", (json_int_t)a->cp.size, "via", "POST /v1/admin/trim");
    if (!a->one.event) {
        http_problem(r, 500, "internal", "out of memory");
        free(a);
        return;
    }
    audit_pending_start(&a->p, r, trim_step);
}

/* ---- reads of the chain ---- */

struct read_call {
    struct audit_pending p;
    struct audit_ctx *ctx;
    long long seq, from, limit;
    char hash[AUDIT_HASH_HEX_LEN + 1];
    int exists;
    struct audit_entry *page;
    size_t n;
    json_t *table;
};

static void read_done(struct read_call *k)
{
    for (size_t i = 0; i < k->n; i++)
        audit_entry_clear(&k->page[i]);
    free(k->page);
    json_decref(k->table);
    audit_pending_done(&k->p);
}

/* A read that could not be sent. */
static void read_not_sent(struct read_call *k)
{
    http_problem(k->p.r, 500, "internal", "out of memory");
    read_done(k);
}

static struct read_call *read_new(struct http_req *r, struct audit_ctx *ctx, size_t page)
{
    struct read_call *k = calloc(1, sizeof(*k));
    if (k && page)
        k->page = calloc(page, sizeof(*k->page));
    if (!k || (page && !k->page)) {
        free(k);
        http_problem(r, 500, "internal", "out of memory");
        return NULL;
    }
    k->ctx = ctx;
    return k;
}

static void list_read(void *arg, enum rreply_class c)
{
    struct read_call *k = arg;
    if (c != RREPLY_OK) {
        audit_redis_failed(k->p.r, c);
        read_done(k);
        return;
    }
    json_t *entries = json_array();
    for (size_t i = 0; i < k->n; i++)
        json_array_append_new(entries, audit_entry_json(&k->page[i], 1));
    json_t *next = k->n == (size_t)k->limit ? json_integer(k->page[k->n - 1].seq + 1) : json_null();
    http_reply_json(k->p.r, 200,
                    json_pack("{s:o, s:o}", "entries", entries, "next_from_seq", next));
    read_done(k);
}

static void list_step(struct audit_pending *p)
{
    struct read_call *k = (struct read_call *)p;
    if (audit_store_range_async(p->rc, k->ctx->keys, k->from, -1, (size_t)k->limit, k->page, &k->n,
                                list_read, k) != 0)
        read_not_sent(k);
}

static void handle_list(struct http_req *r, void *arg)
{
    struct jv_error e;
    long long from, limit;
    if (audit_req_list(http_query(r, "from_seq"), http_query(r, "limit"), &from, &limit, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    struct read_call *k = read_new(r, arg, (size_t)limit);
    if (!k)
        return;
    k->from = from;
    k->limit = limit;
    audit_pending_start(&k->p, r, list_step);
}

static void get_read(void *arg, enum rreply_class c)
{
    struct read_call *k = arg;
    if (c != RREPLY_OK)
        audit_redis_failed(k->p.r, c);
    else if (k->n == 0)
        http_problem(k->p.r, 404, "not_found", "no entry with seq %lld", k->seq);
    else
        http_reply_json(k->p.r, 200, audit_entry_json(&k->page[0], 1));
    read_done(k);
}

static void get_step(struct audit_pending *p)
{
    struct read_call *k = (struct read_call *)p;
    if (audit_store_range_async(p->rc, k->ctx->keys, k->seq, k->seq, 1, k->page, &k->n, get_read,
                                k) != 0)
        read_not_sent(k);
}

static void handle_get(struct http_req *r, void *arg)
{
    long long seq = audit_req_num(http_param(r, "seq"), 1, AUDIT_SEQ_MAX);
    if (seq < 0) {
        http_problem(r, 404, "not_found", "no entry with that seq");
        return;
    }
    struct read_call *k = read_new(r, arg, 1);
    if (!k)
        return;
    k->seq = seq;
    audit_pending_start(&k->p, r, get_step);
}

static void head_entry_read(void *arg, enum rreply_class c)
{
    struct read_call *k = arg;
    if (c != RREPLY_OK) {
        audit_redis_failed(k->p.r, c);
        read_done(k);
        return;
    }
    json_t *ts = k->n == 1 && k->page[0].ts[0] ? json_string(k->page[0].ts) : json_null();
    http_reply_json(
        k->p.r, 200,
        json_pack("{s:I, s:s, s:o}", "seq", (json_int_t)k->seq, "hash", k->hash, "ts", ts));
    read_done(k);
}

static void head_read(void *arg, enum rreply_class c)
{
    struct read_call *k = arg;
    if (c != RREPLY_OK || k->seq <= 0) {
        head_entry_read(k, c);
        return;
    }
    if (audit_store_range_async(k->p.rc, k->ctx->keys, k->seq, k->seq, 1, k->page, &k->n,
                                head_entry_read, k) != 0)
        read_not_sent(k);
}

static void head_step(struct audit_pending *p)
{
    struct read_call *k = (struct read_call *)p;
    if (audit_store_head_async(p->rc, k->ctx->keys, &k->seq, k->hash, &k->exists, head_read, k) !=
        0)
        read_not_sent(k);
}

static void handle_head(struct http_req *r, void *arg)
{
    struct read_call *k = read_new(r, arg, 1);
    if (k)
        audit_pending_start(&k->p, r, head_step);
}

static void keys_read(void *arg, enum rreply_class c)
{
    struct read_call *k = arg;
    if (c != RREPLY_OK)
        audit_redis_failed(k->p.r, c);
    else
        http_reply_json(k->p.r, 200, audit_keyring_json(k->ctx->kr, k->table));
    read_done(k);
}

static void keys_step(struct audit_pending *p)
{
    struct read_call *k = (struct read_call *)p;
    if (audit_store_key_table_async(p->rc, k->ctx->keys, &k->table, keys_read, k) != 0)
        read_not_sent(k);
}

static void handle_keys(struct http_req *r, void *arg)
{
    struct read_call *k = read_new(r, arg, 0);
    if (k)
        audit_pending_start(&k->p, r, keys_step);
}

/* ---- verify ---- */

/* A verification reads the whole range asked and checks every signature: minutes on a long
 * chain. It runs on a thread of its own, never on a loop that serves requests. */
struct verify_call {
    struct http_req *r;
    struct audit_ctx *ctx;
    struct audit_scan_opts o;
};

static void *verify_main(void *arg)
{
    struct verify_call *v = arg;
    struct audit_vresult res;
    struct audit_db db;
    char err[200];
    enum rreply_class c = RREPLY_INTERNAL;
    if (audit_db_open(&db, v->ctx->rconf, err, sizeof(err)) == 0) {
        c = audit_scan_redis(&db, v->ctx->keys, v->ctx->kr, &v->o, &res);
        audit_db_close(&db);
    }
    if (c != RREPLY_OK)
        audit_redis_failed(v->r, c);
    else if (res.ok)
        http_reply_json(v->r, 200,
                        json_pack("{s:b, s:I, s:I}", "ok", 1, "checked", (json_int_t)res.checked,
                                  "head_seq", (json_int_t)res.head_seq));
    else
        http_reply_json(v->r, 200,
                        json_pack("{s:b, s:I, s:I, s:s}", "ok", 0, "checked",
                                  (json_int_t)res.checked, "first_bad_seq",
                                  (json_int_t)res.first_bad_seq, "reason",
                                  audit_reason_name(res.reason)));
    http_resume(v->r);
    free(v);
    return NULL;
}

static void handle_verify(struct http_req *r, void *arg)
{
    struct jv_error e;
    pthread_t t;
    pthread_attr_t attr;
    struct verify_call *v = calloc(1, sizeof(*v));
    if (!v) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    *v = (struct verify_call){
        .r = r, .ctx = arg, .o = {.from_seq = 1, .to_seq = -1, .threads = 0, .tree = 1}};
    if (audit_req_verify(http_json(r), &v->o, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        free(v);
        return;
    }
    http_suspend(r);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, verify_main, v) != 0) {
        http_unavailable(r);
        http_resume(r);
        free(v);
    }
    pthread_attr_destroy(&attr);
}

/* ---- checkpoints ---- */

struct checkpoint_call {
    struct audit_pending p; /* the checkpointer has its own loop and client */
    struct audit_ctx *ctx;
};

static void checkpoint_made(void *arg, int n, const char *note)
{
    struct checkpoint_call *k = arg;
    struct http_req *r = k->p.r;
    struct audit_ctx *ctx = k->ctx;
    if (n == AUDIT_CP_REDIS || n == AUDIT_CP_REDIS_ERROR)
        audit_redis_failed(r, n == AUDIT_CP_REDIS ? RREPLY_UNAVAILABLE : RREPLY_INTERNAL);
    else if (n == AUDIT_CP_REFUSED)
        append_failed(r, ctx, AUDIT_APPEND_REFUSED);
    else if (n == AUDIT_CP_BEHIND) {
        http_add_header(r, "Retry-After", "1");
        http_problem(r, 503, "tree_catching_up",
                     "the Merkle tree is being built for the entries of an older chain; "
                     "a checkpoint is signed once it has caught up");
    } else if (n < 0)
        http_problem(r, 500, "internal", "could not sign the checkpoint");
    else
        http_reply_raw(r, 200, "text/plain; charset=utf-8", note, (size_t)n);
    audit_pending_done(&k->p);
}

static void handle_checkpoint(struct http_req *r, void *arg)
{
    struct checkpoint_call *k = calloc(1, sizeof(*k));
    if (!k) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    k->ctx = arg;
    audit_pending_suspend(&k->p, r);
    if (audit_checkpointer_now(k->ctx->checkpointer, checkpoint_made, k) != 0) {
        http_unavailable(r);
        audit_pending_done(&k->p);
    }
}

void audit_routes(struct app *a, struct audit_ctx *ctx)
{
    app_route(a, "POST", "/v1/events", handle_event, ctx, 0);
    app_route(a, "POST", "/v1/events/batch", handle_batch, ctx, 0);
    app_route(a, "GET", "/v1/events", handle_list, ctx, 0);
    app_route(a, "GET", "/v1/events/:seq", handle_get, ctx, 0);
    app_route(a, "GET", "/v1/head", handle_head, ctx, 0);
    app_route(a, "GET", "/v1/keys", handle_keys, ctx, 0);
    app_route(a, "POST", "/v1/verify", handle_verify, ctx, 0);
    app_route(a, "GET", "/v1/checkpoint", handle_checkpoint, ctx, 0);
    app_route(a, "POST", "/v1/admin/chain/accept", handle_accept, ctx, HTTP_ADMIN | HTTP_NO_BODY);
    app_route(a, "POST", "/v1/admin/trim", handle_trim, ctx, HTTP_ADMIN);
    app_route(a, "GET", "/v1/proofs/inclusion", audit_tlog_inclusion, ctx, 0);
    app_route(a, "GET", "/v1/proofs/consistency", audit_tlog_consistency, ctx, 0);
    /* The tlog-tiles paths (tile/<L>/<N>[.p/<W>], tile/entries/...), outside /v1/ as the
     * format lays them out, under the API token all the same: bundles hold the entries. */
    app_route(a, "GET", "/tile/*path", audit_tlog_tile, ctx, HTTP_TOKEN);
}
