/* libFuzzer harness for idemd's request parsing: any bytes, parsed as the HTTP layer does
 * (a JSON object, duplicates refused), through every body parser and the record query. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../idemd/idem_request.h"

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

static void parse_all(const json_t *body)
{
    struct idem_claim_in claim;
    struct idem_lease_in lease;
    struct jv_error e;
    if (idem_parse_claim(body, &conf, &claim, &e) == 0) {
        check_ref(&claim.ref);
        if (claim.lease_ms < 1000 || claim.lease_ms > conf.lease_max_ms || claim.wait_ms < 0 ||
            claim.wait_ms > IDEM_WAIT_MAX_MS)
            abort();
        check_fingerprint(claim.fingerprint);
    }
    if (idem_parse_complete(body, &conf, &lease, &e) == 0) {
        check_ref(&lease.ref);
        if (lease.status < 100 || lease.status > 599 || !lease.headers_json ||
            lease.body_len > conf.max_response * 4 / 3 + 4)
            abort();
        check_headers(lease.headers_json);
    }
    idem_lease_in_clear(&lease);
    (void)idem_parse_release(body, &lease, &e);
    (void)idem_parse_extend(body, &conf, &lease, &e);
    if (idem_parse_checkpoint(body, &lease, &e) == 0 && lease.checkpoint_len > IDEM_CHECKPOINT_MAX)
        abort();
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
    }
    free(s);
    return 0;
}
