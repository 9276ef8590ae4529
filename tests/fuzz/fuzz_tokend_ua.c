/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for tokend's user-agent parser and fingerprint policy: never reads out
 * of bounds, a recognised product is one of the known names with a sane major, and the
 * policy never re-binds a user agent it refuses. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../tokend/fingerprint.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const known[] = {"Edg",   "OPR",     "SamsungBrowser", "CriOS",
                                        "FxiOS", "Firefox", "Chrome",         "Version"};
    struct tok_ua ua;
    char hash[TOK_UA_HASH_LEN + 1];
    int found = tok_ua_parse((const char *)data, size, &ua);
    if (found) {
        int ok = 0;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            ok |= strcmp(ua.product, known[i]) == 0;
        if (!ok || ua.major < 0 || ua.major > TOK_MAJOR_MAX)
            abort();
    } else if (ua.product[0] != '\0' || ua.major != 0) {
        abort();
    }
    tok_ua_hash((const char *)data, size, hash);
    struct tok_fp stored = {"d", "0000000000000000", "Chrome", 120, ""};
    struct tok_fp given = {"d", hash, ua.product, ua.major, ""};
    struct tok_fp_result r;
    tok_fp_check(&stored, &given, TOK_UA_UPGRADE, TOK_TLS_SOFT, &r);
    if (r.rebound && (r.refused & TOK_FP_UA))
        abort();
    if (r.rebound && (strcmp(ua.product, "Chrome") != 0 || ua.major < 120))
        abort();
    return 0;
}
