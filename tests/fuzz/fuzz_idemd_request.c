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

static void parse_all(const json_t *body)
{
    struct idem_claim_in claim;
    struct idem_lease_in lease;
    struct jv_error e;
    if (idem_parse_claim(body, &conf, &claim, &e) == 0) {
        check_ref(&claim.ref);
        if (claim.lease_ms < 1000 || claim.lease_ms > conf.lease_max_ms || claim.wait_ms < 0 ||
            claim.wait_ms > IDEM_WAIT_MAX_MS || strlen(claim.fingerprint) == 0)
            abort();
    }
    if (idem_parse_complete(body, &conf, &lease, &e) == 0) {
        check_ref(&lease.ref);
        if (lease.status < 100 || lease.status > 599 || !lease.headers_json)
            abort();
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
