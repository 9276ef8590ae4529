/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of tokend's domain code without Redis: token text parsing, keyed hashing,
 * grace-successor sealing, user-agent parsing, fingerprints and the fingerprint policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../tokend/config.h"
#include "../../tokend/fingerprint.h"
#include "../../tokend/request.h"
#include "../../tokend/service.h"
#include "../../tokend/token.h"
#include "shared/crypto.h"

#define KEY_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* bytes 0..31 */
#define KNOWN_TOKEN "rt1.AAECAwQFBgcICQoLDA0ODw.ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM"

static int setup(void **state)
{
    (void)state;
    return crypto_init();
}

static void load_keys(struct tok_keys *k, const char *prev)
{
    char err[160];
    assert_int_equal(tok_keys_load(k, KEY_B64, prev, err, sizeof(err)), 0);
}

static void test_parse_known_token(void **state)
{
    struct tok_token t;
    (void)state;
    assert_int_equal(tok_parse(KNOWN_TOKEN, strlen(KNOWN_TOKEN), &t), 0);
    assert_string_equal(t.family, "AAECAwQFBgcICQoLDA0ODw");
    for (int i = 0; i < TOK_SECRET_BYTES; i++)
        assert_int_equal(t.secret[i], 100 + i);
    assert_string_equal(t.text, KNOWN_TOKEN);
}

static void test_parse_rejects_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "rt1.",
        "rt2.AAECAwQFBgcICQoLDA0ODw.ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM", /* prefix */
        "RT1.AAECAwQFBgcICQoLDA0ODw.ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM",
        "rt1.AAECAwQFBgcICQoLDA0OD.ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoMx", /* lengths */
        "rt1.AAECAwQFBgcICQoLDA0ODw.ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgo",
        "rt1.AAECAwQFBgcICQoLDA0ODw.ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoMM",
        "rt1.AAECAwQFBgcICQoLDA0ODw.ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM", /* std b64 */
        "rt1.AAECAwQFBgcICQoLDA0ODw.ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CB.oM", /* dots */
        "rt1.AAECAwQFBgcICQoLDA0ODw.ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoN", /* bits */
        "rt1.AAECAwQFBgcICQoLDA0ODx.ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM",
        "rt1.AAECAwQFBgcICQoLDA0ODw=ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM",
        "rt1.AAECAwQFBgcICQoLDA0O w.ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM",
    };
    struct tok_token t;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tok_parse(bad[i], strlen(bad[i]), &t) != -1)
            fail_msg("accepted malformed token #%zu: %s", i, bad[i]);
    }
    /* An embedded NUL makes the length disagree with the text. */
    char nul[] = KNOWN_TOKEN;
    nul[30] = '\0';
    assert_int_equal(tok_parse(nul, sizeof(nul) - 1, &t), -1);
}

static void test_mint_roundtrip(void **state)
{
    struct tok_token a, b, parsed;
    (void)state;
    tok_mint(&a, NULL);
    tok_mint(&b, a.family);
    assert_int_equal(strlen(a.text), TOK_TEXT_LEN);
    assert_string_equal(a.family, b.family);
    assert_memory_not_equal(a.secret, b.secret, TOK_SECRET_BYTES);
    assert_int_equal(tok_parse(b.text, strlen(b.text), &parsed), 0);
    assert_memory_equal(parsed.secret, b.secret, TOK_SECRET_BYTES);
    assert_true(tok_family_valid(a.family, strlen(a.family)));
    assert_false(tok_family_valid("short", 5));
}

static void test_hash_is_hmac_of_secret(void **state)
{
    struct tok_keys k;
    struct tok_token t;
    char hex[TOK_HASH_HEX_LEN + 1];
    (void)state;
    load_keys(&k, NULL);
    assert_int_equal(tok_parse(KNOWN_TOKEN, strlen(KNOWN_TOKEN), &t), 0);
    assert_int_equal(tok_hash(&k, 0, &t, hex), 0);
    assert_string_equal(hex, "1cb9dbd028774bae7ba8e2fd9890a3d6836fb24774fc337a7d56ee8f7436d62e");
    assert_int_equal(tok_hash(&k, 1, &t, hex), -1); /* no previous key */
    assert_string_equal(hex, "");
    tok_keys_free(&k);
}

