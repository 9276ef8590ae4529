/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of auditd over real sockets against a private redis-server: the API,
 * bad input leaving the chain untouched, an independent signature check with openssl, key
 * loading and refusal to start, Redis down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <pthread.h>

#include "test_auditd_util.h"

static struct th_redis redis;
static struct th_proc daemon_;
static char tmp[256];

static int setup(void **state)
{
    (void)state;
    const char *env[] = {KEY_V1_ENV, NULL};
    if (th_tmpdir(tmp, sizeof(tmp)) != 0 || th_redis_start(&redis, NULL) != 0)
        return -1;
    return au_start(&daemon_, &redis, env);
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&daemon_, SIGTERM, 5000);
    th_redis_stop(&redis);
    return 0;
}

static long long head_seq(void)
{
    return th_redis_int(&redis, "HGET audit:{default}:head seq");
}

static void test_append_and_read(void **state)
{
    (void)state;
    json_t *a = NULL, *b = NULL, *j;
    int port = daemon_.port;
    assert_int_equal(au_post(port, "/v1/events",
                             "{\"actor\":\"user:42\",\"action\":\"token.revoke\","
                             "\"outcome\":\"success\",\"event_id\":\"ev-1\"}",
                             &a),
                     201);
    long long seq = json_integer_value(json_object_get(a, "seq"));
    assert_int_equal(seq, 2); /* seq 1 is v1's audit.key_activated */
    assert_string_equal(json_string_value(json_object_get(a, "key_version")), "v1");
    /* The same event_id again: 200 with the entry already appended, nothing new. */
    assert_int_equal(au_post(port, "/v1/events",
                             "{\"actor\":\"user:42\",\"action\":\"token.revoke\","
                             "\"event_id\":\"ev-1\"}",
                             &b),
                     200);
    assert_true(json_equal(a, b));
    assert_int_equal(head_seq(), 2);
    json_decref(b);
    assert_int_equal(au_post(port, "/v1/events/batch",
                             "{\"events\":[{\"actor\":\"a\",\"action\":\"x\"},{\"actor\":\"b\","
                             "\"action\":\"y\",\"metadata\":{\"k\":[1,2]}}]}",
                             &b),
                     201);
    assert_int_equal(json_array_size(json_object_get(b, "entries")), 2);
    assert_int_equal(json_integer_value(
                         json_object_get(json_array_get(json_object_get(b, "entries"), 1), "seq")),
                     4);
    json_decref(b);
    j = au_get(port, "/v1/events?from_seq=2&limit=2");
    assert_non_null(j);
    json_t *e0 = json_array_get(json_object_get(j, "entries"), 0);
    assert_string_equal(json_string_value(json_object_get(e0, "hash")),
                        json_string_value(json_object_get(a, "hash")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(e0, "event"), "event_id")), "ev-1");
    assert_int_equal(json_integer_value(json_object_get(j, "next_from_seq")), 4);
    json_decref(j);
    j = au_get(port, "/v1/events?from_seq=4&limit=10");
    assert_true(json_is_null(json_object_get(j, "next_from_seq")));
    json_decref(j);
    j = au_get(port, "/v1/head");
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 4);
    json_decref(j);
    struct th_resp r;
    assert_int_equal(th_http(port, "GET", "/v1/events/99", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "not_found"));
    th_resp_free(&r);
    json_decref(a);
}

static int is_hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int is_ts(const char *s) /* 2026-11-22T10:00:00.123Z */
{
    const char *pat = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (!s || strlen(s) != strlen(pat))
        return 0;
    for (size_t i = 0; pat[i]; i++)
        if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
            return 0;
    return 1;
}

/* The 201 fields, the stored body byte for byte (compact, keys sorted bytewise at every
 * level, UTF-8 as sent), its hash, the links between entries of a batch, the entry form
 * of GET, the head. */
