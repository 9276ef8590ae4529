/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for libshared crypto: published vectors (NIST SHA-256, RFC 4231 HMAC,
 * RFC 4648 base64, RFC 8032 Ed25519, RFC 8410 PEM) and PEM interop with the openssl CLI. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/crypto.h"

/* RFC 8032 section 7.1, TEST 1. */
#define T1_SEED "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
#define T1_PK "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
#define T1_SIG                                                                                     \
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9" \
    "b46bd25bf5f0595bbe24655141438e7a100b"

/* The TEST 1 seed and public key as PKCS#8 / SubjectPublicKeyInfo PEM (openssl pkey). */
static const char t1_priv_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n";
static const char t1_pub_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                                 "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
                                 "-----END PUBLIC KEY-----\n";

/* RFC 8410 section 10.3 example private key; its seed written out by hand. */
static const char rfc8410_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n"
    "-----END PRIVATE KEY-----\n";
#define RFC8410_SEED "d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842"

static const char x25519_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VuBCIEIOAwA0cC7ZrwKQcv/14Nd9E3MscwsAdBZDU6nM878Wpo\n"
    "-----END PRIVATE KEY-----\n";
static const char p256_pub_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFNw9uD3e7sCPnsLh3xaasx94A/JF\n"
    "v3wmJYW4V4HE5k2ekoX5Oz7AH3kxNeNx/n3LjBzOKW66Lm4EcHbEkwGdfw==\n"
    "-----END PUBLIC KEY-----\n";
static const char encrypted_pem[] =
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    "MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAiHjkftTqRMPgICCAAw\n"
    "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEAQIEEOGxsTC/vlqwwluVfhj1kaEEQPcn\n"
    "BNZvdtTKVFaK7xiodO2Af3g/E/30wBLeBVShZbOb5Hqhr1aIrzbjWuQTM/1/W/CT\n"
    "GsnQG9aob2Pi4i39czs=\n"
    "-----END ENCRYPTED PRIVATE KEY-----\n";

/* Hex of bin, in a static buffer big enough for a signature. */
static const char *hexs(const uint8_t *bin, size_t len)
{
    static char buf[2 * 128 + 1];
    assert_true(len <= 128);
    crypto_hex(bin, len, buf);
    return buf;
}

static void unhex_or_die(const char *hex, uint8_t *out, size_t outlen)
{
    assert_int_equal(crypto_unhex(hex, strlen(hex), out, outlen), 0);
}

static int setup(void **state)
{
    (void)state;
    return crypto_init();
}

/* ---- hashes and MACs ---------------------------------------------------------------- */

