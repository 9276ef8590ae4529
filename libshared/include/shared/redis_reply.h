/* SPDX-License-Identifier: Apache-2.0 */
/* redis_reply: one reading of Redis outcomes for every daemon, so that the same failure
 * gets the same answer everywhere:
 *   - Redis cannot serve the call now — unreachable, too slow, no room in the pool, or an
 *     error reply that says so (LOADING, BUSY, OOM under noeviction, READONLY, MASTERDOWN,
 *     TRYAGAIN, CLUSTERDOWN, too many clients, and the ACL refusals NOPERM, NOAUTH and
 *     WRONGPASS, which an operator fixes in Redis): 503 backend_unavailable;
 *   - any other error reply (a script that failed, WRONGTYPE on a key warden did not
 *     write): a bug or a broken data set, 500 internal.
 * Plus typed reads of the elements of array replies. Thread-safe (no state). */
#ifndef WARDEN_REDIS_REPLY_H
#define WARDEN_REDIS_REPLY_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "shared/redis_client.h"

enum rreply_class {
    RREPLY_OK,          /* a reply to read (it may still be of an unexpected shape) */
    RREPLY_UNAVAILABLE, /* answer 503 backend_unavailable, Retry-After: 1 */
    RREPLY_INTERNAL,    /* answer 500 internal, and log the reply's error */
};

/* The class of a command's outcome (redis_client.h); reply may be NULL. */
enum rreply_class rreply_classify(enum rcl_status status, const redisReply *reply);

/* Element i of an array reply as a string (its length in *len if len is not NULL), or NULL
 * when r is not an array, i is out of range or the element is not a string. */
const char *rreply_str(const redisReply *r, size_t i, size_t *len);

/* Element i of an array reply as an integer into *out. Returns 0, or -1 as above. */
int rreply_int(const redisReply *r, size_t i, long long *out);

#endif
