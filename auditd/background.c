/* SPDX-License-Identifier: Apache-2.0 */
/* background: a loop thread with its own Redis client. */
#include "background.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct audit_bg {
    struct loop *loop;
    struct rclient *rcl;
    pthread_t thread;
};

static void *bg_main(void *arg)
{
    struct audit_bg *b = arg;
    loop_run(b->loop);
    return NULL;
}

struct audit_bg *audit_bg_start(const struct rcl_config *rconf, char *err, size_t errsize)
{
    struct audit_bg *b = calloc(1, sizeof(*b));
    snprintf(err, errsize, "out of memory");
    if (b)
        b->loop = loop_create(err, errsize);
    if (b && b->loop)
        b->rcl = rcl_create(b->loop, rconf, err, errsize);
    if (!b || !b->rcl || pthread_create(&b->thread, NULL, bg_main, b) != 0) {
        if (b) {
            rcl_free(b->rcl);
            loop_free(b->loop);
        }
        free(b);
        return NULL;
    }
    return b;
}

struct loop *audit_bg_loop(struct audit_bg *b)
{
    return b->loop;
}

struct rclient *audit_bg_rclient(struct audit_bg *b)
{
    return b->rcl;
}

int audit_bg_post(struct audit_bg *b, void (*fn)(void *arg), void *arg)
{
    return loop_post(b->loop, fn, arg);
}

void audit_bg_stop(struct audit_bg *b)
{
    if (!b)
        return;
    loop_stop(b->loop);
    pthread_join(b->thread, NULL);
    rcl_free(b->rcl);
    loop_free(b->loop);
    free(b);
}
