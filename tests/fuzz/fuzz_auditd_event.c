/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for auditd's event validation (audit_event_parse, the body of
 * POST /v1/events): any JSON body either yields an event whose sealed entry has a
 * well-formed canonical body (audit_entry_seal, audit_body_parse), or a refusal naming a
 * field in a renderable answer; never a crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../auditd/entry.h"
#include "fuzz.h"
#include "shared/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    static uint8_t sk[CRYPTO_ED25519_SK_LEN], pk[CRYPTO_ED25519_PK_LEN];
    if (!ready) {
        uint8_t seed[CRYPTO_ED25519_SEED_LEN] = {1};
        crypto_init();
        crypto_ed25519_from_seed(seed, pk, sk);
        ready = 1;
    }
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!in)
        return 0;
    struct jv_error e = {0};
    json_t *ev = audit_event_parse(in, &e);
    if (!ev)
        fuzz_check_refusal(&e);
    if (ev) {
        struct audit_entry en = {.seq = 7};
        long long seq;
        char prev[AUDIT_HASH_HEX_LEN + 1], ts[AUDIT_TS_LEN + 1], kv[8];
        memcpy(en.prev, AUDIT_ZERO_HASH, sizeof(en.prev));
        audit_now_ts(en.ts);
        memcpy(en.kv, "v1", 3);
        json_t *back = NULL;
        uint8_t md[CRYPTO_SHA256_LEN], sig[CRYPTO_ED25519_SIG_LEN];
        /* Every accepted event makes a well-formed body that holds the event itself, is
         * hashed as stored and signed over that hash. */
        if (audit_entry_seal(&en, ev, sk) != 0 ||
            audit_body_parse(en.body, en.body_len, &seq, prev, ts, kv, &back) != 0 || seq != 7 ||
            !json_equal(back, ev))
            abort();
        audit_body_hash(en.body, en.body_len, prev, md);
        if (strcmp(prev, en.hash) != 0 ||
            crypto_unb64(en.sig, strlen(en.sig), sig, sizeof(sig)) != CRYPTO_ED25519_SIG_LEN ||
            !crypto_ed25519_verify(pk, md, sizeof(md), sig))
            abort();
        json_decref(back);
        audit_entry_clear(&en);
        json_decref(ev);
    }
    json_decref(in);
    return 0;
}
