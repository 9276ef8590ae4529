/* SPDX-License-Identifier: Apache-2.0 */
/* append_call: one call of audit_append.lua — its KEYS and ARGV built from the head and
 * tree it expects, the guard's floor, a batch of sealed entries and the tree delta they
 * make, sent with a WAIT behind it when replicas are wanted — and reading its reply. */
#ifndef AUDIT_APPEND_CALL_H
#define AUDIT_APPEND_CALL_H

#include <hiredis/hiredis.h>
#include <stdint.h>

#include "appender.h"
#include "guard.h"
#include "shared/redis_pool.h"
#include "store.h"
#include "tree.h"

struct audit_append_args {
    const struct audit_keys *keys;
    long long head_seq; /* the head the batch is built on */
    const char *head_hash;
    long long tree_size; /* the tree size the delta starts from */
    const struct audit_floor *floor;
    int64_t dedup_window_ms;
    const char *key_version; /* of the batch */
    int activation;          /* items[0] is its audit.key_activated */
    struct audit_item *const *items;
    size_t n; /* 0: the tree catching up with older entries */
    const struct audit_tree_delta *delta;
    int wait_replicas; /* > 0: WAIT behind the script, on the same connection */
    int64_t wait_timeout_ms;
};

/* Run the script (plus WAIT). On RPOOL_OK *reply is the script's array reply with a first
 * word (caller frees) and *replicas what WAIT answered (0 without it). */
enum rpool_status audit_append_call(struct rpool *p, const struct audit_append_args *a,
                                    redisReply **reply, long long *replicas);

/* The reply's first word ("" if not a string). */
const char *audit_reply_word(const redisReply *r);
/* Element i as a number (an integer, or a decimal string); 0 if absent. */
long long audit_reply_int(const redisReply *r, size_t i);

#endif
