/* SPDX-License-Identifier: Apache-2.0 */
/* store: idemd's records in Redis — each decision is one EVALSHA of a
 * lua-scripts/idem_*.lua script on the single key idem:<scope>:<key>, sent on the
 * non-blocking client of the calling loop (redis_client.h). With IDEM_WAIT_REPLICAS, the
 * scripts that may write go on a connection of the loop's own, in batches each followed by
 * one WAIT for that many replicas (group commit), so a WAIT never holds up other commands.
 * A call returns at once; its outcome is given later, on the same loop's thread, to the
 * caller's done function. struct idem_store is read-only after creation (any thread);
 * struct idem_store_loop belongs to its loop's thread. */
#ifndef IDEMD_STORE_H
#define IDEMD_STORE_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "config.h"
#include "request.h"
#include "shared/loop.h"
#include "shared/redis_client.h"
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

/* A decision. Its strings point into the script's reply, which the store frees after the
 * done function returns. */
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
    enum idem_outcome outcome;
    int recovered;
    int replicas_acked; /* -1 when IDEM_WAIT_REPLICAS is 0 */
};

/* The most arguments (key included) of a script call. */
#define IDEM_STORE_MAX_ARGS 8

struct idem_store;
struct idem_store_loop;

/* The scripts idemd runs (NULL-terminated), for app_spec.scripts: loaded at start and
 * checked by /ready. */
extern const struct script *const idem_store_scripts[];

/* The Redis key idem:<scope>:<key>. The caller's '{', '}' and '%' are percent-escaped so a
 * key can never pick its own cluster hash slot (a '{...}' tag) and the mapping stays
 * one-to-one; keys without those characters appear as they are. Returns 0, or -1 if out
 * is too small. */
int idem_redis_key(const char *scope, const char *key, size_t key_len, char *out, size_t outsize);

/* rc: the daemon's Redis settings (app_rcl_config), for the replicated writes' connections
 * (a WAIT may take REDIS_COMMAND_TIMEOUT plus IDEM_WAIT_TIMEOUT). Returns NULL when out of
 * memory. */
struct idem_store *idem_store_create(const struct idem_config *conf, const struct rcl_config *rc);
void idem_store_free(struct idem_store *st); /* NULL does nothing */

/* The store's part of loop l (on l's thread, before it serves): with IDEM_WAIT_REPLICAS,
 * the client of its replicated writes (one connection) and their batches. Returns NULL
 * when out of memory or when that client cannot be made (logged). */
struct idem_store_loop *idem_store_loop_create(struct idem_store *st, struct loop *l);
/* On its loop, once it serves no more: what is still out fails first (its callbacks
 * run). NULL does nothing. */
void idem_store_loop_free(struct idem_store_loop *sl);

/* A fresh lease token: 24 random bytes in base64url (32 chars, 192 bits), into out. */
void idem_new_lease_token(char out[33]);

/* The outcome of a store call, on the loop's thread: cls is the class of the Redis outcome
 * as every daemon reads it (redis_reply.h): RREPLY_OK (res is set), RREPLY_UNAVAILABLE
 * (Redis unreachable, timed out, or refusing for now: answer 503) or RREPLY_INTERNAL (an
 * error reply or a reply of an unexpected shape: a bug, already logged; answer 500). res
 * (NULL unless RREPLY_OK) and the strings it points to are valid during the call only. */
typedef void (*idem_store_done_fn)(void *arg, enum rreply_class cls, const struct idem_result *res);

/* The calls, on sl's loop: each sends its script on c (that loop's client, app_rclient) or
 * on sl's replicated writes' client and returns 0, then done(arg, ...) runs exactly once,
 * later, on that loop; or returns -1 when out of memory, and done never runs. The inputs
 * are copied: they may go right after. */

/* Claim in->ref with the lease token this claim would get. */
int idem_store_claim(struct idem_store_loop *sl, struct rclient *c, const struct idem_claim_in *in,
                     const char *token, idem_store_done_fn done, void *arg);
int idem_store_complete(struct idem_store_loop *sl, struct rclient *c,
                        const struct idem_lease_in *in, idem_store_done_fn done, void *arg);
int idem_store_release(struct idem_store_loop *sl, struct rclient *c,
                       const struct idem_lease_in *in, idem_store_done_fn done, void *arg);
int idem_store_extend(struct idem_store_loop *sl, struct rclient *c, const struct idem_lease_in *in,
                      idem_store_done_fn done, void *arg);
int idem_store_checkpoint(struct idem_store_loop *sl, struct rclient *c,
                          const struct idem_lease_in *in, idem_store_done_fn done, void *arg);
/* Read-only: nothing for a replica to acknowledge, so no WAIT. */
int idem_store_record(struct idem_store_loop *sl, struct rclient *c, const struct idem_ref *ref,
                      idem_store_done_fn done, void *arg);

/* Stable lowercase name of an outcome ("claimed", "lease_lost", ...), for metrics. */
const char *idem_outcome_name(enum idem_outcome o);

#endif
