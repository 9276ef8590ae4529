/* SPDX-License-Identifier: Apache-2.0 */
/* request: validation of tokend's request bodies (tokend.md "API") into plain structs.
 * Nothing here touches Redis, so bad input is refused before Redis is asked. Strings are
 * borrowed from the parsed body. Each parser returns 0, or -1 with e set for a 400
 * invalid_request naming the field. Thread-safe. */
#ifndef TOKEND_REQUEST_H
#define TOKEND_REQUEST_H

#include <jansson.h>

#include "service.h"
#include "shared/jsonv.h"
#include "token.h"

/* A token the caller presented: the field must be a string; a malformed one is not bad
 * input (well_formed 0), each endpoint answers it its own way without Redis. The caller
 * wipes token. */
struct tok_presented {
    struct tok_token token;
    int well_formed;
};

/* POST /v1/tokens: user_id, client_id, scope and the client (device_id and user_agent
 * required, tls_fingerprint optional). */
int tok_req_issue(const json_t *body, struct tok_issue_req *req, struct jv_error *e);

/* POST /v1/tokens/refresh: refresh_token and the client (as for issue). */
int tok_req_refresh(const json_t *body, struct tok_presented *t, struct tok_client *c,
                    struct jv_error *e);

/* POST /v1/tokens/introspect: token and, optionally, the client. Returns 1 when both
 * device_id and user_agent were given (the fingerprint is then compared), 0 when not,
 * -1 with e set. */
int tok_req_introspect(const json_t *body, struct tok_presented *t, struct tok_client *c,
                       struct jv_error *e);

/* POST /v1/tokens/revoke: exactly one of token, family_id, user_id. */
enum tok_revoke_by { TOK_REVOKE_TOKEN, TOK_REVOKE_FAMILY, TOK_REVOKE_USER };
struct tok_revoke_req {
    enum tok_revoke_by by;
    struct tok_presented t; /* TOK_REVOKE_TOKEN */
    const char *id;         /* TOK_REVOKE_FAMILY: a family id; TOK_REVOKE_USER: a user id */
};
int tok_req_revoke(const json_t *body, struct tok_revoke_req *req, struct jv_error *e);

/* Is s[0..len) a valid user/client/device id: 1-256 printable ASCII without { or }? */
int tok_id_ok(const char *s, size_t len);

#endif
