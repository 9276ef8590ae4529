/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for tokend's token parser (tok_parse), family-id check and the
 * opening of a sealed grace successor read back from Redis (tok_unseal): any input either
 * parses into a token whose text re-encodes to exactly the input, or is refused; no input
 * opens as a sealed successor without the key. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../tokend/token.h"
#include "fuzz.h"
#include "shared/crypto.h"

#define FUZZ_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct tok_keys keys;
    static int ready;
    struct tok_token t;
    if (!ready) {
        char err[160];
        if (crypto_init() != 0 || tok_keys_load(&keys, FUZZ_KEY, NULL, err, sizeof(err)) != 0)
            abort();
        ready = 1;
    }
    if (tok_parse((const char *)data, size, &t) == 0) {
        /* A parsed token is canonical: minting its text again gives the same bytes. */
        char again[TOK_SECRET_LEN + 1];
        if (size != TOK_TEXT_LEN || memcmp(t.text, data, size) != 0 ||
            !tok_family_valid(t.family, strlen(t.family)))
            abort();
        crypto_b64url(t.secret, sizeof(t.secret), again, sizeof(again));
        if (memcmp(again, data + TOK_TEXT_LEN - TOK_SECRET_LEN, TOK_SECRET_LEN) != 0)
            abort();
    }
    (void)tok_family_valid((const char *)data, size);
    /* Whatever Redis hands back as a sealed successor: forging one needs the key. */
    char *sealed = malloc(size + 1);
    if (!sealed)
        return 0;
    memcpy(sealed, data, size);
    sealed[size] = '\0';
    if (tok_unseal(&keys, "AAAAAAAAAAAAAAAAAAAAAA", sealed, &t) == 0)
        abort();
    free(sealed);
    return 0;
}
