/* SPDX-License-Identifier: Apache-2.0 */
/* tokend's secrets: after a workload that reaches every endpoint and every refresh
 * outcome, Redis holds no token, secret or successor in any form (text, base64url,
 * base64, hex, raw — also inside values that decode), only HMACs of them; the daemons'
 * logs hold none either; every metric counted exactly; a hash-key rotation logs nobody
 * out; and the IP address plays no part. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../tokend/token.h"
#include "../lib/harness.h"
#include "shared/crypto.h"
#include "test_tokend_util.h"

#define NEW_KEY_B64 "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=" /* bytes 32..63 */

static struct th_redis redis;
static struct th_proc main_d;   /* upgrade, soft, reject, grace 10 s */
static struct th_proc strict_d; /* strict, tls strict, revoke, 2 families per user */

static int setup(void **state)
{
    (void)state;
    static const char *const mainx[] = {"TOKEN_REUSE_GRACE=10s", "LOG_LEVEL=debug", NULL};
    static const char *const strictx[] = {"TOKEN_FP_UA=strict",
                                          "TOKEN_FP_TLS=strict",
                                          "TOKEN_ON_FP_MISMATCH=revoke",
                                          "TOKEN_MAX_FAMILIES_PER_USER=2",
                                          "LOG_LEVEL=debug",
                                          NULL};
    if (th_redis_start(&redis, NULL) != 0)
        return -1;
    if (tt_start(&main_d, redis.url, mainx) || tt_start(&strict_d, redis.url, strictx))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&main_d, SIGTERM, 5000);
    th_proc_stop(&strict_d, SIGTERM, 5000);
    th_redis_stop(&redis);
    return 0;
}

static void expect_mismatch(int port, const char *token, const char *device, const char *ua,
                            const char *tls, const char *component)
{
    int st;
    json_t *j = refresh(port, token, device, ua, tls, &st);
    json_t *m = json_object_get(j, "mismatch");
    if (st != 401 || json_array_size(m) != 1 ||
        strcmp(json_string_value(json_array_get(m, 0)), component) != 0)
        fail_msg("expected mismatch [%s], got %d %s", component, st, jstr(j, "code"));
    json_decref(j);
}

static void expect_refused(int port, const char *token, const char *code)
{
    int st;
    expect_problem(refresh(port, token, "d-1", CHROME121, "ja4-a", &st), &st, 401, code);
}

/* POST /v1/tokens/revoke {"<what>":"<value>"}; returns "revoked". */
static long long revoke_by(int port, const char *what, const char *value)
{
    char body[256];
    int st;
    snprintf(body, sizeof(body), "{\"%s\":\"%s\"}", what, value);
    json_t *j = post(port, "/v1/tokens/revoke", &st, "%s", body);
    assert_int_equal(st, 200);
    long long n = json_integer_value(json_object_get(j, "revoked"));
    json_decref(j);
    return n;
}

static int http_status(int port, const char *method, const char *path)
{
    struct th_resp r;
    assert_int_equal(th_http(port, method, path, NULL, NULL, 0, &r), 0);
    int st = r.status;
    th_resp_free(&r);
    return st;
}

/* The main daemon's part: every outcome of refresh, every kind of revoke, introspect and
 * sessions, sequentially (the metrics test below counts them exactly). Live families
 * with a grace successor and a `used` set are left behind for the scan. */