static void test_keys_reject_short_or_bad(void **state)
{
    struct tok_keys k;
    char err[160];
    (void)state;
    assert_int_equal(
        tok_keys_load(&k, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", NULL, err, sizeof(err)),
        -1); /* 31 bytes */
    assert_non_null(strstr(err, "TOKEN_HASH_KEY"));
    assert_int_equal(tok_keys_load(&k, "not base64!", NULL, err, sizeof(err)), -1);
    assert_int_equal(tok_keys_load(&k, KEY_B64, "short", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "TOKEN_HASH_KEY_PREVIOUS"));
    assert_null(k.hash_key);
}

static void test_seal_roundtrip_and_binding(void **state)
{
    struct tok_keys k, other;
    struct tok_token t, back, t2;
    char sealed[TOK_SEALED_MAX];
    char err[160];
    (void)state;
    load_keys(&k, NULL);
    tok_mint(&t, NULL);
    assert_int_equal(tok_seal(&k, &t, sealed, sizeof(sealed)), 0);
    assert_null(strstr(sealed, t.text + 27)); /* the secret is not in the clear */
    assert_int_equal(tok_unseal(&k, t.family, sealed, &back), 0);
    assert_string_equal(back.text, t.text);
    /* Bound to its family (associated data) and its key. */
    tok_mint(&t2, NULL);
    assert_int_equal(tok_unseal(&k, t2.family, sealed, &back), -1);
    assert_int_equal(tok_keys_load(&other, "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=", NULL,
                                   err, sizeof(err)),
                     0);
    assert_int_equal(tok_unseal(&other, t.family, sealed, &back), -1);
    /* After a key rotation the previous key still opens it. */
    tok_keys_free(&other);
    assert_int_equal(tok_keys_load(&other, "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=", KEY_B64,
                                   err, sizeof(err)),
                     0);
    assert_int_equal(tok_unseal(&other, t.family, sealed, &back), 0);
    /* Tampering is detected. */
    sealed[40] = sealed[40] == 'A' ? 'B' : 'A';
    assert_int_equal(tok_unseal(&k, t.family, sealed, &back), -1);
    assert_int_equal(tok_seal(&k, &t, sealed, 10), -1);
    tok_keys_free(&k);
    tok_keys_free(&other);
}

static void expect_ua(const char *ua, const char *product, long major)
{
    struct tok_ua out;
    int found = tok_ua_parse(ua, strlen(ua), &out);
    assert_int_equal(found, product[0] != '\0');
    assert_string_equal(out.product, product);
    assert_int_equal(out.major, major);
}

static void test_ua_products(void **state)
{
    (void)state;
    expect_ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36",
              "Chrome", 120);
    expect_ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
              "Edg", 120);
    expect_ua("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0",
              "OPR", 106);
    expect_ua("Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
              "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
              "SamsungBrowser", 23);
    expect_ua("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
              "CriOS", 120);
    expect_ua("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) FxiOS/121.0 Mobile/15E148 Safari/605.1.15",
              "FxiOS", 121);
    expect_ua("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "Firefox",
              121);
    expect_ua("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
              "Gecko) Version/17.4.1 Safari/605.1.15",
              "Version", 17);
    expect_ua("Chrome/120", "Chrome", 120);
}

static void test_ua_unrecognised(void **state)
{
    (void)state;
    expect_ua("curl/8.4.0", "", 0);
    expect_ua("", "", 0);
    expect_ua("XChrome/120.0", "", 0);       /* not at a token boundary */
    expect_ua("Chrome/", "", 0);             /* no version */
    expect_ua("Chrome/abc.1", "", 0);        /* not a number */
    expect_ua("Chrome 120.0", "", 0);        /* no slash */
    expect_ua("Chrome/120abc", "", 0);       /* junk after the major */
    expect_ua("Chrome/1234567890.0", "", 0); /* absurd major */
    expect_ua("Chrome/x Firefox/99.1", "Firefox", 99);
}

