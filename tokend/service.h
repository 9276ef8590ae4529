/* SPDX-License-Identifier: Apache-2.0 */
/* service: tokend's operations on Redis — issue, refresh, revoke, introspect, list
 * sessions. Each decision is one script run (token_issue / token_refresh / token_revoke /
 * token_user_add); reads are single commands or one pipeline. Counts tokend_* metrics.
 * Handlers validate input before calling; nothing here touches Redis on bad input.
 * Thread-safe. */
#ifndef TOKEND_SERVICE_H
#define TOKEND_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "fingerprint.h"
#include "shared/metrics.h"
#include "shared/redis_pool.h"
#include "token.h"

#define TOK_ID_MAX 256
#define TOK_SCOPE_MAX 1024
#define TOK_UA_MAX 1024
#define TOK_TLS_MAX 256

struct tok_service {
    struct rpool *pool;
    const struct tok_conf *conf;
    struct metric *issued, *refresh, *revoked, *drift;
};

/* Results of every call below. */
enum tok_status {
    TOK_OK = 0,
    TOK_BACKEND = -1,  /* Redis unreachable or too slow: 503 */
    TOK_INTERNAL = -2, /* Redis refused the script or answered nonsense: 500 (logged) */
};

/* Registers the tokend_* metric families on m. */
void tok_service_init(struct tok_service *s, struct rpool *pool, const struct tok_conf *conf,
                      struct metrics *m);

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

int tok_issue(struct tok_service *s, const char *rid, const struct tok_issue_req *req,
              struct tok_issue_res *res);

enum tok_outcome { TOK_R_OK, TOK_R_GRACE, TOK_R_MISMATCH, TOK_R_REUSED, TOK_R_INVALID };

struct tok_refresh_res {
    enum tok_outcome outcome;
    struct tok_token token; /* the successor (OK, GRACE) */
    char user_id[TOK_ID_MAX + 1];
    char client_id[TOK_ID_MAX + 1];
    char scope[TOK_SCOPE_MAX + 1];
    int64_t expires_in_s;
    int rebound;
    unsigned refused; /* TOK_FP_* (MISMATCH) */
    int revoked;      /* MISMATCH under TOKEN_ON_FP_MISMATCH=revoke */
};

int tok_refresh(struct tok_service *s, const char *rid, const struct tok_token *presented,
                const struct tok_client *client, struct tok_refresh_res *res);

/* Revoke the family a token belongs to, if the token is one the family has had. */
int tok_revoke_token(struct tok_service *s, const struct tok_token *t, int *revoked);
/* Revoke a family by id; user_id (may be NULL) must own it. reason: a metric label. */
int tok_revoke_family(struct tok_service *s, const char *family, const char *user_id,
                      const char *reason, int *revoked);
/* DELETE of one session: revoke the family if user_id owns it, drop it from the index. */
int tok_end_session(struct tok_service *s, const char *user_id, const char *family, int *revoked);
/* Revoke every family of a user ("log out everywhere"). */
int tok_revoke_user(struct tok_service *s, const char *user_id, long *revoked);

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
int tok_introspect(struct tok_service *s, const struct tok_token *t,
                   const struct tok_client *client, struct tok_introspection *out);

struct tok_session {
    char family[TOK_FAMILY_LEN + 1];
    char client_id[TOK_ID_MAX + 1];
    char device_id[TOK_ID_MAX + 1];
    char ua_hash[TOK_UA_HASH_LEN + 1];
    int64_t created_ms, last_used_ms, expires_ms;
};

/* The user's active families, oldest first, in *out (caller frees; NULL when none).
 * Index entries whose family is gone or revoked are pruned. */
int tok_sessions(struct tok_service *s, const char *user_id, struct tok_session **out,
                 size_t *count);

/* Is s[0..len) a valid user/client/device id: 1-256 printable ASCII without { or }? */
int tok_id_ok(const char *s, size_t len);

#endif