static void main_workload(void)
{
    char a[80], a1[80], a2[80], g[80], t[80], path[128];
    int st;
    issue(main_d.port, "u-1", "d-1", CHROME120, "ja4-a", a);
    refresh_ok(main_d.port, a, "d-1", CHROME120, "ja4-a", a1);
    json_t *j = refresh(main_d.port, a, "d-1", CHROME120, "ja4-a", &st); /* grace */
    assert_int_equal(st, 200);
    assert_string_equal(jstr(j, "refresh_token"), a1);
    json_decref(j);
    expect_mismatch(main_d.port, a1, "d-2", CHROME120, "ja4-a", "device_id");
    refresh_ok(main_d.port, a1, "d-1", CHROME121, "", a2); /* re-bound; tls drift */
    expect_mismatch(main_d.port, a2, "d-1", FIREFOX, "ja4-a", "user_agent");
    expect_refused(main_d.port, a, "token_reused"); /* neither current nor parent */
    expect_refused(main_d.port, a2, "invalid_grant");
    expect_refused(main_d.port, "rt1.malformed", "invalid_grant");
    issue(main_d.port, "u-2", "d-1", CHROME120, "", t);
    assert_int_equal(revoke_by(main_d.port, "token", t), 1);
    issue(main_d.port, "u-2", "d-1", CHROME120, "", t);
    char fam[23];
    snprintf(fam, sizeof(fam), "%.22s", t + 4);
    assert_int_equal(revoke_by(main_d.port, "family_id", fam), 1);
    issue(main_d.port, "u-3", "d-1", CHROME120, "", t);
    issue(main_d.port, "u-3", "d-2", CHROME120, "", t);
    assert_int_equal(revoke_by(main_d.port, "user_id", "u-3"), 2);
    issue(main_d.port, "u-4", "d-1", CHROME120, "", t);
    snprintf(path, sizeof(path), "/v1/users/u-4/sessions/%.22s", t + 4);
    assert_int_equal(http_status(main_d.port, "DELETE", path), 200);
    /* Left alive: one family inside its grace window, one with a longer history. */
    issue(main_d.port, "u-5", "d-1", CHROME120, "ja4-a", g);
    refresh_ok(main_d.port, g, "d-1", CHROME120, "ja4-a", t);
    j = post(main_d.port, "/v1/tokens/introspect", &st, "{\"token\":\"%s\"}", t);
    assert_true(json_is_true(json_object_get(j, "active")));
    json_decref(j);
    j = post(main_d.port, "/v1/tokens/introspect", &st, "{\"token\":\"%s\"}", g);
    assert_true(json_is_false(json_object_get(j, "active")));
    json_decref(j);
    assert_int_equal(http_status(main_d.port, "GET", "/v1/users/u-5/sessions"), 200);
    issue(main_d.port, "u-6", "d-1", CHROME120, "", t);
    refresh_ok(main_d.port, t, "d-1", CHROME120, "", t);
    refresh_ok(main_d.port, t, "d-1", CHROME120, "", t);
}

/* The strict daemon's part: revoke on mismatch, and the per-user cap. */
static void strict_workload(void)
{
    char p[80], q[80];
    issue(strict_d.port, "u-7", "d-1", CHROME120, "ja4-a", p);
    expect_mismatch(strict_d.port, p, "d-1", CHROME121, "ja4-a", "user_agent");
    for (int i = 0; i < 3; i++) {
        issue(strict_d.port, "u-8", "d-1", CHROME120, "", q);
        usleep(5 * 1000);
    }
    issue(strict_d.port, "u-9", "d-1", CHROME120, "ja4-a", p);
    refresh_ok(strict_d.port, p, "d-1", CHROME120, "ja4-a", p);
}

static void test_workload(void **state)
{
    (void)state;
    main_workload();
    strict_workload();
}

/* The value of one series in a /metrics text; 0 when the series is absent. */
static long long series(const char *text, const char *name)
{
    char needle[160];
    snprintf(needle, sizeof(needle), "\n%s ", name);
    const char *p = strstr(text, needle);
    return p ? atoll(p + strlen(needle)) : 0;
}

static void expect_series(const char *text, const char *name, long long want)
{
    long long got = series(text, name);
    if (got != want)
        fail_msg("%s: expected %lld, got %lld", name, want, got);
}

static void test_metrics_exact(void **state)
{
    static const struct {
        const char *name;
        long long main_n, strict_n;
    } want[] = {
        {"tokend_issued_total", 8, 5},
        {"tokend_refresh_total{outcome=\"ok\"}", 5, 1},
        {"tokend_refresh_total{outcome=\"grace\"}", 1, 0},
        {"tokend_refresh_total{outcome=\"mismatch\"}", 2, 1},
        {"tokend_refresh_total{outcome=\"reused\"}", 1, 0},
        {"tokend_refresh_total{outcome=\"invalid\"}", 2, 0},
        {"tokend_revoked_total{reason=\"reuse\"}", 1, 0},
        {"tokend_revoked_total{reason=\"token\"}", 1, 0},
        {"tokend_revoked_total{reason=\"family\"}", 2, 0},
        {"tokend_revoked_total{reason=\"user\"}", 2, 0},
        {"tokend_revoked_total{reason=\"cap\"}", 0, 1},
        {"tokend_revoked_total{reason=\"mismatch\"}", 0, 1},
        {"tokend_fingerprint_drift_total{component=\"device_id\"}", 1, 0},
        {"tokend_fingerprint_drift_total{component=\"user_agent\"}", 2, 1},
        {"tokend_fingerprint_drift_total{component=\"tls\"}", 1, 0},
    };
    (void)state;
    char *m = metrics_text(main_d.port), *s = metrics_text(strict_d.port);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        expect_series(m, want[i].name, want[i].main_n);
        expect_series(s, want[i].name, want[i].strict_n);
    }
    assert_non_null(strstr(m, "# TYPE tokend_refresh_total counter"));
    free(m);
    free(s);
}

