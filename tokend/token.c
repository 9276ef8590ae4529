/* SPDX-License-Identifier: Apache-2.0 */
/* token: refresh-token text, keyed hashing and grace-successor sealing (see token.h). */
#include "token.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "shared/crypto.h"

#define SEAL_CONTEXT "tokend grace v1"
#define SEAL_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES

/* Decode one base64 key into secret memory. Returns 0 or -1 (err set). */
static int load_key(const char *name, const char *b64, uint8_t **out, size_t *outlen, char *err,
                    size_t errsize)
{
    size_t len = strlen(b64);
    size_t cap = len / 4 * 3 + 3;
    uint8_t *buf = crypto_secret_alloc(cap);
    if (!buf) {
        snprintf(err, errsize, "%s: out of memory", name);
        return -1;
    }
    long n = crypto_unb64(b64, len, buf, cap);
    if (n < TOK_KEY_MIN) {
        crypto_secret_free(buf);
        snprintf(err, errsize, "%s: must be standard base64 of at least %d bytes", name,
                 TOK_KEY_MIN);
        return -1;
    }
    *out = buf;
    *outlen = (size_t)n;
    return 0;
}

static uint8_t *derive_seal_key(const uint8_t *key, size_t keylen)
{
    uint8_t *sk = crypto_secret_alloc(CRYPTO_SHA256_LEN);
    if (sk)
        crypto_hmac_sha256(key, keylen, SEAL_CONTEXT, strlen(SEAL_CONTEXT), sk);
    return sk;
}

/* An HMAC-SHA256 state keyed with key, in secret memory; NULL when out of memory. */
static crypto_auth_hmacsha256_state *keyed_mac(const uint8_t *key, size_t keylen)
{
    crypto_auth_hmacsha256_state *st = crypto_secret_alloc(sizeof(*st));
    if (st)
        crypto_auth_hmacsha256_init(st, key, keylen);
    return st;
}

int tok_keys_load(struct tok_keys *k, const char *b64, const char *prev_b64, char *err,
                  size_t errsize)
{
    memset(k, 0, sizeof(*k));
    if (load_key("TOKEN_HASH_KEY", b64, &k->hash_key, &k->hash_len, err, errsize) != 0)
        goto fail;
    if (prev_b64 && load_key("TOKEN_HASH_KEY_PREVIOUS", prev_b64, &k->prev_key, &k->prev_len, err,
                             errsize) != 0)
        goto fail;
    k->seal_key = derive_seal_key(k->hash_key, k->hash_len);
    k->hash_mac = keyed_mac(k->hash_key, k->hash_len);
    if (k->prev_key) {
        k->prev_seal_key = derive_seal_key(k->prev_key, k->prev_len);
        k->prev_mac = keyed_mac(k->prev_key, k->prev_len);
    }
    if (!k->seal_key || !k->hash_mac || (k->prev_key && (!k->prev_seal_key || !k->prev_mac))) {
        snprintf(err, errsize, "TOKEN_HASH_KEY: out of memory");
        goto fail;
    }
    return 0;
fail:
    tok_keys_free(k);
    return -1;
}

void tok_keys_free(struct tok_keys *k)
{
    crypto_secret_free(k->hash_key);
    crypto_secret_free(k->prev_key);
    crypto_secret_free(k->seal_key);
    crypto_secret_free(k->prev_seal_key);
    crypto_secret_free(k->hash_mac);
    crypto_secret_free(k->prev_mac);
    memset(k, 0, sizeof(*k));
}

/* Decode exactly nbytes of canonical base64url from s[0..len): re-encoding must give the
 * same text back, so one token has one spelling (the unused low bits must be zero). */
static int decode_exact(const char *s, size_t len, uint8_t *out, size_t nbytes)
{
    char again[64];
    if (len != crypto_b64url_len(nbytes) - 1 || len >= sizeof(again))
        return -1;
    if (crypto_unb64url(s, len, out, nbytes) != (long)nbytes)
        return -1;
    crypto_b64url(out, nbytes, again, sizeof(again));
    return memcmp(again, s, len) == 0 ? 0 : -1;
}

int tok_family_valid(const char *s, size_t len)
{
    uint8_t raw[TOK_FAMILY_BYTES];
    return decode_exact(s, len, raw, sizeof(raw)) == 0;
}

