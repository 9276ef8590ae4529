/* SPDX-License-Identifier: Apache-2.0 */
/* guard: what this instance has seen of its chain, so that a Redis that lost or replaced
 * entries (FLUSHALL, restarted empty, an older backup restored) is refused instead of
 * silently starting a new chain on it.
 *
 * The *floor* is the highest (seq, hash) the instance has seen in Redis: every entry it
 * committed, and every head it read and found to extend the floor; with it, the root of the
 * Merkle tree of that many entries (tree.h), once known. It only rises, except
 * when an operator accepts the chain Redis shows (audit_guard_accept). Redis's chain holds
 * the floor when its head seq is >= the floor seq and its entry at the floor seq has the
 * floor hash, and its tree is at least that large with the floor's root at that size;
 * otherwise it is *shorter* or *different*, and the instance refuses to append
 * (503 chain_broken) and is not ready until the chain holds the floor again or is
 * accepted. audit_append.lua applies the chain's rule inside the compare-and-set, so an append
 * never costs a round trip more, and the tree's as far as it can without SHA-256 (the
 * size, and the root when the tree has exactly the floor's size); the root at the floor's
 * size of a larger tree is recomputed from its tiles by audit_guard_check, which runs at
 * startup, on /ready and before every checkpoint is signed. With AUDIT_STATE_DIR the floor
 * is also kept on disk
 * (state.h), so a restart still knows it; without it, it starts from the head found at
 * start.
 *
 * Thread-safe: the appender, /ready and the checkpointer share one guard. */
#ifndef AUDIT_GUARD_H
#define AUDIT_GUARD_H

#include <stddef.h>

#include "entry.h"
#include "shared/metrics.h"
#include "shared/redis_reply.h"
#include "store.h"
#include "tree.h"

/* A snapshot of the floor. epoch changes on every accept, so that a judgement made on an
 * older floor cannot undo an accept that happened meanwhile. */
struct audit_floor {
    long long seq;
    char hash[AUDIT_HASH_HEX_LEN + 1];
    char root[AUDIT_HASH_HEX_LEN + 1]; /* hex of the tree's root at seq; "" not known */
    unsigned epoch;
};

enum audit_verdict {
    AUDIT_CHAIN_HOLDS = 0, /* the chain holds the floor (it may have grown past it) */
    AUDIT_CHAIN_SHORTER,   /* its head is below the floor */
    AUDIT_CHAIN_DIFFERENT, /* another hash (or none) at the floor's seq */
};

struct audit_guard;

/* state_dir NULL: memory only. Otherwise the directory must exist and be writable, and a
 * state file of this chain and origin in it, if any, must be well formed; its floor is
 * then the starting floor. NULL with the reason in err (a startup error, exit 2). */
struct audit_guard *audit_guard_create(const char *state_dir, const char *chain, const char *origin,
                                       struct metrics *m, char *err, size_t errsize);

void audit_guard_free(struct audit_guard *g); /* NULL does nothing */

/* The floor now. */
void audit_guard_floor(struct audit_guard *g, struct audit_floor *f);

/* The rule (the same as audit_append.lua's): does a chain whose head is (head_seq,
 * head_hash) and whose entry at f->seq has hash_at_floor (NULL: no such entry) hold f? */
enum audit_verdict audit_guard_judge(const struct audit_floor *f, long long head_seq,
                                     const char *head_hash, const char *hash_at_floor);

/* Redis showed (seq, hash) with tree root (hex; "" not known) and it holds f: raise the
 * floor to it if higher; a refusal ends (logged). Ignored if an accept came after f was
 * taken. The state file is written by audit_guard_sync. */
void audit_guard_advance(struct audit_guard *g, const struct audit_floor *f, long long seq,
                         const char *hash, const char *root);

/* Redis showed a chain that does not hold f (v, its head (seq, hash)): refuse until it
 * holds the floor again or is accepted. Logged at critical once when the refusal starts,
 * not on every request. Ignored if an accept came after f was taken. */
void audit_guard_refuse(struct audit_guard *g, const struct audit_floor *f, enum audit_verdict v,
                        long long seq, const char *hash);

/* 1 while refusing, with a sentence for people in detail (may be NULL); else 0. */
int audit_guard_refusing(struct audit_guard *g, char *detail, size_t size);

/* Write the floor to the state file if the file holds less. Returns 0 (also without a
 * state dir), or -1 if it could not be written (logged once until a write succeeds). */
int audit_guard_sync(struct audit_guard *g);

/* An operator accepted the chain Redis shows, whose head is now (seq, hash, root): the
 * floor becomes exactly that (even if lower), any refusal ends, and the state file is
 * written. Returns 0, or -1 if the state file could not be written (the floor is reset
 * anyway). */
int audit_guard_accept(struct audit_guard *g, long long seq, const char *hash, const char *root);

/* Look now: one pipelined round trip (the head with its tree, and the entry at the floor's
 * seq), then the roots at the floor's size and at the tree's size recomputed from the
 * stored tiles (one more), judged, then advance or refuse as above, and sync. *v is the
 * verdict; the head goes into head (may be NULL), its root the recomputed one. Returns
 * the class of Redis's outcome (redis_reply.h). */
enum rreply_class audit_guard_check(struct audit_guard *g, struct audit_db *p,
                                    const struct audit_keys *k, enum audit_verdict *v,
                                    struct audit_head *head);

/* The same on a loop's client: fn(arg, class) runs later on the loop (v and head, which may
 * be NULL, filled; they must stay valid until then). Returns 0, or -1 out of memory (fn
 * will not run). */
typedef void (*audit_guard_fn)(void *arg, enum rreply_class c);
int audit_guard_check_async(struct audit_guard *g, struct rclient *rc, const struct audit_keys *k,
                            enum audit_verdict *v, struct audit_head *head, audit_guard_fn fn,
                            void *arg);

#endif