static void test_entry_fields(void **state)
{
    (void)state;
    int port = daemon_.port;
    json_t *h0 = au_get(port, "/v1/head"), *b = NULL;
    assert_non_null(h0);
    long long seq0 = json_integer_value(json_object_get(h0, "seq"));
    assert_int_equal(
        au_post(
            port, "/v1/events/batch",
            "{\"events\":[{\"resource\":\"r/1\",\"outcome\":\"ok\",\"actor\":\"svc:z\","
            "\"action\":\"b.a\",\"event_id\":\"f-1\",\"metadata\":{\"z\":[1,-2],\"a\":"
            "{\"y\":\"\xc3\xa9\",\"b\":0,\"B\":null,\"t\":true}}},"
            "{\"actor\":\"svc:z\",\"action\":\"b.b\"},{\"actor\":\"svc:z\",\"action\":\"b.c\"}]}",
            &b),
        201);
    json_t *entries = json_object_get(b, "entries");
    assert_int_equal(json_array_size(entries), 3);
    const char *prev = json_string_value(json_object_get(h0, "hash"));
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(entries, i);
        assert_int_equal(json_object_size(e), 6);
        assert_int_equal(json_integer_value(json_object_get(e, "seq")), seq0 + 1 + (long long)i);
        assert_string_equal(json_string_value(json_object_get(e, "prev_hash")), prev);
        assert_true(is_hex64(json_string_value(json_object_get(e, "hash"))));
        assert_true(is_ts(json_string_value(json_object_get(e, "ts"))));
        assert_string_equal(json_string_value(json_object_get(e, "key_version")), "v1");
        const char *sig = json_string_value(json_object_get(e, "signature"));
        assert_int_equal(strlen(sig), 88);
        assert_string_equal(sig + 86, "==");
        prev = json_string_value(json_object_get(e, "hash"));
    }
    /* The stored body of the first, exactly. */
    json_t *e0 = json_array_get(entries, 0);
    long long seq = seq0 + 1;
    char want[1024], path[64];
    snprintf(
        want, sizeof(want),
        "{\"event\":{\"action\":\"b.a\",\"actor\":\"svc:z\",\"event_id\":\"f-1\",\"metadata\":"
        "{\"a\":{\"B\":null,\"b\":0,\"t\":true,\"y\":\"\xc3\xa9\"},\"z\":[1,-2]},\"outcome\":"
        "\"ok\",\"resource\":\"r/1\"},\"kv\":\"v1\",\"prev\":\"%s\",\"seq\":%lld,\"ts\":\"%s\"}",
        json_string_value(json_object_get(h0, "hash")), seq,
        json_string_value(json_object_get(e0, "ts")));
    redisReply *r = th_redis_cmd(&redis, "XRANGE audit:{default}:log %lld-0 %lld-0", seq, seq);
    assert_non_null(r);
    assert_int_equal(r->elements, 1);
    redisReply *f = r->element[0]->element[1];
    assert_string_equal(f->element[0]->str, "body");
    assert_string_equal(f->element[1]->str, want);
    assert_string_equal(f->element[2]->str, "hash");
    assert_string_equal(f->element[3]->str, json_string_value(json_object_get(e0, "hash")));
    assert_string_equal(f->element[4]->str, "sig");
    assert_string_equal(f->element[5]->str, json_string_value(json_object_get(e0, "signature")));
    uint8_t md[32];
    char hex[65];
    crypto_sha256(want, strlen(want), md);
    crypto_hex(md, 32, hex);
    assert_string_equal(hex, json_string_value(json_object_get(e0, "hash")));
    freeReplyObject(r);
    /* GET /v1/events/<seq>: the 201 fields plus the event and the exact body. */
    snprintf(path, sizeof(path), "/v1/events/%lld", seq);
    json_t *g = au_get(port, path);
    assert_non_null(g);
    assert_int_equal(json_object_size(g), 8);
    assert_string_equal(json_string_value(json_object_get(g, "body")), want);
    json_t *parsed = json_loads(want, 0, NULL);
    assert_true(json_equal(json_object_get(g, "event"), json_object_get(parsed, "event")));
    json_decref(parsed);
    json_object_del(g, "event");
    json_object_del(g, "body");
    assert_true(json_equal(g, e0));
    json_decref(g);
    /* The head is the last entry. */
    json_t *h = au_get(port, "/v1/head");
    json_t *last = json_array_get(entries, 2);
    assert_int_equal(json_integer_value(json_object_get(h, "seq")), seq0 + 3);
    assert_string_equal(json_string_value(json_object_get(h, "hash")),
                        json_string_value(json_object_get(last, "hash")));
    assert_string_equal(json_string_value(json_object_get(h, "ts")),
                        json_string_value(json_object_get(last, "ts")));
    json_decref(h);
    json_decref(h0);
    json_decref(b);
}

/* GET /v1/events with bad parameters: 400 naming the parameter; seqs that are not entries:
 * 404. */
static void test_read_bad_params(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"/v1/events?limit=0", "limit"},          {"/v1/events?limit=1001", "limit"},
        {"/v1/events?limit=x", "limit"},          {"/v1/events?from_seq=0", "from_seq"},
        {"/v1/events?from_seq=-1", "from_seq"},   {"/v1/events?from_seq=1.5", "from_seq"},
        {"/v1/events?from_seq=%2B1", "from_seq"},
    };
    struct th_resp r;
    char want[64];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(th_http(daemon_.port, "GET", bad[i][0], NULL, NULL, 0, &r), 0);
        snprintf(want, sizeof(want), "\"field\":\"%s\"", bad[i][1]);
        if (r.status != 400 || !strstr(r.body, "invalid_request") || !strstr(r.body, want))
            fail_msg("%s: %d %s", bad[i][0], r.status, r.body);
        th_resp_free(&r);
    }
    static const char *const missing[] = {"/v1/events/0", "/v1/events/abc", "/v1/events/-1",
                                          "/v1/events/99999"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        assert_int_equal(th_http(daemon_.port, "GET", missing[i], NULL, NULL, 0, &r), 0);
        if (r.status != 404 || !strstr(r.body, "not_found"))
            fail_msg("%s: %d %s", missing[i], r.status, r.body);
        th_resp_free(&r);
    }
    json_t *j = au_get(daemon_.port, "/v1/events?limit=1000");
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "next_from_seq")));
    json_decref(j);
}

