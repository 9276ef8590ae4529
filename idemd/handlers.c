/* SPDX-License-Identifier: Apache-2.0 */
/* handlers: the handlers of POST /v1/claim, /v1/complete, /v1/release, /v1/extend,
 * /v1/checkpoint and GET /v1/record. They parse, call the store (store.c), and render. */
#include "handlers.h"

#include <stdio.h>
#include <string.h>

#include "shared/log.h"

void idem_handlers_metrics(struct idem_ctx *ctx, struct metrics *m)
{
    ctx->claims = metrics_counter(m, "claims_total", "Claims by outcome.", "outcome");
    ctx->completions =
        metrics_counter(m, "completions_total", "Completions by outcome.", "outcome");
    ctx->releases = metrics_counter(m, "releases_total", "Records released by their holder.", NULL);
    ctx->extensions =
        metrics_counter(m, "lease_extensions_total", "Leases extended by their holder.", NULL);
    /* every outcome at 0 from the start, so rate() sees the first one */
    static const enum idem_outcome CLAIMS[] = {IDEM_CLAIMED,     IDEM_RECOVERED, IDEM_REPLAY,
                                               IDEM_IN_PROGRESS, IDEM_BLOCKED,   IDEM_MISMATCH};
    static const enum idem_outcome COMPLETIONS[] = {IDEM_COMPLETED, IDEM_LEASE_LOST,
                                                    IDEM_NOT_FOUND};
    for (size_t i = 0; i < sizeof(CLAIMS) / sizeof(CLAIMS[0]); i++)
        metric_with(ctx->claims, idem_outcome_name(CLAIMS[i]));
    for (size_t i = 0; i < sizeof(COMPLETIONS) / sizeof(COMPLETIONS[0]); i++)
        metric_with(ctx->completions, idem_outcome_name(COMPLETIONS[i]));
}

/* ---- rendering helpers ------------------------------------------------------------ */

/* The answer of a Redis outcome that is not a reply to read, as in every daemon
 * (redis_reply.h): 503 when Redis cannot serve now, 500 for a bug (already logged by the
 * store). */
static void reply_store_error(struct http_req *r, int rc)
{
    if (rc == RREPLY_UNAVAILABLE)
        http_unavailable(r);
    else
        http_problem(r, 500, "internal", "unexpected answer from the record store");
}

/* A problem's extension members, with replicas_acked when WAIT ran. */
static json_t *ext_of(const struct idem_result *res)
{
    json_t *ext = json_object();
    if (ext && res->replicas_acked >= 0)
        json_object_set_new(ext, "replicas_acked", json_integer(res->replicas_acked));
    return ext;
}

static void add_replicas(json_t *body, const struct idem_result *res)
{
    if (body && res->replicas_acked >= 0)
        json_object_set_new(body, "replicas_acked", json_integer(res->replicas_acked));
}

static void lease_lost(struct http_req *r, const struct idem_result *res)
{
    http_problem_ext(r, 409, "lease_lost", ext_of(res),
                     "the lease token does not hold this key (expired and taken over, "
                     "released, completed, or never issued)");
}

static void not_found(struct http_req *r, const struct idem_result *res)
{
    http_problem_ext(r, 404, "not_found", ext_of(res), "no record for this scope and key");
}

/* Log a decision about a key by a short hash of it: keys never appear in logs. */
static void log_decision(struct http_req *r, const struct idem_ref *ref, const char *what)
{
    char hash[13];
    if (!log_enabled(LOG_DEBUG))
        return;
    log_hash_id(ref->rkey, strlen(ref->rkey), hash);
    log_debug(http_request_id(r), what, LF_S("key_hash", hash));
}

/* ---- claim --------------------------------------------------------------------------- */

static void render_claimed(struct http_req *r, const struct idem_result *res)
{
    json_t *cp = res->checkpoint ? json_stringn(res->checkpoint, res->checkpoint_len) : json_null();
    json_t *body =
        json_pack("{s:s, s:s, s:I, s:I, s:b, s:o}", "outcome", "claimed", "lease_token",
                  res->lease_token, "lease_expires_in_ms", (json_int_t)res->lease_left_ms,
                  "expires_in_ms", (json_int_t)res->expires_in_ms, "recovered", res->recovered,
                  "checkpoint", cp ? cp : json_null());
    add_replicas(body, res);
    http_reply_json(r, 201, body);
}

static void render_replay(struct http_req *r, const struct idem_result *res)
{
    json_t *headers = json_loads(res->headers_json, JSON_REJECT_DUPLICATES, NULL);
    json_t *stored = json_stringn(res->body, res->body_len);
    if (!headers || !json_is_object(headers) || !stored) {
        json_decref(headers);
        json_decref(stored);
        log_error(http_request_id(r), "a stored response cannot be replayed");
        http_problem(r, 500, "internal", "the stored response is unreadable");
        return;
    }
    json_t *body =
        json_pack("{s:s, s:I, s:o, s:o, s:s, s:I, s:I}", "outcome", "replay", "status",
                  (json_int_t)res->status, "headers", headers, "body", stored, "body_encoding",
                  res->body_encoding, "completed_at_ms", (json_int_t)res->completed_ms,
                  "expires_in_ms", (json_int_t)res->expires_in_ms);
    add_replicas(body, res);
    http_add_header(r, "Idempotent-Replayed", "true");
    http_reply_json(r, 200, body);
}

