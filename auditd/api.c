/* SPDX-License-Identifier: Apache-2.0 */
/* api: the /v1 handlers of auditd. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "checkpointer.h"
#include "request.h"
#include "scan.h"
#include "shared/jsonv.h"
#include "shared/log.h"
#include "tree.h"

/* The 201/200 form of an item: its new entry, or the existing one for a duplicate. */
static json_t *item_json(struct audit_api *api, struct audit_item *it, int *ok)
{
    struct audit_entry e;
    size_t n = 0;
    if (it->state == AUDIT_ITEM_APPENDED)
        return audit_entry_json(&it->entry, 0);
    if (audit_store_range(api->pool, api->keys, it->dup_seq, it->dup_seq, 1, &e, &n) != RPOOL_OK ||
        n != 1) {
        *ok = 0;
        return NULL;
    }
    json_t *j = audit_entry_json(&e, 0);
    audit_entry_clear(&e);
    return j;
}

/* The problem for an append (or accept) that did not succeed. Returns 0 when it did. */
static int append_failed(struct http_req *r, struct audit_api *api, enum audit_append_status st)
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
        if (!audit_guard_refusing(api->guard, detail, sizeof(detail)))
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
    default: http_unavailable(r);
    }
    return -1;
}

static void handle_event(struct http_req *r, void *ctx)
{
    struct audit_api *api = ctx;
    struct jv_error e;
    struct audit_item item = {0};
    struct audit_request req = {.items = &item, .n = 1};
    int ok = 1;
    item.event = audit_event_parse(http_json(r), &e);
    if (!item.event) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    audit_appender_submit(api->appender, &req);
    if (append_failed(r, api, req.status) == 0) {
        json_t *out = item_json(api, &item, &ok);
        if (!ok) {
            http_unavailable(r);
        } else {
            if (api->wait_replicas > 0)
                json_object_set_new(out, "replicas_acked", json_integer(req.replicas_acked));
            http_reply_json(r, item.state == AUDIT_ITEM_DUPLICATE ? 200 : 201, out);
        }
    }
    json_decref(item.event);
    audit_entry_clear(&item.entry);
}

static void handle_batch(struct http_req *r, void *ctx)
{
    struct audit_api *api = ctx;
    struct jv_error e;
    struct audit_item *items = NULL;
    size_t n = 0;
    int ok = 1;
    int rc = audit_req_batch(http_json(r), &items, &n, &e);
    if (rc == -1) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    if (rc != 0) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    struct audit_request req = {.items = items, .n = n};
    audit_appender_submit(api->appender, &req);
    if (append_failed(r, api, req.status) == 0) {
        json_t *entries = json_array();
        for (size_t i = 0; i < n && ok; i++)
            json_array_append_new(entries, item_json(api, &items[i], &ok));
        json_t *out = json_pack("{s:o}", "entries", entries);
        if (api->wait_replicas > 0)
            json_object_set_new(out, "replicas_acked", json_integer(req.replicas_acked));
        if (ok)
            http_reply_json(r, 201, out);
        else {
            json_decref(out);
            http_unavailable(r);
        }
    }
    audit_items_free(items, n);
}

