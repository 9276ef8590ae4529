/* SPDX-License-Identifier: Apache-2.0 */
/* request: parsing and validation of tokend's request bodies (see request.h). */
#include "request.h"

#include <string.h>

int tok_id_ok(const char *s, size_t len)
{
    if (len < 1 || len > TOK_ID_MAX || !jv_printable_ok(s, len))
        return 0;
    return memchr(s, '{', len) == NULL && memchr(s, '}', len) == NULL;
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

/* A token field: a string is required; whether it is well formed is reported apart. */
static int get_token(const json_t *body, const char *name, struct tok_presented *t,
                     struct jv_error *e)
{
    const char *s;
    size_t len;
    t->well_formed = 0;
    if (jv_string(body, name, JV_REQUIRED, 1, 4096, &s, &len, e) < 0)
        return -1;
    t->well_formed = tok_parse(s, len, &t->token) == 0;
    return 0;
}

int tok_req_issue(const json_t *body, struct tok_issue_req *req, struct jv_error *e)
{
    *req = (struct tok_issue_req){.client_id = "", .scope = ""};
    if (get_id(body, "user_id", JV_REQUIRED, &req->user_id, e) < 0 ||
        get_id(body, "client_id", JV_OPTIONAL, &req->client_id, e) < 0 ||
        get_printable(body, "scope", TOK_SCOPE_MAX, &req->scope, e) < 0 ||
        get_client(body, JV_REQUIRED, &req->client, e) < 0)
        return -1;
    return 0;
}

int tok_req_refresh(const json_t *body, struct tok_presented *t, struct tok_client *c,
                    struct jv_error *e)
{
    if (get_token(body, "refresh_token", t, e) < 0 || get_client(body, JV_REQUIRED, c, e) < 0)
        return -1;
    return 0;
}

int tok_req_introspect(const json_t *body, struct tok_presented *t, struct tok_client *c,
                       struct jv_error *e)
{
    if (get_token(body, "token", t, e) < 0)
        return -1;
    return get_client(body, JV_OPTIONAL, c, e);
}

int tok_req_revoke(const json_t *body, struct tok_revoke_req *req, struct jv_error *e)
{
    static const char *const names[] = {"token", "family_id", "user_id"};
    size_t len;
    int n = 0;
    memset(req, 0, sizeof(*req));
    for (int i = 0; i < 3; i++) {
        if (json_object_get(body, names[i])) {
            req->by = (enum tok_revoke_by)i;
            n++;
        }
    }
    if (n != 1)
        return jv_fail(e, n == 0 ? "token" : names[req->by],
                       "give exactly one of token, family_id, user_id");
    switch (req->by) {
    case TOK_REVOKE_TOKEN: return get_token(body, "token", &req->t, e);
    case TOK_REVOKE_FAMILY:
        if (jv_string(body, "family_id", JV_REQUIRED, 1, 64, &req->id, &len, e) < 0)
            return -1;
        return tok_family_valid(req->id, len) ? 0 : jv_fail(e, "family_id", "not a family id");
    case TOK_REVOKE_USER: return get_id(body, "user_id", JV_REQUIRED, &req->id, e) < 0 ? -1 : 0;
    }
    return -1;
}
