/* SPDX-License-Identifier: Apache-2.0 */
/* request: parsing and validation of idemd's request bodies (see request.h). */
#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/crypto.h"
#include "store.h"

#define SCOPE_CHARS "_.-"
#define FP_CHARS "_-"

int idem_ref_set(struct idem_ref *ref, const char *scope, const char *key, size_t key_len,
                 struct jv_error *e)
{
    if (!scope || !jv_token_ok(scope, strlen(scope), SCOPE_CHARS) || strlen(scope) > IDEM_SCOPE_MAX)
        return jv_fail(e, "scope", "must be 1..%d of [A-Za-z0-9_.-]", IDEM_SCOPE_MAX);
    if (!key || key_len < 1 || key_len > IDEM_KEY_MAX || !jv_printable_ok(key, key_len))
        return jv_fail(e, "key", "must be 1..%d printable ASCII characters", IDEM_KEY_MAX);
    ref->scope = scope;
    ref->key = key;
    ref->key_len = key_len;
    if (idem_redis_key(scope, key, key_len, ref->rkey, sizeof(ref->rkey)) != 0)
        return jv_fail(e, "key", "too long");
    return 0;
}

/* scope and key members of a body. */
static int parse_ref(const json_t *body, struct idem_ref *ref, struct jv_error *e)
{
    const char *scope = NULL, *key = NULL;
    size_t key_len = 0;
    if (jv_string(body, "scope", JV_REQUIRED, 1, IDEM_SCOPE_MAX, &scope, NULL, e) < 0)
        return -1;
    if (jv_string(body, "key", JV_REQUIRED, 1, IDEM_KEY_MAX, &key, &key_len, e) < 0) {
        /* Say the same for every bad key, whatever the getter found wrong. */
        return jv_fail(e, "key", "must be 1..%d printable ASCII characters", IDEM_KEY_MAX);
    }
    return idem_ref_set(ref, scope, key, key_len, e);
}

int idem_request_fingerprint(const char *method, size_t mlen, const char *path, size_t plen,
                             const char *body, size_t blen, char out[65])
{
    uint8_t md[CRYPTO_SHA256_LEN];
    size_t n = mlen + 1 + plen + 1 + blen;
    char *buf = malloc(n);
    if (!buf)
        return -1;
    memcpy(buf, method, mlen);
    buf[mlen] = '\n';
    memcpy(buf + mlen + 1, path, plen);
    buf[mlen + 1 + plen] = '\n';
    memcpy(buf + mlen + plen + 2, body, blen);
    crypto_sha256(buf, n, md);
    free(buf);
    crypto_hex(md, sizeof(md), out);
    return 0;
}

/* The "request" object: {"method","path","body"} → its fingerprint. */
static int parse_request_fp(json_t *req, char *fp, struct jv_error *e)
{
    static const char *const allowed[] = {"method", "path", "body", NULL};
    const char *method, *path, *rbody = "";
    size_t mlen, plen, blen = 0;
    struct jv_error sub;
    if (jv_only(req, allowed, &sub) < 0 ||
        jv_string(req, "method", JV_REQUIRED, 1, 32, &method, &mlen, &sub) < 0 ||
        jv_string(req, "path", JV_REQUIRED, 1, 8192, &path, &plen, &sub) < 0 ||
        jv_string(req, "body", JV_OPTIONAL, 0, SIZE_MAX, &rbody, &blen, &sub) < 0)
        return jv_fail(e, "request", "%s: %s", sub.field ? sub.field : "request", sub.detail);
    if (!jv_token_ok(method, mlen, "-_"))
        return jv_fail(e, "request", "method must be letters, digits, '-' or '_'");
    if (idem_request_fingerprint(method, mlen, path, plen, rbody, blen, fp) != 0)
        return jv_fail(e, "request", "out of memory");
    return 0;
}

