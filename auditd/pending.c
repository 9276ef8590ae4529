/* SPDX-License-Identifier: Apache-2.0 */
/* pending: suspended requests continued on their worker loop. */
#include "pending.h"

#include <stdlib.h>

#include "shared/app.h"

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
    step(p);
}

void audit_pending_done(struct audit_pending *p)
{
    http_resume(p->r);
    free(p);
}