/* Signature checked by an independent implementation: openssl pkeyutl -verify -rawin over
 * the raw 32-byte SHA-256 of the body, with the public key from /v1/keys. */
static void test_openssl_verifies_signature(void **state)
{
    (void)state;
    json_t *a = NULL;
    assert_int_equal(
        au_post(daemon_.port, "/v1/events", "{\"actor\":\"o\",\"action\":\"openssl.check\"}", &a),
        201);
    char path[64];
    snprintf(path, sizeof(path), "/v1/events/%lld", json_integer_value(json_object_get(a, "seq")));
    json_t *keys = au_get(daemon_.port, "/v1/keys");
    json_t *e = au_get(daemon_.port, path);
    assert_non_null(keys);
    assert_non_null(e);
    const char *pk64 = json_string_value(
        json_object_get(json_array_get(json_object_get(keys, "keys"), 0), "public_key"));
    uint8_t md[32], sig[64];
    const char *body = json_string_value(json_object_get(e, "body"));
    const char *s64 = json_string_value(json_object_get(e, "signature"));
    assert_string_equal(s64, json_string_value(json_object_get(a, "signature")));
    crypto_sha256(body, strlen(body), md);
    assert_int_equal(crypto_unb64(s64, strlen(s64), sig, 64), 64);
    assert_true(au_openssl_verify(tmp, pk64, md, 32, sig));
    assert_false(au_openssl_verify(tmp, pk64, body, strlen(body), sig)); /* not over the body */
    md[0] ^= 1;
    assert_false(au_openssl_verify(tmp, pk64, md, 32, sig)); /* and a wrong hash fails */
    json_decref(keys);
    json_decref(e);
    json_decref(a);
}

static void expect_400(const char *path, const char *body, const char *code)
{
    struct th_resp r;
    long long before = head_seq(), len = th_redis_int(&redis, "XLEN audit:{default}:log");
    assert_int_equal(th_post_json(daemon_.port, path, body, &r), 0);
    if (r.status != 400 || !strstr(r.body, code))
        fail_msg("%s %.60s: %d %s", path, body, r.status, r.body);
    th_resp_free(&r);
    assert_int_equal(head_seq(), before);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{default}:log"), len);
}

static void test_bad_input_leaves_chain_untouched(void **state)
{
    (void)state;
    expect_400("/v1/events", "{\"action\":\"a\"}", "invalid_request");
    expect_400("/v1/events", "{\"actor\":\"u\"}", "invalid_request");
    expect_400("/v1/events", "{\"actor\":\"u\",\"action\":\"a\",\"x\":1}", "invalid_request");
    expect_400("/v1/events", "{\"actor\":\"u\",\"action\":\"a\",\"metadata\":{\"p\":1.5}}",
               "invalid_request");
    expect_400("/v1/events",
               "{\"actor\":\"u\",\"action\":\"a\",\"metadata\":{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":"
               "{\"f\":{\"g\":{\"h\":{\"i\":1}}}}}}}}}}",
               "invalid_request");
    expect_400("/v1/events", "{\"actor\":\"auditd\",\"action\":\"a\"}", "invalid_request");
    expect_400("/v1/events", "{\"actor\":\"u\",\"action\":\"audit.key_activated\"}",
               "invalid_request");
    expect_400("/v1/events", "{\"actor\":\"u\",", "invalid_json");
    expect_400("/v1/events/batch", "{\"events\":[]}", "invalid_request");
    expect_400("/v1/events/batch",
               "{\"events\":[{\"actor\":\"u\",\"action\":\"a\"},{\"actor\":1}]}",
               "events[1].actor");
    /* metadata above 16 KiB, and a 1,001-event batch */
    size_t cap = 1100 * 40;
    char *big = malloc(cap);
    int n = snprintf(big, cap, "{\"actor\":\"u\",\"action\":\"a\",\"metadata\":{\"x\":\"");
    memset(big + n, 'x', 17000);
    snprintf(big + n + 17000, cap - (size_t)n - 17000, "\"}}");
    expect_400("/v1/events", big, "invalid_request");
    n = snprintf(big, cap, "{\"events\":[");
    for (int i = 0; i < 1001; i++)
        n += snprintf(big + n, cap - (size_t)n, "%s{\"actor\":\"u\",\"action\":\"a\"}",
                      i ? "," : "");
    snprintf(big + n, cap - (size_t)n, "]}");
    expect_400("/v1/events/batch", big, "invalid_request");
    free(big);
    /* wrong types, not an object, a bad event_id, a bad batch shape, bad /v1/verify */
    expect_400("/v1/events", "{\"actor\":1,\"action\":\"a\"}", "\"field\":\"actor\"");
    expect_400("/v1/events", "{\"actor\":\"u\",\"action\":\"a\",\"metadata\":\"x\"}",
               "\"field\":\"metadata\"");
    expect_400("/v1/events", "{\"actor\":\"u\",\"action\":\"a\",\"event_id\":\"a/b\"}",
               "\"field\":\"event_id\"");
    expect_400("/v1/events", "{\"actor\":\"u\",\"action\":\"a\",\"metadata\":{\"n\":1e400}}",
               "invalid_json");
    expect_400("/v1/events", "[{\"actor\":\"u\",\"action\":\"a\"}]", "invalid_json");
    expect_400("/v1/events", "{\"actor\":\"u\\u0000x\",\"action\":\"a\"}", "invalid_json");
    expect_400("/v1/events", "{\"actor\":\"u\",\"actor\":\"v\",\"action\":\"a\"}", "invalid_json");
    expect_400("/v1/events",
               "{\"actor\":\"u\",\"action\":\"a\",\"metadata\":{\"n\":99999999999999999999}}",
               "invalid_json");
    expect_400("/v1/events/batch", "{\"events\":{\"actor\":\"u\",\"action\":\"a\"}}",
               "\"field\":\"events\"");
    expect_400("/v1/events/batch", "{\"events\":[{\"actor\":\"u\",\"action\":\"a\"}],\"x\":1}",
               "\"field\":\"x\"");
    expect_400("/v1/verify", "{\"from_seq\":0}", "\"field\":\"from_seq\"");
    expect_400("/v1/verify", "{\"from_seq\":5,\"to_seq\":4}", "\"field\":\"to_seq\"");
    expect_400("/v1/verify", "{\"from\":1}", "\"field\":\"from\"");
}

