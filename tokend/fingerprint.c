/* SPDX-License-Identifier: Apache-2.0 */
/* fingerprint: user-agent parsing, fingerprint digests and the fingerprint policy. */
#include "fingerprint.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "shared/crypto.h"

/* In order of preference: browsers that embed another's token (Edge and Opera say Chrome,
 * Chrome says Safari) come before the one they imitate; Safari's version is `Version/`. */
static const char *const PRODUCTS[] = {"Edg",   "OPR",     "SamsungBrowser", "CriOS",
                                       "FxiOS", "Firefox", "Chrome",         "Version"};

static int is_boundary(char c)
{
    return c == ' ' || c == '(' || c == ')' || c == ';' || c == ',' || c == '\t';
}

/* Look for `name/<digits>` starting at a token boundary in ua[0..len). On success sets
 * *major and returns 1. */
static int find_product(const char *ua, size_t len, const char *name, long *major)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i + nlen + 1 < len; i++) {
        if (ua[i] != name[0] || (i > 0 && !is_boundary(ua[i - 1])) ||
            memcmp(ua + i, name, nlen) != 0 || ua[i + nlen] != '/')
            continue;
        size_t j = i + nlen + 1;
        long v = 0;
        size_t digits = 0;
        while (j < len && ua[j] >= '0' && ua[j] <= '9' && digits < 10) {
            v = v * 10 + (ua[j] - '0');
            j++;
            digits++;
        }
        /* The major ends at '.', the end of the version or the string. */
        if (digits == 0 || digits > 9 || (j < len && ua[j] != '.' && !is_boundary(ua[j])))
            continue;
        *major = v;
        return 1;
    }
    return 0;
}

int tok_ua_parse(const char *ua, size_t len, struct tok_ua *out)
{
    out->product[0] = '\0';
    out->major = 0;
    for (size_t p = 0; p < sizeof(PRODUCTS) / sizeof(PRODUCTS[0]); p++) {
        long major;
        if (find_product(ua, len, PRODUCTS[p], &major)) {
            snprintf(out->product, sizeof(out->product), "%s", PRODUCTS[p]);
            out->major = major;
            return 1;
        }
    }
    return 0;
}

void tok_ua_hash(const char *ua, size_t len, char out[TOK_UA_HASH_LEN + 1])
{
    uint8_t digest[CRYPTO_SHA256_LEN];
    crypto_sha256(ua, len, digest);
    crypto_hex(digest, TOK_UA_HASH_LEN / 2, out);
}

void tok_fingerprint(const char *device_id, const char *ua_hash, const char *tls,
                     char out[TOK_FP_HEX_LEN + 1])
{
    uint8_t digest[CRYPTO_SHA256_LEN];
    const char *parts[] = {device_id, ":", ua_hash, ":", tls};
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        crypto_hash_sha256_update(&st, (const unsigned char *)parts[i], strlen(parts[i]));
    crypto_hash_sha256_final(&st, digest);
    crypto_hex(digest, sizeof(digest), out);
}

void tok_fp_check(const struct tok_fp *stored, const struct tok_fp *presented,
                  enum tok_ua_policy ua, enum tok_tls_policy tls, struct tok_fp_result *out)
{
    memset(out, 0, sizeof(*out));
    if (strcmp(stored->device_id, presented->device_id) != 0) {
        out->refused |= TOK_FP_DEVICE;
        out->drift |= TOK_FP_DEVICE;
    }
    if (strcmp(stored->ua_hash, presented->ua_hash) != 0) {
        out->drift |= TOK_FP_UA;
        /* An upgrade: same recognised product, same or higher major version. A downgrade
         * or a switch of browser is what a copied token on another machine looks like. */
        if (ua == TOK_UA_UPGRADE && presented->ua_product[0] != '\0' &&
            strcmp(presented->ua_product, stored->ua_product) == 0 &&
            presented->ua_major >= stored->ua_major)
            out->rebound = 1;
        else
            out->refused |= TOK_FP_UA;
    }
    if (tls != TOK_TLS_IGNORE && strcmp(stored->tls, presented->tls) != 0) {
        out->drift |= TOK_FP_TLS;
        if (tls == TOK_TLS_STRICT)
            out->refused |= TOK_FP_TLS;
    }
}

const char *tok_fp_name(unsigned bit)
{
    switch (bit) {
    case TOK_FP_DEVICE: return "device_id";
    case TOK_FP_UA: return "user_agent";
    case TOK_FP_TLS: return "tls";
    default: return NULL;
    }
}

unsigned tok_fp_parse_list(const char *list)
{
    unsigned bits = 0;
    for (unsigned b = TOK_FP_DEVICE; b <= TOK_FP_TLS; b <<= 1) {
        const char *name = tok_fp_name(b);
        size_t n = strlen(name);
        for (const char *p = strstr(list, name); p; p = strstr(p + 1, name)) {
            if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
                bits |= b;
        }
    }
    return bits;
}