/* Does buf[0..len) hold any handed-out token, secret or hash key in any encoding? Returns
 * a description of what was found, or NULL. */
static const char *holds_secret(const void *buf, size_t len)
{
    static char what[160];
    static const char *const keys[] = {KEY_B64, NEW_KEY_B64};
    for (int k = 0; k < 2; k++) {
        uint8_t raw[32];
        assert_int_equal(crypto_unb64(keys[k], strlen(keys[k]), raw, sizeof(raw)), 32);
        if (memmem(buf, len, keys[k], 43) || memmem(buf, len, raw, sizeof(raw)))
            return "a hash key";
    }
    for (int t = 0; t < tt_nseen; t++) {
        const char *tok = tt_seen[t], *b64url = tok + 27;
        uint8_t secret[32];
        char b64[48], hex[65], upper[65];
        assert_int_equal(crypto_unb64url(b64url, 43, secret, sizeof(secret)), 32);
        crypto_b64(secret, sizeof(secret), b64, sizeof(b64));
        crypto_hex(secret, sizeof(secret), hex);
        for (int i = 0; i < 65; i++)
            upper[i] = (char)toupper((unsigned char)hex[i]);
        const struct {
            const char *form;
            const void *bytes;
            size_t n;
        } forms[] = {{"token text", tok, 70},    {"base64url secret", b64url, 43},
                     {"base64 secret", b64, 43}, {"hex secret", hex, 64},
                     {"HEX secret", upper, 64},  {"raw secret", secret, 32}};
        for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
            if (memmem(buf, len, forms[f].bytes, forms[f].n)) {
                snprintf(what, sizeof(what), "the %s of %.26s...", forms[f].form, tok);
                return what;
            }
        }
    }
    return NULL;
}

static int nvalues;

/* Fail if one stored string holds a secret, as is or once decoded (base64url, base64,
 * hex): a value merely encoded is still plaintext. */
static void scan(const char *key, const char *v, size_t len)
{
    uint8_t dec[4096];
    long n;
    const char *found = holds_secret(v, len);
    if (!found && (n = crypto_unb64url(v, len, dec, sizeof(dec))) > 0)
        found = holds_secret(dec, (size_t)n);
    if (!found && (n = crypto_unb64(v, len, dec, sizeof(dec))) > 0)
        found = holds_secret(dec, (size_t)n);
    if (!found && len % 2 == 0 && len / 2 <= sizeof(dec) && crypto_unhex(v, len, dec, len / 2) == 0)
        found = holds_secret(dec, len / 2);
    if (found)
        fail_msg("%s holds %s", key, found);
    nvalues++;
}

/* Is h the hex HMAC-SHA256, under the test key, of a handed-out token's secret? */
static int is_token_hmac(const char *h)
{
    uint8_t key[32], secret[32], mac[32];
    char hex[65];
    assert_int_equal(crypto_unb64(KEY_B64, strlen(KEY_B64), key, sizeof(key)), 32);
    for (int t = 0; t < tt_nseen; t++) {
        assert_int_equal(crypto_unb64url(tt_seen[t] + 27, 43, secret, sizeof(secret)), 32);
        crypto_hmac_sha256(key, sizeof(key), secret, sizeof(secret), mac);
        crypto_hex(mac, sizeof(mac), hex);
        if (strcmp(hex, h) == 0)
            return 1;
    }
    return 0;
}

/* What was found while scanning, to show the scan was not vacuous. */
struct census {
    int families, hashes, used_members, sealed, users;
};

static void scan_hash(const char *key, const redisReply *v, struct census *c)
{
    c->families++;
    for (size_t e = 0; e + 1 < v->elements; e += 2) {
        const char *field = v->element[e]->str, *val = v->element[e + 1]->str;
        if ((strcmp(field, "current") == 0 || strcmp(field, "parent") == 0) && val[0]) {
            if (!is_token_hmac(val))
                fail_msg("%s %s is not the HMAC of a token handed out", key, field);
            c->hashes++;
        }
        if (strcmp(field, "grace_successor") == 0)
            c->sealed++;
    }
}

