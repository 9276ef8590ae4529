/* SPDX-License-Identifier: Apache-2.0 */
/* store: tokend's Redis layout and its script calls (tokend.md "Redis layout") — the only
 * file that names a key or a script. Each call sends its command (or one pipeline of them)
 * and hands the outcome, read into plain structs, to a function the caller gives: TOK_OK,
 * or the failure as redis_reply.h classifies it (TOK_BACKEND when Redis cannot serve now,
 * TOK_INTERNAL for a refusal, which is logged here, or a reply of the wrong shape).
 *
 * The calls use c, the Redis client of the caller's loop, and the outcome function runs on
 * that loop's thread, after the call has returned — or within it when out of memory: a
 * caller makes the call its last step and continues in the function. Strings passed in
 * are copied before the call returns; results passed to the function are valid only while
 * it runs. Not thread-safe: on c's loop only. */
#ifndef TOKEND_STORE_H
#define TOKEND_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "fingerprint.h"
#include "shared/redis_client.h"
#include "shared/script.h"
#include "token.h"

/* The contract's limits (tokend.md "Tokens and fingerprints"), which also size what is
 * read back. */
#define TOK_ID_MAX 256
#define TOK_SCOPE_MAX 1024
#define TOK_UA_MAX 1024
#define TOK_TLS_MAX 256

/* The outcome of every call below, and of the service's. */
enum tok_status {
    TOK_OK = 0,
    TOK_BACKEND = -1,  /* Redis unreachable, too slow or refusing for now: 503 */
    TOK_INTERNAL = -2, /* Redis refused the script or answered nonsense: 500 (logged) */
};

/* tokend's scripts, NULL-terminated: loaded at start and checked by /ready. */
extern const struct script *const TOK_STORE_SCRIPTS[];

typedef void (*tok_done_fn)(void *arg, int rc);
/* rc and a count (ids indexed, families revoked); the count is valid with TOK_OK. */
typedef void (*tok_count_fn)(void *arg, int rc, long long n);

/* A new family (token_issue). */
struct tok_new_family {
    const char *family, *user_id, *client_id, *scope;
    const char *device_id, *ua_hash, *ua_product, *tls, *fingerprint;
    long ua_major;
    const char *hash; /* of the first token */
    int64_t idle_ttl_ms, absolute_ttl_ms;
};
/* created_ms is 0 when the family id was taken. */
typedef void (*tok_issued_fn)(void *arg, int rc, int64_t created_ms, int64_t ttl_ms);
void tok_store_issue(struct rclient *c, const struct tok_new_family *f, tok_issued_fn fn,
                     void *arg);

/* Add a family to its user's index (token_user_add), which lives ttl_ms at least; n is the
 * number of ids now in the index. */
void tok_store_index(struct rclient *c, const char *user_id, const char *family, int64_t created_ms,
                     int64_t ttl_ms, tok_count_fn fn, void *arg);

/* One refresh (token_refresh): the presented token's hashes and client, the policy, and
 * the successor minted for it. */
struct tok_refresh_args {
    const char *family;
    const char *hash, *prev_hash; /* prev_hash "" without a previous key */
    const char *device_id, *ua_hash, *ua_product, *tls, *fingerprint;
    long ua_major;
    enum tok_ua_policy ua_policy;
    enum tok_tls_policy tls_policy;
    int revoke_on_mismatch;
    const char *successor_hash, *successor_sealed;
    int64_t grace_ms, idle_ttl_ms;
};

enum tok_outcome { TOK_R_OK, TOK_R_GRACE, TOK_R_MISMATCH, TOK_R_REUSED, TOK_R_INVALID };

/* What token_refresh answered. The lists are the script's comma lists of components. */
struct tok_refreshed {
    enum tok_outcome outcome;
    char user_id[TOK_ID_MAX + 1]; /* OK, GRACE */
    char client_id[TOK_ID_MAX + 1];
    char scope[TOK_SCOPE_MAX + 1];
    int64_t ttl_ms;
    int rebound;                 /* OK */
    char sealed[TOK_SEALED_MAX]; /* GRACE: the successor the first refresh got */
    char refused[64];            /* MISMATCH */
    int revoked;                 /* MISMATCH */
    char drift[64];              /* OK, GRACE, MISMATCH */
};
typedef void (*tok_refreshed_fn)(void *arg, int rc, const struct tok_refreshed *r);
void tok_store_refresh(struct rclient *c, const struct tok_refresh_args *a, tok_refreshed_fn fn,
                       void *arg);

/* Revoke a family (token_revoke): by one of its tokens when hash is not NULL (prev_hash ""
 * without a previous key), else by id; user_id (NULL: any) must own it. reason is
 * recorded. n is 1 when this call revoked it. */
void tok_store_revoke(struct rclient *c, const char *family, const char *hash,
                      const char *prev_hash, const char *user_id, const char *reason,
                      tok_count_fn fn, void *arg);

/* Revoke the listed families by id, in one pipeline; ids that are not family ids are
 * skipped. n is how many were revoked, also when one of them failed (rc then says how). */
void tok_store_revoke_many(struct rclient *c, const char *const *families, size_t count,
                           const char *user_id, const char *reason, tok_count_fn fn, void *arg);

/* A user's indexed family ids, oldest first (ids from the index, which may hold anything). */
struct tok_ids {
    size_t count;
    const char **id;
    void *owner; /* the reply holding the strings */
};
/* ids (NULL unless TOK_OK) belongs to the function, which frees it with tok_ids_free. */
typedef void (*tok_ids_fn)(void *arg, int rc, struct tok_ids *ids);
void tok_store_user_families(struct rclient *c, const char *user_id, tok_ids_fn fn, void *arg);
void tok_ids_free(struct tok_ids *ids); /* NULL does nothing */

/* Drop family ids from a user's index. Best effort: a failure leaves a stale entry, which
 * readers skip and prune again; fn gets TOK_OK either way. */
void tok_store_unindex(struct rclient *c, const char *user_id, const char *const *families,
                       size_t count, tok_done_fn fn, void *arg);

/* A family as read back; "" and 0 for what is absent (state "" when there is no family). */
struct tok_family {
    char state[16];
    char current[TOK_HASH_HEX_LEN + 1];
    char user_id[TOK_ID_MAX + 1];
    char client_id[TOK_ID_MAX + 1];
    char scope[TOK_SCOPE_MAX + 1];
    char device_id[TOK_ID_MAX + 1];
    char ua_hash[TOK_UA_HASH_LEN + 1];
    char ua_product[TOK_PRODUCT_MAX];
    long ua_major;
    char tls[TOK_TLS_MAX + 1];
    int64_t created_ms, last_used_ms, expires_ms;
};

/* What introspection needs of one family (all but last_used_ms). */
typedef void (*tok_family_fn)(void *arg, int rc, const struct tok_family *f);
void tok_store_family(struct rclient *c, const char *family, tok_family_fn fn, void *arg);

/* What a session listing needs of each listed family (state, user_id, client_id, device_id,
 * ua_hash and the times), in one pipeline: f[i] for families[i]. */
typedef void (*tok_families_fn)(void *arg, int rc, const struct tok_family *f);
void tok_store_families(struct rclient *c, const char *const *families, size_t count,
                        tok_families_fn fn, void *arg);

#endif