static void handle_list(struct http_req *r, void *ctx)
{
    struct audit_api *api = ctx;
    struct jv_error e;
    long long from, limit;
    size_t n = 0;
    if (audit_req_list(http_query(r, "from_seq"), http_query(r, "limit"), &from, &limit, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    struct audit_entry *page = calloc((size_t)limit, sizeof(*page));
    if (!page) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    if (audit_store_range(api->pool, api->keys, from, -1, (size_t)limit, page, &n) != RPOOL_OK) {
        free(page);
        http_unavailable(r);
        return;
    }
    json_t *entries = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(entries, audit_entry_json(&page[i], 1));
        audit_entry_clear(&page[i]);
    }
    json_t *next = n == (size_t)limit ? json_integer(page[n - 1].seq + 1) : json_null();
    free(page);
    http_reply_json(r, 200, json_pack("{s:o, s:o}", "entries", entries, "next_from_seq", next));
}

static void handle_get(struct http_req *r, void *ctx)
{
    struct audit_api *api = ctx;
    long long seq = audit_req_num(http_param(r, "seq"), 1, AUDIT_SEQ_MAX);
    struct audit_entry e;
    size_t n = 0;
    if (seq < 0) {
        http_problem(r, 404, "not_found", "no entry with that seq");
        return;
    }
    if (audit_store_range(api->pool, api->keys, seq, seq, 1, &e, &n) != RPOOL_OK) {
        http_unavailable(r);
        return;
    }
    if (n == 0) {
        http_problem(r, 404, "not_found", "no entry with seq %lld", seq);
        return;
    }
    http_reply_json(r, 200, audit_entry_json(&e, 1));
    audit_entry_clear(&e);
}

static void handle_head(struct http_req *r, void *ctx)
{
    struct audit_api *api = ctx;
    long long seq;
    char hash[AUDIT_HASH_HEX_LEN + 1];
    int exists;
    struct audit_entry e;
    size_t n = 0;
    if (audit_store_head(api->pool, api->keys, &seq, hash, &exists) != RPOOL_OK ||
        (seq > 0 && audit_store_range(api->pool, api->keys, seq, seq, 1, &e, &n) != RPOOL_OK)) {
        http_unavailable(r);
        return;
    }
    json_t *ts = n == 1 && e.ts[0] ? json_string(e.ts) : json_null();
    if (n == 1)
        audit_entry_clear(&e);
    http_reply_json(r, 200,
                    json_pack("{s:I, s:s, s:o}", "seq", (json_int_t)seq, "hash", hash, "ts", ts));
}

static void handle_keys(struct http_req *r, void *ctx)
{
    struct audit_api *api = ctx;
    json_t *table = NULL;
    if (audit_store_key_table(api->pool, api->keys, &table) != RPOOL_OK) {
        json_decref(table);
        http_unavailable(r);
        return;
    }
    http_reply_json(r, 200, audit_keyring_json(api->kr, table));
    json_decref(table);
}

static void handle_verify(struct http_req *r, void *ctx)
{
    struct audit_api *api = ctx;
    struct jv_error e;
    struct audit_scan_opts o = {.from_seq = 1, .to_seq = -1, .threads = 0, .tree = 1};
    struct audit_vresult res;
    if (audit_req_verify(http_json(r), &o, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    if (audit_scan_redis(api->pool, api->keys, api->kr, &o, &res) != RPOOL_OK) {
        http_unavailable(r);
        return;
    }
    if (res.ok)
        http_reply_json(r, 200,
                        json_pack("{s:b, s:I, s:I}", "ok", 1, "checked", (json_int_t)res.checked,
                                  "head_seq", (json_int_t)res.head_seq));
    else
        http_reply_json(r, 200,
                        json_pack("{s:b, s:I, s:I, s:s}", "ok", 0, "checked",
                                  (json_int_t)res.checked, "first_bad_seq",
                                  (json_int_t)res.first_bad_seq, "reason",
                                  audit_reason_name(res.reason)));
}

static void handle_checkpoint(struct http_req *r, void *ctx)
{
    struct audit_api *api = ctx;
    char note[AUDIT_NOTE_MAX];
    int n = audit_checkpointer_now(api->checkpointer, note, sizeof(note));
    if (n == AUDIT_CP_REDIS) {
        http_unavailable(r);
        return;
    }
    if (n == AUDIT_CP_REFUSED) {
        append_failed(r, api, AUDIT_APPEND_REFUSED);
        return;
    }
    if (n == AUDIT_CP_BEHIND) {
        http_add_header(r, "Retry-After", "1");
        http_problem(r, 503, "tree_catching_up",
                     "the Merkle tree is being built for the entries of an older chain; "
                     "a checkpoint is signed once it has caught up");
        return;
    }
    if (n < 0) {
        http_problem(r, 500, "internal", "could not sign the checkpoint");
        return;
    }
    http_reply_raw(r, 200, "text/plain; charset=utf-8", note, (size_t)n);
}

static json_t *head_json(long long seq, const char *hash)
{
    return json_pack("{s:I, s:s}", "seq", (json_int_t)seq, "hash", hash);
}

/* Admin: go on with the chain Redis shows (an older backup was restored on purpose). */
static void handle_accept(struct http_req *r, void *ctx)
{
    struct audit_api *api = ctx;
    struct audit_acceptance acc;
    enum audit_append_status st =
        audit_appender_accept(api->appender, "POST /v1/admin/chain/accept", &acc);
    if (append_failed(r, api, st) != 0)
        return;
    json_t *out =
        json_pack("{s:o, s:o, s:o*}", "accepted", head_json(acc.accepted_seq, acc.accepted_hash),
                  "remembered", head_json(acc.remembered_seq, acc.remembered_hash), "entry",
                  audit_entry_json(&acc.entry, 0));
    audit_entry_clear(&acc.entry);
    if (out)
        http_reply_json(r, 200, out);
    else /* accepted and recorded all the same: the log says so */
        http_problem(r, 500, "internal", "out of memory");
}

/* Admin: record in the chain that the entries before before_seq are trimmed from Redis,
 * relying on a signed checkpoint of this tree and chain (audit-trim asks, once an archive
 * of them verifies; it removes them only after this entry is in the chain). */
static void handle_trim(struct http_req *r, void *ctx)
{
    struct audit_api *api = ctx;
    struct jv_error e;
    struct audit_cp cp;
    struct audit_item item = {0};
    struct audit_request req = {.items = &item, .n = 1};
    long long before;
    const char *note;
    size_t len;
    char err[200];
    if (audit_req_trim(http_json(r), &before, &note, &len, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    if (audit_checkpoint_open(note, len, api->kr, &cp, err, sizeof(err)) != 0 || !cp.has_tree ||
        strcmp(cp.origin, api->origin) != 0 || before > cp.size + 1) {
        http_invalid(r, "checkpoint",
                     "a tree checkpoint of this log, signed by its keys, of a "
                     "size at least before_seq - 1");
        return;
    }
    int holds = audit_tree_holds(api->pool, api->keys, &cp);
    if (holds != 0) {
        if (holds < 0)
            http_unavailable(r);
        else
            http_problem(r, 409, "checkpoint_mismatch",
                         "the checkpoint is not of the tree and chain in Redis: nothing recorded");
        return;
    }
    item.event =
        json_pack("{s:s, s:s, s:{s:I, s:s%, s:I, s:s}}", "actor", "auditd", "action",
                  "audit.trimmed", "metadata", "before_seq", (json_int_t)before, "checkpoint", note,
                  len, "checkpoint_size", (json_int_t)cp.size, "via", "POST /v1/admin/trim");
    if (!item.event) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    audit_appender_submit(api->appender, &req);
    if (append_failed(r, api, req.status) == 0)
        http_reply_json(r, 200, json_pack("{s:o}", "entry", audit_entry_json(&item.entry, 1)));
    json_decref(item.event);
    audit_entry_clear(&item.entry);
}

void audit_api_routes(struct app *a, struct audit_api *api)
{
    app_route(a, "POST", "/v1/events", handle_event, api, 0);
    app_route(a, "POST", "/v1/events/batch", handle_batch, api, 0);
    app_route(a, "GET", "/v1/events", handle_list, api, 0);
    app_route(a, "GET", "/v1/events/:seq", handle_get, api, 0);
    app_route(a, "GET", "/v1/head", handle_head, api, 0);
    app_route(a, "GET", "/v1/keys", handle_keys, api, 0);
    app_route(a, "POST", "/v1/verify", handle_verify, api, 0);
    app_route(a, "GET", "/v1/checkpoint", handle_checkpoint, api, 0);
    app_route(a, "POST", "/v1/admin/chain/accept", handle_accept, api, HTTP_ADMIN | HTTP_NO_BODY);
    app_route(a, "POST", "/v1/admin/trim", handle_trim, api, HTTP_ADMIN);
    audit_api_tlog_routes(a, api);
}