static void scan_key(const char *key, struct census *c)
{
    redisReply *type = th_redis_cmd(&redis, "TYPE %s", key);
    redisReply *v = NULL;
    /* The layout: tok:{<family_id>}:f and :used (one slot per family), tok:user:{<id>}. */
    size_t klen = strlen(key);
    int family_key_ok = klen > 28 && strncmp(key, "tok:{", 5) == 0 && key[27] == '}' &&
                        tok_family_valid(key + 5, 22) &&
                        (strcmp(key + 28, ":f") == 0 || strcmp(key + 28, ":used") == 0);
    int user_key_ok = strncmp(key, "tok:user:{", 10) == 0 && key[klen - 1] == '}';
    if (!family_key_ok && !user_key_ok)
        fail_msg("a key outside tokend's layout: %s", key);
    scan(key, key, strlen(key)); /* the key's name too */
    if (strcmp(type->str, "hash") == 0)
        v = th_redis_cmd(&redis, "HGETALL %s", key);
    else if (strcmp(type->str, "set") == 0)
        v = th_redis_cmd(&redis, "SMEMBERS %s", key);
    else if (strcmp(type->str, "zset") == 0)
        v = th_redis_cmd(&redis, "ZRANGE %s 0 -1 WITHSCORES", key);
    else if (strcmp(type->str, "string") == 0)
        v = th_redis_cmd(&redis, "GET %s", key);
    else if (strcmp(type->str, "none") != 0) /* "none": expired meanwhile */
        fail_msg("%s: unexpected type %s", key, type->str);
    if (v && v->type == REDIS_REPLY_STRING)
        scan(key, v->str, v->len);
    for (size_t e = 0; v && v->type == REDIS_REPLY_ARRAY && e < v->elements; e++)
        scan(key, v->element[e]->str, v->element[e]->len);
    if (v && strcmp(type->str, "hash") == 0)
        scan_hash(key, v, c);
    for (size_t e = 0; v && strcmp(type->str, "set") == 0 && e < v->elements; e++) {
        if (!is_token_hmac(v->element[e]->str))
            fail_msg("%s holds something other than a token's HMAC", key);
        c->used_members++;
    }
    c->users += strcmp(type->str, "zset") == 0;
    freeReplyObject(v);
    freeReplyObject(type);
}

/* Read every key in Redis (SCAN) and every value: hash fields and values, set and zset
 * members, strings. */
static void test_redis_holds_only_hmacs(void **state)
{
    struct census c = {0};
    char cursor[32] = "0";
    (void)state;
    assert_true(tt_nseen >= 20);
    do {
        redisReply *r = th_redis_cmd(&redis, "SCAN %s COUNT 1000", cursor);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++)
            scan_key(r->element[1]->element[i]->str, &c);
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    /* What the workload left: 13 families (live and revoked) with their hashes; the user
     * indexes not emptied by a revoke-by-user or a session delete; 6 rotated-out hashes;
     * the 3 sealed successors of the live rotated families. */
    assert_int_equal(c.families, 13);
    assert_int_equal(c.users, 7);
    assert_true(c.hashes >= c.families);
    assert_int_equal(c.used_members, 6);
    assert_int_equal(c.sealed, 3);
    assert_true(nvalues > 400);
}

/* The daemons' logs (LOG_LEVEL=debug) after the workload: no token, secret or key. */
static void test_logs_hold_no_secrets(void **state)
{
    struct th_proc *procs[] = {&main_d, &strict_d};
    (void)state;
    for (int p = 0; p < 2; p++) {
        char *log = th_proc_log(procs[p]);
        assert_non_null(log);
        /* A real log of this workload: access lines of refreshes, the revocations. */
        assert_non_null(strstr(log, "/v1/tokens/refresh"));
        assert_non_null(strstr(log, p == 0 ? "rotated-out token" : "fingerprint mismatch"));
        const char *found = holds_secret(log, strlen(log));
        if (found)
            fail_msg("the log of daemon %d holds %s", p, found);
        free(log);
    }
}

/* After a hash-key rotation (old key as TOKEN_HASH_KEY_PREVIOUS) old tokens still
 * refresh, their successors are hashed under the new key only, and a successor sealed
 * under the old key still opens inside its grace window. */
