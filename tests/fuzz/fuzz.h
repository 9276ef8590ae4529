/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz: small checks the libFuzzer harnesses share. A failed check aborts, which
 * libFuzzer reports as a crash with the input that caused it. */
#ifndef WARDEN_FUZZ_H
#define WARDEN_FUZZ_H

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/jsonv.h"

/* The entry point every harness defines; libFuzzer calls it with each input. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of data (caller frees), or NULL. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

/* Would hay show the secret? Only a secret of 8 bytes or more with a non-ASCII byte is
 * looked for: every fixed text of an error or listing is ASCII, so finding such a secret
 * there cannot be chance (the fuzzer learns the fixed texts and would otherwise make
 * secrets of them). Callers rule out the parts of the input that are shown on purpose. */
static inline int fuzz_echoes(const char *hay, const char *secret)
{
    int high = 0;
    for (const char *p = secret; p && *p; p++)
        high |= (unsigned char)*p >= 0x80;
    return high && strlen(secret) >= 8 && hay && strstr(hay, secret) != NULL;
}

/* Is s part of the name of any member of v or of the objects within it (an unknown member
 * is named in its error, whatever its name holds)? */
static inline int fuzz_in_keys(const json_t *v, const char *s)
{
    const char *k;
    json_t *m;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, m)
        {
            if (strstr(k, s) || fuzz_in_keys(m, s))
                return 1;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, m)
        {
            if (fuzz_in_keys(m, s))
                return 1;
        }
    }
    return 0;
}

/* A refusal names its field (an unknown member may have the empty name) and says why, and
 * both can go into a JSON problem answer (http_invalid builds one from them: invalid
 * UTF-8 there would lose the answer). */
static inline void fuzz_check_refusal(const struct jv_error *e)
{
    if (!e->field || !e->detail[0])
        abort();
    json_t *j = json_pack("{s:s, s:s}", "field", e->field, "detail", e->detail);
    if (!j)
        abort();
    json_decref(j);
}

#endif
