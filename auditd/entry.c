/* SPDX-License-Identifier: Apache-2.0 */
/* entry: event validation and the canonical, hashed, signed entry body. */
#include "entry.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const EVENT_FIELDS[] = {"actor",    "action",   "resource", "outcome",
                                           "metadata", "event_id", NULL};

/* Metadata: objects/arrays nested up to AUDIT_META_MAX_DEPTH levels (the metadata object
 * itself is level 1; scalars add none), integers within ±(2^53−1), no fractional numbers
 * (their text form is not canonical across implementations). */
static int meta_check(const json_t *v, int depth, struct jv_error *e)
{
    if ((json_is_object(v) || json_is_array(v)) && depth > AUDIT_META_MAX_DEPTH)
        return jv_fail(e, "metadata", "nested deeper than %d levels", AUDIT_META_MAX_DEPTH);
    if (json_is_real(v))
        return jv_fail(e, "metadata",
                       "fractional numbers are not allowed: send decimals as strings");
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i > AUDIT_INT_MAX || i < -AUDIT_INT_MAX)
            return jv_fail(e, "metadata", "integers must be within +-(2^53-1)");
        return 0;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m)
        {
            if (meta_check(m, depth + 1, e) != 0)
                return -1;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m)
        {
            if (meta_check(m, depth + 1, e) != 0)
                return -1;
        }
    }
    return 0;
}

static int meta_validate(json_t *meta, struct jv_error *e)
{
    if (meta_check(meta, 1, e) != 0)
        return -1;
    char *text = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        return jv_fail(e, "metadata", "cannot be serialised");
    size_t len = strlen(text);
    free(text);
    if (len > AUDIT_META_MAX_BYTES)
        return jv_fail(e, "metadata", "larger than %d bytes serialised", AUDIT_META_MAX_BYTES);
    return 0;
}

static int set_str(json_t *out, const json_t *in, const char *name, int req, size_t min, size_t max,
                   struct jv_error *e)
{
    const char *s;
    size_t len;
    int rc = jv_string(in, name, req, min, max, &s, &len, e);
    if (rc == 1)
        json_object_set_new(out, name, json_stringn(s, len));
    return rc < 0 ? -1 : 0;
}

json_t *audit_event_parse(const json_t *in, struct jv_error *e)
{
    json_t *out = json_object(), *meta = NULL;
    const char *s;
    size_t len;
    if (!out)
        return NULL;
    if (!json_is_object(in)) {
        jv_fail(e, "event", "must be an object");
        goto fail;
    }
    if (jv_only(in, EVENT_FIELDS, e) != 0 || set_str(out, in, "actor", JV_REQUIRED, 1, 256, e) ||
        set_str(out, in, "action", JV_REQUIRED, 1, 256, e) ||
        set_str(out, in, "resource", JV_OPTIONAL, 0, 512, e) ||
        set_str(out, in, "outcome", JV_OPTIONAL, 0, 64, e))
        goto fail;
    if (strcmp(json_string_value(json_object_get(out, "actor")), "auditd") == 0) {
        jv_fail(e, "actor", "actor \"auditd\" is reserved for the daemon's own events");
        goto fail;
    }
    if (strncmp(json_string_value(json_object_get(out, "action")), "audit.", 6) == 0) {
        jv_fail(e, "action", "actions beginning \"audit.\" are reserved");
        goto fail;
    }
    int rc = jv_string(in, "event_id", JV_OPTIONAL, 1, 128, &s, &len, e);
    if (rc < 0)
        goto fail;
    if (rc == 1) {
        if (!jv_token_ok(s, len, "_.:-")) {
            jv_fail(e, "event_id", "must be 1-128 characters of [A-Za-z0-9_.:-]");
            goto fail;
        }
        json_object_set_new(out, "event_id", json_stringn(s, len));
    }
    rc = jv_object(in, "metadata", JV_OPTIONAL, &meta, e);
    if (rc < 0 || (rc == 1 && meta_validate(meta, e) != 0))
        goto fail;
    if (rc == 1)
        json_object_set_new(out, "metadata", json_deep_copy(meta));
    /* Without metadata the bounded fields cannot reach the limit (each byte escaped as
     * \u00XX is under 7 KiB): serialised only to measure an event with metadata. */
    len = 0;
    if (rc == 1) {
        char *text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
        len = text ? strlen(text) : SIZE_MAX;
        free(text);
    }
    if (len > AUDIT_EVENT_MAX_BYTES) {
        jv_fail(e, "event", "longer than %d bytes serialised", AUDIT_EVENT_MAX_BYTES);
        goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

void audit_now_ts(char ts[AUDIT_TS_LEN + 1])
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, AUDIT_TS_LEN + 1, "%Y-%m-%dT%H:%M:%S", &tm);
    int ms = (int)(now.tv_nsec / 1000000) % 1000;
    /* strftime wrote 19 characters; append ".mmmZ" by hand (ms is 0..999). */
    if (n == 19) {
        ts[19] = '.';
        ts[20] = (char)('0' + ms / 100);
        ts[21] = (char)('0' + ms / 10 % 10);
        ts[22] = (char)('0' + ms % 10);
        ts[23] = 'Z';
        ts[24] = '\0';
    }
}

