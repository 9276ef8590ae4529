/* SPDX-License-Identifier: Apache-2.0 */
/* store: idemd's records in Redis — each decision is one EVALSHA of a
 * lua-scripts/idem_*.lua script on the single key idem:<scope>:<key>; every script that may
 * write is followed (same connection, same round trip) by WAIT for IDEM_WAIT_REPLICAS
 * replicas when that is set.
 * Thread-safe (the pool is). */
#ifndef IDEMD_STORE_H
#define IDEMD_STORE_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "config.h"
#include "request.h"
#include "shared/redis_pool.h"
#include "shared/redis_reply.h"
#include "shared/script.h"

enum idem_outcome {
    IDEM_CLAIMED,
    IDEM_RECOVERED,
    IDEM_REPLAY,
    IDEM_IN_PROGRESS,
    IDEM_BLOCKED,
    IDEM_MISMATCH,
    IDEM_COMPLETED,
    IDEM_RELEASED,
    IDEM_EXTENDED,
    IDEM_SAVED,
    IDEM_FOUND,
    IDEM_LEASE_LOST,
    IDEM_NOT_FOUND,
};

/* A decision. Strings point into the reply it holds: free with idem_result_free(). */
struct idem_result {
    long long lease_left_ms;
    long long expires_in_ms;
    /* claimed / recovered */
    const char *lease_token;
    const char *checkpoint; /* NULL: none */
    size_t checkpoint_len;
    /* replay (and record: status, completed_ms; -1 when none) */
    long long status;
    const char *headers_json;
    const char *body;
    size_t body_len;
    const char *body_encoding;
    long long completed_ms;
    /* record */
    const char *state;
    const char *fingerprint;
    long long created_ms;
    long long claims;
    redisReply *reply_;
    enum idem_outcome outcome;
    int recovered;
    int replicas_acked; /* -1 when IDEM_WAIT_REPLICAS is 0 */
};

/* Every store call returns the class of its Redis outcome (redis_reply.h), as every
 * daemon reads it: RREPLY_OK (res is set), RREPLY_UNAVAILABLE (Redis unreachable, timed
 * out, or refusing for now: answer 503) or RREPLY_INTERNAL (an error reply or a reply of an
 * unexpected shape: a bug, answer 500). */

struct idem_store;

/* The scripts idemd runs (NULL-terminated), for app_spec.scripts: loaded at start and
 * checked by /ready. */
extern const struct script *const idem_store_scripts[];

/* The Redis key idem:<scope>:<key>. The caller's '{', '}' and '%' are percent-escaped so a
 * key can never pick its own cluster hash slot (a '{...}' tag) and the mapping stays
 * one-to-one; keys without those characters appear as they are. Returns 0, or -1 if out
 * is too small. */
int idem_redis_key(const char *scope, const char *key, size_t key_len, char *out, size_t outsize);

struct idem_store *idem_store_create(const struct idem_config *conf, struct rpool *pool);
void idem_store_free(struct idem_store *st); /* NULL does nothing */

/* A fresh lease token: 24 random bytes in base64url (32 chars, 192 bits), into out. */
void idem_new_lease_token(char out[33]);

/* Claim in->ref with a new lease token of its own. */
enum rreply_class idem_store_claim(struct idem_store *st, const struct idem_claim_in *in,
                                   const char *token, struct idem_result *res);
/* n claims in one pipelined round trip (the waiter's re-checks); rc[i] per claim. Returns
 * RREPLY_OK, or the class of the failed round trip (then no result is set). */
enum rreply_class idem_store_claim_many(struct idem_store *st,
                                        const struct idem_claim_in *const *in,
                                        const char *const *tokens, size_t n,
                                        struct idem_result *res, int *rc);
enum rreply_class idem_store_complete(struct idem_store *st, const struct idem_lease_in *in,
                                      struct idem_result *res);
enum rreply_class idem_store_release(struct idem_store *st, const struct idem_lease_in *in,
                                     struct idem_result *res);
enum rreply_class idem_store_extend(struct idem_store *st, const struct idem_lease_in *in,
                                    struct idem_result *res);
enum rreply_class idem_store_checkpoint(struct idem_store *st, const struct idem_lease_in *in,
                                        struct idem_result *res);
enum rreply_class idem_store_record(struct idem_store *st, const struct idem_ref *ref,
                                    struct idem_result *res);

void idem_result_free(struct idem_result *res); /* frees the reply; zeroed result is fine */

/* Stable lowercase name of an outcome ("claimed", "lease_lost", ...), for metrics. */
const char *idem_outcome_name(enum idem_outcome o);

#endif
