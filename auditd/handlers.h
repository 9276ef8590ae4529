/* SPDX-License-Identifier: Apache-2.0 */
/* handlers: auditd's HTTP handlers and its route table (docs/api/auditd.md). Each parses
 * the request (request.h), calls the appender, the store, the tree, the verifier or the
 * checkpointer, and renders the answer. */
#ifndef AUDIT_HANDLERS_H
#define AUDIT_HANDLERS_H

#include "appender.h"
#include "checkpointer.h"
#include "keyring.h"
#include "shared/app.h"
#include "store.h"

/* What the handlers use, borrowed for the server's life. */
struct audit_ctx {
    const struct rcl_config *rconf; /* for verifications, on threads of their own */
    const struct audit_keys *keys;
    const struct audit_keyring *kr;
    struct audit_appender *appender;
    struct audit_guard *guard;
    struct audit_checkpointer *checkpointer;
    const char *origin;
    int wait_replicas; /* > 0: 201 answers carry replicas_acked */
};

/* Register every route of auditd on a: /v1/events..., /v1/head, /v1/keys, /v1/verify,
 * /v1/checkpoint, the admin routes, the proofs and the tlog-tiles paths. */
void audit_routes(struct app *a, struct audit_ctx *ctx);

/* The answer for a Redis call that failed, as in every daemon (redis_reply.h): 503 when
 * Redis cannot serve now, 500 for an error reply. */
void audit_redis_failed(struct http_req *r, enum rreply_class c);

#endif
