/* libFuzzer harness for tokend's token parser (tok_parse) and family-id check: any input
 * either parses into a token whose text re-encodes to exactly the input, or is refused. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../tokend/token.h"
#include "shared/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct tok_token t;
    if (!ready) {
        if (crypto_init() != 0)
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
    return 0;
}