void audit_body_hash(const char *body, size_t len, char hex[AUDIT_HASH_HEX_LEN + 1],
                     uint8_t raw[CRYPTO_SHA256_LEN])
{
    uint8_t md[CRYPTO_SHA256_LEN];
    crypto_sha256(body, len, md);
    crypto_hex(md, sizeof(md), hex);
    if (raw)
        memcpy(raw, md, sizeof(md));
}

int audit_entry_build(struct audit_entry *e, const json_t *event)
{
    free(e->body);
    e->body = NULL;
    /* jansson's JSON_SORT_KEYS orders members with strcmp: bytewise, as the contract
     * says, and recursively into metadata. */
    json_t *body = json_pack("{s:O, s:s, s:s, s:I, s:s}", "event", event, "kv", e->kv, "prev",
                             e->prev, "seq", (json_int_t)e->seq, "ts", e->ts);
    if (!body)
        return -1;
    e->body = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(body);
    if (!e->body)
        return -1;
    e->body_len = strlen(e->body);
    audit_body_hash(e->body, e->body_len, e->hash, NULL);
    return 0;
}

void audit_entry_sign(struct audit_entry *e, const uint8_t *sk)
{
    uint8_t md[CRYPTO_SHA256_LEN], sig[CRYPTO_ED25519_SIG_LEN];
    if (crypto_unhex(e->hash, AUDIT_HASH_HEX_LEN, md, sizeof(md)) != 0)
        memset(md, 0, sizeof(md)); /* cannot happen: the hash was just written */
    crypto_ed25519_sign(sk, md, sizeof(md), sig);
    crypto_b64(sig, sizeof(sig), e->sig, sizeof(e->sig));
}

int audit_entry_seal(struct audit_entry *e, const json_t *event, const uint8_t *sk)
{
    if (audit_entry_build(e, event) != 0)
        return -1;
    audit_entry_sign(e, sk);
    return 0;
}

static int copy_hex(const json_t *v, char out[AUDIT_HASH_HEX_LEN + 1])
{
    const char *s = json_string_value(v);
    if (!s || strlen(s) != AUDIT_HASH_HEX_LEN)
        return -1;
    memcpy(out, s, AUDIT_HASH_HEX_LEN + 1);
    return 0;
}

int audit_body_parse(const char *body, size_t len, long long *seq,
                     char prev[AUDIT_HASH_HEX_LEN + 1], char ts[AUDIT_TS_LEN + 1], char kv[8],
                     json_t **event)
{
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *s;
    if (!j || !json_is_integer(json_object_get(j, "seq")) ||
        copy_hex(json_object_get(j, "prev"), prev) != 0 ||
        !json_is_object(json_object_get(j, "event")))
        goto fail;
    *seq = json_integer_value(json_object_get(j, "seq"));
    s = json_string_value(json_object_get(j, "ts"));
    if (!s || strlen(s) > AUDIT_TS_LEN)
        goto fail;
    memcpy(ts, s, strlen(s) + 1);
    s = json_string_value(json_object_get(j, "kv"));
    if (!s || strlen(s) < 2 || strlen(s) > 7)
        goto fail;
    memcpy(kv, s, strlen(s) + 1);
    if (event)
        *event = json_incref(json_object_get(j, "event"));
    json_decref(j);
    return 0;
fail:
    json_decref(j);
    return -1;
}

json_t *audit_entry_json(const struct audit_entry *e, int with_body)
{
    json_t *out =
        json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}", "seq", (json_int_t)e->seq, "hash", e->hash,
                  "prev_hash", e->prev, "ts", e->ts, "key_version", e->kv, "signature", e->sig);
    if (!out || !with_body)
        return out;
    json_t *event = NULL;
    long long seq;
    char prev[AUDIT_HASH_HEX_LEN + 1], ts[AUDIT_TS_LEN + 1], kv[8];
    if (!e->body || audit_body_parse(e->body, e->body_len, &seq, prev, ts, kv, &event) != 0)
        event = json_null();
    json_object_set_new(out, "event", event);
    json_object_set_new(out, "body", json_stringn(e->body ? e->body : "", e->body_len));
    return out;
}

void audit_entry_clear(struct audit_entry *e)
{
    if (!e)
        return;
    free(e->body);
    e->body = NULL;
    e->body_len = 0;
}

int audit_entry_from_line(struct audit_entry *e, const char *line, size_t len)
{
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    long long seq;
    const char *hash, *sig, *body;
    memset(e, 0, sizeof(*e));
    if (!j || !json_is_integer(json_object_get(j, "seq")))
        goto fail;
    seq = json_integer_value(json_object_get(j, "seq"));
    hash = json_string_value(json_object_get(j, "hash"));
    sig = json_string_value(json_object_get(j, "signature"));
    body = json_string_value(json_object_get(j, "body"));
    if (!hash || !sig || !body || strlen(hash) != AUDIT_HASH_HEX_LEN ||
        strlen(sig) > AUDIT_SIG_B64_LEN)
        goto fail;
    e->seq = seq;
    memcpy(e->hash, hash, AUDIT_HASH_HEX_LEN + 1);
    memcpy(e->sig, sig, strlen(sig) + 1);
    e->body_len = json_string_length(json_object_get(j, "body"));
    e->body = malloc(e->body_len + 1);
    if (!e->body)
        goto fail;
    memcpy(e->body, body, e->body_len);
    e->body[e->body_len] = '\0';
    json_decref(j);
    return 0;
fail:
    json_decref(j);
    return -1;
}
