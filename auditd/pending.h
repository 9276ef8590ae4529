/* SPDX-License-Identifier: Apache-2.0 */
/* pending: a request that waits for Redis or the appender without holding its worker. Its
 * handler suspends it; each step then runs on the request's worker loop (a Redis reply's
 * callback, the appender's answer posted there) with that loop's Redis client, issues its
 * calls and returns; the step that has the answer sets it and resumes the request. A
 * route's state embeds struct audit_pending first. */
#ifndef AUDIT_PENDING_H
#define AUDIT_PENDING_H

#include "shared/http.h"
#include "shared/loop.h"
#include "shared/redis_client.h"

struct audit_pending {
    struct http_req *r;
    struct loop *loop;  /* r's worker loop: where the steps run */
    struct rclient *rc; /* its Redis client */
};

/* In r's handler: suspend r and run step(p) now (p is the route's state, calloc'd: freed
 * by audit_pending_done). */
void audit_pending_start(struct audit_pending *p, struct http_req *r,
                         void (*step)(struct audit_pending *p));

/* Suspend r without a step (what answers it runs elsewhere: the checkpointer). */
void audit_pending_suspend(struct audit_pending *p, struct http_req *r);

/* The answer is set: resume the request and free p. From any thread. */
void audit_pending_done(struct audit_pending *p);

#endif
