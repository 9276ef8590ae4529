/* SPDX-License-Identifier: Apache-2.0 */
/* idem_store: idemd's records in Redis — each decision is one EVALSHA of a
 * lua-scripts/idem_*.lua script on the single key idem:<scope>:<key>; every script that may
 * write is followed (same connection, same round trip) by WAIT for IDEM_WAIT_REPLICAS
 * replicas when that is set.
 * Thread-safe (the pool is). */
#ifndef IDEMD_IDEM_STORE_H
#define IDEMD_IDEM_STORE_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "idem_config.h"
#include "idem_request.h"
#include "shared/redis_pool.h"

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

/* Store status: IDEM_OK; IDEM_EBACKEND (Redis unreachable, timed out, or refused: answer
 * 503); IDEM_EINTERNAL (a reply of an unexpected shape: a bug, answer 500). */
#define IDEM_OK 0
#define IDEM_EBACKEND (-1)
#define IDEM_EINTERNAL (-2)

struct idem_store;

struct idem_store *idem_store_create(const struct idem_config *conf, struct rpool *pool);
void idem_store_free(struct idem_store *st); /* NULL does nothing */

/* A fresh lease token: 24 random bytes in base64url (32 chars, 192 bits), into out. */
void idem_new_lease_token(char out[33]);

/* Claim in->ref with a new lease token of its own. */
int idem_store_claim(struct idem_store *st, const struct idem_claim_in *in, const char *token,
                     struct idem_result *res);
/* n claims in one pipelined round trip (the waiter's re-checks); rc[i] per claim. Returns
 * IDEM_OK, or IDEM_EBACKEND when the round trip failed (then no result is set). */
int idem_store_claim_many(struct idem_store *st, const struct idem_claim_in *const *in,
                          const char *const *tokens, size_t n, struct idem_result *res, int *rc);
int idem_store_complete(struct idem_store *st, const struct idem_lease_in *in,
                        struct idem_result *res);
int idem_store_release(struct idem_store *st, const struct idem_lease_in *in,
                       struct idem_result *res);
int idem_store_extend(struct idem_store *st, const struct idem_lease_in *in,
                      struct idem_result *res);
int idem_store_checkpoint(struct idem_store *st, const struct idem_lease_in *in,
                          struct idem_result *res);
int idem_store_record(struct idem_store *st, const struct idem_ref *ref, struct idem_result *res);

void idem_result_free(struct idem_result *res); /* frees the reply; zeroed result is fine */

/* Stable lowercase name of an outcome ("claimed", "lease_lost", ...), for metrics. */
const char *idem_outcome_name(enum idem_outcome o);

#endif