static void render_in_progress(struct http_req *r, const struct idem_result *res)
{
    char retry[24];
    long long secs = (res->lease_left_ms + 999) / 1000;
    snprintf(retry, sizeof(retry), "%lld", secs < 1 ? 1 : secs);
    json_t *ext = ext_of(res);
    json_object_set_new(ext, "lease_expires_in_ms", json_integer(res->lease_left_ms));
    http_add_header(r, "Retry-After", retry);
    http_problem_ext(r, 409, "request_in_progress", ext,
                     "another request with this key is in flight");
}

/* Render a claim decision and count it. */
static void render_claim(struct idem_ctx *c, struct http_req *r, const struct idem_claim_in *in,
                         const struct idem_result *res)
{
    metric_inc(metric_with(c->claims, idem_outcome_name(res->outcome)));
    log_decision(r, &in->ref, idem_outcome_name(res->outcome));
    switch (res->outcome) {
    case IDEM_CLAIMED:
    case IDEM_RECOVERED: render_claimed(r, res); break;
    case IDEM_REPLAY: render_replay(r, res); break;
    case IDEM_IN_PROGRESS: render_in_progress(r, res); break;
    case IDEM_MISMATCH:
        http_problem_ext(r, 422, "fingerprint_mismatch", ext_of(res),
                         "this key was used for a different request");
        break;
    case IDEM_BLOCKED: {
        json_t *ext = ext_of(res);
        json_object_set_new(ext, "expires_in_ms", json_integer(res->expires_in_ms));
        http_problem_ext(r, 409, "lease_expired_blocked", ext,
                         "the holder's lease ran out; the key stays in flight until released "
                         "or expired");
        break;
    }
    default: http_problem(r, 500, "internal", "unexpected claim outcome"); break;
    }
}

void idem_answer_waited_claim(struct http_req *r, const struct idem_claim_in *in, int rc,
                              struct idem_result *res, void *arg)
{
    if (rc != RREPLY_OK)
        reply_store_error(r, rc);
    else
        render_claim(arg, r, in, res);
}

