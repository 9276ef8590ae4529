/* SPDX-License-Identifier: Apache-2.0 */
/* token: the text of a tokend refresh token (`rt1.<family_id>.<secret>`), its keyed hash
 * (the only form Redis ever sees) and the sealing of a grace successor.
 *
 * All functions are thread-safe once the keys are loaded. */
#ifndef TOKEND_TOKEN_H
#define TOKEND_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOK_FAMILY_BYTES 16
#define TOK_SECRET_BYTES 32
#define TOK_FAMILY_LEN 22 /* base64url, unpadded, of 16 bytes */
#define TOK_SECRET_LEN 43 /* base64url, unpadded, of 32 bytes */
#define TOK_PREFIX "rt1."
#define TOK_TEXT_LEN (4 + TOK_FAMILY_LEN + 1 + TOK_SECRET_LEN)
#define TOK_HASH_HEX_LEN 64
#define TOK_KEY_MIN 32
/* Sealed successor: base64url(nonce 24 || ciphertext of the text || tag 16). */
#define TOK_SEALED_MAX 200

/* The hash keys: TOKEN_HASH_KEY and the optional previous one, with the sealing keys
 * derived from them. Everything lives in secret (locked, wiped) memory. */
struct tok_keys {
    uint8_t *hash_key; /* NULL until loaded */
    size_t hash_len;
    uint8_t *prev_key; /* NULL when TOKEN_HASH_KEY_PREVIOUS is unset */
    size_t prev_len;
    uint8_t *seal_key; /* 32 bytes: HMAC-SHA256(hash_key, "tokend grace v1") */
    uint8_t *prev_seal_key;
    /* HMAC-SHA256 keyed with hash_key / prev_key and nothing hashed yet: every token hash
     * starts from a copy, saving the two key blocks each would hash again. */
    void *hash_mac, *prev_mac;
};

/* Decode base64 keys (each >= TOK_KEY_MIN bytes; prev_b64 may be NULL) and derive the
 * sealing keys. Returns 0, or -1 with the reason in err (never key material); on failure
 * nothing stays allocated. */
int tok_keys_load(struct tok_keys *k, const char *b64, const char *prev_b64, char *err,
                  size_t errsize);
void tok_keys_free(struct tok_keys *k); /* wipes; safe on a zeroed struct */

/* A parsed or freshly minted token. text is NUL-terminated. */
struct tok_token {
    char family[TOK_FAMILY_LEN + 1];
    uint8_t secret[TOK_SECRET_BYTES];
    char text[TOK_TEXT_LEN + 1];
};

/* Parse token text of len bytes: exact prefix, exactly two dots, canonical base64url parts
 * of the exact lengths. Returns 0, or -1 for anything malformed. */
int tok_parse(const char *s, size_t len, struct tok_token *out);
/* Is s[0..len) a well-formed family id (canonical base64url of 16 bytes)? 1 or 0. */
int tok_family_valid(const char *s, size_t len);
/* Mint a token from the CSPRNG: in family (a valid id), or in a new family when NULL. */
void tok_mint(struct tok_token *out, const char *family);
/* Lowercase hex HMAC-SHA256 of the secret under the current key (previous = 0) or the
 * previous key (1). Returns 0, or -1 when there is no previous key (hex is then ""). */
int tok_hash(const struct tok_keys *k, int previous, const struct tok_token *t,
             char hex[TOK_HASH_HEX_LEN + 1]);
/* Encrypt the token text for storage as a grace successor (XChaCha20-Poly1305, random
 * nonce, the family id as associated data). Returns 0, or -1 if out is too small. */
int tok_seal(const struct tok_keys *k, const struct tok_token *t, char *out, size_t outsize);
/* Decrypt a sealed successor of family (current key, then previous) and parse it.
 * Returns 0, or -1 if it does not open or is not a token of that family. */
int tok_unseal(const struct tok_keys *k, const char *family, const char *sealed,
               struct tok_token *out);

#endif