/* Before the body is looked at: 415 without a JSON content type, 413 above HTTP_MAX_BODY
 * (1 MiB); nothing changes. */
static void test_body_refused_unread(void **state)
{
    (void)state;
    struct th_resp r;
    long long before = head_seq();
    const char *text[] = {"Content-Type: text/plain", NULL};
    const char *ev = "{\"actor\":\"u\",\"action\":\"a\"}";
    assert_int_equal(th_http(daemon_.port, "POST", "/v1/events", text, ev, strlen(ev), &r), 0);
    assert_int_equal(r.status, 415);
    assert_non_null(strstr(r.body, "unsupported_media_type"));
    th_resp_free(&r);
    size_t n = 1024 * 1024 + 16;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, ev, strlen(ev));
    big[n] = '\0';
    const char *json[] = {"Content-Type: application/json", NULL};
    assert_int_equal(th_http(daemon_.port, "POST", "/v1/events/batch", json, big, n, &r), 0);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "body_too_large"));
    th_resp_free(&r);
    free(big);
    assert_int_equal(head_seq(), before);
}

/* A chain nobody wrote to yet: head seq 0 with 64 zeros and no ts, no entries, the key
 * never used, verification of nothing. */
static void test_empty_chain(void **state)
{
    (void)state;
    struct th_proc p;
    json_t *j = NULL;
    const char *env[] = {"AUDIT_CHAIN=empty", KEY_V1_ENV, NULL};
    assert_int_equal(au_start(&p, &redis, env), 0);
    j = au_get(p.port, "/v1/head");
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 0);
    assert_string_equal(json_string_value(json_object_get(j, "hash")), ZERO_HASH);
    assert_true(json_is_null(json_object_get(j, "ts")));
    json_decref(j);
    j = au_get(p.port, "/v1/events");
    assert_int_equal(json_array_size(json_object_get(j, "entries")), 0);
    assert_true(json_is_null(json_object_get(j, "next_from_seq")));
    json_decref(j);
    j = au_get(p.port, "/v1/keys");
    assert_string_equal(json_string_value(json_object_get(j, "active")), "v1");
    assert_true(
        json_is_null(json_object_get(json_array_get(json_object_get(j, "keys"), 0), "first_seq")));
    json_decref(j);
    assert_int_equal(au_post(p.port, "/v1/verify", "{}", &j), 200);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_int_equal(json_integer_value(json_object_get(j, "checked")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "head_seq")), 0);
    json_decref(j);
    assert_int_equal(th_redis_int(&redis, "EXISTS audit:{empty}:log"), 0);
    th_proc_stop(&p, SIGTERM, 5000);
}

/* GET /v1/checkpoint, taken apart: exactly the C2SP tlog-checkpoint in a signed note —
 * origin, tree size, base64 of the Merkle root (recomputed here from the entries' bodies),
 * the extension line "chain <seq> <hex head hash>", a blank line, then "— <origin> <base64
 * of key id || signature>". The key id is SHA-256(origin || 0x0A || 0x01 || public
 * key)[:4], the same as key_id in /v1/keys; openssl verifies the signature over the four
 * lines. */
