/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for idemd's request parsing (idemd/request.c), all six
 * endpoints: any bytes, parsed as the HTTP layer does (a JSON object, duplicates refused),
 * are the body of claim, complete, release, extend and checkpoint; split at '&', they are
 * the scope and key of GET /v1/record. Accepted requests meet the documented limits;
 * refusals name a field in a renderable answer that never repeats the lease token. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../idemd/request.h"
#include "fuzz.h"

static struct idem_config conf;

static void check_ref(const struct idem_ref *ref)
{
    /* A record key never carries a hash tag and always sits under its own scope. */
    if (strchr(ref->rkey, '{') || strchr(ref->rkey, '}') || strncmp(ref->rkey, "idem:", 5) != 0)
        abort();
}

/* The stored headers are canonical JSON holding only configured replay headers (so never
 * Set-Cookie), each a string. */
static void check_headers(const char *headers_json)
{
    json_t *h = json_loads(headers_json, JSON_REJECT_DUPLICATES, NULL);
    const char *name;
    json_t *v;
    if (!json_is_object(h))
        abort();
    json_object_foreach(h, name, v)
    {
        const char *canon = idem_config_replay_header(&conf, name);
        if (!canon || strcmp(canon, name) != 0 || !json_is_string(v))
            abort();
    }
    char *again = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS);
    if (!again || strcmp(again, headers_json) != 0)
        abort();
    free(again);
    json_decref(h);
}

/* A fingerprint is 1..128 of [A-Za-z0-9_-] (given, or 64 hex digits computed). */
static void check_fingerprint(const char *fp)
{
    size_t n = strlen(fp);
    if (n < 1 || n > IDEM_FP_MAX ||
        strspn(fp, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789_-") != n)
        abort();
}

/* A refusal renders and never repeats the lease token sent (it is the holder's secret). */
static void refused(const json_t *body, int rc, const struct jv_error *e)
{
    const char *token = json_string_value(json_object_get(body, "lease_token"));
    if (rc != IDEM_BAD && rc != IDEM_TOO_LARGE)
        abort();
    fuzz_check_refusal(e);
    if (token && !fuzz_in_keys(body, token) &&
        (fuzz_echoes(e->detail, token) || fuzz_echoes(e->field, token)))
        abort();
}

/* The holder's calls: the token is the body's string, whatever it is. */
static void check_lease(const json_t *body, const struct idem_lease_in *in)
{
    json_t *tok = json_object_get(body, "lease_token");
    check_ref(&in->ref);
    if (!json_is_string(tok) || in->lease_token != json_string_value(tok) ||
        in->lease_token_len != json_string_length(tok))
        abort();
}

static void parse_all(const json_t *body)
{
    struct idem_claim_in claim;
    struct idem_lease_in lease;
    struct jv_error e;
    int rc;
    if ((rc = idem_parse_claim(body, &conf, &claim, &e)) == 0) {
        check_ref(&claim.ref);
        if (claim.lease_ms < 1000 || claim.lease_ms > conf.lease_max_ms || claim.wait_ms < 0 ||
            claim.wait_ms > IDEM_WAIT_MAX_MS)
            abort();
        check_fingerprint(claim.fingerprint);
    } else {
        refused(body, rc, &e);
    }
    if ((rc = idem_parse_complete(body, &conf, &lease, &e)) == 0) {
        check_lease(body, &lease);
        if (lease.status < 100 || lease.status > 599 || !lease.headers_json ||
            lease.body_len > conf.max_response * 4 / 3 + 4)
            abort();
        check_headers(lease.headers_json);
    } else {
        refused(body, rc, &e);
    }
    idem_lease_in_clear(&lease);
    if ((rc = idem_parse_release(body, &lease, &e)) == 0)
        check_lease(body, &lease);
    else
        refused(body, rc, &e);
    if ((rc = idem_parse_extend(body, &conf, &lease, &e)) == 0) {
        check_lease(body, &lease);
        if (lease.lease_ms < 1000 || lease.lease_ms > conf.lease_max_ms)
            abort();
    } else {
        refused(body, rc, &e);
    }
    if ((rc = idem_parse_checkpoint(body, &lease, &e)) == 0) {
        check_lease(body, &lease);
        if (lease.checkpoint_len > IDEM_CHECKPOINT_MAX ||
            strlen(lease.checkpoint) != lease.checkpoint_len)
            abort();
    } else {
        refused(body, rc, &e);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128];
    if (conf.lease_max_ms == 0) {
        conf.ttl_ms = 86400000;
        conf.lease_default_ms = 30000;
        conf.lease_max_ms = 600000;
        conf.max_response = 4096;
        idem_config_parse_headers(&conf, "Location,ETag,Content-Type", err, sizeof(err));
    }
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (body && json_is_object(body))
        parse_all(body);
    json_decref(body);

    /* The record query: raw bytes as scope and key. */
    struct idem_ref ref;
    struct jv_error e;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    size_t split = strcspn(s, "&");
    if (split < size) {
        s[split] = '\0';
        if (idem_ref_set(&ref, s, s + split + 1, strlen(s + split + 1), &e) == 0)
            check_ref(&ref);
        else
            fuzz_check_refusal(&e);
    }
    free(s);
    return 0;
}
