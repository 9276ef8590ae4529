/* SPDX-License-Identifier: Apache-2.0 */
/* checkpointer: signed checkpoints of the live tree and chain head (checkpoint.h) — made on
 * demand (GET /v1/checkpoint) and every AUDIT_CHECKPOINT_INTERVAL by a background thread,
 * stored in audit:{<chain>}:checkpoints by audit_checkpoint.lua at most once per interval
 * across all instances (the interval is cut on Redis's clock). A note is signed only for a
 * chain and tree that hold the guard's floor, with the root recomputed from the tiles; with
 * a witness directory (AUDIT_CHECKPOINT_WITNESS_DIR) every note signed is also written
 * there as a file, for operators to ship out of reach of Redis's operators. */
#ifndef AUDIT_CHECKPOINTER_H
#define AUDIT_CHECKPOINTER_H

#include <stddef.h>
#include <stdint.h>

#include "guard.h"
#include "keyring.h"
#include "shared/metrics.h"
#include "shared/redis_pool.h"
#include "store.h"

struct audit_checkpointer_config {
    const char *chain, *origin;
    int64_t interval_ms;     /* 0: no periodic checkpoints */
    const char *witness_dir; /* NULL: none */
};

struct audit_checkpointer;

/* Start (with the periodic thread when interval_ms > 0). Everything is borrowed. NULL on
 * failure. */
struct audit_checkpointer *audit_checkpointer_start(struct rpool *p, const struct audit_keys *k,
                                                    const struct audit_key *key,
                                                    struct audit_guard *g,
                                                    const struct audit_checkpointer_config *conf,
                                                    struct metrics *m);

#define AUDIT_CP_REDIS (-1)       /* Redis unavailable */
#define AUDIT_CP_INTERNAL (-2)    /* the note could not be made */
#define AUDIT_CP_REFUSED (-3)     /* the chain or tree does not hold the floor: nothing signed */
#define AUDIT_CP_BEHIND (-4)      /* the tree is catching up with an older chain */
#define AUDIT_CP_REDIS_ERROR (-5) /* Redis answered an error */

/* The signed note for the current head into out. Returns its length, or one of the above.
 * Thread-safe. */
int audit_checkpointer_now(struct audit_checkpointer *c, char *out, size_t outsize);

/* Stop the thread and free. NULL does nothing. */
void audit_checkpointer_stop(struct audit_checkpointer *c);

#endif
