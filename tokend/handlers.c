/* handlers: parse and validate tokend requests, call the service, render the answers. */
#include "handlers.h"

#include <string.h>

#include "shared/crypto.h"
#include "shared/jsonv.h"
#include "shared/log.h"

/* Answer a service failure: 503 for Redis trouble, 500 for anything else. */
static void reply_failure(struct http_req *r, int rc)
{
    if (rc == TOK_BACKEND)
        http_unavailable(r);
    else
        http_problem(r, 500, "internal", "internal error (request %s)", http_request_id(r));
}

/* An id field (user/client/device): 1-256 printable ASCII without braces. */
static int get_id(const json_t *body, const char *name, int required, const char **out,
                  struct jv_error *e)
{
    size_t len = 0;
    int got = jv_string(body, name, required, 1, TOK_ID_MAX, out, &len, e);
    if (got == 1 && !tok_id_ok(*out, len))
        return jv_fail(e, name, "must be 1-%d printable ASCII characters without { or }",
                       TOK_ID_MAX);
    return got;
}

/* An optional free-text field of at most max printable ASCII bytes ("" when absent). */
static int get_printable(const json_t *body, const char *name, size_t max, const char **out,
                         struct jv_error *e)
{
    size_t len = 0;
    *out = "";
    if (jv_string(body, name, JV_OPTIONAL, 0, max, out, &len, e) < 0)
        return -1;
    if (len > 0 && !jv_printable_ok(*out, len))
        return jv_fail(e, name, "must be printable ASCII");
    return 0;
}

/* device_id, user_agent (1-1024 bytes) and an optional tls_fingerprint. Returns 1 when
 * device_id and user_agent are both present, 0 when one is absent (JV_OPTIONAL), -1. */
static int get_client(const json_t *body, int required, struct tok_client *c, struct jv_error *e)
{
    int dev = get_id(body, "device_id", required, &c->device_id, e);
    if (dev < 0)
        return -1;
    int ua = jv_string(body, "user_agent", required, 1, TOK_UA_MAX, &c->user_agent, &c->ua_len, e);
    if (ua < 0 || get_printable(body, "tls_fingerprint", TOK_TLS_MAX, &c->tls, e) < 0)
        return -1;
    return dev == 1 && ua == 1 ? 1 : 0;
}

/* A token field: a string is required; a malformed one is reported by *ok = 0 (each
 * endpoint answers that its own way, without Redis). */
static int get_token(const json_t *body, const char *name, struct tok_token *t, int *ok,
                     struct jv_error *e)
{
    const char *s;
    size_t len;
    if (jv_string(body, name, JV_REQUIRED, 1, 4096, &s, &len, e) < 0)
        return -1;
    *ok = tok_parse(s, len, t) == 0;
    return 0;
}

