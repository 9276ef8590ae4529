/* SPDX-License-Identifier: Apache-2.0 */
/* background: an event loop on a thread of its own, with a Redis client of its own
 * (redis_client.h), for work beside the HTTP workers that must not hold them up: the
 * checkpointer's ticks, the guard's looks and the signed notes it makes. */
#ifndef AUDIT_BACKGROUND_H
#define AUDIT_BACKGROUND_H

#include <stddef.h>

#include "shared/loop.h"
#include "shared/redis_client.h"

struct audit_bg;

/* Start the thread and its loop, with a client of rconf. NULL with the reason in err. */
struct audit_bg *audit_bg_start(const struct rcl_config *rconf, char *err, size_t errsize);

/* The loop and its client: used on the loop's thread only (from work posted to it). */
struct loop *audit_bg_loop(struct audit_bg *b);
struct rclient *audit_bg_rclient(struct audit_bg *b);

/* Run fn(arg) on the loop's thread. Thread-safe. Returns 0, or -1 out of memory. */
int audit_bg_post(struct audit_bg *b, void (*fn)(void *arg), void *arg);

/* Stop the loop after its current turn and join the thread; then the client is freed, and
 * the commands still waiting fail (their done functions run, on the calling thread, with
 * RCL_CONN). NULL does nothing. */
void audit_bg_stop(struct audit_bg *b);

#endif