static void test_hash_key_rotation(void **state)
{
    static const char *const rotated[] = {"TOKEN_HASH_KEY=" NEW_KEY_B64,
                                          "TOKEN_HASH_KEY_PREVIOUS=" KEY_B64,
                                          "TOKEN_REUSE_GRACE=10s", NULL};
    struct th_proc next;
    char t[80], s[80], u[80], v[80];
    int st;
    (void)state;
    issue(main_d.port, "u-rot", "d-1", CHROME120, "", t);
    issue(main_d.port, "u-rot", "d-1", CHROME120, "", u);
    refresh_ok(main_d.port, u, "d-1", CHROME120, "", v); /* sealed under the old key */
    assert_int_equal(tt_start(&next, redis.url, rotated), 0);
    refresh_ok(next.port, t, "d-1", CHROME120, "", s);
    char *cur = family_field(&redis, s, "current");
    assert_false(is_token_hmac(cur)); /* not under the old key ... */
    uint8_t key[32], secret[32], mac[32];
    char hex[65];
    assert_int_equal(crypto_unb64(NEW_KEY_B64, strlen(NEW_KEY_B64), key, sizeof(key)), 32);
    assert_int_equal(crypto_unb64url(s + 27, 43, secret, sizeof(secret)), 32);
    crypto_hmac_sha256(key, sizeof(key), secret, sizeof(secret), mac);
    crypto_hex(mac, sizeof(mac), hex);
    assert_string_equal(cur, hex); /* ... but under the new one */
    free(cur);
    json_t *j = refresh(next.port, t, "d-1", CHROME120, "", &st); /* grace, new key */
    assert_int_equal(st, 200);
    assert_string_equal(jstr(j, "refresh_token"), s);
    json_decref(j);
    j = refresh(next.port, u, "d-1", CHROME120, "", &st); /* grace, sealed under the old key */
    assert_int_equal(st, 200);
    assert_true(json_is_true(json_object_get(j, "grace")));
    assert_string_equal(jstr(j, "refresh_token"), v);
    json_decref(j);
    /* An old-key token introspects and revokes through the previous key too. */
    j = post(next.port, "/v1/tokens/introspect", &st, "{\"token\":\"%s\"}", v);
    assert_true(json_is_true(json_object_get(j, "active")));
    json_decref(j);
    assert_int_equal(revoke_by(next.port, "token", v), 1);
    /* The old-key daemon cannot recognise a new-key successor; the new one can. */
    expect_problem(refresh(main_d.port, s, "d-1", CHROME120, "", &st), &st, 401, "invalid_grant");
    refresh_ok(next.port, s, "d-1", CHROME120, "", s);
    th_proc_stop(&next, SIGTERM, 5000);
}

/* There is no IP input: addresses in forwarding headers change nothing. */
static void test_ip_is_irrelevant(void **state)
{
    static const char *const ips[] = {"203.0.113.7", "198.51.100.99"};
    char t[80], body[512], hdr[3][64];
    struct th_resp r;
    (void)state;
    issue(main_d.port, "u-ip", "d-1", CHROME120, "", t);
    for (int i = 0; i < 2; i++) {
        snprintf(hdr[0], sizeof(hdr[0]), "X-Forwarded-For: %s", ips[i]);
        snprintf(hdr[1], sizeof(hdr[1]), "X-Real-IP: %s", ips[i]);
        snprintf(hdr[2], sizeof(hdr[2]), "Forwarded: for=%s", ips[i]);
        const char *headers[] = {"Content-Type: application/json", hdr[0], hdr[1], hdr[2], NULL};
        snprintf(body, sizeof(body),
                 "{\"refresh_token\":\"%s\",\"device_id\":\"d-1\",\"user_agent\":\"%s\"}", t,
                 CHROME120);
        assert_int_equal(
            th_http(main_d.port, "POST", "/v1/tokens/refresh", headers, body, strlen(body), &r), 0);
        assert_int_equal(r.status, 200);
        json_t *j = th_json(&r);
        snprintf(t, sizeof(t), "%s", jstr(j, "refresh_token"));
        tt_remember(t);
        json_decref(j);
        th_resp_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workload),
        cmocka_unit_test(test_metrics_exact),
        cmocka_unit_test(test_redis_holds_only_hmacs),
        cmocka_unit_test(test_logs_hold_no_secrets),
        cmocka_unit_test(test_hash_key_rotation),
        cmocka_unit_test(test_ip_is_irrelevant),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