static void handle_issue(struct http_req *r, void *ctx)
{
    struct tok_service *svc = ctx;
    const json_t *body = http_json(r);
    struct tok_issue_req req = {.client_id = "", .scope = ""};
    struct tok_issue_res res;
    struct jv_error e;

    if (get_id(body, "user_id", JV_REQUIRED, &req.user_id, &e) < 0 ||
        get_id(body, "client_id", JV_OPTIONAL, &req.client_id, &e) < 0 ||
        get_printable(body, "scope", TOK_SCOPE_MAX, &req.scope, &e) < 0 ||
        get_client(body, JV_REQUIRED, &req.client, &e) < 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    int rc = tok_issue(svc, http_request_id(r), &req, &res);
    if (rc != TOK_OK) {
        reply_failure(r, rc);
        return;
    }
    http_reply_json(r, 201,
                    json_pack("{s:s, s:s, s:I, s:I, s:s}", "refresh_token", res.token.text,
                              "family_id", res.token.family, "expires_in",
                              (json_int_t)res.expires_in_s, "absolute_expires_in",
                              (json_int_t)res.absolute_expires_in_s, "fingerprint",
                              res.fingerprint));
    crypto_wipe(&res.token, sizeof(res.token));
}

static json_t *str_or_null(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

static void refused(struct http_req *r, const struct tok_refresh_res *res)
{
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

static void handle_refresh(struct http_req *r, void *ctx)
{
    struct tok_service *svc = ctx;
    const json_t *body = http_json(r);
    struct tok_token presented;
    struct tok_client client;
    struct tok_refresh_res res;
    struct jv_error e;
    int ok = 0;

    if (get_token(body, "refresh_token", &presented, &ok, &e) < 0 ||
        get_client(body, JV_REQUIRED, &client, &e) < 0) {
        http_invalid(r, e.field, "%s", e.detail);
        goto done;
    }
    if (!ok) {
        metric_inc(metric_with(svc->refresh, "invalid"));
        http_problem(r, 401, "invalid_grant", "the refresh token is malformed");
        goto done;
    }
    int rc = tok_refresh(svc, http_request_id(r), &presented, &client, &res);
    if (rc != TOK_OK) {
        reply_failure(r, rc);
        goto done;
    }
    if (res.outcome != TOK_R_OK && res.outcome != TOK_R_GRACE) {
        refused(r, &res);
        goto done;
    }
    http_reply_json(r, 200,
                    json_pack("{s:s, s:s, s:s, s:o, s:o, s:I, s:b, s:b}", "refresh_token",
                              res.token.text, "family_id", res.token.family, "user_id", res.user_id,
                              "client_id", str_or_null(res.client_id), "scope",
                              str_or_null(res.scope), "expires_in", (json_int_t)res.expires_in_s,
                              "grace", res.outcome == TOK_R_GRACE, "rebound", res.rebound));
    crypto_wipe(&res.token, sizeof(res.token));
done:
    crypto_wipe(&presented, sizeof(presented));
}

/* Exactly one of token / family_id / user_id. */
static int revoke_kind(const json_t *body, struct jv_error *e)
{
    static const char *const names[] = {"token", "family_id", "user_id"};
    int kind = -1, n = 0;
    for (int i = 0; i < 3; i++) {
        if (json_object_get(body, names[i])) {
            kind = i;
            n++;
        }
    }
    if (n != 1)
        return jv_fail(e, n == 0 ? "token" : names[kind],
                       "give exactly one of token, family_id, user_id");
    return kind;
}

/* Beside enum tok_status: the request itself is bad (400, jv_error set). */
#define BAD_REQUEST 1

/* Revoke by token (RFC 7009: an unknown or malformed token is 200 revoked 0). */
static int revoke_by_token(struct tok_service *svc, const json_t *body, long *revoked,
                           struct jv_error *e)
{
    struct tok_token t;
    int ok = 0, one = 0, rc = TOK_OK;
    if (get_token(body, "token", &t, &ok, e) < 0)
        return BAD_REQUEST;
    if (ok)
        rc = tok_revoke_token(svc, &t, &one);
    *revoked = one;
    crypto_wipe(&t, sizeof(t));
    return rc;
}

static int revoke_by_family(struct tok_service *svc, const json_t *body, long *revoked,
                            struct jv_error *e)
{
    const char *id;
    size_t len;
    int one = 0;
    if (jv_string(body, "family_id", JV_REQUIRED, 1, 64, &id, &len, e) < 0)
        return BAD_REQUEST;
    if (!tok_family_valid(id, len)) {
        jv_fail(e, "family_id", "not a family id");
        return BAD_REQUEST;
    }
    int rc = tok_revoke_family(svc, id, NULL, "family", &one);
    *revoked = one;
    return rc;
}

static int revoke_by_user(struct tok_service *svc, const json_t *body, long *revoked,
                          struct jv_error *e)
{
    const char *id;
    if (get_id(body, "user_id", JV_REQUIRED, &id, e) < 0)
        return BAD_REQUEST;
    return tok_revoke_user(svc, id, revoked);
}

static void handle_revoke(struct http_req *r, void *ctx)
{
    static int (*const by[])(struct tok_service *, const json_t *, long *, struct jv_error *) = {
        revoke_by_token, revoke_by_family, revoke_by_user};
    struct jv_error e;
    long revoked = 0;
    int kind = revoke_kind(http_json(r), &e);
    int rc = kind < 0 ? BAD_REQUEST : by[kind](ctx, http_json(r), &revoked, &e);
    if (rc == BAD_REQUEST)
        http_invalid(r, e.field, "%s", e.detail);
    else if (rc != TOK_OK)
        reply_failure(r, rc);
    else
        http_reply_json(r, 200, json_pack("{s:I}", "revoked", (json_int_t)revoked));
}

static void handle_introspect(struct http_req *r, void *ctx)
{
    struct tok_service *svc = ctx;
    const json_t *body = http_json(r);
    struct tok_token t;
    struct tok_client client;
    struct tok_introspection in;
    struct jv_error e;
    int ok = 0, got = -1;

    if (get_token(body, "token", &t, &ok, &e) == 0)
        got = get_client(body, JV_OPTIONAL, &client, &e);
    if (got < 0) {
        http_invalid(r, e.field, "%s", e.detail);
        goto done;
    }
    if (!ok) {
        http_reply_json(r, 200, json_pack("{s:b}", "active", 0));
        goto done;
    }
    /* The fingerprint is compared when device_id and user_agent are both given. */
    int rc = tok_introspect(svc, &t, got == 1 ? &client : NULL, &in);
    if (rc != TOK_OK) {
        reply_failure(r, rc);
        goto done;
    }
    if (!in.active) {
        http_reply_json(r, 200, json_pack("{s:b}", "active", 0));
        goto done;
    }
    json_t *out = json_pack("{s:b, s:s, s:s, s:o, s:o, s:s, s:I, s:I}", "active", 1, "token_type",
                            "refresh_token", "sub", in.user_id, "client_id",
                            str_or_null(in.client_id), "scope", str_or_null(in.scope), "family_id",
                            t.family, "iat", (json_int_t)in.iat, "exp", (json_int_t)in.exp);
    if (in.fp_checked)
        json_object_set_new(out, "fingerprint_match", json_boolean(in.fp_match));
    http_reply_json(r, 200, out);
done:
    crypto_wipe(&t, sizeof(t));
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

static void handle_sessions(struct http_req *r, void *ctx)
{
    struct tok_service *svc = ctx;
    struct tok_session *sessions = NULL;
    size_t n = 0;
    const char *user = path_user(r);
    if (!user)
        return;
    int rc = tok_sessions(svc, user, &sessions, &n);
    if (rc != TOK_OK) {
        reply_failure(r, rc);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct tok_session *s = &sessions[i];
        json_array_append_new(list, json_pack("{s:s, s:o, s:s, s:s, s:I, s:I, s:I}", "family_id",
                                              s->family, "client_id", str_or_null(s->client_id),
                                              "device_id", s->device_id, "ua_hash", s->ua_hash,
                                              "created_at", (json_int_t)(s->created_ms / 1000),
                                              "last_used_at", (json_int_t)(s->last_used_ms / 1000),
                                              "expires_at", (json_int_t)(s->expires_ms / 1000)));
    }
    free(sessions);
    http_reply_json(r, 200, json_pack("{s:o}", "sessions", list));
}

static void handle_session_delete(struct http_req *r, void *ctx)
{
    struct tok_service *svc = ctx;
    int revoked = 0;
    const char *user = path_user(r);
    if (!user)
        return;
    const char *family = http_param(r, "family_id");
    if (!family || !tok_family_valid(family, strlen(family))) {
        http_invalid(r, "family_id", "not a family id");
        return;
    }
    int rc = tok_end_session(svc, user, family, &revoked);
    if (rc != TOK_OK) {
        reply_failure(r, rc);
        return;
    }
    http_reply_json(r, 200, json_pack("{s:i}", "revoked", revoked));
}

void tok_routes(struct app *a, struct tok_service *svc)
{
    app_route(a, "POST", "/v1/tokens", handle_issue, svc, 0);
    app_route(a, "POST", "/v1/tokens/refresh", handle_refresh, svc, 0);
    app_route(a, "POST", "/v1/tokens/revoke", handle_revoke, svc, 0);
    app_route(a, "POST", "/v1/tokens/introspect", handle_introspect, svc, 0);
    app_route(a, "GET", "/v1/users/:user_id/sessions", handle_sessions, svc, 0);
    app_route(a, "DELETE", "/v1/users/:user_id/sessions/:family_id", handle_session_delete, svc, 0);
}