static void test_checkpoint_endpoint(void **state)
{
    (void)state;
    struct th_resp r;
    char ct[64], want[256], root64[48];
    uint8_t root[32], blob[80], pre[64], md[32];
    au_post(daemon_.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"cp\"}", NULL);
    json_t *head = au_get(daemon_.port, "/v1/head"), *keys = au_get(daemon_.port, "/v1/keys");
    json_t *k = json_array_get(json_object_get(keys, "keys"), 0);
    const char *pk64 = json_string_value(json_object_get(k, "public_key"));
    assert_int_equal(th_http(daemon_.port, "GET", "/v1/checkpoint", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(th_header(&r, "Content-Type", ct, sizeof(ct)));
    assert_non_null(strstr(ct, "text/plain"));
    long long seq = json_integer_value(json_object_get(head, "seq"));
    assert_int_equal(au_tree_root(daemon_.port, seq, root), 0);
    crypto_b64(root, 32, root64, sizeof(root64));
    int text_len = snprintf(want, sizeof(want), "warden-audit/default\n%lld\n%s\nchain %lld %s\n",
                            seq, root64, seq, json_string_value(json_object_get(head, "hash")));
    assert_true((size_t)text_len < r.body_len);
    assert_memory_equal(r.body, want, (size_t)text_len);
    const char *sig_line = r.body + text_len;
    const char *prefix = "\n\xe2\x80\x94 warden-audit/default ";
    assert_int_equal(strncmp(sig_line, prefix, strlen(prefix)), 0);
    const char *b64 = sig_line + strlen(prefix);
    size_t b64_len = r.body_len - (size_t)(b64 - r.body) - 1;
    assert_int_equal(r.body[r.body_len - 1], '\n');
    assert_null(memchr(b64, '\n', b64_len)); /* one signature line, ending the note */
    assert_int_equal(b64_len, 92);           /* base64 of 68 bytes */
    assert_int_equal(crypto_unb64(b64, b64_len, blob, sizeof(blob)), 68);
    size_t olen = strlen("warden-audit/default");
    memcpy(pre, "warden-audit/default\n\x01", olen + 2);
    crypto_unb64(pk64, strlen(pk64), pre + olen + 2, 32);
    crypto_sha256(pre, olen + 34, md);
    assert_memory_equal(blob, md, 4);
    char id_hex[9];
    crypto_hex(blob, 4, id_hex);
    assert_string_equal(json_string_value(json_object_get(k, "key_id")), id_hex);
    assert_true(au_openssl_verify(tmp, pk64, r.body, (size_t)text_len, blob + 4));
    assert_false(au_openssl_verify(tmp, pk64, r.body, (size_t)text_len - 1, blob + 4));
    th_resp_free(&r);
    json_decref(head);
    json_decref(keys);
}

/* A PEM key made by openssl genpkey loads from *_FILE; `auditd pubkeys` shows the public
 * key openssl derives; no key at all refuses to start, saying how to make one. */
static void test_keys_pem_file_and_refusal(void **state)
{
    (void)state;
    char pem[320], envk[400], *out = NULL, *err = NULL;
    snprintf(pem, sizeof(pem), "%s/k.pem", tmp);
    const char *gen[] = {"openssl", "genpkey", "-algorithm", "ed25519", "-out", pem, NULL};
    assert_int_equal(th_run("/usr/bin/openssl", gen, NULL, NULL, NULL, 10000), 0);
    const char *pubout[] = {"openssl", "pkey", "-in", pem, "-pubout", NULL};
    char *pub_pem = NULL;
    assert_int_equal(th_run("/usr/bin/openssl", pubout, NULL, &pub_pem, NULL, 10000), 0);
    uint8_t pk[32];
    char errbuf[128], pk64[48];
    assert_int_equal(crypto_ed25519_pk_parse(pub_pem, pk, errbuf, sizeof(errbuf)), 0);
    crypto_b64(pk, 32, pk64, sizeof(pk64));
    snprintf(envk, sizeof(envk), "AUDIT_PRIVATE_KEY_V3_FILE=%s", pem);
    const char *env[] = {envk, NULL};
    const char *argv[] = {"auditd", "pubkeys", NULL};
    assert_int_equal(th_run(th_bin("bin/auditd"), argv, env, &out, NULL, 10000), 0);
    assert_non_null(strstr(out, pk64));
    assert_non_null(strstr(out, "\"v3\""));
    free(out);
    free(pub_pem);
    const char *run[] = {"auditd", NULL};
    const char *noenv[] = {"REDIS_URL=redis://127.0.0.1:1/0", NULL};
    assert_int_equal(th_run(th_bin("bin/auditd"), run, noenv, NULL, &err, 10000), 2);
    assert_non_null(strstr(err, "auditd keygen"));
    free(err);
    /* The running daemon never logged its key material. */
    assert_false(th_proc_log_contains(&daemon_, SEED_V1));
}

/* AUDIT_WAIT_REPLICAS: the 201 says how many replicas acknowledged (none here: the WAIT
 * times out after AUDIT_WAIT_TIMEOUT and the entry is appended all the same). */
static void test_wait_replicas(void **state)
{
    (void)state;
    struct th_proc p;
    json_t *j = NULL;
    const char *env[] = {"AUDIT_CHAIN=waitr", KEY_V1_ENV, "AUDIT_WAIT_REPLICAS=1",
                         "AUDIT_WAIT_TIMEOUT=50ms", NULL};
    assert_int_equal(au_start(&p, &redis, env), 0);
    assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"w\"}", &j), 201);
    assert_true(json_is_integer(json_object_get(j, "replicas_acked")));
    assert_int_equal(json_integer_value(json_object_get(j, "replicas_acked")), 0);
    json_decref(j);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{waitr}:head seq"), 2);
    th_proc_stop(&p, SIGTERM, 5000);
}