static void test_sha256_abc(void **state)
{
    uint8_t h[CRYPTO_SHA256_LEN];
    (void)state;
    crypto_sha256("abc", 3, h);
    assert_string_equal(hexs(h, sizeof(h)),
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_sha256_empty(void **state)
{
    uint8_t h[CRYPTO_SHA256_LEN];
    (void)state;
    crypto_sha256("", 0, h);
    assert_string_equal(hexs(h, sizeof(h)),
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_sha256_two_blocks(void **state)
{
    static const char msg[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    uint8_t h[CRYPTO_SHA256_LEN];
    (void)state;
    crypto_sha256(msg, strlen(msg), h);
    assert_string_equal(hexs(h, sizeof(h)),
                        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_hmac_rfc4231_case1(void **state)
{
    uint8_t key[20], mac[CRYPTO_SHA256_LEN];
    (void)state;
    memset(key, 0x0b, sizeof(key));
    crypto_hmac_sha256(key, sizeof(key), "Hi There", 8, mac);
    assert_string_equal(hexs(mac, sizeof(mac)),
                        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

static void test_hmac_rfc4231_case2(void **state)
{
    static const char data[] = "what do ya want for nothing?";
    uint8_t mac[CRYPTO_SHA256_LEN];
    (void)state;
    crypto_hmac_sha256("Jefe", 4, data, strlen(data), mac);
    assert_string_equal(hexs(mac, sizeof(mac)),
                        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

/* Test case 6: a 131-byte key, longer than the block size, is hashed first. */
static void test_hmac_rfc4231_case6_long_key(void **state)
{
    static const char data[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    uint8_t key[131], mac[CRYPTO_SHA256_LEN];
    (void)state;
    memset(key, 0xaa, sizeof(key));
    crypto_hmac_sha256(key, sizeof(key), data, strlen(data), mac);
    assert_string_equal(hexs(mac, sizeof(mac)),
                        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

/* ---- base64 ------------------------------------------------------------------------- */

static const char *const b64_plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const b64_std[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
static const char *const b64_url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
#define B64_NVEC (sizeof(b64_plain) / sizeof(b64_plain[0]))

static void test_b64_lengths(void **state)
{
    (void)state;
    for (size_t i = 0; i < B64_NVEC; i++) {
        size_t n = strlen(b64_plain[i]);
        assert_int_equal(crypto_b64_len(n), strlen(b64_std[i]) + 1);
        assert_int_equal(crypto_b64url_len(n), strlen(b64_url[i]) + 1);
    }
}

static void test_b64_encode_rfc4648(void **state)
{
    char out[16];
    (void)state;
    for (size_t i = 0; i < B64_NVEC; i++) {
        const char *p = b64_plain[i];
        assert_ptr_equal(crypto_b64((const uint8_t *)p, strlen(p), out, sizeof(out)), out);
        assert_string_equal(out, b64_std[i]);
    }
}

static void test_b64_decode_rfc4648(void **state)
{
    uint8_t out[16];
    (void)state;
    for (size_t i = 0; i < B64_NVEC; i++) {
        long n = crypto_unb64(b64_std[i], strlen(b64_std[i]), out, sizeof(out));
        assert_int_equal(n, (long)strlen(b64_plain[i]));
        assert_memory_equal(out, b64_plain[i], (size_t)n);
    }
}

static void test_b64url_encode_rfc4648(void **state)
{
    char out[16];
    (void)state;
    for (size_t i = 0; i < B64_NVEC; i++) {
        const char *p = b64_plain[i];
        assert_ptr_equal(crypto_b64url((const uint8_t *)p, strlen(p), out, sizeof(out)), out);
        assert_string_equal(out, b64_url[i]);
    }
}

static void test_b64url_decode_rfc4648(void **state)
{
    uint8_t out[16];
    (void)state;
    for (size_t i = 0; i < B64_NVEC; i++) {
        long n = crypto_unb64url(b64_url[i], strlen(b64_url[i]), out, sizeof(out));
        assert_int_equal(n, (long)strlen(b64_plain[i]));
        assert_memory_equal(out, b64_plain[i], (size_t)n);
    }
}

/* 0xfb 0xff 0xbf is 62,63,62,63 in 6-bit groups: the two alphabets' last characters. */
static void test_b64_alphabets(void **state)
{
    static const uint8_t bin[] = {0xfb, 0xff, 0xbf};
    uint8_t back[3];
    char out[8];
    (void)state;
    assert_string_equal(crypto_b64(bin, sizeof(bin), out, sizeof(out)), "+/+/");
    assert_string_equal(crypto_b64url(bin, sizeof(bin), out, sizeof(out)), "-_-_");
    assert_int_equal(crypto_unb64url("-_-_", 4, back, sizeof(back)), 3);
    assert_memory_equal(back, bin, 3);
    assert_int_equal(crypto_unb64("+/+/", 4, back, sizeof(back)), 3);
    assert_memory_equal(back, bin, 3);
    /* Each decoder refuses the other alphabet. */
    assert_int_equal(crypto_unb64("-_-_", 4, back, sizeof(back)), -1);
    assert_int_equal(crypto_unb64url("+/+/", 4, back, sizeof(back)), -1);
}

static void expect_unb64_fail(const char *s)
{
    uint8_t out[32];
    assert_int_equal(crypto_unb64(s, strlen(s), out, sizeof(out)), -1);
}

static void expect_unb64url_fail(const char *s)
{
    uint8_t out[32];
    assert_int_equal(crypto_unb64url(s, strlen(s), out, sizeof(out)), -1);
}

static void test_unb64_rejects_bad_chars(void **state)
{
    (void)state;
    expect_unb64_fail("Zm9v!");
    expect_unb64_fail("Zm*v");
    expect_unb64_fail("Zm9vYmFy\x01");
    expect_unb64url_fail("Zm9v.");
    expect_unb64url_fail("Zm9vYm=y");
}

static void test_unb64_rejects_whitespace(void **state)
{
    (void)state;
    expect_unb64_fail(" Zm9v");
    expect_unb64_fail("Zm9v ");
    expect_unb64_fail("Zm9v\n");
    expect_unb64_fail("Zm\n9v");
    expect_unb64_fail("Zm9v\tYmFy");
    expect_unb64url_fail("Zm9v\n");
    expect_unb64url_fail(" Zg");
}

static void test_unb64_rejects_trailing_garbage(void **state)
{
    uint8_t out[8];
    (void)state;
    expect_unb64_fail("Zm9vx");
    expect_unb64_fail("Zg==Zg==");
    /* An embedded NUL inside the given length is garbage too. */
    assert_int_equal(crypto_unb64("Zm9v\0Zm9v", 9, out, sizeof(out)), -1);
}

static void test_unb64_rejects_bad_padding(void **state)
{
    (void)state;
    expect_unb64_fail("Zg");  /* padded variant needs "==" */
    expect_unb64_fail("Zg="); /* one short */
    expect_unb64_fail("Zg===");
    expect_unb64_fail("Zm8");
    expect_unb64_fail("Zm9v=");
    expect_unb64_fail("Z");       /* 6 bits: not a byte */
    expect_unb64_fail("Zh==");    /* non-zero leftover bits: not canonical */
    expect_unb64url_fail("Zg=="); /* unpadded variant refuses padding */
    expect_unb64url_fail("Zm8=");
    expect_unb64url_fail("Z");
    expect_unb64url_fail("Zh");
}

static void test_unb64_rejects_small_output(void **state)
{
    uint8_t out[6];
    (void)state;
    assert_int_equal(crypto_unb64("Zm9vYmFy", 8, out, 5), -1);
    assert_int_equal(crypto_unb64url("Zm9vYmFy", 8, out, 5), -1);
    /* Exactly enough room succeeds. */
    assert_int_equal(crypto_unb64("Zm9vYmFy", 8, out, 6), 6);
    assert_memory_equal(out, "foobar", 6);
}

/* ---- hex, random, comparisons -------------------------------------------------------- */

static void test_hex_round_trip(void **state)
{
    static const uint8_t bin[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    uint8_t back[sizeof(bin)];
    char hex[2 * sizeof(bin) + 1];
    (void)state;
    crypto_hex(bin, sizeof(bin), hex);
    assert_string_equal(hex, "00017f80abff");
    assert_int_equal(crypto_unhex(hex, strlen(hex), back, sizeof(back)), 0);
    assert_memory_equal(back, bin, sizeof(bin));
    /* Upper case is accepted too. */
    memset(back, 0, sizeof(back));
    assert_int_equal(crypto_unhex("00017F80ABFF", 12, back, sizeof(back)), 0);
    assert_memory_equal(back, bin, sizeof(bin));
    crypto_hex(bin, 0, hex);
    assert_string_equal(hex, "");
}

static void test_unhex_rejects_bad(void **state)
{
    uint8_t out[4];
    (void)state;
    assert_int_equal(crypto_unhex("0g", 2, out, 1), -1);
    assert_int_equal(crypto_unhex("zz", 2, out, 1), -1);
    assert_int_equal(crypto_unhex("012", 3, out, 2), -1);  /* odd length */
    assert_int_equal(crypto_unhex("0102", 4, out, 1), -1); /* too long for out */
    assert_int_equal(crypto_unhex("01", 2, out, 2), -1);   /* too short for out */
    assert_int_equal(crypto_unhex("01 2", 4, out, 2), -1); /* whitespace */
    assert_int_equal(crypto_unhex("0x12", 4, out, 2), -1);
    assert_int_equal(crypto_unhex("01\0"
                                  "2",
                                  4, out, 2),
                     -1); /* embedded NUL */
}

static void test_random_fills(void **state)
{
    uint8_t a[32], b[32], zero[32] = {0};
    (void)state;
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    crypto_random(a, sizeof(a));
    crypto_random(b, sizeof(b));
    /* 2^-256 chance of a false failure. */
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_memory_not_equal(a, b, sizeof(a));
}

static void *random_in_thread(void *arg)
{
    crypto_random(arg, 32);
    return NULL;
}

/* Each thread has a stream of its own, keyed from the system: a second thread's first
 * bytes are not this thread's, nor any later ones. */
static void test_random_per_thread(void **state)
{
    uint8_t mine[64][32], theirs[32];
    pthread_t t;
    (void)state;
    for (int i = 0; i < 64; i++)
        crypto_random(mine[i], sizeof(mine[i]));
    assert_int_equal(pthread_create(&t, NULL, random_in_thread, theirs), 0);
    pthread_join(t, NULL);
    for (int i = 0; i < 64; i++) {
        assert_memory_not_equal(mine[i], theirs, sizeof(theirs));
        for (int j = 0; j < i; j++)
            assert_memory_not_equal(mine[i], mine[j], sizeof(theirs));
    }
}

static void test_equal(void **state)
{
    (void)state;
    assert_int_equal(crypto_equal("abcdef", "abcdef", 6), 1);
    assert_int_equal(crypto_equal("abcdef", "abcdeg", 6), 0);
    assert_int_equal(crypto_equal("xbcdef", "abcdef", 6), 0);
    assert_int_equal(crypto_equal("abc", "xyz", 0), 1);
}

static void test_str_equal(void **state)
{
    (void)state;
    assert_int_equal(crypto_str_equal("s3cret-token", "s3cret-token"), 1);
    assert_int_equal(crypto_str_equal("s3cret-token", "s3cret-tokeN"), 0);
    assert_int_equal(crypto_str_equal("s3cret-token", "s3cret-token2"), 0); /* prefix */
    assert_int_equal(crypto_str_equal("s3cret", "s3cret-token"), 0);
    assert_int_equal(crypto_str_equal("", ""), 1);
    assert_int_equal(crypto_str_equal("", "a"), 0);
}

/* ---- Ed25519 -------------------------------------------------------------------------- */

static void test_ed25519_rfc8032_test1_keys(void **state)
{
    uint8_t seed[32], pk[32], sk[64];
    (void)state;
    unhex_or_die(T1_SEED, seed, sizeof(seed));
    crypto_ed25519_from_seed(seed, pk, sk);
    assert_string_equal(hexs(pk, sizeof(pk)), T1_PK);
    assert_memory_equal(sk, seed, 32); /* libsodium's sk is seed || pk */
    assert_memory_equal(sk + 32, pk, 32);
}

static void test_ed25519_rfc8032_test1_sign(void **state)
{
    uint8_t seed[32], pk[32], sk[64], sig[64];
    (void)state;
    unhex_or_die(T1_SEED, seed, sizeof(seed));
    crypto_ed25519_from_seed(seed, pk, sk);
    crypto_ed25519_sign(sk, "", 0, sig);
    assert_string_equal(hexs(sig, sizeof(sig)), T1_SIG);
    assert_int_equal(crypto_ed25519_verify(pk, "", 0, sig), 1);
}

static void test_ed25519_verify_rejects_flipped_bit(void **state)
{
    uint8_t seed[32], pk[32], sk[64], sig[64], bad[64], badpk[32];
    const char msg[] = "warden audit entry";
    (void)state;
    unhex_or_die(T1_SEED, seed, sizeof(seed));
    crypto_ed25519_from_seed(seed, pk, sk);
    crypto_ed25519_sign(sk, msg, sizeof(msg) - 1, sig);
    assert_int_equal(crypto_ed25519_verify(pk, msg, sizeof(msg) - 1, sig), 1);

    /* RFC 8032 TEST 1 signature with one bit flipped, over the empty message. */
    unhex_or_die(T1_SIG, bad, sizeof(bad));
    bad[0] ^= 0x01;
    assert_int_equal(crypto_ed25519_verify(pk, "", 0, bad), 0);

    memcpy(bad, sig, sizeof(sig));
    bad[40] ^= 0x80;
    assert_int_equal(crypto_ed25519_verify(pk, msg, sizeof(msg) - 1, bad), 0);

    char msg2[sizeof(msg)];
    memcpy(msg2, msg, sizeof(msg));
    msg2[3] ^= 0x04;
    assert_int_equal(crypto_ed25519_verify(pk, msg2, sizeof(msg2) - 1, sig), 0);

    memcpy(badpk, pk, sizeof(pk));
    badpk[7] ^= 0x10;
    assert_int_equal(crypto_ed25519_verify(badpk, msg, sizeof(msg) - 1, sig), 0);
}

static void test_ed25519_keygen_sign_verify(void **state)
{
    uint8_t pk[32], sk[64], pk2[32], sk2[64], sig[64];
    (void)state;
    crypto_ed25519_keygen(pk, sk);
    crypto_ed25519_sign(sk, "hello", 5, sig);
    assert_int_equal(crypto_ed25519_verify(pk, "hello", 5, sig), 1);
    assert_int_equal(crypto_ed25519_verify(pk, "hellO", 5, sig), 0);
    /* The generated sk's first half is a seed that derives the same key pair. */
    crypto_ed25519_from_seed(sk, pk2, sk2);
    assert_memory_equal(pk2, pk, 32);
    assert_memory_equal(sk2, sk, 64);
}

/* ---- key text: PEM and base64 ----------------------------------------------------------- */

static void test_seed_parse_pem_vectors(void **state)
{
    uint8_t seed[32], pk[32];
    char err[128] = "";
    (void)state;
    assert_int_equal(crypto_ed25519_seed_parse(t1_priv_pem, seed, err, sizeof(err)), 0);
    assert_string_equal(hexs(seed, 32), T1_SEED);
    assert_int_equal(crypto_ed25519_pk_parse(t1_pub_pem, pk, err, sizeof(err)), 0);
    assert_string_equal(hexs(pk, 32), T1_PK);
    assert_int_equal(crypto_ed25519_seed_parse(rfc8410_pem, seed, err, sizeof(err)), 0);
    assert_string_equal(hexs(seed, 32), RFC8410_SEED);
}

static void test_seed_to_pem_vector(void **state)
{
    uint8_t seed[32];
    char pem[256];
    (void)state;
    unhex_or_die(T1_SEED, seed, sizeof(seed));
    assert_int_equal(crypto_ed25519_seed_to_pem(seed, pem, sizeof(pem)), 0);
    assert_string_equal(pem, t1_priv_pem);
}

static void test_seed_pem_round_trip(void **state)
{
    uint8_t pk[32], sk[64], seed[32];
    char pem[256], err[128];
    (void)state;
    crypto_ed25519_keygen(pk, sk);
    assert_int_equal(crypto_ed25519_seed_to_pem(sk, pem, sizeof(pem)), 0);
    assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----\n"));
    memset(seed, 0, sizeof(seed));
    assert_int_equal(crypto_ed25519_seed_parse(pem, seed, err, sizeof(err)), 0);
    assert_memory_equal(seed, sk, 32);
}

static void test_seed_to_pem_too_small(void **state)
{
    uint8_t seed[32];
    char pem[256];
    size_t need;
    (void)state;
    unhex_or_die(T1_SEED, seed, sizeof(seed));
    need = strlen(t1_priv_pem) + 1;
    assert_int_equal(crypto_ed25519_seed_to_pem(seed, pem, need - 1), -1);
    assert_int_equal(crypto_ed25519_seed_to_pem(seed, pem, 16), -1);
    assert_int_equal(crypto_ed25519_seed_to_pem(seed, pem, need), 0);
    assert_string_equal(pem, t1_priv_pem);
}

static void test_seed_parse_base64(void **state)
{
    uint8_t seed[32], pk[32];
    char b64[64], err[128];
    (void)state;
    unhex_or_die(T1_SEED, seed, sizeof(seed));
    crypto_b64(seed, 32, b64, sizeof(b64));
    memset(seed, 0, sizeof(seed));
    assert_int_equal(crypto_ed25519_seed_parse(b64, seed, err, sizeof(err)), 0);
    assert_string_equal(hexs(seed, 32), T1_SEED);

    /* A trailing newline, as a key file has, is tolerated. */
    size_t n = strlen(b64);
    b64[n] = '\n';
    b64[n + 1] = '\0';
    memset(seed, 0, sizeof(seed));
    assert_int_equal(crypto_ed25519_seed_parse(b64, seed, err, sizeof(err)), 0);
    assert_string_equal(hexs(seed, 32), T1_SEED);

    assert_int_equal(crypto_ed25519_pk_parse("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", pk,
                                             err, sizeof(err)),
                     0);
    assert_string_equal(hexs(pk, 32), T1_PK);
}

static void test_seed_parse_rejects_bad_base64(void **state)
{
    uint8_t seed[32], key31[31] = {1}, key33[33] = {1};
    char b64[64], err[128];
    (void)state;
    crypto_b64(key31, sizeof(key31), b64, sizeof(b64));
    err[0] = '\0';
    assert_int_equal(crypto_ed25519_seed_parse(b64, seed, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "32-byte"));
    crypto_b64(key33, sizeof(key33), b64, sizeof(b64));
    assert_int_equal(crypto_ed25519_seed_parse(b64, seed, err, sizeof(err)), -1);
    assert_int_equal(crypto_ed25519_seed_parse("not a key!", seed, err, sizeof(err)), -1);
    assert_int_equal(crypto_ed25519_seed_parse("", seed, err, sizeof(err)), -1);
    assert_int_equal(crypto_ed25519_pk_parse("Zm9vYmFy", seed, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "32-byte"));
    /* err may be omitted. */
    assert_int_equal(crypto_ed25519_seed_parse("garbage", seed, NULL, 0), -1);
}

static void test_seed_parse_rejects_garbage_pem(void **state)
{
    static const char garbage[] = "-----BEGIN PRIVATE KEY-----\n"
                                  "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/Vpguo\n"
                                  "-----END PRIVATE KEY-----\n";
    uint8_t seed[32], pk[32];
    char err[128];
    (void)state;
    memset(seed, 0xee, sizeof(seed));
    err[0] = '\0';
    assert_int_equal(crypto_ed25519_seed_parse(garbage, seed, err, sizeof(err)), -1);
    assert_string_equal(err, "not a valid PEM PKCS#8 private key");
    /* No key material in the message, and the output is wiped. */
    assert_null(strstr(err, "MC4CAQ"));
    uint8_t zero[32] = {0};
    assert_memory_equal(seed, zero, 32);

    err[0] = '\0';
    assert_int_equal(crypto_ed25519_pk_parse("-----BEGIN PUBLIC KEY-----\nAAAA\n"
                                             "-----END PUBLIC KEY-----\n",
                                             pk, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "not a valid PEM public key (SubjectPublicKeyInfo)");
}

static void test_seed_parse_rejects_wrong_key_kinds(void **state)
{
    uint8_t seed[32], pk[32];
    char err[128];
    (void)state;
    assert_int_equal(crypto_ed25519_seed_parse(x25519_pem, seed, err, sizeof(err)), -1);
    assert_string_equal(err, "PEM key is not an Ed25519 key");
    assert_int_equal(crypto_ed25519_pk_parse(p256_pub_pem, pk, err, sizeof(err)), -1);
    assert_string_equal(err, "PEM key is not an Ed25519 key");
    assert_int_equal(crypto_ed25519_seed_parse(t1_pub_pem, seed, err, sizeof(err)), -1);
    assert_string_equal(err, "this is a public key; an Ed25519 private key is needed");
    /* Must fail without prompting for a passphrase. */
    assert_int_equal(crypto_ed25519_seed_parse(encrypted_pem, seed, err, sizeof(err)), -1);
    assert_string_equal(err, "encrypted PEM private keys are not supported");
    /* A private key where a public key is expected. */
    assert_int_equal(crypto_ed25519_pk_parse(t1_priv_pem, pk, err, sizeof(err)), -1);
}

/* Run cmd and read its whole stdout into buf. Returns the exit status, -1 on failure. */
static int run_capture(const char *cmd, char *buf, size_t size)
{
    FILE *p = popen(cmd, "r");
    size_t n;
    if (p == NULL)
        return -1;
    n = fread(buf, 1, size - 1, p);
    buf[n] = '\0';
    return pclose(p);
}

static void test_pem_interop_with_openssl_cli(void **state)
{
    char path[] = "/tmp/warden-test-ed25519-XXXXXX";
    char cmd[256], priv[1024], pub[1024], err[128];
    uint8_t seed[32], pk[32], sk[64], pk_cli[32];
    int fd;
    (void)state;

    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    snprintf(cmd, sizeof(cmd), "openssl genpkey -algorithm ed25519 -out '%s' 2>/dev/null", path);
    assert_int_equal(run_capture(cmd, priv, sizeof(priv)), 0);
    snprintf(cmd, sizeof(cmd), "cat '%s'", path);
    assert_int_equal(run_capture(cmd, priv, sizeof(priv)), 0);
    snprintf(cmd, sizeof(cmd), "openssl pkey -in '%s' -pubout 2>/dev/null", path);
    assert_int_equal(run_capture(cmd, pub, sizeof(pub)), 0);
    unlink(path);
    assert_non_null(strstr(priv, "-----BEGIN PRIVATE KEY-----"));
    assert_non_null(strstr(pub, "-----BEGIN PUBLIC KEY-----"));

    assert_int_equal(crypto_ed25519_seed_parse(priv, seed, err, sizeof(err)), 0);
    crypto_ed25519_from_seed(seed, pk, sk);
    assert_int_equal(crypto_ed25519_pk_parse(pub, pk_cli, err, sizeof(err)), 0);
    assert_memory_equal(pk, pk_cli, 32);

    /* And our PEM of that seed is what openssl wrote (canonical PKCS#8 DER). */
    char mine[256];
    assert_int_equal(crypto_ed25519_seed_to_pem(seed, mine, sizeof(mine)), 0);
    assert_string_equal(mine, priv);
    crypto_wipe(seed, sizeof(seed));
    crypto_wipe(sk, sizeof(sk));
}

/* ---- secret memory ------------------------------------------------------------------------ */

static void test_secret_alloc_free(void **state)
{
    char *s;
    (void)state;
    s = crypto_secret_alloc(64);
    assert_non_null(s);
    memset(s, 'k', 64);
    assert_int_equal(s[63], 'k');
    crypto_secret_free(s);
    crypto_secret_free(NULL);
    s = crypto_secret_alloc(1);
    assert_non_null(s);
    s[0] = '\0';
    crypto_secret_free(s);
}

static void test_wipe(void **state)
{
    uint8_t buf[40], zero[40] = {0};
    (void)state;
    memset(buf, 0x5a, sizeof(buf));
    crypto_wipe(buf, sizeof(buf));
    assert_memory_equal(buf, zero, sizeof(buf));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_abc),
        cmocka_unit_test(test_sha256_empty),
        cmocka_unit_test(test_sha256_two_blocks),
        cmocka_unit_test(test_hmac_rfc4231_case1),
        cmocka_unit_test(test_hmac_rfc4231_case2),
        cmocka_unit_test(test_hmac_rfc4231_case6_long_key),
        cmocka_unit_test(test_b64_lengths),
        cmocka_unit_test(test_b64_encode_rfc4648),
        cmocka_unit_test(test_b64_decode_rfc4648),
        cmocka_unit_test(test_b64url_encode_rfc4648),
        cmocka_unit_test(test_b64url_decode_rfc4648),
        cmocka_unit_test(test_b64_alphabets),
        cmocka_unit_test(test_unb64_rejects_bad_chars),
        cmocka_unit_test(test_unb64_rejects_whitespace),
        cmocka_unit_test(test_unb64_rejects_trailing_garbage),
        cmocka_unit_test(test_unb64_rejects_bad_padding),
        cmocka_unit_test(test_unb64_rejects_small_output),
        cmocka_unit_test(test_hex_round_trip),
        cmocka_unit_test(test_unhex_rejects_bad),
        cmocka_unit_test(test_random_fills),
        cmocka_unit_test(test_random_per_thread),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_str_equal),
        cmocka_unit_test(test_ed25519_rfc8032_test1_keys),
        cmocka_unit_test(test_ed25519_rfc8032_test1_sign),
        cmocka_unit_test(test_ed25519_verify_rejects_flipped_bit),
        cmocka_unit_test(test_ed25519_keygen_sign_verify),
        cmocka_unit_test(test_seed_parse_pem_vectors),
        cmocka_unit_test(test_seed_to_pem_vector),
        cmocka_unit_test(test_seed_pem_round_trip),
        cmocka_unit_test(test_seed_to_pem_too_small),
        cmocka_unit_test(test_seed_parse_base64),
        cmocka_unit_test(test_seed_parse_rejects_bad_base64),
        cmocka_unit_test(test_seed_parse_rejects_garbage_pem),
        cmocka_unit_test(test_seed_parse_rejects_wrong_key_kinds),
        cmocka_unit_test(test_pem_interop_with_openssl_cli),
        cmocka_unit_test(test_secret_alloc_free),
        cmocka_unit_test(test_wipe),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