static void test_ua_hash_and_fingerprint_vectors(void **state)
{
    const char *ua = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
    char h[TOK_UA_HASH_LEN + 1], fp[TOK_FP_HEX_LEN + 1];
    (void)state;
    tok_ua_hash(ua, strlen(ua), h);
    assert_string_equal(h, "076aaa5ea79fdbb8");
    tok_fingerprint("d-1", h, "", fp);
    assert_string_equal(fp, "02a0fc73c92a5b3b04e15fa04f0eb24d14f4b0cb5dc8c6b055e41ac5eb9d6876");
    tok_fingerprint("d-1", h, "t13d1516h2_8daaf6152771_b186095e22b6", fp);
    assert_string_equal(fp, "59f1047b4e63b67215c5e5741f6018a30cf1baa11d09941326f9eb8e68c0cdfc");
}

/* The policy verdict for a stored Chrome 120 client against a presented variant. */
static struct tok_fp_result verdict(const char *device, const char *uah, const char *product,
                                    long major, const char *tls, enum tok_ua_policy ua,
                                    enum tok_tls_policy tp)
{
    struct tok_fp stored = {"d-1", "aaaaaaaaaaaaaaaa", "Chrome", 120, "ja4-x"};
    struct tok_fp given = {device, uah, product, major, tls};
    struct tok_fp_result r;
    tok_fp_check(&stored, &given, ua, tp, &r);
    return r;
}

static void test_policy_device_and_ua(void **state)
{
    struct tok_fp_result r;
    (void)state;
    r = verdict("d-1", "aaaaaaaaaaaaaaaa", "Chrome", 120, "ja4-x", TOK_UA_UPGRADE, TOK_TLS_SOFT);
    assert_int_equal(r.refused, 0);
    assert_int_equal(r.drift, 0);
    assert_false(r.rebound);
    r = verdict("d-2", "aaaaaaaaaaaaaaaa", "Chrome", 120, "ja4-x", TOK_UA_UPGRADE, TOK_TLS_SOFT);
    assert_int_equal(r.refused, TOK_FP_DEVICE);
    /* Chrome 120 -> 121: an upgrade; re-bound under upgrade, refused under strict. */
    r = verdict("d-1", "bbbbbbbbbbbbbbbb", "Chrome", 121, "ja4-x", TOK_UA_UPGRADE, TOK_TLS_SOFT);
    assert_int_equal(r.refused, 0);
    assert_true(r.rebound);
    assert_int_equal(r.drift, TOK_FP_UA);
    r = verdict("d-1", "bbbbbbbbbbbbbbbb", "Chrome", 121, "ja4-x", TOK_UA_STRICT, TOK_TLS_SOFT);
    assert_int_equal(r.refused, TOK_FP_UA);
    assert_false(r.rebound);
    /* Same major, other text (Safari 17.4 -> 17.4.1 style) passes under upgrade. */
    r = verdict("d-1", "cccccccccccccccc", "Chrome", 120, "ja4-x", TOK_UA_UPGRADE, TOK_TLS_SOFT);
    assert_int_equal(r.refused, 0);
    /* Downgrade, browser switch, unrecognised: refused under both. */
    for (int p = TOK_UA_STRICT; p <= TOK_UA_UPGRADE; p++) {
        r = verdict("d-1", "bbbbbbbbbbbbbbbb", "Chrome", 119, "ja4-x", p, TOK_TLS_SOFT);
        assert_int_equal(r.refused, TOK_FP_UA);
        r = verdict("d-1", "bbbbbbbbbbbbbbbb", "Firefox", 130, "ja4-x", p, TOK_TLS_SOFT);
        assert_int_equal(r.refused, TOK_FP_UA);
        r = verdict("d-1", "bbbbbbbbbbbbbbbb", "", 0, "ja4-x", p, TOK_TLS_SOFT);
        assert_int_equal(r.refused, TOK_FP_UA);
    }
    r = verdict("d-2", "bbbbbbbbbbbbbbbb", "Chrome", 119, "ja4-x", TOK_UA_UPGRADE, TOK_TLS_SOFT);
    assert_int_equal(r.refused, TOK_FP_DEVICE | TOK_FP_UA);
}

