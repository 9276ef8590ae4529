/* SPDX-License-Identifier: Apache-2.0 */
/* crypto: caller-owns-the-buffer wrappers over libsodium (hashes, MACs, encodings,
 * Ed25519, secret memory) and OpenSSL 3 for the PEM/PKCS#8 key formats only. */
#include "shared/crypto.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

/* Key text longer than this is not a key; it also keeps lengths within OpenSSL's int. */
#define CRYPTO_KEY_TEXT_MAX (64 * 1024)

int crypto_init(void)
{
    /* sodium_init() returns 1 when already initialised: that is success too. OpenSSL 3
     * initialises itself on first use. */
    return sodium_init() < 0 ? -1 : 0;
}

void crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN])
{
    crypto_hash_sha256(out, data, len);
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                        uint8_t out[CRYPTO_SHA256_LEN])
{
    /* The one-shot crypto_auth_hmacsha256() takes a fixed 32-byte key; the streaming
     * API accepts any length (keys above the block size are hashed first, per RFC 2104). */
    crypto_auth_hmacsha256_state st;

    crypto_auth_hmacsha256_init(&st, key, keylen);
    crypto_auth_hmacsha256_update(&st, data, len);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof(st)); /* the state holds the padded key */
}

void crypto_hex(const uint8_t *bin, size_t len, char *hex)
{
    sodium_bin2hex(hex, 2 * len + 1, bin, len);
}

int crypto_unhex(const char *hex, size_t hexlen, uint8_t *out, size_t outlen)
{
    size_t binlen = 0;

    if (outlen > SIZE_MAX / 2 || hexlen != 2 * outlen)
        return -1;
    /* No ignore set and no end pointer: any non-hex character anywhere fails. */
    if (sodium_hex2bin(out, outlen, hex, hexlen, NULL, &binlen, NULL) != 0 || binlen != outlen)
        return -1;
    return 0;
}

size_t crypto_b64_len(size_t len)
{
    return sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
}

