/* SPDX-License-Identifier: Apache-2.0 */
/* pending: a request that waits for Redis or the appender without holding a thread. Its
 * handler suspends it; each step then runs on a loop with a Redis client of that loop
 * (the reads loop, background.h), issues its calls and returns; the last step sets the
 * answer and resumes the request. A route's state embeds struct audit_pending first. */
#ifndef AUDIT_PENDING_H
#define AUDIT_PENDING_H

#include "background.h"
#include "shared/http.h"
#include "shared/redis_client.h"

struct audit_pending {
    struct http_req *r;
    struct audit_bg *loop; /* where the steps run */
    struct rclient *rc;    /* that loop's client, set when a step runs */
    void (*step)(struct audit_pending *p);
};

/* Suspend r and run step(p) on loop (p is the route's state, calloc'd: freed by
 * audit_pending_done). If it cannot be posted, r is answered 503 and p freed. */
void audit_pending_start(struct audit_pending *p, struct http_req *r, struct audit_bg *loop,
                         void (*step)(struct audit_pending *p));

/* From any thread: run step(p) next on p's loop (as above on failure). */
void audit_pending_continue(struct audit_pending *p, void (*step)(struct audit_pending *p));

/* The answer is set: resume the request and free p. */
void audit_pending_done(struct audit_pending *p);

#endif
