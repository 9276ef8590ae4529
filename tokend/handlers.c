/* SPDX-License-Identifier: Apache-2.0 */
/* handlers: parse and validate tokend requests, call the service, render the answers when
 * it calls back; the route table. */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "shared/crypto.h"
#include "shared/jsonv.h"
#include "shared/log.h"

/* One request being answered: what the service reads and fills until it calls back. The
 * strings it holds are borrowed from the request, which outlives the call. */
struct call {
    struct http_req *r;
    struct tok_service *svc;
    int suspended;
    union {
        struct {
            struct tok_issue_req req;
            struct tok_issue_res res;
        } issue;
        struct {
            struct tok_presented presented;
            struct tok_client client;
            struct tok_refresh_res res;
        } refresh;
        struct {
            struct tok_revoke_req req;
            int one;
            long many;
        } revoke;
        struct {
            struct tok_presented t;
            struct tok_client client;
            struct tok_introspection in;
        } introspect;
        struct {
            struct tok_session *list;
            size_t count;
        } sessions;
        int revoked;
    } u;
};

/* A call for r, or NULL after answering 500 when out of memory. */
static struct call *call_new(struct http_req *r, void *ctx)
{
    struct call *c = malloc(sizeof(*c));
    if (!c) {
        http_problem(r, 500, "internal", "internal error (request %s)", http_request_id(r));
        return NULL;
    }
    c->r = r;
    c->svc = ctx;
    c->suspended = 0;
    return c;
}

/* The request waits for the service, which runs on this worker's loop: the Redis client it
 * is to use. */
static struct rclient *call_suspend(struct call *c)
{
    http_suspend(c->r);
    c->suspended = 1;
    return app_rclient(c->r);
}

/* The answer has been set: let it go out, wipe what the call held (tokens) and free it. */
static void call_end(struct call *c)
{
    if (c->suspended)
        http_resume(c->r);
    crypto_wipe(c, sizeof(*c));
    free(c);
}

/* Answer a service failure: 503 for Redis trouble, 500 for anything else. */
static void reply_failure(struct http_req *r, int rc)
{
    if (rc == TOK_BACKEND)
        http_unavailable(r);
    else
        http_problem(r, 500, "internal", "internal error (request %s)", http_request_id(r));
}

static void issue_done(void *arg, int rc)
{
    struct call *c = arg;
    const struct tok_issue_res *res = &c->u.issue.res;
    if (rc != TOK_OK)
        reply_failure(c->r, rc);
    else
        http_reply_json(c->r, 201,
                        json_pack("{s:s, s:s, s:I, s:I, s:s}", "refresh_token", res->token.text,
                                  "family_id", res->token.family, "expires_in",
                                  (json_int_t)res->expires_in_s, "absolute_expires_in",
                                  (json_int_t)res->absolute_expires_in_s, "fingerprint",
                                  res->fingerprint));
    call_end(c);
}

static void handle_issue(struct http_req *r, void *ctx)
{
    struct jv_error e;
    struct call *c = call_new(r, ctx);
    if (!c)
        return;
    if (tok_req_issue(http_json(r), &c->u.issue.req, &e) < 0) {
        http_invalid(r, e.field, "%s", e.detail);
        call_end(c);
        return;
    }
    tok_issue(c->svc, call_suspend(c), http_request_id(r), &c->u.issue.req, &c->u.issue.res,
              issue_done, c);
}

