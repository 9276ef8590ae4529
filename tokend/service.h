/* SPDX-License-Identifier: Apache-2.0 */
/* service: tokend's operations — issue, refresh, revoke, introspect, list sessions — as
 * the contract decides them: the token is minted, hashed and sealed here, the family's
 * state is changed by one script run through the store (store.h), the answers are read
 * back into results, and the tokend_* metrics are counted. Handlers validate input before
 * calling; nothing here touches Redis on bad input.
 *
 * Every operation runs on the loop of rc, the Redis client it uses, and ends by calling
 * done(arg, rc) exactly once on that loop's thread, with rc TOK_OK or a failure (store.h);
 * done may run before the call returns (out of memory), so the call is the caller's last
 * step. What is passed in (requests, tokens, clients, the result structs, rid) must stay
 * valid until done has run. The service itself is shared by every loop: it holds only the
 * configuration and the metrics. */
#ifndef TOKEND_SERVICE_H
#define TOKEND_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "fingerprint.h"
#include "shared/metrics.h"
#include "shared/redis_client.h"
#include "store.h"
#include "token.h"

struct tok_service {
    const struct tok_config *conf;
    struct metric *issued, *refresh, *revoked, *drift;
};

/* Registers the tokend_* metric families on m. */
void tok_service_init(struct tok_service *s, const struct tok_config *conf, struct metrics *m);

/* What a client presents: tls is "" when absent. */
struct tok_client {
    const char *device_id;
    const char *user_agent;
    size_t ua_len;
    const char *tls;
};

struct tok_issue_req {
    const char *user_id;
    const char *client_id; /* "" when absent */
    const char *scope;     /* "" when absent */
    struct tok_client client;
};

struct tok_issue_res {
    struct tok_token token;
    int64_t expires_in_s;
    int64_t absolute_expires_in_s;
    char fingerprint[TOK_FP_HEX_LEN + 1];
};

/* A new family for a login; indexes it under its user and enforces the per-user cap. The
 * caller wipes res->token. */
void tok_issue(struct tok_service *s, struct rclient *rc, const char *rid,
               const struct tok_issue_req *req, struct tok_issue_res *res, tok_done_fn done,
               void *arg);

struct tok_refresh_res {
    enum tok_outcome outcome;
    struct tok_token token; /* the successor (OK, GRACE); wiped otherwise */
    char user_id[TOK_ID_MAX + 1];
    char client_id[TOK_ID_MAX + 1];
    char scope[TOK_SCOPE_MAX + 1];
    int64_t expires_in_s;
    int rebound;
    unsigned refused; /* TOK_FP_* (MISMATCH) */
    int revoked;      /* MISMATCH under TOKEN_ON_FP_MISMATCH=revoke */
};

/* Rotate presented, in one script run. The caller wipes res->token. */
void tok_refresh(struct tok_service *s, struct rclient *rc, const char *rid,
                 const struct tok_token *presented, const struct tok_client *client,
                 struct tok_refresh_res *res, tok_done_fn done, void *arg);

/* Revoke the family a token belongs to, if the token is one the family has had;
 * *revoked is 1 when this call revoked it. */
void tok_revoke_token(struct tok_service *s, struct rclient *rc, const struct tok_token *t,
                      int *revoked, tok_done_fn done, void *arg);
/* Revoke a family by id; user_id (may be NULL) must own it. reason: a metric label. */
void tok_revoke_family(struct tok_service *s, struct rclient *rc, const char *family,
                       const char *user_id, const char *reason, int *revoked, tok_done_fn done,
                       void *arg);
/* DELETE of one session: revoke the family if user_id owns it, drop it from the index. */
void tok_end_session(struct tok_service *s, struct rclient *rc, const char *user_id,
                     const char *family, int *revoked, tok_done_fn done, void *arg);
/* Revoke every family of a user ("log out everywhere"); *revoked counts them. */
void tok_revoke_user(struct tok_service *s, struct rclient *rc, const char *user_id, long *revoked,
                     tok_done_fn done, void *arg);

struct tok_introspection {
    int active;
    char user_id[TOK_ID_MAX + 1];
    char client_id[TOK_ID_MAX + 1];
    char scope[TOK_SCOPE_MAX + 1];
    int64_t iat, exp; /* seconds since the epoch */
    int fp_checked;   /* a client was given */
    int fp_match;
};

/* Never rotates. client may be NULL (no fingerprint comparison). */
void tok_introspect(struct tok_service *s, struct rclient *rc, const struct tok_token *t,
                    const struct tok_client *client, struct tok_introspection *out,
                    tok_done_fn done, void *arg);

struct tok_session {
    char family[TOK_FAMILY_LEN + 1];
    char client_id[TOK_ID_MAX + 1];
    char device_id[TOK_ID_MAX + 1];
    char ua_hash[TOK_UA_HASH_LEN + 1];
    int64_t created_ms, last_used_ms, expires_ms;
};

/* The user's active families, oldest first, in *out (the caller frees it; NULL when none)
 * and their number in *count. Index entries whose family is gone or revoked are pruned. */
void tok_sessions(struct tok_service *s, struct rclient *rc, const char *user_id,
                  struct tok_session **out, size_t *count, tok_done_fn done, void *arg);

#endif
