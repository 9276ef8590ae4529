/* SPDX-License-Identifier: Apache-2.0 */
/* query: Redis calls sent on a loop's client, or waited for on a db (see query.h). */
#include "query.h"

#include <stdarg.h>
#include <stdlib.h>

/* Add a command of argc arguments (strings that outlive the sending). */
void audit_query_add(struct audit_query *q, int argc, ...)
{
    va_list ap;
    const char **argv = q->argv[q->n];
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, const char *);
    va_end(ap);
    q->cmd = q->fixed;
    q->fixed[q->n++] = (struct audit_cmd){.argc = argc, .argv = argv};
}

static void query_clear(struct audit_query *q)
{
    for (size_t i = 0; i < sizeof(q->mem) / sizeof(q->mem[0]); i++)
        free(q->mem[i]);
    if (q->cleanup)
        q->cleanup(q->cleanup_arg);
    free(q->replies);
    free(q->slots);
}

/* Every reply is in: parse, free, then tell the caller. */
static void query_done(struct audit_query *q)
{
    audit_done_fn fn = q->fn;
    void *arg = q->fn_arg;
    if (q->c == RREPLY_OK && q->parse)
        q->c = q->parse(q, q->replies);
    enum rreply_class c = q->c;
    for (size_t i = 0; i < q->n; i++)
        freeReplyObject(q->replies[i]);
    int keep = q->keep;
    query_clear(q);
    if (!keep)
        free(q);
    fn(arg, c);
}

static void slot_done(void *arg, enum rcl_status st, redisReply *reply)
{
    struct audit_query_slot *s = arg;
    struct audit_query *q = s->q;
    enum rreply_class c = rreply_classify((int)st, reply);
    if (reply)
        q->replies[s->i] = rcl_steal(q->rc);
    if (c != RREPLY_OK && q->c == RREPLY_OK)
        q->c = c;
    if (--q->left == 0)
        query_done(q);
}

/* Send command i of q. Returns 0, or -1 out of memory. */
static int slot_send(struct audit_query *q, size_t i)
{
    const struct audit_cmd *c = &q->cmd[i];
    struct audit_query_slot *s = &q->slots[i];
    if (c->script)
        return rcl_eval(q->rc, c->script, c->nkeys, c->argc, c->argv, c->argvlen, q->timeout_ms,
                        slot_done, s);
    return rcl_command(q->rc, c->argc, c->argv, c->argvlen, q->timeout_ms, slot_done, s);
}

/* Send q (on the heap) on rc. An empty query still makes a round trip (PING), so fn always
 * runs later, on the loop. Returns 0, or -1 with q freed if nothing could be sent. */
int audit_query_send(struct rclient *rc, struct audit_query *q, audit_done_fn fn, void *arg)
{
    size_t sent = 0;
    if (!q) /* audit_query_new failed */
        return -1;
    if (q->n == 0)
        audit_query_add(q, 1, "PING");
    q->rc = rc;
    q->fn = fn;
    q->fn_arg = arg;
    q->c = RREPLY_OK;
    q->left = q->n;
    q->replies = calloc(q->n, sizeof(redisReply *));
    q->slots = calloc(q->n, sizeof(*q->slots));
    for (size_t i = 0; !q->failed && q->replies && q->slots && i < q->n; i++) {
        q->slots[i] = (struct audit_query_slot){.q = q, .i = i};
        if (slot_send(q, i) == 0) {
            sent++;
        } else { /* out of memory: that command fails, the others are answered */
            q->left--;
            q->c = RREPLY_INTERNAL;
        }
    }
    if (sent == 0) {
        query_clear(q);
        if (!q->keep)
            free(q);
        return -1;
    }
    return 0;
}

/* ---- blocking calls ---- */

int audit_db_open(struct audit_db *db, const struct rcl_config *rconf, char *err, size_t errsize)
{
    db->loop = loop_create(err, errsize);
    db->rc = db->loop ? rcl_create(db->loop, rconf, err, errsize) : NULL;
    if (!db->rc) {
        loop_free(db->loop);
        db->loop = NULL;
        return -1;
    }
    return 0;
}

void audit_db_close(struct audit_db *db)
{
    if (!db)
        return;
    rcl_free(db->rc);
    loop_free(db->loop);
    db->rc = NULL;
    db->loop = NULL;
}

struct run_wait {
    struct loop *loop;
    enum rreply_class c;
    int done;
};

static void run_woke(void *arg, enum rreply_class c)
{
    struct run_wait *w = arg;
    w->c = c;
    w->done = 1;
    loop_stop(w->loop);
}

enum rreply_class audit_query_run(struct audit_db *db, struct audit_query *q)
{
    struct run_wait w = {.loop = db->loop, .c = RREPLY_INTERNAL};
    q->keep = 1;
    if (audit_query_send(db->rc, q, run_woke, &w) != 0)
        return RREPLY_INTERNAL;
    while (!w.done)
        if (loop_run(db->loop) != 0)
            return RREPLY_UNAVAILABLE; /* epoll failed: the client is not to be used again */
    return w.c;
}

/* A query on the heap (NULL: audit_query_send fails). */
struct audit_query *audit_query_new(void)
{
    return calloc(1, sizeof(struct audit_query));
}
