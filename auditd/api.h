/* SPDX-License-Identifier: Apache-2.0 */
/* api: auditd's HTTP handlers. They parse the request, call the appender, the store, the
 * verifier or the checkpointer, and render the answer. */
#ifndef AUDIT_API_H
#define AUDIT_API_H

#include "appender.h"
#include "checkpointer.h"
#include "keyring.h"
#include "shared/app.h"
#include "store.h"

struct audit_api {
    struct rpool *pool;
    const struct audit_keys *keys;
    const struct audit_keyring *kr;
    struct audit_appender *appender;
    struct audit_guard *guard;
    struct audit_checkpointer *checkpointer;
    const char *origin;
    int wait_replicas; /* > 0: 201 answers carry replicas_acked */
};

/* Register every /v1 route on a. api is borrowed for the server's life. */
void audit_api_routes(struct app *a, struct audit_api *api);

/* The transparency-log routes (api_tlog.c): /v1/proofs/..., /v1/tile/... */
void audit_api_tlog_routes(struct app *a, struct audit_api *api);

#endif