static json_t *str_or_null(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

/* Every 401 says how to authenticate (RFC 9110 section 15.5.2): the refresh token
 * presented is the credential, and it is not valid (RFC 6750's invalid_token); the
 * problem's code says which way. */
static void challenge(struct http_req *r, const char *code)
{
    char value[128];
    snprintf(value, sizeof(value),
             "Bearer realm=\"tokend\", error=\"invalid_token\", "
             "error_description=\"%s\"",
             code);
    http_add_header(r, "WWW-Authenticate", value);
}

static void refused(struct http_req *r, const struct tok_refresh_res *res)
{
    challenge(r, res->outcome == TOK_R_REUSED     ? "token_reused"
                 : res->outcome == TOK_R_MISMATCH ? "fingerprint_mismatch"
                                                  : "invalid_grant");
    if (res->outcome == TOK_R_REUSED) {
        http_problem(r, 401, "token_reused",
                     "this refresh token was already used; the session has been revoked");
    } else if (res->outcome == TOK_R_MISMATCH) {
        json_t *list = json_array();
        for (unsigned b = TOK_FP_DEVICE; b <= TOK_FP_TLS; b <<= 1)
            if (res->refused & b)
                json_array_append_new(list, json_string(tok_fp_name(b)));
        http_problem_ext(r, 401, "fingerprint_mismatch", json_pack("{s:o}", "mismatch", list),
                         "the client does not match the one this session is bound to%s",
                         res->revoked ? "; the session has been revoked" : "");
    } else {
        http_problem(r, 401, "invalid_grant", "the refresh token is invalid, expired or revoked");
    }
}

static void refresh_done(void *arg, int rc)
{
    struct call *c = arg;
    const struct tok_refresh_res *res = &c->u.refresh.res;
    if (rc != TOK_OK)
        reply_failure(c->r, rc);
    else if (res->outcome != TOK_R_OK && res->outcome != TOK_R_GRACE)
        refused(c->r, res);
    else
        http_reply_json(c->r, 200,
                        json_pack("{s:s, s:s, s:s, s:o, s:o, s:I, s:b, s:b}", "refresh_token",
                                  res->token.text, "family_id", res->token.family, "user_id",
                                  res->user_id, "client_id", str_or_null(res->client_id), "scope",
                                  str_or_null(res->scope), "expires_in",
                                  (json_int_t)res->expires_in_s, "grace",
                                  res->outcome == TOK_R_GRACE, "rebound", res->rebound));
    call_end(c);
}

static void handle_refresh(struct http_req *r, void *ctx)
{
    struct jv_error e;
    struct call *c = call_new(r, ctx);
    if (!c)
        return;
    if (tok_req_refresh(http_json(r), &c->u.refresh.presented, &c->u.refresh.client, &e) < 0) {
        http_invalid(r, e.field, "%s", e.detail);
        call_end(c);
        return;
    }
    if (!c->u.refresh.presented.well_formed) {
        metric_inc(metric_with(c->svc->refresh, "invalid"));
        challenge(r, "invalid_grant");
        http_problem(r, 401, "invalid_grant", "the refresh token is malformed");
        call_end(c);
        return;
    }
    tok_refresh(c->svc, call_suspend(c), http_request_id(r), &c->u.refresh.presented.token,
                &c->u.refresh.client, &c->u.refresh.res, refresh_done, c);
}

static void revoke_done(void *arg, int rc)
{
    struct call *c = arg;
    long revoked = c->u.revoke.req.by == TOK_REVOKE_USER ? c->u.revoke.many : c->u.revoke.one;
    if (rc != TOK_OK)
        reply_failure(c->r, rc);
    else
        http_reply_json(c->r, 200, json_pack("{s:I}", "revoked", (json_int_t)revoked));
    call_end(c);
}

/* RFC 7009: an unknown or malformed token is 200 revoked 0. */
static void handle_revoke(struct http_req *r, void *ctx)
{
    struct jv_error e;
    struct call *c = call_new(r, ctx);
    if (!c)
        return;
    const struct tok_revoke_req *req = &c->u.revoke.req;
    c->u.revoke.one = 0;
    c->u.revoke.many = 0;
    if (tok_req_revoke(http_json(r), &c->u.revoke.req, &e) < 0) {
        http_invalid(r, e.field, "%s", e.detail);
        call_end(c);
    } else if (req->by == TOK_REVOKE_TOKEN && req->t.well_formed) {
        tok_revoke_token(c->svc, call_suspend(c), &req->t.token, &c->u.revoke.one, revoke_done, c);
    } else if (req->by == TOK_REVOKE_FAMILY) {
        tok_revoke_family(c->svc, call_suspend(c), req->id, NULL, "family", &c->u.revoke.one,
                          revoke_done, c);
    } else if (req->by == TOK_REVOKE_USER) {
        tok_revoke_user(c->svc, call_suspend(c), req->id, &c->u.revoke.many, revoke_done, c);
    } else {
        revoke_done(c, TOK_OK);
    }
}

static void introspect_done(void *arg, int rc)
{
    struct call *c = arg;
    const struct tok_introspection *in = &c->u.introspect.in;
    if (rc != TOK_OK) {
        reply_failure(c->r, rc);
    } else if (!in->active) {
        http_reply_json(c->r, 200, json_pack("{s:b}", "active", 0));
    } else {
        json_t *out =
            json_pack("{s:b, s:s, s:s, s:o, s:o, s:s, s:I, s:I}", "active", 1, "token_type",
                      "refresh_token", "sub", in->user_id, "client_id", str_or_null(in->client_id),
                      "scope", str_or_null(in->scope), "family_id", c->u.introspect.t.token.family,
                      "iat", (json_int_t)in->iat, "exp", (json_int_t)in->exp);
        if (in->fp_checked)
            json_object_set_new(out, "fingerprint_match", json_boolean(in->fp_match));
        http_reply_json(c->r, 200, out);
    }
    call_end(c);
}

static void handle_introspect(struct http_req *r, void *ctx)
{
    struct jv_error e;
    struct call *c = call_new(r, ctx);
    if (!c)
        return;
    int got = tok_req_introspect(http_json(r), &c->u.introspect.t, &c->u.introspect.client, &e);
    if (got < 0) {
        http_invalid(r, e.field, "%s", e.detail);
        call_end(c);
        return;
    }
    if (!c->u.introspect.t.well_formed) {
        http_reply_json(r, 200, json_pack("{s:b}", "active", 0));
        call_end(c);
        return;
    }
    /* The fingerprint is compared when device_id and user_agent are both given. */
    tok_introspect(c->svc, call_suspend(c), &c->u.introspect.t.token,
                   got == 1 ? &c->u.introspect.client : NULL, &c->u.introspect.in, introspect_done,
                   c);
}

/* The :user_id path parameter, validated; answers 400 itself when bad. */
static const char *path_user(struct http_req *r)
{
    const char *id = http_param(r, "user_id");
    if (!id || !tok_id_ok(id, strlen(id))) {
        http_invalid(r, "user_id", "must be 1-%d printable ASCII characters without { or }",
                     TOK_ID_MAX);
        return NULL;
    }
    return id;
}

static void sessions_done(void *arg, int rc)
{
    struct call *c = arg;
    if (rc != TOK_OK) {
        reply_failure(c->r, rc);
        call_end(c);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < c->u.sessions.count; i++) {
        const struct tok_session *s = &c->u.sessions.list[i];
        json_array_append_new(list, json_pack("{s:s, s:o, s:s, s:s, s:I, s:I, s:I}", "family_id",
                                              s->family, "client_id", str_or_null(s->client_id),
                                              "device_id", s->device_id, "ua_hash", s->ua_hash,
                                              "created_at", (json_int_t)(s->created_ms / 1000),
                                              "last_used_at", (json_int_t)(s->last_used_ms / 1000),
                                              "expires_at", (json_int_t)(s->expires_ms / 1000)));
    }
    free(c->u.sessions.list);
    http_reply_json(c->r, 200, json_pack("{s:o}", "sessions", list));
    call_end(c);
}

static void handle_sessions(struct http_req *r, void *ctx)
{
    const char *user = path_user(r);
    if (!user)
        return;
    struct call *c = call_new(r, ctx);
    if (c)
        tok_sessions(c->svc, call_suspend(c), user, &c->u.sessions.list, &c->u.sessions.count,
                     sessions_done, c);
}

static void session_delete_done(void *arg, int rc)
{
    struct call *c = arg;
    if (rc != TOK_OK)
        reply_failure(c->r, rc);
    else
        http_reply_json(c->r, 200, json_pack("{s:i}", "revoked", c->u.revoked));
    call_end(c);
}

static void handle_session_delete(struct http_req *r, void *ctx)
{
    const char *user = path_user(r);
    if (!user)
        return;
    const char *family = http_param(r, "family_id");
    if (!family || !tok_family_valid(family, strlen(family))) {
        http_invalid(r, "family_id", "not a family id");
        return;
    }
    struct call *c = call_new(r, ctx);
    if (c)
        tok_end_session(c->svc, call_suspend(c), user, family, &c->u.revoked, session_delete_done,
                        c);
}

void tok_routes(struct app *a, struct tok_service *svc)
{
    app_route(a, "POST", "/v1/tokens", handle_issue, svc, 0);
    app_route(a, "POST", "/v1/tokens/refresh", handle_refresh, svc, 0);
    app_route(a, "POST", "/v1/tokens/revoke", handle_revoke, svc, HTTP_FORM_BODY);
    app_route(a, "POST", "/v1/tokens/introspect", handle_introspect, svc, HTTP_FORM_BODY);
    app_route(a, "GET", "/v1/users/:user_id/sessions", handle_sessions, svc, 0);
    app_route(a, "DELETE", "/v1/users/:user_id/sessions/:family_id", handle_session_delete, svc, 0);
}