static void handle_claim(struct http_req *r, void *ctx)
{
    struct idem_ctx *c = ctx;
    struct idem_claim_in in;
    struct idem_result res;
    struct jv_error e = {0};
    char token[33];
    if (idem_parse_claim(http_json(r), c->conf, &in, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    idem_new_lease_token(token);
    int rc = idem_store_claim(c->store, &in, token, &res);
    if (rc != RREPLY_OK) {
        reply_store_error(r, rc);
        return;
    }
    int undecided = res.outcome == IDEM_IN_PROGRESS || res.outcome == IDEM_BLOCKED;
    if (undecided && in.wait_ms > 0 && c->waiter) {
        http_suspend(r);
        if (idem_waiter_add(c->waiter, r, &in, token, in.wait_ms) == 0) {
            idem_result_free(&res);
            return; /* answered by the waiter */
        }
        render_claim(c, r, &in, &res);
        http_resume(r);
        idem_result_free(&res);
        return;
    }
    render_claim(c, r, &in, &res);
    idem_result_free(&res);
}

/* ---- the lease holder's calls -------------------------------------------------------- */

/* Parse errors: 400 naming the field, or 413 for an oversize stored body. */
static void reply_parse_error(struct http_req *r, int prc, const struct jv_error *e)
{
    if (prc == IDEM_TOO_LARGE)
        http_problem_ext(r, 413, "body_too_large", json_pack("{s:s}", "field", e->field), "%s",
                         e->detail);
    else
        http_invalid(r, e->field, "%s", e->detail);
}

/* The answers every holder call shares: lease_lost and not_found. Returns 1 if it
 * answered. */
static int render_refusal(struct http_req *r, const struct idem_result *res)
{
    if (res->outcome == IDEM_LEASE_LOST) {
        lease_lost(r, res);
        return 1;
    }
    if (res->outcome == IDEM_NOT_FOUND) {
        not_found(r, res);
        return 1;
    }
    return 0;
}

static void handle_complete(struct http_req *r, void *ctx)
{
    struct idem_ctx *c = ctx;
    struct idem_lease_in in;
    struct idem_result res;
    struct jv_error e = {0};
    int prc = idem_parse_complete(http_json(r), c->conf, &in, &e);
    if (prc != 0) {
        idem_lease_in_clear(&in);
        reply_parse_error(r, prc, &e);
        return;
    }
    int rc = idem_store_complete(c->store, &in, &res);
    idem_lease_in_clear(&in);
    if (rc != RREPLY_OK) {
        reply_store_error(r, rc);
        return;
    }
    metric_inc(metric_with(c->completions, idem_outcome_name(res.outcome)));
    log_decision(r, &in.ref, idem_outcome_name(res.outcome));
    if (!render_refusal(r, &res)) {
        json_t *body = json_pack("{s:s, s:I}", "outcome", "completed", "expires_in_ms",
                                 (json_int_t)res.expires_in_ms);
        add_replicas(body, &res);
        http_reply_json(r, 200, body);
    }
    idem_result_free(&res);
}

static void handle_release(struct http_req *r, void *ctx)
{
    struct idem_ctx *c = ctx;
    struct idem_lease_in in;
    struct idem_result res;
    struct jv_error e = {0};
    if (idem_parse_release(http_json(r), &in, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    int rc = idem_store_release(c->store, &in, &res);
    if (rc != RREPLY_OK) {
        reply_store_error(r, rc);
        return;
    }
    log_decision(r, &in.ref, idem_outcome_name(res.outcome));
    if (!render_refusal(r, &res)) {
        metric_inc(metric_with(c->releases, NULL));
        json_t *body = json_pack("{s:s}", "outcome", "released");
        add_replicas(body, &res);
        http_reply_json(r, 200, body);
    }
    idem_result_free(&res);
}

static void handle_extend(struct http_req *r, void *ctx)
{
    struct idem_ctx *c = ctx;
    struct idem_lease_in in;
    struct idem_result res;
    struct jv_error e = {0};
    if (idem_parse_extend(http_json(r), c->conf, &in, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    int rc = idem_store_extend(c->store, &in, &res);
    if (rc != RREPLY_OK) {
        reply_store_error(r, rc);
        return;
    }
    if (!render_refusal(r, &res)) {
        metric_inc(metric_with(c->extensions, NULL));
        json_t *body = json_pack("{s:s, s:I}", "outcome", "extended", "lease_expires_in_ms",
                                 (json_int_t)res.lease_left_ms);
        add_replicas(body, &res);
        http_reply_json(r, 200, body);
    }
    idem_result_free(&res);
}

static void handle_checkpoint(struct http_req *r, void *ctx)
{
    struct idem_ctx *c = ctx;
    struct idem_lease_in in;
    struct idem_result res;
    struct jv_error e = {0};
    if (idem_parse_checkpoint(http_json(r), &in, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    int rc = idem_store_checkpoint(c->store, &in, &res);
    if (rc != RREPLY_OK) {
        reply_store_error(r, rc);
        return;
    }
    if (!render_refusal(r, &res)) {
        json_t *body = json_pack("{s:s}", "outcome", "checkpointed");
        add_replicas(body, &res);
        http_reply_json(r, 200, body);
    }
    idem_result_free(&res);
}

/* ---- record ------------------------------------------------------------------------------ */

static json_t *int_or_null(long long v, int present)
{
    return present ? json_integer(v) : json_null();
}

static void handle_record(struct http_req *r, void *ctx)
{
    struct idem_ctx *c = ctx;
    struct idem_ref ref;
    struct idem_result res;
    struct jv_error e = {0};
    const char *scope = http_query(r, "scope"), *key = http_query(r, "key");
    if (idem_ref_set(&ref, scope, key, key ? strlen(key) : 0, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    int rc = idem_store_record(c->store, &ref, &res);
    if (rc != RREPLY_OK) {
        reply_store_error(r, rc);
        return;
    }
    if (res.outcome != IDEM_FOUND) {
        not_found(r, &res);
        idem_result_free(&res);
        return;
    }
    int done = strcmp(res.state, "completed") == 0;
    json_t *cp = res.checkpoint ? json_stringn(res.checkpoint, res.checkpoint_len) : NULL;
    json_t *body = json_pack(
        "{s:s, s:s, s:I, s:o, s:o, s:o, s:o, s:I, s:I}", "state", res.state, "fingerprint",
        res.fingerprint, "created_at_ms", (json_int_t)res.created_ms, "lease_expires_in_ms",
        int_or_null(res.lease_left_ms, !done), "status", int_or_null(res.status, res.status >= 0),
        "completed_at_ms", int_or_null(res.completed_ms, res.completed_ms >= 0), "checkpoint",
        cp ? cp : json_null(), "claims", (json_int_t)res.claims, "expires_in_ms",
        (json_int_t)res.expires_in_ms);
    http_reply_json(r, 200, body);
    idem_result_free(&res);
}

/* ---- the route table ----------------------------------------------------------------- */

void idem_routes(struct app *a, struct idem_ctx *ctx)
{
    app_route(a, "POST", "/v1/claim", handle_claim, ctx, 0);
    app_route(a, "POST", "/v1/complete", handle_complete, ctx, 0);
    app_route(a, "POST", "/v1/release", handle_release, ctx, 0);
    app_route(a, "POST", "/v1/extend", handle_extend, ctx, 0);
    app_route(a, "POST", "/v1/checkpoint", handle_checkpoint, ctx, 0);
    app_route(a, "GET", "/v1/record", handle_record, ctx, 0);
}
