/* SPDX-License-Identifier: Apache-2.0 */
/* pending: suspended requests continued on their worker loop. */
#include "pending.h"

#include <stdlib.h>

#include "shared/app.h"

static void run_step(void *arg)
{
    struct audit_pending *p = arg;
    p->step(p);
}

void audit_pending_continue(struct audit_pending *p, void (*step)(struct audit_pending *p))
{
    p->step = step;
    if (loop_post(p->loop, run_step, p) != 0) {
        http_unavailable(p->r);
        audit_pending_done(p);
    }
}

void audit_pending_suspend(struct audit_pending *p, struct http_req *r)
{
    p->r = r;
    p->loop = http_loop(r);
    p->rc = app_rclient(r);
    http_suspend(r);
}

void audit_pending_start(struct audit_pending *p, struct http_req *r,
                         void (*step)(struct audit_pending *p))
{
    audit_pending_suspend(p, r);
    p->step = step;
    step(p);
}

void audit_pending_done(struct audit_pending *p)
{
    http_resume(p->r);
    free(p);
}
