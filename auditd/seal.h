/* SPDX-License-Identifier: Apache-2.0 */
/* seal: the batch of one compare-and-set — the pending items of the requests gathered (an
 * event_id repeated inside the batch is answered with the first one's entry: the script
 * only sees the ids already stored), built in order on a head (seq, prev, ts, key version,
 * body, hash), their leaves added to the tree, then signed; half of a large batch is
 * signed on a helper thread (the signatures are independent once every body is built).
 * Used by the appender's thread only. */
#ifndef AUDIT_SEAL_H
#define AUDIT_SEAL_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "appender.h"
#include "keyring.h"
#include "tree.h"

struct audit_batch {
    struct audit_item **items; /* the pending items, the key's activation first if any */
    size_t n, cap;
};

struct audit_sealer;

/* A sealer signing with key (borrowed), with its helper thread when one can start. NULL
 * when out of memory. */
struct audit_sealer *audit_sealer_create(const struct audit_key *key);
void audit_sealer_free(struct audit_sealer *s); /* NULL does nothing */

/* Gather into b the pending items of the requests of list, activation (may be NULL) first.
 * Returns 0, or -1 out of memory. */
int audit_batch_collect(struct audit_batch *b, struct audit_request *list,
                        struct audit_item *activation);

/* Build and hash every entry of b after the head (seq, hash) with the timestamp of now,
 * grow the tree (frontier `tree`) by their leaves into delta, and sign them. Returns 0, or
 * -1 out of memory. */
int audit_batch_seal(struct audit_sealer *s, struct audit_batch *b, long long head_seq,
                     const char *head_hash, const struct audit_merkle_frontier *tree,
                     struct audit_tree_delta *delta);

/* Items whose event_id was repeated inside the batch take the first one's outcome. */
void audit_batch_resolve_dups(struct audit_request *list);

/* The script's "duplicate" reply (pairs of 1-based index and existing seq): those items
 * are duplicates of the stored entries. */
void audit_batch_mark_dups(struct audit_batch *b, const redisReply *r);

void audit_batch_free(struct audit_batch *b);

#endif
