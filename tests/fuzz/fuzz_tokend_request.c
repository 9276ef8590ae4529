/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for tokend's request parsers (tokend/request.c): any bytes, parsed as
 * the HTTP layer does (a JSON object, duplicates refused), go through the bodies of
 * POST /v1/tokens, /refresh, /introspect and /revoke; the raw bytes, split at '/', are the
 * path parameters :user_id and :family_id. Whatever is accepted meets the documented
 * limits; whatever is refused names a field in a renderable answer that never repeats the
 * token given. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../tokend/request.h"
#include "fuzz.h"
#include "shared/crypto.h"

/* user/client/device ids: 1-256 printable ASCII, no braces. */
static void check_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > TOK_ID_MAX || !jv_printable_ok(s, n) || strpbrk(s, "{}"))
        abort();
}

static void check_printable(const char *s, size_t max)
{
    if (!s || strlen(s) > max || !jv_printable_ok(s, strlen(s)))
        abort();
}

/* The client as accepted: device_id and user_agent only when given. */
static void check_client(const struct tok_client *c, int both)
{
    if (both) {
        check_id(c->device_id);
        if (c->ua_len < 1 || c->ua_len > TOK_UA_MAX || strlen(c->user_agent) != c->ua_len)
            abort();
    }
    check_printable(c->tls, TOK_TLS_MAX);
}

/* A well-formed presented token is exactly the string in the body. */
static void check_presented(const json_t *body, const char *name, const struct tok_presented *t)
{
    const char *given = json_string_value(json_object_get(body, name));
    if (!given)
        abort();
    if (t->well_formed &&
        (strcmp(t->token.text, given) != 0 || !tok_family_valid(t->token.family, TOK_FAMILY_LEN)))
        abort();
}

/* A refusal renders, and never repeats a token the caller sent. */
static void refused(const json_t *body, const struct jv_error *e)
{
    const char *tokens[] = {json_string_value(json_object_get(body, "token")),
                            json_string_value(json_object_get(body, "refresh_token"))};
    fuzz_check_refusal(e);
    for (int i = 0; i < 2; i++)
        if (tokens[i] && !fuzz_in_keys(body, tokens[i]) &&
            (fuzz_echoes(e->detail, tokens[i]) || fuzz_echoes(e->field, tokens[i])))
            abort();
}

static void parse_all(const json_t *body)
{
    struct tok_issue_req issue;
    struct tok_presented t;
    struct tok_client c;
    struct tok_revoke_req rv;
    struct jv_error e;
    int rc;

    if (tok_req_issue(body, &issue, &e) == 0) {
        check_id(issue.user_id);
        if (issue.client_id[0])
            check_id(issue.client_id);
        check_printable(issue.scope, TOK_SCOPE_MAX);
        check_client(&issue.client, 1);
    } else {
        refused(body, &e);
    }
    if (tok_req_refresh(body, &t, &c, &e) == 0) {
        check_presented(body, "refresh_token", &t);
        check_client(&c, 1);
    } else {
        refused(body, &e);
    }
    rc = tok_req_introspect(body, &t, &c, &e);
    if (rc >= 0) {
        check_presented(body, "token", &t);
        if (rc != (json_object_get(body, "device_id") && json_object_get(body, "user_agent")))
            abort();
        check_client(&c, rc);
    } else {
        refused(body, &e);
    }
    if (tok_req_revoke(body, &rv, &e) == 0) {
        static const char *const names[] = {"token", "family_id", "user_id"};
        int given = 0;
        for (int i = 0; i < 3; i++)
            given += json_object_get(body, names[i]) != NULL;
        if (given != 1 || !json_object_get(body, names[rv.by]))
            abort();
        if (rv.by == TOK_REVOKE_TOKEN)
            check_presented(body, "token", &rv.t);
        else if (rv.by == TOK_REVOKE_FAMILY && !tok_family_valid(rv.id, strlen(rv.id)))
            abort();
        else if (rv.by == TOK_REVOKE_USER)
            check_id(rv.id);
    } else {
        refused(body, &e);
    }
}

/* The path parameters, as decoded by the HTTP layer: any bytes but NUL. */
static void path_params(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    if (!s)
        return;
    char *family = strchr(s, '/');
    if (family)
        *family++ = '\0';
    if (tok_id_ok(s, strlen(s)))
        check_id(s);
    if (family && tok_family_valid(family, strlen(family))) {
        /* A family id is the canonical base64url of 16 bytes: it re-encodes to itself. */
        uint8_t raw[TOK_FAMILY_BYTES];
        char again[TOK_FAMILY_LEN + 1];
        if (strlen(family) != TOK_FAMILY_LEN ||
            crypto_unb64url(family, TOK_FAMILY_LEN, raw, sizeof(raw)) != TOK_FAMILY_BYTES)
            abort();
        crypto_b64url(raw, sizeof(raw), again, sizeof(again));
        if (strcmp(again, family) != 0)
            abort();
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (body && json_is_object(body))
        parse_all(body);
    json_decref(body);
    path_params(data, size);
    return 0;
}
