/* SPDX-License-Identifier: Apache-2.0 */
/* fingerprint: the stable client fingerprint tokend binds a family to — the user-agent
 * parser (product + major version), the ua hash, the fingerprint digest, and the policy
 * that says which presented component is refused, which merely drifted, and when the
 * family may be re-bound to a newer browser version.
 *
 * The same policy runs inside lua-scripts/token_refresh.lua (atomically, at refresh);
 * this C copy serves introspection and is what the unit tests pin down. Pure functions,
 * no I/O, thread-safe. */
#ifndef TOKEND_FINGERPRINT_H
#define TOKEND_FINGERPRINT_H

#include <stddef.h>

#define TOK_UA_HASH_LEN 16 /* hex chars of SHA-256(User-Agent) kept */
#define TOK_FP_HEX_LEN 64
#define TOK_PRODUCT_MAX 16
#define TOK_MAJOR_MAX 999999999L

/* A user agent's product and major version. product is "" when none was recognised. */
struct tok_ua {
    char product[TOK_PRODUCT_MAX];
    long major;
};

/* Find the first of Edg, OPR, SamsungBrowser, CriOS, FxiOS, Firefox, Chrome, Version (in
 * that order of preference) present as a `Name/<digits>...` token in ua[0..len), and the
 * integer before the first '.' of its version. Returns 1 when found, 0 when not (out then
 * holds product "" and major 0). */
int tok_ua_parse(const char *ua, size_t len, struct tok_ua *out);

/* First 16 hex chars of SHA-256(ua[0..len)), NUL-terminated. */
void tok_ua_hash(const char *ua, size_t len, char out[TOK_UA_HASH_LEN + 1]);

/* hex SHA-256(device_id ":" ua_hash ":" tls), tls "" when absent. */
void tok_fingerprint(const char *device_id, const char *ua_hash, const char *tls,
                     char out[TOK_FP_HEX_LEN + 1]);

enum tok_ua_policy { TOK_UA_STRICT, TOK_UA_UPGRADE };
enum tok_tls_policy { TOK_TLS_IGNORE, TOK_TLS_SOFT, TOK_TLS_STRICT };

/* The components of one fingerprint (stored or presented); tls "" when absent. */
struct tok_fp {
    const char *device_id;
    const char *ua_hash;
    const char *ua_product;
    long ua_major;
    const char *tls;
};

#define TOK_FP_DEVICE 0x1u
#define TOK_FP_UA 0x2u
#define TOK_FP_TLS 0x4u

struct tok_fp_result {
    unsigned refused; /* TOK_FP_* components that make the presentation fail */
    unsigned drift;   /* TOK_FP_* components that differ (refused or not) */
    int rebound;      /* the user agent is accepted as an upgrade: re-bind the family */
};

/* Compare a presented fingerprint with the stored one under the policies. */
void tok_fp_check(const struct tok_fp *stored, const struct tok_fp *presented,
                  enum tok_ua_policy ua, enum tok_tls_policy tls, struct tok_fp_result *out);

/* Component name of one TOK_FP_* bit: "device_id", "user_agent", "tls"; NULL otherwise. */
const char *tok_fp_name(unsigned bit);
/* Parse a comma list of component names (as the refresh script returns them) into bits. */
unsigned tok_fp_parse_list(const char *list);

#endif