static void test_policy_tls(void **state)
{
    struct tok_fp_result r;
    const char *uah = "aaaaaaaaaaaaaaaa";
    (void)state;
    r = verdict("d-1", uah, "Chrome", 120, "ja4-y", TOK_UA_UPGRADE, TOK_TLS_IGNORE);
    assert_int_equal(r.refused, 0);
    assert_int_equal(r.drift, 0);
    r = verdict("d-1", uah, "Chrome", 120, "ja4-y", TOK_UA_UPGRADE, TOK_TLS_SOFT);
    assert_int_equal(r.refused, 0);
    assert_int_equal(r.drift, TOK_FP_TLS);
    r = verdict("d-1", uah, "Chrome", 120, "", TOK_UA_UPGRADE, TOK_TLS_SOFT); /* disappeared */
    assert_int_equal(r.refused, 0);
    assert_int_equal(r.drift, TOK_FP_TLS);
    r = verdict("d-1", uah, "Chrome", 120, "ja4-y", TOK_UA_UPGRADE, TOK_TLS_STRICT);
    assert_int_equal(r.refused, TOK_FP_TLS);
    r = verdict("d-1", uah, "Chrome", 120, "", TOK_UA_UPGRADE, TOK_TLS_STRICT);
    assert_int_equal(r.refused, TOK_FP_TLS);
    r = verdict("d-1", uah, "Chrome", 120, "ja4-x", TOK_UA_UPGRADE, TOK_TLS_STRICT);
    assert_int_equal(r.refused, 0);
}

static void test_fp_lists(void **state)
{
    (void)state;
    assert_int_equal(tok_fp_parse_list(""), 0);
    assert_int_equal(tok_fp_parse_list("device_id"), TOK_FP_DEVICE);
    assert_int_equal(tok_fp_parse_list("user_agent,tls"), TOK_FP_UA | TOK_FP_TLS);
    assert_int_equal(tok_fp_parse_list("device_id,user_agent,tls"), 7);
    assert_int_equal(tok_fp_parse_list("xtls,tlsx"), 0);
    assert_string_equal(tok_fp_name(TOK_FP_UA), "user_agent");
    assert_null(tok_fp_name(8));
}

static void test_id_rules(void **state)
{
    char big[TOK_ID_MAX + 2];
    (void)state;
    assert_true(tok_id_ok("u-42", 4));
    assert_false(tok_id_ok("", 0));
    assert_false(tok_id_ok("a{b", 3));
    assert_false(tok_id_ok("a}b", 3));
    assert_false(tok_id_ok("a\nb", 3));
    memset(big, 'a', sizeof(big));
    assert_true(tok_id_ok(big, TOK_ID_MAX));
    assert_false(tok_id_ok(big, TOK_ID_MAX + 1));
}

static void clear_env(void)
{
    static const char *const names[] = {"TOKEN_HASH_KEY",
                                        "TOKEN_HASH_KEY_FILE",
                                        "TOKEN_HASH_KEY_PREVIOUS",
                                        "TOKEN_IDLE_TTL",
                                        "TOKEN_ABSOLUTE_TTL",
                                        "TOKEN_REUSE_GRACE",
                                        "TOKEN_FP_UA",
                                        "TOKEN_FP_TLS",
                                        "TOKEN_ON_FP_MISMATCH",
                                        "TOKEN_MAX_FAMILIES_PER_USER",
                                        NULL};
    for (int i = 0; names[i]; i++)
        unsetenv(names[i]);
}

