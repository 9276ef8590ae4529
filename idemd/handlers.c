/* SPDX-License-Identifier: Apache-2.0 */
/* handlers: the handlers of POST /v1/claim, /v1/complete, /v1/release, /v1/extend,
 * /v1/checkpoint and GET /v1/record. They parse, call the store (store.c), and render. */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
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
static void reply_store_error(struct http_req *r, enum rreply_class cls)
{
    if (cls == RREPLY_UNAVAILABLE)
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

void idem_answer_waited_claim(struct http_req *r, const struct idem_claim_in *in,
                              enum rreply_class cls, const struct idem_result *res, void *arg)
{
    if (cls != RREPLY_OK)
        reply_store_error(r, cls);
    else
        render_claim(arg, r, in, res);
}

/* ---- the workers' state ---------------------------------------------------------------- */

void *idem_worker_start(struct loop *l, void *ctx)
{
    struct idem_ctx *c = ctx;
    struct idem_worker *w = calloc(1, sizeof(*w));
    if (w)
        w->store = idem_store_loop_create(c->store, l);
    if (w && w->store)
        w->waiters = idem_waiters_create(c->waits, l, w->store);
    if (!w || !w->waiters) {
        log_critical(NULL, "cannot set up a worker", LF_S("error", "out of memory"));
        abort(); /* at startup: nothing to serve without it */
    }
    return w;
}

void idem_worker_stop(void *worker, void *ctx)
{
    struct idem_worker *w = worker;
    (void)ctx;
    idem_store_loop_free(w->store); /* what is out fails first, into live waiters */
    idem_waiters_free(w->waiters);
    free(w);
}

static struct idem_worker *worker_of(const struct http_req *r)
{
    return app_worker_data(r);
}

/* ---- one request, suspended while its store call is in flight ------------------------- */

struct idem_op;
typedef void (*idem_render_fn)(struct idem_op *op, const struct idem_result *res);

struct idem_op {
    struct http_req *r;
    struct idem_ctx *ctx;
    idem_render_fn render; /* the answer of a reply to read */
    union {
        struct idem_claim_in claim;
        struct idem_lease_in lease;
        struct idem_ref ref;
    } in;
    char token[33]; /* claim: the lease token it would get */
};

static struct idem_op *op_new(struct http_req *r, struct idem_ctx *ctx, idem_render_fn render)
{
    struct idem_op *op = calloc(1, sizeof(*op));
    if (!op) {
        http_problem(r, 500, "internal", "out of memory");
        return NULL;
    }
    op->r = r;
    op->ctx = ctx;
    op->render = render;
    return op;
}

/* The store's answer: render it, resume the request, forget the op. */
static void op_done(void *arg, enum rreply_class cls, const struct idem_result *res)
{
    struct idem_op *op = arg;
    if (cls != RREPLY_OK)
        reply_store_error(op->r, cls);
    else
        op->render(op, res);
    http_resume(op->r);
    free(op);
}

/* After the suspended request's store call (issued: what the store returned): a call that
 * could not even be sent (out of memory) is answered at once. */
static void op_sent(struct idem_op *op, int issued)
{
    if (issued == 0)
        return;
    http_problem(op->r, 500, "internal", "out of memory");
    http_resume(op->r);
    free(op);
}

/* ---- claim ---------------------------------------------------------------------------- */

static void render_claim_op(struct idem_op *op, const struct idem_result *res)
{
    render_claim(op->ctx, op->r, &op->in.claim, res);
}

/* A claim's answer; an undecided one that asked for wait_ms is parked on this loop. */
static void claim_done(void *arg, enum rreply_class cls, const struct idem_result *res)
{
    struct idem_op *op = arg;
    int undecided =
        cls == RREPLY_OK && (res->outcome == IDEM_IN_PROGRESS || res->outcome == IDEM_BLOCKED);
    if (undecided && op->in.claim.wait_ms > 0 &&
        idem_waiters_park(worker_of(op->r)->waiters, app_rclient(op->r), op->r, &op->in.claim,
                          op->token, op->in.claim.wait_ms) == 0) {
        free(op); /* the waiter answers */
        return;
    }
    op_done(op, cls, res);
}

static void handle_claim(struct http_req *r, void *ctx)
{
    struct idem_ctx *c = ctx;
    struct jv_error e = {0};
    struct idem_op *op = op_new(r, c, render_claim_op);
    if (!op)
        return;
    if (idem_parse_claim(http_json(r), c->conf, &op->in.claim, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        free(op);
        return;
    }
    idem_new_lease_token(op->token);
    http_suspend(r);
    op_sent(op, idem_store_claim(worker_of(r)->store, app_rclient(r), &op->in.claim, op->token,
                                 claim_done, op));
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

/* 200 {"outcome": outcome, ...more} with replicas_acked when WAIT ran. */
static void render_ok(struct http_req *r, const struct idem_result *res, json_t *body)
{
    add_replicas(body, res);
    http_reply_json(r, 200, body);
}

static void render_complete(struct idem_op *op, const struct idem_result *res)
{
    metric_inc(metric_with(op->ctx->completions, idem_outcome_name(res->outcome)));
    log_decision(op->r, &op->in.lease.ref, idem_outcome_name(res->outcome));
    if (!render_refusal(op->r, res))
        render_ok(op->r, res,
                  json_pack("{s:s, s:I}", "outcome", "completed", "expires_in_ms",
                            (json_int_t)res->expires_in_ms));
}

static void render_release(struct idem_op *op, const struct idem_result *res)
{
    log_decision(op->r, &op->in.lease.ref, idem_outcome_name(res->outcome));
    if (!render_refusal(op->r, res)) {
        metric_inc(metric_with(op->ctx->releases, NULL));
        render_ok(op->r, res, json_pack("{s:s}", "outcome", "released"));
    }
}

static void render_extend(struct idem_op *op, const struct idem_result *res)
{
    if (!render_refusal(op->r, res)) {
        metric_inc(metric_with(op->ctx->extensions, NULL));
        render_ok(op->r, res,
                  json_pack("{s:s, s:I}", "outcome", "extended", "lease_expires_in_ms",
                            (json_int_t)res->lease_left_ms));
    }
}

static void render_checkpoint(struct idem_op *op, const struct idem_result *res)
{
    if (!render_refusal(op->r, res))
        render_ok(op->r, res, json_pack("{s:s}", "outcome", "checkpointed"));
}

/* A lease holder's call: its body's parser, its store call, its answer. */
struct holder_call {
    int (*parse)(const json_t *body, const struct idem_config *conf, struct idem_lease_in *in,
                 struct jv_error *e);
    int (*send)(struct idem_store_loop *sl, struct rclient *c, const struct idem_lease_in *in,
                idem_store_done_fn done, void *arg);
    idem_render_fn render;
};

static int parse_release(const json_t *body, const struct idem_config *conf,
                         struct idem_lease_in *in, struct jv_error *e)
{
    (void)conf;
    return idem_parse_release(body, in, e);
}

static int parse_checkpoint(const json_t *body, const struct idem_config *conf,
                            struct idem_lease_in *in, struct jv_error *e)
{
    (void)conf;
    return idem_parse_checkpoint(body, in, e);
}

static const struct holder_call COMPLETE = {idem_parse_complete, idem_store_complete,
                                            render_complete};
static const struct holder_call RELEASE = {parse_release, idem_store_release, render_release};
static const struct holder_call EXTEND = {idem_parse_extend, idem_store_extend, render_extend};
static const struct holder_call CHECKPOINT = {parse_checkpoint, idem_store_checkpoint,
                                              render_checkpoint};

static void handle_holder(struct http_req *r, struct idem_ctx *c, const struct holder_call *hc)
{
    struct jv_error e = {0};
    struct idem_op *op = op_new(r, c, hc->render);
    if (!op)
        return;
    int prc = hc->parse(http_json(r), c->conf, &op->in.lease, &e);
    if (prc != 0) {
        idem_lease_in_clear(&op->in.lease);
        reply_parse_error(r, prc, &e);
        free(op);
        return;
    }
    http_suspend(r);
    int issued = hc->send(worker_of(r)->store, app_rclient(r), &op->in.lease, op_done, op);
    idem_lease_in_clear(&op->in.lease); /* copied into the command */
    op_sent(op, issued);
}

static void handle_complete(struct http_req *r, void *ctx)
{
    handle_holder(r, ctx, &COMPLETE);
}

static void handle_release(struct http_req *r, void *ctx)
{
    handle_holder(r, ctx, &RELEASE);
}

static void handle_extend(struct http_req *r, void *ctx)
{
    handle_holder(r, ctx, &EXTEND);
}

static void handle_checkpoint(struct http_req *r, void *ctx)
{
    handle_holder(r, ctx, &CHECKPOINT);
}

/* ---- record ------------------------------------------------------------------------------ */

static json_t *int_or_null(long long v, int present)
{
    return present ? json_integer(v) : json_null();
}

static void render_record(struct idem_op *op, const struct idem_result *res)
{
    if (res->outcome != IDEM_FOUND) {
        not_found(op->r, res);
        return;
    }
    int done = strcmp(res->state, "completed") == 0;
    json_t *cp = res->checkpoint ? json_stringn(res->checkpoint, res->checkpoint_len) : NULL;
    json_t *body = json_pack(
        "{s:s, s:s, s:I, s:o, s:o, s:o, s:o, s:I, s:I}", "state", res->state, "fingerprint",
        res->fingerprint, "created_at_ms", (json_int_t)res->created_ms, "lease_expires_in_ms",
        int_or_null(res->lease_left_ms, !done), "status",
        int_or_null(res->status, res->status >= 0), "completed_at_ms",
        int_or_null(res->completed_ms, res->completed_ms >= 0), "checkpoint", cp ? cp : json_null(),
        "claims", (json_int_t)res->claims, "expires_in_ms", (json_int_t)res->expires_in_ms);
    http_reply_json(op->r, 200, body);
}

static void handle_record(struct http_req *r, void *ctx)
{
    struct idem_ctx *c = ctx;
    struct jv_error e = {0};
    const char *scope = http_query(r, "scope"), *key = http_query(r, "key");
    struct idem_op *op = op_new(r, c, render_record);
    if (!op)
        return;
    if (idem_ref_set(&op->in.ref, scope, key, key ? strlen(key) : 0, &e) != 0) {
        http_invalid(r, e.field, "%s", e.detail);
        free(op);
        return;
    }
    http_suspend(r);
    op_sent(op, idem_store_record(worker_of(r)->store, app_rclient(r), &op->in.ref, op_done, op));
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
