/* libFuzzer harness for audit-verify's JSON-lines reader: each input is an export file;
 * every line goes through audit_entry_from_line and the verifier, which must reach a
 * consistent verdict without crashing. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../auditd/entry.h"
#include "../../auditd/verify.h"
#include "shared/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    static struct audit_key key = {.version = 1, .name = "v1"};
    static struct audit_keyring kr = {.keys = &key, .n = 1, .active = -1};
    if (!ready) {
        uint8_t seed[CRYPTO_ED25519_SEED_LEN] = {1}, sk[CRYPTO_ED25519_SK_LEN];
        crypto_init();
        crypto_ed25519_from_seed(seed, key.pk, sk);
        ready = 1;
    }
    struct audit_verifier *v = audit_verifier_create(&kr, 0, 1, NULL);
    struct audit_vresult res;
    const char *p = (const char *)data, *end = p + size;
    int stop = 0;
    while (p < end && !stop) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        struct audit_entry e;
        if (audit_entry_from_line(&e, p, len) == 0)
            stop = audit_verifier_feed(v, &e);
        audit_entry_clear(&e);
        p += len + 1;
    }
    audit_verifier_finish(v, 0, 0, 0, NULL, &res);
    /* A verdict is consistent: ok counts every entry of 1..last, a failure names a seq. */
    if ((res.ok && res.checked != res.last_seq) || (!res.ok && res.first_bad_seq < 1))
        abort();
    audit_verifier_free(v);
    return 0;
}