/* Head and log disagree: auditd refuses to start rather than start a new chain. */
static void test_refuses_inconsistent_chain(void **state)
{
    (void)state;
    char url[160], *err = NULL;
    freeReplyObject(
        th_redis_cmd(&redis, "HSET audit:{broken}:head seq 5 hash %s",
                     "00000000000000000000000000000000000000000000000000000000000000ff"));
    snprintf(url, sizeof(url), "REDIS_URL=%s", redis.url);
    const char *env[] = {url, "AUDIT_CHAIN=broken", KEY_V1_ENV, "LISTEN_ADDR=127.0.0.1:0", NULL};
    const char *argv[] = {"auditd", NULL};
    assert_int_equal(th_run(th_bin("bin/auditd"), argv, env, NULL, &err, 10000), 2);
    assert_non_null(strstr(err, "refusing to start"));
    free(err);
    assert_int_equal(th_redis_int(&redis, "EXISTS audit:{broken}:log"), 0);
}

struct dedup_post {
    long long seq;
    int port, id, status;
    char hash[65];
};

static void *dedup_main(void *arg)
{
    struct dedup_post *d = arg;
    char body[96];
    json_t *j = NULL;
    snprintf(body, sizeof(body), "{\"actor\":\"u\",\"action\":\"dd\",\"event_id\":\"dd-%d\"}",
             d->id);
    d->status = au_post(d->port, "/v1/events", body, &j);
    d->seq = json_integer_value(json_object_get(j, "seq"));
    snprintf(d->hash, sizeof(d->hash), "%s", json_string_value(json_object_get(j, "hash")));
    json_decref(j);
    return NULL;
}

/* event_id dedup holds across instances (the append script decides it): one instance
 * appended it, another answers 200 with that entry; the same id sent to two instances at
 * once is appended once, and both answers name that entry. */
static void test_dedup_across_instances(void **state)
{
    (void)state;
    struct th_proc b;
    json_t *x = NULL, *y = NULL;
    const char *env[] = {KEY_V1_ENV, NULL};
    assert_int_equal(au_start(&b, &redis, env), 0);
    const char *ev = "{\"actor\":\"u\",\"action\":\"x\",\"event_id\":\"across-1\"}";
    assert_int_equal(au_post(daemon_.port, "/v1/events", ev, &x), 201);
    long long after = head_seq();
    assert_int_equal(au_post(b.port, "/v1/events", ev, &y), 200);
    assert_true(json_equal(x, y));
    json_decref(y);
    /* in a batch too: that slot holds the existing entry, the rest is appended */
    assert_int_equal(au_post(b.port, "/v1/events/batch",
                             "{\"events\":[{\"actor\":\"u\",\"action\":\"n\"},"
                             "{\"actor\":\"u\",\"action\":\"x\",\"event_id\":\"across-1\"}]}",
                             &y),
                     201);
    assert_true(json_equal(json_array_get(json_object_get(y, "entries"), 1), x));
    assert_int_equal(head_seq(), after + 1);
    json_decref(x);
    json_decref(y);
    enum { IDS = 20 };
    static struct dedup_post posts[2 * IDS];
    pthread_t t[2 * IDS];
    for (int i = 0; i < 2 * IDS; i++) {
        posts[i] = (struct dedup_post){.port = i % 2 ? b.port : daemon_.port, .id = i / 2};
        assert_int_equal(pthread_create(&t[i], NULL, dedup_main, &posts[i]), 0);
    }
    for (int i = 0; i < 2 * IDS; i++)
        pthread_join(t[i], NULL);
    th_proc_stop(&b, SIGTERM, 5000);
    for (int i = 0; i < IDS; i++) {
        struct dedup_post *p = &posts[2 * i], *q = &posts[2 * i + 1];
        if (!((p->status == 201 && q->status == 200) || (p->status == 200 && q->status == 201)))
            fail_msg("dd-%d: %d and %d", i, p->status, q->status);
        assert_int_equal(p->seq, q->seq);
        assert_string_equal(p->hash, q->hash);
    }
    /* Exactly IDS entries carry those ids. */
    redisReply *r = th_redis_cmd(&redis, "XRANGE audit:{default}:log %lld-0 +", after + 2);
    int found = 0;
    for (size_t i = 0; r && i < r->elements; i++)
        found += strstr(r->element[i]->element[1]->element[1]->str, "\"event_id\":\"dd-") != NULL;
    freeReplyObject(r);
    assert_int_equal(found, IDS);
    assert_int_equal(head_seq(), after + 1 + IDS);
}

