/* SPDX-License-Identifier: Apache-2.0 */
/* request: validation of idemd's request bodies into plain structs — scopes, keys,
 * fingerprints (given or computed from the request), leases, stored responses. Nothing
 * here talks to Redis, so bad input is refused before Redis is touched. Thread-safe. */
#ifndef IDEMD_REQUEST_H
#define IDEMD_REQUEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "shared/jsonv.h"

#define IDEM_SCOPE_MAX 128
#define IDEM_KEY_MAX 255
#define IDEM_FP_MAX 128
#define IDEM_ATTEMPT_MAX 128
#define IDEM_CHECKPOINT_MAX 256
#define IDEM_WAIT_MAX_MS 10000
/* idem:<scope>:<key> with each key byte escaped to at most 3. */
#define IDEM_RKEY_MAX (5 + IDEM_SCOPE_MAX + 1 + 3 * IDEM_KEY_MAX + 1)

/* What identifies a record. Strings are borrowed from the parsed body / query. */
struct idem_ref {
    const char *scope;
    const char *key;
    size_t key_len;
    char rkey[IDEM_RKEY_MAX]; /* the Redis key */
};

struct idem_claim_in {
    struct idem_ref ref;
    char fingerprint[IDEM_FP_MAX + 1];
    int64_t lease_ms;
    int64_t wait_ms;
    const char *attempt_id; /* "" when none */
};

/* complete / release / extend / checkpoint: the lease holder's calls. */
struct idem_lease_in {
    struct idem_ref ref;
    const char *lease_token; /* any string; a wrong one is lease_lost, not bad input */
    size_t lease_token_len;
    int64_t lease_ms;       /* extend */
    const char *checkpoint; /* checkpoint */
    size_t checkpoint_len;
    /* complete: */
    int status;
    char *headers_json; /* canonical JSON of the kept headers (malloc'd) */
    const char *body;
    size_t body_len;
    const char *body_encoding; /* "utf8" | "base64" */
};

/* Results of the parsers: 0 valid, IDEM_BAD (400 invalid_request, e set),
 * IDEM_TOO_LARGE (413: the stored body exceeds IDEM_MAX_RESPONSE_BYTES). */
#define IDEM_BAD (-1)
#define IDEM_TOO_LARGE (-2)

/* Fill ref from scope and key, checking both and building the Redis key (with
 * idem_redis_key, store.h). */
int idem_ref_set(struct idem_ref *ref, const char *scope, const char *key, size_t key_len,
                 struct jv_error *e);

/* POST /v1/claim. */
int idem_parse_claim(const json_t *body, const struct idem_config *conf, struct idem_claim_in *in,
                     struct jv_error *e);
/* POST /v1/complete; on 0 the caller frees with idem_lease_in_clear(). */
int idem_parse_complete(const json_t *body, const struct idem_config *conf,
                        struct idem_lease_in *in, struct jv_error *e);
/* POST /v1/release, /v1/extend, /v1/checkpoint. */
int idem_parse_release(const json_t *body, struct idem_lease_in *in, struct jv_error *e);
int idem_parse_extend(const json_t *body, const struct idem_config *conf, struct idem_lease_in *in,
                      struct jv_error *e);
int idem_parse_checkpoint(const json_t *body, struct idem_lease_in *in, struct jv_error *e);

void idem_lease_in_clear(struct idem_lease_in *in); /* frees headers_json */

/* hex SHA-256 of method "\n" path "\n" body into out (65 bytes). Returns 0 or -1 (OOM). */
int idem_request_fingerprint(const char *method, size_t mlen, const char *path, size_t plen,
                             const char *body, size_t blen, char out[65]);

#endif
