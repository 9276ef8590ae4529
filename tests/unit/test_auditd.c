/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of auditd's domain modules: Ed25519 vectors and key loading, event
 * validation, the canonical entry body, the verifier's tamper detection, checkpoints, the
 * guard's rule and its state file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../auditd/checkpoint.h"
#include "../../auditd/entry.h"
#include "../../auditd/guard.h"
#include "../../auditd/keyring.h"
#include "../../auditd/state.h"
#include "../../auditd/verify.h"
#include "shared/config.h"
#include "shared/crypto.h"

/* RFC 8032 section 7.1, TEST 1 (empty message). */
static const char RFC_SK[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char RFC_PK[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
static const char RFC_SIG[] = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8"
                              "821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

/* Made by `openssl genpkey -algorithm ed25519`; public key from `openssl pkey -pubout`. */
static const char OPENSSL_PEM[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEILE3YGx6DtLNnvNCrY4n0ipnM6Fse737vgsN1aj7YI4p\n"
    "-----END PRIVATE KEY-----\n";
static const char OPENSSL_PK[] = "VJ6TyIM4n1zCQy1kRjHC6x0KMaukvOXysqwqspb7+fc=";

static int setup(void **state)
{
    (void)state;
    return crypto_init();
}

static void test_rfc8032_vector(void **state)
{
    (void)state;
    uint8_t seed[32], pk[32], sk[64], sig[64], want_pk[32], want_sig[64];
    assert_int_equal(crypto_unhex(RFC_SK, 64, seed, 32), 0);
    assert_int_equal(crypto_unhex(RFC_PK, 64, want_pk, 32), 0);
    assert_int_equal(crypto_unhex(RFC_SIG, 128, want_sig, 64), 0);
    crypto_ed25519_from_seed(seed, pk, sk);
    assert_memory_equal(pk, want_pk, 32);
    crypto_ed25519_sign(sk, "", 0, sig);
    assert_memory_equal(sig, want_sig, 64);
    assert_int_equal(crypto_ed25519_verify(pk, "", 0, sig), 1);
    sig[0] ^= 1;
    assert_int_equal(crypto_ed25519_verify(pk, "", 0, sig), 0);
}

/* Keys load from PEM (an openssl-made key) and from a base64 seed, versioned, and the
 * highest private version is active. */
static void test_keyring_env(void **state)
{
    (void)state;
    uint8_t seed[32];
    char seed64[48];
    crypto_unhex(RFC_SK, 64, seed, 32);
    crypto_b64(seed, 32, seed64, sizeof(seed64));
    setenv("AUDIT_PRIVATE_KEY_V1", OPENSSL_PEM, 1);
    setenv("AUDIT_PRIVATE_KEY_V2", seed64, 1);
    struct cfg *c = cfg_create();
    struct audit_keyring *kr = audit_keyring_from_env(c, "warden-audit/default", 1);
    assert_non_null(kr);
    assert_false(cfg_failed(c));
    assert_int_equal(kr->n, 2);
    assert_string_equal(kr->keys[0].name, "v1");
    assert_string_equal(kr->keys[0].pk_b64, OPENSSL_PK);
    assert_string_equal(kr->keys[kr->active].name, "v2");
    char hex[65];
    crypto_hex(kr->keys[1].pk, 32, hex);
    assert_string_equal(hex, RFC_PK);
    audit_keyring_free(kr);
    cfg_free(c);
    /* Held back: AUDIT_ACTIVE_KEY_VERSION=v1 keeps v1 signing. */
    setenv("AUDIT_ACTIVE_KEY_VERSION", "v1", 1);
    c = cfg_create();
    kr = audit_keyring_from_env(c, "o", 1);
    assert_string_equal(kr->keys[kr->active].name, "v1");
    audit_keyring_free(kr);
    cfg_free(c);
    unsetenv("AUDIT_ACTIVE_KEY_VERSION");
    unsetenv("AUDIT_PRIVATE_KEY_V1");
    unsetenv("AUDIT_PRIVATE_KEY_V2");
}

static void test_keyring_missing_key(void **state)
{
    (void)state;
    struct cfg *c = cfg_create();
    struct audit_keyring *kr = audit_keyring_from_env(c, "o", 1);
    assert_true(cfg_failed(c));
    assert_non_null(strstr(cfg_errstr(c), "auditd keygen"));
    audit_keyring_free(kr);
    cfg_free(c);
    setenv("AUDIT_PRIVATE_KEY", "not a key", 1);
    c = cfg_create();
    kr = audit_keyring_from_env(c, "o", 1);
    assert_true(cfg_failed(c));
    assert_null(strstr(cfg_errstr(c), "not a key")); /* key text is never echoed */
    audit_keyring_free(kr);
    cfg_free(c);
    unsetenv("AUDIT_PRIVATE_KEY");
}

static json_t *parse_event(const char *text, struct jv_error *e)
{
    json_t *in = json_loads(text, 0, NULL);
    json_t *out = audit_event_parse(in, e);
    json_decref(in);
    return out;
}

static void expect_bad(const char *text, const char *field)
{
    struct jv_error e = {0};
    json_t *in = json_loads(text, 0, NULL); /* e.field may point into it: keep it alive */
    json_t *ev = audit_event_parse(in, &e);
    if (ev)
        fail_msg("accepted: %s", text);
    assert_string_equal(e.field, field);
    json_decref(in);
}

static void test_event_validation(void **state)
{
    (void)state;
    struct jv_error e;
    json_t *ev = parse_event("{\"actor\":\"u\",\"action\":\"a\",\"event_id\":\"x:1\","
                             "\"metadata\":{\"n\":9007199254740991,\"s\":\"1.5\"}}",
                             &e);
    assert_non_null(ev);
    json_decref(ev);
    expect_bad("{\"action\":\"a\"}", "actor");
    expect_bad("{\"actor\":\"u\"}", "action");
    expect_bad("{\"actor\":\"u\",\"action\":\"a\",\"extra\":1}", "extra");
    expect_bad("{\"actor\":\"u\",\"action\":\"a\",\"metadata\":{\"x\":1.5}}", "metadata");
    expect_bad("{\"actor\":\"u\",\"action\":\"a\",\"metadata\":{\"x\":9007199254740992}}",
               "metadata");
    /* Depth counts objects and arrays, metadata itself being level 1: 8 levels pass, 9 do
     * not, whatever scalar sits at the bottom. */
    ev = parse_event("{\"actor\":\"u\",\"action\":\"a\",\"metadata\":"
                     "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":[{\"h\":1}]}}}}}}}",
                     &e);
    assert_non_null(ev);
    json_decref(ev);
    expect_bad("{\"actor\":\"u\",\"action\":\"a\",\"metadata\":"
               "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":[{\"h\":[]}]}}}}}}}",
               "metadata");
    expect_bad("{\"actor\":\"u\",\"action\":\"a\",\"metadata\":{\"x\":-9007199254740992}}",
               "metadata");
    expect_bad("{\"actor\":\"u\",\"action\":\"a\",\"metadata\":{\"x\":1e3}}", "metadata");
    expect_bad("{\"actor\":\"\",\"action\":\"a\"}", "actor");
    expect_bad("{\"actor\":1,\"action\":\"a\"}", "actor");
    expect_bad("{\"actor\":\"u\",\"action\":\"a\",\"metadata\":[1]}", "metadata");
    expect_bad("{\"actor\":\"u\",\"action\":\"a\",\"event_id\":\"\"}", "event_id");
    expect_bad("{\"actor\":\"auditd\",\"action\":\"a\"}", "actor");
    expect_bad("{\"actor\":\"u\",\"action\":\"audit.key_activated\"}", "action");
    expect_bad("{\"actor\":\"u\",\"action\":\"a\",\"event_id\":\"a b\"}", "event_id");
    char big[20000];
    snprintf(big, sizeof(big), "{\"actor\":\"u\",\"action\":\"a\",\"metadata\":{\"x\":\"%0*d\"}}",
             17000, 0);
    expect_bad(big, "metadata");
}

/* The body is compact JSON with keys sorted bytewise, nested ones too. */
static void test_body_canonical(void **state)
{
    (void)state;
    uint8_t seed[32], pk[32], sk[64], md[32], sig[64];
    struct jv_error e;
    crypto_unhex(RFC_SK, 64, seed, 32);
    crypto_ed25519_from_seed(seed, pk, sk);
    json_t *ev = parse_event("{\"resource\":\"r\",\"actor\":\"user:42\",\"action\":\"t.r\","
                             "\"metadata\":{\"z\":1,\"B\":[2,{\"y\":1,\"a\":0}]}}",
                             &e);
    struct audit_entry en = {.seq = 42};
    memcpy(en.prev, AUDIT_ZERO_HASH, 65);
    snprintf(en.ts, sizeof(en.ts), "2026-11-22T10:00:00.123Z");
    snprintf(en.kv, sizeof(en.kv), "v2");
    assert_int_equal(audit_entry_seal(&en, ev, sk), 0);
    assert_string_equal(en.body,
                        "{\"event\":{\"action\":\"t.r\",\"actor\":\"user:42\",\"metadata\":"
                        "{\"B\":[2,{\"a\":0,\"y\":1}],\"z\":1},\"resource\":\"r\"},\"kv\":\"v2\","
                        "\"prev\":\"" AUDIT_ZERO_HASH "\",\"seq\":42,\"ts\":"
                        "\"2026-11-22T10:00:00.123Z\"}");
    char hex[65];
    crypto_sha256(en.body, en.body_len, md);
    crypto_hex(md, 32, hex);
    assert_string_equal(en.hash, hex);
    assert_int_equal(crypto_unb64(en.sig, strlen(en.sig), sig, 64), 64);
    assert_int_equal(crypto_ed25519_verify(pk, md, 32, sig), 1); /* over the raw hash */
    audit_entry_clear(&en);
    json_decref(ev);
}

/* A chain of n entries signed by sk as kv, in memory. */
static struct audit_entry *make_chain(int n, const uint8_t *sk, const char *kv)
{
    struct audit_entry *c = calloc((size_t)n, sizeof(*c));
    json_t *ev = json_pack("{s:s, s:s}", "actor", "u", "action", "a");
    for (int i = 0; i < n; i++) {
        c[i].seq = i + 1;
        memcpy(c[i].prev, i ? c[i - 1].hash : AUDIT_ZERO_HASH, 65);
        audit_now_ts(c[i].ts);
        snprintf(c[i].kv, sizeof(c[i].kv), "%s", kv);
        audit_entry_seal(&c[i], ev, sk);
    }
    json_decref(ev);
    return c;
}

static struct audit_vresult run_verify(const struct audit_keyring *kr, struct audit_entry *c, int n,
                                       int threads)
{
    struct audit_vresult res;
    struct audit_verifier *v = audit_verifier_create(kr, threads, 1, NULL);
    for (int i = 0; i < n && !audit_verifier_feed(v, &c[i]); i++)
        ;
    audit_verifier_finish(v, 1, 1, c[n - 1].seq, c[n - 1].hash, &res);
    audit_verifier_free(v);
    return res;
}

static void test_verifier_tamper(void **state)
{
    (void)state;
    uint8_t seed[32] = {7}, sk[64];
    struct audit_keyring kr = {.n = 1, .active = 0};
    struct audit_key key = {.version = 1, .name = "v1"};
    kr.keys = &key;
    crypto_ed25519_from_seed(seed, key.pk, sk);
    struct audit_entry *c = make_chain(600, sk, "v1");
    for (int threads = 0; threads <= 3; threads++) {
        struct audit_vresult r = run_verify(&kr, c, 600, threads);
        assert_true(r.ok);
        assert_int_equal(r.checked, 600);
    }
    c[300].body[10] ^= 1; /* one byte of seq 301 */
    struct audit_vresult r = run_verify(&kr, c, 600, 3);
    assert_false(r.ok);
    assert_int_equal(r.first_bad_seq, 301);
    assert_int_equal(r.reason, AUDIT_HASH_MISMATCH);
    c[300].body[10] ^= 1;
    c[450].sig[5] = c[450].sig[5] == 'A' ? 'B' : 'A'; /* signature of seq 451 */
    r = run_verify(&kr, c, 600, 3);
    assert_int_equal(r.first_bad_seq, 451);
    assert_int_equal(r.reason, AUDIT_BAD_SIGNATURE);
    assert_true(audit_reason_tampered(r.reason));
    for (int i = 0; i < 600; i++)
        audit_entry_clear(&c[i]);
    free(c);
}

/* Ranges: --from-seq at or past the head, an expected head at the trusted link, a chain
 * shorter than the expectation, a missing head. exp_hash NULL: no expected head. */
static struct audit_vresult run_range(const struct audit_keyring *kr, struct audit_entry *c, int n,
                                      long long from, const char *prev, long long exp_seq,
                                      const char *exp_hash, int head_known, int head_exists)
{
    struct audit_vresult res;
    struct audit_verifier *v = audit_verifier_create(kr, 1, from, prev);
    if (exp_hash)
        audit_verifier_expect(v, exp_seq, exp_hash);
    for (int i = (int)from - 1; i < n && !audit_verifier_feed(v, &c[i]); i++)
        ;
    audit_verifier_finish(v, head_known, head_exists, c[n - 1].seq, c[n - 1].hash, &res);
    audit_verifier_free(v);
    return res;
}

static void test_verifier_ranges(void **state)
{
    (void)state;
    uint8_t seed[32] = {5}, sk[64];
    struct audit_key key = {.version = 1, .name = "v1"};
    struct audit_keyring kr = {.keys = &key, .n = 1, .active = 0};
    crypto_ed25519_from_seed(seed, key.pk, sk);
    struct audit_entry *c = make_chain(10, sk, "v1");
    /* Nothing new since the last audit: from the head + 1, 0 entries, fine. */
    struct audit_vresult r = run_range(&kr, c, 10, 11, c[9].hash, 0, NULL, 1, 1);
    assert_true(r.ok);
    assert_int_equal(r.checked, 0);
    assert_string_equal(r.last_hash, c[9].hash);
    /* ... but a wrong link there is the head not matching. */
    r = run_range(&kr, c, 10, 11, c[8].hash, 0, NULL, 1, 1);
    assert_int_equal(r.first_bad_seq, 10);
    assert_int_equal(r.reason, AUDIT_HEAD_MISMATCH);
    /* Past the head + 1: the chain is shorter than asked for. */
    r = run_range(&kr, c, 10, 13, NULL, 0, NULL, 1, 1);
    assert_int_equal(r.first_bad_seq, 11);
    assert_int_equal(r.reason, AUDIT_TRUNCATED);
    /* An expected head at from_seq - 1 is the trusted link (given, or from the first entry). */
    r = run_range(&kr, c, 10, 6, c[4].hash, 5, c[4].hash, 1, 1);
    assert_true(r.ok);
    assert_int_equal(r.checked, 5);
    r = run_range(&kr, c, 10, 6, c[4].hash, 5, c[3].hash, 1, 1);
    assert_int_equal(r.first_bad_seq, 5);
    assert_int_equal(r.reason, AUDIT_HEAD_MISMATCH);
    r = run_range(&kr, c, 10, 6, NULL, 5, c[4].hash, 0, 0);
    assert_true(r.ok);
    r = run_range(&kr, c, 10, 6, NULL, 5, c[3].hash, 0, 0);
    assert_int_equal(r.first_bad_seq, 5);
    /* An expectation beyond the end: truncated; no head record at all: head_missing. */
    r = run_range(&kr, c, 10, 1, NULL, 12, c[0].hash, 0, 0);
    assert_int_equal(r.first_bad_seq, 11);
    assert_int_equal(r.reason, AUDIT_TRUNCATED);
    assert_false(audit_reason_tampered(r.reason));
    r = run_range(&kr, c, 10, 1, NULL, 0, NULL, 1, 0);
    assert_int_equal(r.first_bad_seq, 11);
    assert_int_equal(r.reason, AUDIT_HEAD_MISSING);
    for (int i = 0; i < 10; i++)
        audit_entry_clear(&c[i]);
    free(c);
}

/* The checkpoint key id: SHA-256("warden-audit/default" || 0x0A || 0x01 || pk)[:4], with the
 * RFC 8032 test 1 public key (computed separately: 65308a54). */
static void test_key_id(void **state)
{
    (void)state;
    uint8_t pk[32], id[4];
    char hex[9];
    crypto_unhex(RFC_PK, 64, pk, 32);
    audit_key_id("warden-audit/default", pk, id);
    crypto_hex(id, 4, hex);
    assert_string_equal(hex, "65308a54");
}

#define HA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HB "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* Sign text as a note by key under origin ("— origin base64(id || sig)"), after an
 * optional other signature line (a witness's); returns the note's length. */
static int sign_note(const struct audit_key *key, const char *origin, const char *text,
                     const char *other_line, char *note, size_t size)
{
    uint8_t blob[68];
    char b64[128];
    audit_key_id(origin, key->pk, blob);
    crypto_ed25519_sign(key->sk, text, strlen(text), blob + 4);
    crypto_b64(blob, sizeof(blob), b64, sizeof(b64));
    return snprintf(note, size, "%s\n%s\xe2\x80\x94 %s %s\n", text, other_line, origin, b64);
}

static void test_checkpoint_note(void **state)
{
    (void)state;
    uint8_t seed[32] = {9};
    struct audit_key key = {.version = 1, .name = "v1"};
    struct audit_keyring kr = {.keys = &key, .n = 1};
    struct audit_cp cp = {.origin = "warden-audit/x", .has_tree = 1, .size = 42, .chain_seq = 42},
                    got;
    char note[AUDIT_NOTE_MAX], err[160];
    key.sk = malloc(64);
    crypto_ed25519_from_seed(seed, key.pk, key.sk);
    memset(cp.root, 0xff, sizeof(cp.root));
    memcpy(cp.chain_hash, AUDIT_ZERO_HASH, sizeof(cp.chain_hash));
    int n = audit_checkpoint_make(&cp, &key, note, sizeof(note));
    assert_true(n > 0);
    const char *want = "warden-audit/x\n42\n//////////////////////////////////////////8=\n"
                       "chain 42 " AUDIT_ZERO_HASH "\n\n\xe2\x80\x94 warden-audit/x ";
    assert_int_equal(strncmp(note, want, strlen(want)), 0);
    assert_int_equal(audit_checkpoint_open(note, (size_t)n, &kr, &got, err, sizeof(err)), 0);
    assert_int_equal(got.has_tree, 1);
    assert_int_equal(got.size, 42);
    assert_int_equal(got.chain_seq, 42);
    assert_memory_equal(got.root, cp.root, 32);
    assert_string_equal(got.chain_hash, AUDIT_ZERO_HASH);
    note[16] = '3'; /* size 43: the signature no longer matches */
    assert_int_equal(audit_checkpoint_open(note, (size_t)n, &kr, &got, err, sizeof(err)), -1);
    /* A witness's line before ours is passed over. */
    n = sign_note(&key, "o", "o\n7\n//////////////////////////////////////////8=\nchain 7 " HA "\n",
                  "\xe2\x80\x94 witness.example AAAA\n", note, sizeof(note));
    assert_int_equal(audit_checkpoint_open(note, (size_t)n, &kr, &got, err, sizeof(err)), 0);
    assert_int_equal(got.size, 7);
    assert_string_equal(got.chain_hash, HA);
    /* The earlier form: three lines, a chain head. */
    n = sign_note(&key, "o", "o\n5\nqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo=\n", "", note,
                  sizeof(note));
    assert_int_equal(audit_checkpoint_open(note, (size_t)n, &kr, &got, err, sizeof(err)), 0);
    assert_int_equal(got.has_tree, 0);
    assert_int_equal(got.chain_seq, 5);
    assert_string_equal(got.chain_hash, HA);
    /* A tree without our chain line, or with one at another seq, is not ours. */
    static const char *const bad[] = {
        "o\n7\n//////////////////////////////////////////8=\nother ext\n",
        "o\n7\n//////////////////////////////////////////8=\nchain 6 " HA "\n",
        "o\n07\n//////////////////////////////////////////8=\nchain 7 " HA "\n",
        "o\n7\n//////////////////////////////////////////8=\nchain 7 " HA "\nchain 7 " HA "\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = sign_note(&key, "o", bad[i], "", note, sizeof(note));
        assert_int_equal(audit_checkpoint_open(note, (size_t)n, &kr, &got, err, sizeof(err)), -1);
    }
    free(key.sk);
}

/* The rule audit_append.lua applies too: the chain must hold the floor. */
static void test_guard_judge(void **state)
{
    (void)state;
    struct audit_floor none = {.seq = 0, .hash = AUDIT_ZERO_HASH};
    struct audit_floor f = {.seq = 5, .hash = HA};
    assert_int_equal(audit_guard_judge(&none, 0, AUDIT_ZERO_HASH, NULL), AUDIT_CHAIN_HOLDS);
    assert_int_equal(audit_guard_judge(&f, 5, HA, NULL), AUDIT_CHAIN_HOLDS);
    assert_int_equal(audit_guard_judge(&f, 9, HB, HA), AUDIT_CHAIN_HOLDS); /* grown past it */
    assert_int_equal(audit_guard_judge(&f, 4, HA, NULL), AUDIT_CHAIN_SHORTER);
    assert_int_equal(audit_guard_judge(&f, 0, AUDIT_ZERO_HASH, NULL), AUDIT_CHAIN_SHORTER);
    assert_int_equal(audit_guard_judge(&f, 5, HB, NULL), AUDIT_CHAIN_DIFFERENT);
    assert_int_equal(audit_guard_judge(&f, 9, HA, HB), AUDIT_CHAIN_DIFFERENT);
    assert_int_equal(audit_guard_judge(&f, 9, HA, NULL), AUDIT_CHAIN_DIFFERENT); /* no entry */
}

/* Saved, read back; a file of another origin is refused; no directory, no state. */
static void test_state_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/warden-state-XXXXXX", err[4400], hash[AUDIT_HASH_HEX_LEN + 1];
    char root[AUDIT_HASH_HEX_LEN + 1], cmd[600];
    long long seq = -1;
    assert_non_null(mkdtemp(dir));
    struct audit_state *s = audit_state_open(dir, "c", "o/1", err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(audit_state_load(s, &seq, hash, root, err, sizeof(err)), 0); /* none yet */
    assert_int_equal(audit_state_save(s, 7, HA, "", err, sizeof(err)), 0);
    assert_int_equal(audit_state_load(s, &seq, hash, root, err, sizeof(err)), 1);
    assert_string_equal(root, "");
    assert_int_equal(audit_state_save(s, 9, HB, HA, err, sizeof(err)), 0);
    assert_int_equal(audit_state_load(s, &seq, hash, root, err, sizeof(err)), 1);
    assert_int_equal(seq, 9);
    assert_string_equal(hash, HB);
    assert_string_equal(root, HA);
    /* A file from before the tree is read; a root without its tree size is not. */
    snprintf(cmd, sizeof(cmd),
             "echo '{\"chain\":\"c\",\"hash\":\"%s\",\"origin\":\"o/1\",\"seq\":3}' > %s", HA,
             audit_state_path(s));
    assert_int_equal(system(cmd), 0);
    assert_int_equal(audit_state_load(s, &seq, hash, root, err, sizeof(err)), 1);
    assert_int_equal(seq, 3);
    assert_string_equal(root, "");
    snprintf(cmd, sizeof(cmd),
             "echo '{\"chain\":\"c\",\"hash\":\"%s\",\"origin\":\"o/1\",\"root\":\"%s\","
             "\"seq\":3,\"tree_size\":2}' > %s",
             HA, HB, audit_state_path(s));
    assert_int_equal(system(cmd), 0);
    assert_int_equal(audit_state_load(s, &seq, hash, root, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "tree_size differs from seq"));
    assert_int_equal(audit_state_save(s, 9, HB, HA, err, sizeof(err)), 0);
    struct audit_state *other = audit_state_open(dir, "c", "o/2", err, sizeof(err));
    assert_int_equal(audit_state_load(other, &seq, hash, root, err, sizeof(err)), 0); /* its own */
    snprintf(cmd, sizeof(cmd), "cp %s %s", audit_state_path(s), audit_state_path(other));
    assert_int_equal(system(cmd), 0);
    assert_int_equal(audit_state_load(other, &seq, hash, root, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "belongs to another chain or origin"));
    snprintf(cmd, sizeof(cmd), "rm -r %s", dir);
    audit_state_close(s);
    audit_state_close(other);
    assert_int_equal(system(cmd), 0);
    assert_null(audit_state_open(dir, "c", "o/1", err, sizeof(err)));
    assert_non_null(strstr(err, "No such file or directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc8032_vector),
        cmocka_unit_test(test_keyring_env),
        cmocka_unit_test(test_keyring_missing_key),
        cmocka_unit_test(test_event_validation),
        cmocka_unit_test(test_body_canonical),
        cmocka_unit_test(test_verifier_tamper),
        cmocka_unit_test(test_checkpoint_note),
        cmocka_unit_test(test_verifier_ranges),
        cmocka_unit_test(test_key_id),
        cmocka_unit_test(test_guard_judge),
        cmocka_unit_test(test_state_file),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
