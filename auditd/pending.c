/* SPDX-License-Identifier: Apache-2.0 */
/* pending: suspended requests continued on a loop. */
#include "pending.h"

#include <stdlib.h>

static void run_step(void *arg)
{
    struct audit_pending *p = arg;
    p->rc = audit_bg_rclient(p->loop);
    p->step(p);
}

void audit_pending_continue(struct audit_pending *p, void (*step)(struct audit_pending *p))
{
    p->step = step;
    if (audit_bg_post(p->loop, run_step, p) != 0) {
        http_unavailable(p->r);
        audit_pending_done(p);
    }
}

void audit_pending_start(struct audit_pending *p, struct http_req *r, struct audit_bg *loop,
                         void (*step)(struct audit_pending *p))
{
    p->r = r;
    p->loop = loop;
    http_suspend(r);
    audit_pending_continue(p, step);
}

void audit_pending_done(struct audit_pending *p)
{
    http_resume(p->r);
    free(p);
}