/* A request is answered only once its entry is in Redis: with Redis frozen, no answer
 * comes; once it thaws, the 201 names an entry that is there. */
static void test_answer_only_after_commit(void **state)
{
    (void)state;
    struct th_proc p;
    struct th_resp r;
    char req[512];
    const char *env[] = {"AUDIT_CHAIN=slow", KEY_V1_ENV, "REDIS_COMMAND_TIMEOUT=10s", NULL};
    assert_int_equal(au_start(&p, &redis, env), 0);
    assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"w\"}", NULL),
                     201);
    const char *ev = "{\"actor\":\"u\",\"action\":\"frozen\"}";
    int n = snprintf(req, sizeof(req),
                     "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     strlen(ev), ev);
    int fd = th_connect(p.port);
    assert_true(fd >= 0);
    th_redis_pause(&redis);
    assert_int_equal(th_send_all(fd, req, (size_t)n), 0);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int ready = poll(&pfd, 1, 800);
    th_redis_resume(&redis);
    assert_int_equal(ready, 0); /* nothing answered while Redis could not commit */
    assert_int_equal(th_read_response(fd, &r, 10000), 0);
    close(fd);
    assert_int_equal(r.status, 201);
    json_t *j = th_json(&r);
    long long seq = json_integer_value(json_object_get(j, "seq"));
    redisReply *x = th_redis_cmd(&redis, "XRANGE audit:{slow}:log %lld-0 %lld-0", seq, seq);
    assert_int_equal(x->elements, 1);
    assert_string_equal(x->element[0]->element[1]->element[3]->str,
                        json_string_value(json_object_get(j, "hash")));
    freeReplyObject(x);
    json_decref(j);
    th_resp_free(&r);
    th_proc_stop(&p, SIGTERM, 5000);
}

/* Requests waiting for Redis hold no worker: with one HTTP worker and Redis frozen, an
 * append and a read are parked while /health on the same worker answers at once; both
 * are answered once Redis thaws. */
static void test_waiting_requests_hold_no_worker(void **state)
{
    (void)state;
    struct th_proc p;
    struct th_resp r;
    char req[2][512];
    int fd[2], n[2];
    const char *env[] = {"AUDIT_CHAIN=held", KEY_V1_ENV, "REDIS_COMMAND_TIMEOUT=10s",
                         "HTTP_THREADS=1", NULL};
    assert_int_equal(au_start(&p, &redis, env), 0);
    assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"w\"}", NULL),
                     201);
    const char *ev = "{\"actor\":\"u\",\"action\":\"held\"}";
    n[0] = snprintf(req[0], sizeof(req[0]),
                    "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                    strlen(ev), ev);
    n[1] = snprintf(req[1], sizeof(req[1]),
                    "GET /v1/head HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    th_redis_pause(&redis);
    for (int i = 0; i < 2; i++) {
        fd[i] = th_connect(p.port);
        assert_true(fd[i] >= 0);
        assert_int_equal(th_send_all(fd[i], req[i], (size_t)n[i]), 0);
    }
    int64_t t0 = th_now_ms();
    assert_int_equal(th_http(p.port, "GET", "/health", NULL, NULL, 0, &r), 0);
    int64_t took = th_now_ms() - t0;
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    struct pollfd pfd[2] = {{.fd = fd[0], .events = POLLIN}, {.fd = fd[1], .events = POLLIN}};
    int ready = poll(pfd, 2, 0);
    th_redis_resume(&redis);
    assert_int_equal(ready, 0); /* both still waiting for Redis */
    assert_true(took < th_ms(1000));
    int want[2] = {201, 200};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(th_read_response(fd[i], &r, 15000), 0);
        close(fd[i]);
        assert_int_equal(r.status, want[i]);
        th_resp_free(&r);
    }
    th_proc_stop(&p, SIGTERM, 5000);
}

/* Redis frozen (SIGSTOP): 503 backend_unavailable with Retry-After: 1 after the command
 * timeout, no hang. The script was sent, so the outcome is unknown (Redis runs it once it
 * thaws); a retry with the same event_id settles it: the event is in the chain once. */