size_t crypto_b64url_len(size_t len)
{
    return sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

char *crypto_b64(const uint8_t *bin, size_t len, char *out, size_t outsize)
{
    /* libsodium aborts on a too-small buffer: that is a programming error. */
    return sodium_bin2base64(out, outsize, bin, len, sodium_base64_VARIANT_ORIGINAL);
}

char *crypto_b64url(const uint8_t *bin, size_t len, char *out, size_t outsize)
{
    return sodium_bin2base64(out, outsize, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static long unb64_variant(const char *b64, size_t len, uint8_t *out, size_t outsize, int variant)
{
    size_t binlen = 0;

    /* With no ignore set and no end pointer libsodium rejects whitespace, trailing
     * characters, missing or extra padding and non-zero leftover bits. */
    if (sodium_base642bin(out, outsize, b64, len, NULL, &binlen, NULL, variant) != 0)
        return -1;
    if (binlen > LONG_MAX)
        return -1;
    return (long)binlen;
}

long crypto_unb64(const char *b64, size_t len, uint8_t *out, size_t outsize)
{
    return unb64_variant(b64, len, out, outsize, sodium_base64_VARIANT_ORIGINAL);
}

long crypto_unb64url(const char *b64, size_t len, uint8_t *out, size_t outsize)
{
    return unb64_variant(b64, len, out, outsize, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* A per-thread ChaCha20 keystream under a key drawn from the system once per thread (the
 * construction of OpenBSD's arc4random): secrets and tokens without a getrandom(2) per
 * request. The key is never used twice with the same nonce; the daemons never fork. */
void crypto_random(void *buf, size_t len)
{
    static _Thread_local unsigned char key[crypto_stream_chacha20_KEYBYTES];
    static _Thread_local uint64_t nonce; /* 0: no key yet */
    unsigned char n[crypto_stream_chacha20_NONCEBYTES];
    if (nonce == 0) {
        randombytes_buf(key, sizeof(key));
        nonce = 1;
    }
    for (size_t i = 0; i < sizeof(n); i++)
        n[i] = (unsigned char)(nonce >> (8 * i));
    nonce++;
    crypto_stream_chacha20(buf, len, n, key);
}

int crypto_equal(const void *a, const void *b, size_t len)
{
    return sodium_memcmp(a, b, len) == 0;
}

int crypto_str_equal(const char *a, const char *b)
{
    uint8_t ha[CRYPTO_SHA256_LEN], hb[CRYPTO_SHA256_LEN];
    int eq;

    assert(a != NULL && b != NULL);
    crypto_sha256(a, strlen(a), ha);
    crypto_sha256(b, strlen(b), hb);
    eq = crypto_equal(ha, hb, sizeof(ha));
    sodium_memzero(ha, sizeof(ha));
    sodium_memzero(hb, sizeof(hb));
    return eq;
}

void crypto_ed25519_from_seed(const uint8_t seed[CRYPTO_ED25519_SEED_LEN],
                              uint8_t pk[CRYPTO_ED25519_PK_LEN], uint8_t sk[CRYPTO_ED25519_SK_LEN])
{
    crypto_sign_seed_keypair(pk, sk, seed);
}

void crypto_ed25519_keygen(uint8_t pk[CRYPTO_ED25519_PK_LEN], uint8_t sk[CRYPTO_ED25519_SK_LEN])
{
    crypto_sign_keypair(pk, sk);
}

void crypto_ed25519_sign(const uint8_t sk[CRYPTO_ED25519_SK_LEN], const void *msg, size_t len,
                         uint8_t sig[CRYPTO_ED25519_SIG_LEN])
{
    crypto_sign_detached(sig, NULL, msg, len, sk);
}

int crypto_ed25519_verify(const uint8_t pk[CRYPTO_ED25519_PK_LEN], const void *msg, size_t len,
                          const uint8_t sig[CRYPTO_ED25519_SIG_LEN])
{
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0;
}

/* ---- key text (PEM or base64) ------------------------------------------------------ */

static void set_err(char *err, size_t errsize, const char *msg)
{
    if (err != NULL && errsize > 0)
        snprintf(err, errsize, "%s", msg);
}

/* A PEM callback that supplies no passphrase: without it OpenSSL would prompt on the
 * terminal for an encrypted key and block a daemon's startup. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Decode key text that is not PEM: standard base64 of exactly 32 bytes, surrounding
 * whitespace (a trailing newline from a file) tolerated. Returns 0 or -1. */
static int key_from_b64(const char *text, uint8_t key[32])
{
    uint8_t tmp[48]; /* room for more than 32 bytes, so a longer input fails on length */
    size_t start = 0, end = strlen(text);
    long n;

    while (start < end && strchr(" \t\r\n", text[start]) != NULL)
        start++;
    while (end > start && strchr(" \t\r\n", text[end - 1]) != NULL)
        end--;
    n = crypto_unb64(text + start, end - start, tmp, sizeof(tmp));
    if (n == 32)
        memcpy(key, tmp, 32);
    sodium_memzero(tmp, sizeof(tmp));
    return n == 32 ? 0 : -1;
}

/* Read the first PEM key in text: a private key when want_private, else a public key.
 * Returns the key, or NULL with err set. */
static EVP_PKEY *pem_read_key(const char *text, int want_private, char *err, size_t errsize)
{
    size_t len = strlen(text);
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;

    if (len > CRYPTO_KEY_TEXT_MAX) {
        set_err(err, errsize, "key text too long (at most 64KiB)");
        return NULL;
    }
    /* A read-only view of the caller's text: no copy of the key is made here. */
    bio = BIO_new_mem_buf(text, (int)len);
    if (bio == NULL) {
        set_err(err, errsize, "out of memory");
        return NULL;
    }
    if (want_private)
        pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    else
        pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    ERR_clear_error(); /* do not leave OpenSSL's reasons on this thread's queue */
    if (pkey == NULL) {
        if (want_private && strstr(text, "ENCRYPTED PRIVATE KEY") != NULL)
            set_err(err, errsize, "encrypted PEM private keys are not supported");
        else if (want_private && strstr(text, "BEGIN PUBLIC KEY") != NULL)
            set_err(err, errsize, "this is a public key; an Ed25519 private key is needed");
        else if (want_private)
            set_err(err, errsize, "not a valid PEM PKCS#8 private key");
        else
            set_err(err, errsize, "not a valid PEM public key (SubjectPublicKeyInfo)");
        return NULL;
    }
    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
        set_err(err, errsize, "PEM key is not an Ed25519 key");
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey;
}

int crypto_ed25519_seed_parse(const char *text, uint8_t seed[CRYPTO_ED25519_SEED_LEN], char *err,
                              size_t errsize)
{
    EVP_PKEY *pkey = NULL;
    size_t len = CRYPTO_ED25519_SEED_LEN;

    assert(text != NULL && seed != NULL);
    if (strstr(text, "-----BEGIN") == NULL) {
        if (key_from_b64(text, seed) == 0)
            return 0;
        set_err(err, errsize, "not a PEM private key or base64 of a 32-byte Ed25519 seed");
        goto fail;
    }
    pkey = pem_read_key(text, 1, err, errsize);
    if (pkey == NULL)
        goto fail;
    if (EVP_PKEY_get_raw_private_key(pkey, seed, &len) != 1 || len != CRYPTO_ED25519_SEED_LEN) {
        ERR_clear_error();
        set_err(err, errsize, "cannot extract the Ed25519 seed from the PEM key");
        goto fail;
    }
    EVP_PKEY_free(pkey); /* OpenSSL wipes the private key when freeing it */
    return 0;

fail:
    EVP_PKEY_free(pkey);
    sodium_memzero(seed, CRYPTO_ED25519_SEED_LEN);
    return -1;
}

int crypto_ed25519_pk_parse(const char *text, uint8_t pk[CRYPTO_ED25519_PK_LEN], char *err,
                            size_t errsize)
{
    EVP_PKEY *pkey = NULL;
    size_t len = CRYPTO_ED25519_PK_LEN;

    assert(text != NULL && pk != NULL);
    if (strstr(text, "-----BEGIN") == NULL) {
        if (key_from_b64(text, pk) == 0)
            return 0;
        set_err(err, errsize, "not a PEM public key or base64 of a 32-byte Ed25519 public key");
        return -1;
    }
    pkey = pem_read_key(text, 0, err, errsize);
    if (pkey == NULL)
        return -1;
    if (EVP_PKEY_get_raw_public_key(pkey, pk, &len) != 1 || len != CRYPTO_ED25519_PK_LEN) {
        ERR_clear_error();
        set_err(err, errsize, "cannot extract the Ed25519 public key from the PEM key");
        EVP_PKEY_free(pkey);
        return -1;
    }
    EVP_PKEY_free(pkey);
    return 0;
}

int crypto_ed25519_seed_to_pem(const uint8_t seed[CRYPTO_ED25519_SEED_LEN], char *out,
                               size_t outsize)
{
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    char *pem = NULL;
    long pemlen;
    int rc = -1;

    pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, CRYPTO_ED25519_SEED_LEN);
    if (pkey == NULL)
        goto fail;
    /* A secure-memory BIO: its buffer is cleared when freed. */
    bio = BIO_new(BIO_s_secmem());
    if (bio == NULL)
        goto fail;
    if (PEM_write_bio_PKCS8PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1)
        goto fail;
    pemlen = BIO_get_mem_data(bio, &pem);
    if (pemlen <= 0 || (size_t)pemlen >= outsize)
        goto fail;
    memcpy(out, pem, (size_t)pemlen);
    out[pemlen] = '\0';
    rc = 0;

fail:
    if (bio != NULL) {
        /* Belt and braces: wipe the PEM text ourselves before the BIO goes. */
        pemlen = BIO_get_mem_data(bio, &pem);
        if (pemlen > 0)
            OPENSSL_cleanse(pem, (size_t)pemlen);
    }
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return rc;
}

/* ---- secret memory ------------------------------------------------------------------ */

void *crypto_secret_alloc(size_t len)
{
    /* sodium_malloc() places the region between guard pages and mlock()s it; the lock
     * is best effort (RLIMIT_MEMLOCK), as the header says "where libsodium allows". */
    return sodium_malloc(len);
}

void crypto_secret_free(void *p)
{
    sodium_free(p); /* wipes, unlocks; NULL does nothing */
}

void crypto_wipe(void *p, size_t len)
{
    sodium_memzero(p, len);
}