/* Exactly one of "fingerprint" and "request". */
static int parse_fingerprint(const json_t *body, char *fp, struct jv_error *e)
{
    json_t *given = json_object_get(body, "fingerprint");
    json_t *req = json_object_get(body, "request");
    const char *s;
    size_t n;
    if ((given != NULL) == (req != NULL))
        return jv_fail(e, "fingerprint", "exactly one of fingerprint and request is required");
    if (req) {
        if (!json_is_object(req))
            return jv_fail(e, "request", "must be an object with method, path and body");
        return parse_request_fp(req, fp, e);
    }
    if (jv_string(body, "fingerprint", JV_REQUIRED, 1, IDEM_FP_MAX, &s, &n, e) < 0 ||
        !jv_token_ok(s, n, FP_CHARS))
        return jv_fail(e, "fingerprint", "must be 1..%d of [A-Za-z0-9_-]", IDEM_FP_MAX);
    memcpy(fp, s, n + 1);
    return 0;
}

int idem_parse_claim(const json_t *body, const struct idem_config *conf, struct idem_claim_in *in,
                     struct jv_error *e)
{
    static const char *const allowed[] = {"scope",    "key",     "fingerprint", "request",
                                          "lease_ms", "wait_ms", "attempt_id",  NULL};
    long long lease = conf->lease_default_ms, wait = 0;
    size_t alen = 0;
    memset(in, 0, sizeof(*in));
    in->attempt_id = "";
    if (!body)
        return jv_fail(e, "scope", "a JSON body is required");
    if (jv_only(body, allowed, e) < 0 || parse_ref(body, &in->ref, e) < 0 ||
        parse_fingerprint(body, in->fingerprint, e) < 0)
        return IDEM_BAD;
    if (jv_int(body, "lease_ms", JV_OPTIONAL, 1000, conf->lease_max_ms, &lease, e) < 0 ||
        jv_int(body, "wait_ms", JV_OPTIONAL, 0, IDEM_WAIT_MAX_MS, &wait, e) < 0)
        return IDEM_BAD;
    int rc =
        jv_string(body, "attempt_id", JV_OPTIONAL, 1, IDEM_ATTEMPT_MAX, &in->attempt_id, &alen, e);
    if (rc < 0 || (rc == 1 && !jv_token_ok(in->attempt_id, alen, SCOPE_CHARS)))
        return jv_fail(e, "attempt_id", "must be 1..%d of [A-Za-z0-9_.-]", IDEM_ATTEMPT_MAX);
    in->lease_ms = lease;
    in->wait_ms = wait;
    return 0;
}

/* scope, key and lease_token, common to the holder's calls. */
static int parse_lease_common(const json_t *body, const char *const *allowed,
                              struct idem_lease_in *in, struct jv_error *e)
{
    memset(in, 0, sizeof(*in));
    if (!body)
        return jv_fail(e, "scope", "a JSON body is required");
    if (jv_only(body, allowed, e) < 0 || parse_ref(body, &in->ref, e) < 0)
        return IDEM_BAD;
    json_t *tok = json_object_get(body, "lease_token");
    if (!tok)
        return jv_fail(e, "lease_token", "is required");
    if (!json_is_string(tok))
        return jv_fail(e, "lease_token", "must be a string");
    /* Any string at all: a wrong token is 409 lease_lost, whatever it looks like. */
    in->lease_token = json_string_value(tok);
    in->lease_token_len = json_string_length(tok);
    return 0;
}

int idem_parse_release(const json_t *body, struct idem_lease_in *in, struct jv_error *e)
{
    static const char *const allowed[] = {"scope", "key", "lease_token", NULL};
    return parse_lease_common(body, allowed, in, e);
}

int idem_parse_extend(const json_t *body, const struct idem_config *conf, struct idem_lease_in *in,
                      struct jv_error *e)
{
    static const char *const allowed[] = {"scope", "key", "lease_token", "lease_ms", NULL};
    long long lease = conf->lease_default_ms;
    if (parse_lease_common(body, allowed, in, e) < 0 ||
        jv_int(body, "lease_ms", JV_OPTIONAL, 1000, conf->lease_max_ms, &lease, e) < 0)
        return IDEM_BAD;
    in->lease_ms = lease;
    return 0;
}

