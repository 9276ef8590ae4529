/* SPDX-License-Identifier: Apache-2.0 */
/* checkpointer: signed checkpoints of the live head — made on demand (GET /v1/checkpoint)
 * and every AUDIT_CHECKPOINT_INTERVAL by a background thread, stored in
 * audit:{<chain>}:checkpoints by audit_checkpoint.lua at most once per interval across
 * all instances (the interval is cut on Redis's clock). */
#ifndef AUDIT_CHECKPOINTER_H
#define AUDIT_CHECKPOINTER_H

#include <stddef.h>
#include <stdint.h>

#include "guard.h"
#include "keyring.h"
#include "shared/metrics.h"
#include "shared/redis_pool.h"
#include "store.h"

/* The signed note for the current head into out, if the chain holds g's floor (checked on
 * the way, see audit_guard_check). Returns its length; -1 if Redis failed; -2 if the note
 * could not be made; -3 if the chain does not hold the floor (nothing signed). */
int audit_checkpoint_now(struct rpool *p, const struct audit_keys *k, const struct audit_key *key,
                         const char *origin, struct audit_guard *g, char *out, size_t outsize);

struct audit_checkpointer;

/* Start the periodic thread (interval_ms > 0); a tick whose chain does not hold g's floor
 * stores nothing. Everything is borrowed. NULL on failure. */
struct audit_checkpointer *audit_checkpointer_start(struct rpool *p, const struct audit_keys *k,
                                                    const struct audit_key *key, const char *origin,
                                                    struct audit_guard *g, int64_t interval_ms,
                                                    struct metrics *m);

/* Stop the thread and free. NULL does nothing. */
void audit_checkpointer_stop(struct audit_checkpointer *c);

#endif