int tok_parse(const char *s, size_t len, struct tok_token *out)
{
    const size_t plen = strlen(TOK_PREFIX);
    if (len != TOK_TEXT_LEN || memcmp(s, TOK_PREFIX, plen) != 0)
        return -1;
    const char *fam = s + plen;
    if (fam[TOK_FAMILY_LEN] != '.')
        return -1;
    const char *sec = fam + TOK_FAMILY_LEN + 1;
    if (!tok_family_valid(fam, TOK_FAMILY_LEN) ||
        decode_exact(sec, TOK_SECRET_LEN, out->secret, TOK_SECRET_BYTES) != 0) {
        crypto_wipe(out->secret, sizeof(out->secret));
        return -1;
    }
    memcpy(out->family, fam, TOK_FAMILY_LEN);
    out->family[TOK_FAMILY_LEN] = '\0';
    memcpy(out->text, s, len);
    out->text[len] = '\0';
    return 0;
}

void tok_mint(struct tok_token *out, const char *family)
{
    char secret_b64[TOK_SECRET_LEN + 1];
    if (family) {
        memcpy(out->family, family, TOK_FAMILY_LEN);
        out->family[TOK_FAMILY_LEN] = '\0';
    } else {
        uint8_t raw[TOK_FAMILY_BYTES];
        crypto_random(raw, sizeof(raw));
        crypto_b64url(raw, sizeof(raw), out->family, sizeof(out->family));
    }
    crypto_random(out->secret, sizeof(out->secret));
    crypto_b64url(out->secret, sizeof(out->secret), secret_b64, sizeof(secret_b64));
    snprintf(out->text, sizeof(out->text), "%s%s.%s", TOK_PREFIX, out->family, secret_b64);
    crypto_wipe(secret_b64, sizeof(secret_b64));
}

int tok_hash(const struct tok_keys *k, int previous, const struct tok_token *t,
             char hex[TOK_HASH_HEX_LEN + 1])
{
    uint8_t mac[CRYPTO_SHA256_LEN];
    const crypto_auth_hmacsha256_state *keyed = previous ? k->prev_mac : k->hash_mac;
    crypto_auth_hmacsha256_state st;
    hex[0] = '\0';
    if (!keyed)
        return -1;
    memcpy(&st, keyed, sizeof(st));
    crypto_auth_hmacsha256_update(&st, t->secret, sizeof(t->secret));
    crypto_auth_hmacsha256_final(&st, mac);
    crypto_wipe(&st, sizeof(st)); /* it holds the padded key */
    crypto_hex(mac, sizeof(mac), hex);
    return 0;
}

int tok_seal(const struct tok_keys *k, const struct tok_token *t, char *out, size_t outsize)
{
    uint8_t box[SEAL_NONCE + TOK_TEXT_LEN + SEAL_TAG];
    unsigned long long clen = 0;
    if (outsize < crypto_b64url_len(sizeof(box)))
        return -1;
    crypto_random(box, SEAL_NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(box + SEAL_NONCE, &clen, (const uint8_t *)t->text,
                                               TOK_TEXT_LEN, (const uint8_t *)t->family,
                                               TOK_FAMILY_LEN, NULL, box, k->seal_key);
    crypto_b64url(box, sizeof(box), out, outsize);
    return 0;
}

static int open_with(const uint8_t *key, const uint8_t *box, const char *family, char *text)
{
    unsigned long long mlen = 0;
    if (!key)
        return -1;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt((uint8_t *)text, &mlen, NULL, box + SEAL_NONCE,
                                                   TOK_TEXT_LEN + SEAL_TAG, (const uint8_t *)family,
                                                   TOK_FAMILY_LEN, box, key) != 0 ||
        mlen != TOK_TEXT_LEN)
        return -1;
    return 0;
}

int tok_unseal(const struct tok_keys *k, const char *family, const char *sealed,
               struct tok_token *out)
{
    uint8_t box[SEAL_NONCE + TOK_TEXT_LEN + SEAL_TAG];
    char text[TOK_TEXT_LEN + 1];
    int rc = -1;
    if (crypto_unb64url(sealed, strlen(sealed), box, sizeof(box)) != (long)sizeof(box))
        return -1;
    if (open_with(k->seal_key, box, family, text) != 0 &&
        open_with(k->prev_seal_key, box, family, text) != 0)
        goto done;
    if (tok_parse(text, TOK_TEXT_LEN, out) == 0 && strcmp(out->family, family) == 0)
        rc = 0;
done:
    crypto_wipe(text, sizeof(text));
    return rc;
}