int idem_parse_checkpoint(const json_t *body, struct idem_lease_in *in, struct jv_error *e)
{
    static const char *const allowed[] = {"scope", "key", "lease_token", "checkpoint", NULL};
    if (parse_lease_common(body, allowed, in, e) < 0 ||
        jv_string(body, "checkpoint", JV_REQUIRED, 0, IDEM_CHECKPOINT_MAX, &in->checkpoint,
                  &in->checkpoint_len, e) < 0)
        return IDEM_BAD;
    return 0;
}

/* Keep only the replay headers, in their configured spelling, as canonical JSON (sorted,
 * compact) so that every replay of a record is byte-identical. */
static int parse_headers(const json_t *body, const struct idem_config *conf,
                         struct idem_lease_in *in, struct jv_error *e)
{
    json_t *given = NULL, *kept = NULL, *v;
    const char *name;
    if (jv_object(body, "headers", JV_OPTIONAL, &given, e) < 0)
        return IDEM_BAD;
    kept = json_object();
    if (!kept)
        return jv_fail(e, "headers", "out of memory");
    json_object_foreach(given, name, v)
    {
        const char *s = json_string_value(v);
        if (!jv_token_ok(name, strlen(name), "-_") || !s ||
            !jv_printable_ok(s, json_string_length(v)))
            goto bad;
        const char *canon = idem_config_replay_header(conf, name);
        if (!canon)
            continue; /* not a replay header (Set-Cookie never is) */
        if (json_object_get(kept, canon))
            goto bad; /* the same header twice, in two spellings */
        json_object_set_new(kept, canon, json_stringn(s, json_string_length(v)));
    }
    in->headers_json = json_dumps(kept, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(kept);
    if (!in->headers_json)
        return jv_fail(e, "headers", "out of memory");
    return 0;
bad:
    json_decref(kept);
    return jv_fail(e, "headers",
                   "must map header names to printable string values, each name once");
}

/* body and body_encoding; the size limit is on the decoded bytes. */
static int parse_body(const json_t *body, const struct idem_config *conf, struct idem_lease_in *in,
                      struct jv_error *e)
{
    json_t *b = json_object_get(body, "body");
    in->body = "";
    in->body_encoding = "utf8";
    if (jv_string(body, "body_encoding", JV_OPTIONAL, 1, 16, &in->body_encoding, NULL, e) < 0 ||
        (strcmp(in->body_encoding, "utf8") != 0 && strcmp(in->body_encoding, "base64") != 0))
        return jv_fail(e, "body_encoding", "must be utf8 or base64");
    if (b && !json_is_string(b))
        return jv_fail(e, "body", "must be a string");
    if (b) {
        in->body = json_string_value(b);
        in->body_len = json_string_length(b);
    }
    size_t decoded = in->body_len;
    if (strcmp(in->body_encoding, "base64") == 0 && in->body_len > 0) {
        size_t cap = in->body_len / 4 * 3 + 3;
        uint8_t *tmp = malloc(cap);
        long n = tmp ? crypto_unb64(in->body, in->body_len, tmp, cap) : -1;
        free(tmp);
        if (n < 0)
            return jv_fail(e, "body", "is not valid padded base64");
        decoded = (size_t)n;
    }
    if (decoded > conf->max_response) {
        jv_fail(e, "body", "the stored body is larger than %llu bytes",
                (unsigned long long)conf->max_response);
        return IDEM_TOO_LARGE;
    }
    return 0;
}

int idem_parse_complete(const json_t *body, const struct idem_config *conf,
                        struct idem_lease_in *in, struct jv_error *e)
{
    static const char *const allowed[] = {"scope",   "key",  "lease_token",   "status",
                                          "headers", "body", "body_encoding", NULL};
    long long status = 0;
    if (parse_lease_common(body, allowed, in, e) < 0 ||
        jv_int(body, "status", JV_REQUIRED, 100, 599, &status, e) < 0)
        return IDEM_BAD;
    in->status = (int)status;
    int rc = parse_body(body, conf, in, e);
    if (rc < 0)
        return rc;
    if (parse_headers(body, conf, in, e) < 0)
        return IDEM_BAD;
    return 0;
}

void idem_lease_in_clear(struct idem_lease_in *in)
{
    if (!in)
        return;
    free(in->headers_json);
    in->headers_json = NULL;
}
