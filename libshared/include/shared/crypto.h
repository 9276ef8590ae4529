/* SPDX-License-Identifier: Apache-2.0 */
/* crypto: hashing, MACs, encodings, randomness, Ed25519 and secret memory.
 *
 * Thin, caller-owns-the-buffer wrappers over libsodium (and OpenSSL for PEM parsing).
 * crypto_init() must run once before any other call; everything else is thread-safe. */
#ifndef WARDEN_CRYPTO_H
#define WARDEN_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA256_LEN 32
#define CRYPTO_ED25519_SEED_LEN 32
#define CRYPTO_ED25519_PK_LEN 32
#define CRYPTO_ED25519_SK_LEN 64
#define CRYPTO_ED25519_SIG_LEN 64

/* Initialise libsodium. Returns 0, or -1 if the library cannot start. */
int crypto_init(void);

/* SHA-256 of data[0..len). */
void crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN]);

/* HMAC-SHA256 with a key of any length. */
void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                        uint8_t out[CRYPTO_SHA256_LEN]);

/* Lowercase hex of bin[0..len) into hex (size >= 2*len+1, NUL-terminated). */
void crypto_hex(const uint8_t *bin, size_t len, char *hex);

/* Parse exactly 2*outlen hex chars (either case). Returns 0, or -1 on bad input. */
int crypto_unhex(const char *hex, size_t hexlen, uint8_t *out, size_t outlen);

/* Encoded length (including the NUL) of len bytes in base64 / base64url-unpadded. */
size_t crypto_b64_len(size_t len);
size_t crypto_b64url_len(size_t len);

/* Encode into out (size >= the *_len() above). Returns out. */
char *crypto_b64(const uint8_t *bin, size_t len, char *out, size_t outsize);
char *crypto_b64url(const uint8_t *bin, size_t len, char *out, size_t outsize);

/* Decode standard padded base64 / unpadded base64url. Strict: no whitespace, no
 * trailing garbage. Returns the decoded length, or -1 on bad input or if it does not fit
 * into outsize. */
long crypto_unb64(const char *b64, size_t len, uint8_t *out, size_t outsize);
long crypto_unb64url(const char *b64, size_t len, uint8_t *out, size_t outsize);

/* Fill buf with len bytes from the CSPRNG: a per-thread ChaCha20 stream keyed once from
 * the system's generator (no system call per call). */
void crypto_random(void *buf, size_t len);

/* Constant-time equality of two buffers of the same length: 1 equal, 0 not. */
int crypto_equal(const void *a, const void *b, size_t len);

/* Constant-time equality of two strings of possibly different lengths (compares their
 * SHA-256, so neither content nor length leaks through timing): 1 equal, 0 not. */
int crypto_str_equal(const char *a, const char *b);

/* Ed25519. sk is the 64-byte libsodium secret key (seed || public key). */
void crypto_ed25519_from_seed(const uint8_t seed[CRYPTO_ED25519_SEED_LEN],
                              uint8_t pk[CRYPTO_ED25519_PK_LEN], uint8_t sk[CRYPTO_ED25519_SK_LEN]);
void crypto_ed25519_keygen(uint8_t pk[CRYPTO_ED25519_PK_LEN], uint8_t sk[CRYPTO_ED25519_SK_LEN]);
void crypto_ed25519_sign(const uint8_t sk[CRYPTO_ED25519_SK_LEN], const void *msg, size_t len,
                         uint8_t sig[CRYPTO_ED25519_SIG_LEN]);
/* Returns 1 if sig is a valid signature of msg under pk, else 0. */
int crypto_ed25519_verify(const uint8_t pk[CRYPTO_ED25519_PK_LEN], const void *msg, size_t len,
                          const uint8_t sig[CRYPTO_ED25519_SIG_LEN]);

/* Load an Ed25519 private key from text: PEM PKCS#8 ("-----BEGIN PRIVATE KEY-----", as
 * `openssl genpkey -algorithm ed25519` writes) or base64 of the 32-byte seed. Writes the
 * seed. Returns 0, or -1 with a reason in err (never containing key material). */
int crypto_ed25519_seed_parse(const char *text, uint8_t seed[CRYPTO_ED25519_SEED_LEN], char *err,
                              size_t errsize);

/* Load an Ed25519 public key from base64 of 32 bytes or PEM SubjectPublicKeyInfo
 * ("-----BEGIN PUBLIC KEY-----"). Returns 0, or -1 with a reason in err. */
int crypto_ed25519_pk_parse(const char *text, uint8_t pk[CRYPTO_ED25519_PK_LEN], char *err,
                            size_t errsize);

/* PEM PKCS#8 text for a seed, into out. Returns 0, or -1 if outsize is too small. */
int crypto_ed25519_seed_to_pem(const uint8_t seed[CRYPTO_ED25519_SEED_LEN], char *out,
                               size_t outsize);

/* Secret memory: locked (not swapped), guarded, wiped on free. crypto_secret_free(NULL)
 * does nothing. Returns NULL when out of memory. */
void *crypto_secret_alloc(size_t len);
void crypto_secret_free(void *p);
/* Wipe a buffer in a way the compiler cannot elide. */
void crypto_wipe(void *p, size_t len);

#endif