static void test_redis_frozen(void **state)
{
    (void)state;
    struct th_resp r;
    char ra[16];
    const char *ev = "{\"actor\":\"u\",\"action\":\"f\",\"event_id\":\"frozen-1\"}";
    th_redis_pause(&redis);
    int64_t t0 = th_now_ms();
    int rc = th_post_json(daemon_.port, "/v1/events", ev, &r);
    int64_t took = th_now_ms() - t0;
    th_redis_resume(&redis);
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "backend_unavailable"));
    assert_non_null(th_header(&r, "Retry-After", ra, sizeof(ra)));
    assert_string_equal(ra, "1");
    th_resp_free(&r);
    /* REDIS_COMMAND_TIMEOUT (1 s) for the compare-and-set, plus scheduling noise. */
    if (took < 900 || took > 2000)
        fail_msg("a frozen Redis answered after %lld ms, not about 1 s", (long long)took);
    json_t *j = NULL;
    int st = au_post(daemon_.port, "/v1/events", ev, &j);
    assert_true(st == 200 || st == 201);
    long long seq = json_integer_value(json_object_get(j, "seq"));
    json_decref(j);
    redisReply *x = th_redis_cmd(&redis, "XRANGE audit:{default}:log - +");
    int found = 0;
    for (size_t i = 0; x && i < x->elements; i++)
        if (strstr(x->element[i]->element[1]->element[1]->str, "\"event_id\":\"frozen-1\"")) {
            found++;
            assert_int_equal(atoll(x->element[i]->element[0]->str), seq);
        }
    freeReplyObject(x);
    assert_int_equal(found, 1);
    assert_int_equal(head_seq(), seq);
}

/* Redis down: 503 backend_unavailable, nothing acknowledged; back up with its data (a
 * snapshot here: this Redis has no AOF): appends resume on the same chain. (Back up
 * empty, it is refused: test_auditd_guard.c.) */
static void test_redis_down(void **state)
{
    (void)state;
    long long before = head_seq();
    struct th_resp r;
    freeReplyObject(th_redis_cmd(&redis, "SAVE"));
    th_redis_kill(&redis);
    assert_int_equal(
        th_post_json(daemon_.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"down\"}", &r), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "backend_unavailable"));
    char ra[16];
    assert_non_null(th_header(&r, "Retry-After", ra, sizeof(ra)));
    assert_string_equal(ra, "1");
    th_resp_free(&r);
    assert_int_equal(th_redis_restart(&redis), 0);
    json_t *a = NULL;
    int st = -1;
    for (int i = 0; i < 20 && st != 201; i++) {
        st = au_post(daemon_.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"up\"}", &a);
        if (st != 201) {
            json_decref(a);
            a = NULL;
            usleep(100000);
        }
    }
    assert_int_equal(st, 201);
    assert_int_equal(json_integer_value(json_object_get(a, "seq")), before + 1);
    json_decref(a);
}

/* A batch whose script call has more arguments than the client's EVALSHA takes goes out by
 * hand; after SCRIPT FLUSH behind auditd's back it is run again as EVAL, once. */
static void test_large_batch_after_script_flush(void **state)
{
    (void)state;
    char body[4096];
    size_t used = (size_t)snprintf(body, sizeof(body), "{\"events\":[");
    for (int i = 0; i < 40; i++)
        used += (size_t)snprintf(body + used, sizeof(body) - used,
                                 "%s{\"actor\":\"u%d\",\"action\":\"flush\"}", i ? "," : "", i);
    snprintf(body + used, sizeof(body) - used, "]}");
    long long before = head_seq();
    redisReply *r = th_redis_cmd(&redis, "SCRIPT FLUSH");
    freeReplyObject(r);
    assert_int_equal(au_post(daemon_.port, "/v1/events/batch", body, NULL), 201);
    assert_int_equal(head_seq(), before + 40);
    assert_int_equal(au_post(daemon_.port, "/v1/events/batch", body, NULL), 201);
    assert_int_equal(head_seq(), before + 80);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_chain),
        cmocka_unit_test(test_append_and_read),
        cmocka_unit_test(test_large_batch_after_script_flush),
        cmocka_unit_test(test_entry_fields),
        cmocka_unit_test(test_read_bad_params),
        cmocka_unit_test(test_openssl_verifies_signature),
        cmocka_unit_test(test_bad_input_leaves_chain_untouched),
        cmocka_unit_test(test_body_refused_unread),
        cmocka_unit_test(test_checkpoint_endpoint),
        cmocka_unit_test(test_keys_pem_file_and_refusal),
        cmocka_unit_test(test_wait_replicas),
        cmocka_unit_test(test_refuses_inconsistent_chain),
        cmocka_unit_test(test_dedup_across_instances),
        cmocka_unit_test(test_answer_only_after_commit),
        cmocka_unit_test(test_waiting_requests_hold_no_worker),
        cmocka_unit_test(test_redis_frozen),
        cmocka_unit_test(test_redis_down),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
