/* SPDX-License-Identifier: Apache-2.0 */
/* checkpointer: signed checkpoints of the live tree and chain head (checkpoint.h) — made on
 * demand (GET /v1/checkpoint) and every AUDIT_CHECKPOINT_INTERVAL, on a loop thread of its
 * own with its own Redis client (background.h),
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
#include "shared/redis_client.h"
#include "store.h"

struct audit_checkpointer_config {
    const char *chain, *origin;
    int64_t interval_ms;     /* 0: no periodic checkpoints */
    const char *witness_dir; /* NULL: none */
};

struct audit_checkpointer;

#define AUDIT_CP_REDIS (-1)       /* Redis unavailable */
#define AUDIT_CP_INTERNAL (-2)    /* the note could not be made */
#define AUDIT_CP_REFUSED (-3)     /* the chain or tree does not hold the floor: nothing signed */
#define AUDIT_CP_BEHIND (-4)      /* the tree is catching up with an older chain */
#define AUDIT_CP_REDIS_ERROR (-5) /* Redis answered an error */

/* Start the checkpointer's loop thread, with a client of rconf, ticking when interval_ms
 * > 0. Everything is borrowed. NULL with the reason in err on failure. */
struct audit_checkpointer *audit_checkpointer_start(const struct rcl_config *rconf,
                                                    const struct audit_keys *k,
                                                    const struct audit_key *key,
                                                    struct audit_guard *g,
                                                    const struct audit_checkpointer_config *conf,
                                                    struct metrics *m, char *err, size_t errsize);

/* The signed note for the current head: fn(arg, n, note) runs on the checkpointer's
 * thread with the note's length (note valid during the call only), or one of the above.
 * Thread-safe, never blocks. Returns 0, or -1 out of memory (fn will not run). */
typedef void (*audit_cp_fn)(void *arg, int n, const char *note);
int audit_checkpointer_now(struct audit_checkpointer *c, audit_cp_fn fn, void *arg);

/* Have the guard look at Redis again soon (for /ready: a chain lost while nobody appends
 * shows on the next look). Thread-safe, never blocks; one look at a time. */
void audit_checkpointer_look(struct audit_checkpointer *c);

/* Stop the thread and free. NULL does nothing. */
void audit_checkpointer_stop(struct audit_checkpointer *c);

#endif