static void test_conf_defaults(void **state)
{
    struct tok_config conf;
    (void)state;
    clear_env();
    setenv("TOKEN_HASH_KEY", KEY_B64, 1);
    struct cfg *c = cfg_create();
    assert_int_equal(tok_config_load(&conf, c), 0);
    assert_int_equal(conf.idle_ttl_ms, 14LL * 86400000);
    assert_int_equal(conf.absolute_ttl_ms, 90LL * 86400000);
    assert_int_equal(conf.grace_ms, 10000);
    assert_int_equal(conf.ua_policy, TOK_UA_UPGRADE);
    assert_int_equal(conf.tls_policy, TOK_TLS_SOFT);
    assert_false(conf.revoke_on_mismatch);
    assert_int_equal(conf.max_families, 100);
    assert_int_equal(conf.keys.hash_len, 32);
    assert_null(conf.keys.prev_key);
    tok_config_free(&conf);
    cfg_free(c);
    setenv("TOKEN_REUSE_GRACE", "0", 1);
    setenv("TOKEN_FP_UA", "strict", 1);
    setenv("TOKEN_FP_TLS", "ignore", 1);
    setenv("TOKEN_ON_FP_MISMATCH", "revoke", 1);
    setenv("TOKEN_HASH_KEY_PREVIOUS", "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=", 1);
    c = cfg_create();
    assert_int_equal(tok_config_load(&conf, c), 0);
    assert_int_equal(conf.grace_ms, 0);
    assert_int_equal(conf.ua_policy, TOK_UA_STRICT);
    assert_int_equal(conf.tls_policy, TOK_TLS_IGNORE);
    assert_true(conf.revoke_on_mismatch);
    assert_non_null(conf.keys.prev_key);
    tok_config_free(&conf);
    cfg_free(c);
    clear_env();
}

static void test_conf_bad_values(void **state)
{
    static const struct {
        const char *name, *value;
    } bad[] = {
        {"TOKEN_HASH_KEY", "c2hvcnQ="},
        {"TOKEN_HASH_KEY", "%%%"},
        {"TOKEN_HASH_KEY_PREVIOUS", "c2hvcnQ="},
        {"TOKEN_IDLE_TTL", "14"},
        {"TOKEN_IDLE_TTL", "0"},
        {"TOKEN_ABSOLUTE_TTL", "forever"},
        {"TOKEN_REUSE_GRACE", "-1s"},
        {"TOKEN_FP_UA", "loose"},
        {"TOKEN_FP_TLS", "hard"},
        {"TOKEN_ON_FP_MISMATCH", "ignore"},
        {"TOKEN_MAX_FAMILIES_PER_USER", "0"},
    };
    struct tok_config conf;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        clear_env();
        setenv("TOKEN_HASH_KEY", KEY_B64, 1);
        setenv(bad[i].name, bad[i].value, 1);
        struct cfg *c = cfg_create();
        assert_int_equal(tok_config_load(&conf, c), -1);
        assert_true(cfg_failed(c));
        if (!strstr(cfg_errstr(c), bad[i].name))
            fail_msg("%s=%s: error does not name it: %s", bad[i].name, bad[i].value, cfg_errstr(c));
        tok_config_free(&conf);
        cfg_free(c);
    }
    clear_env();
    struct cfg *c = cfg_create();
    assert_int_equal(tok_config_load(&conf, c), -1); /* no key at all */
    assert_non_null(strstr(cfg_errstr(c), "TOKEN_HASH_KEY"));
    cfg_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_known_token),
        cmocka_unit_test(test_parse_rejects_malformed),
        cmocka_unit_test(test_mint_roundtrip),
        cmocka_unit_test(test_hash_is_hmac_of_secret),
        cmocka_unit_test(test_keys_reject_short_or_bad),
        cmocka_unit_test(test_seal_roundtrip_and_binding),
        cmocka_unit_test(test_ua_products),
        cmocka_unit_test(test_ua_unrecognised),
        cmocka_unit_test(test_ua_hash_and_fingerprint_vectors),
        cmocka_unit_test(test_policy_device_and_ua),
        cmocka_unit_test(test_policy_tls),
        cmocka_unit_test(test_fp_lists),
        cmocka_unit_test(test_id_rules),
        cmocka_unit_test(test_conf_defaults),
        cmocka_unit_test(test_conf_bad_values),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
