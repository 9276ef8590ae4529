/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of auditd's chain guarantees: tampering edited directly in Redis is
 * caught by audit-verify (exit 1/2, right seq) and /v1/verify; a truncated tail is caught
 * against a kept checkpoint; key rotation; periodic checkpoints across instances. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>

#include "../../auditd/entry.h"
#include "../../auditd/tool.h"
#include "test_auditd_util.h"

#define CHAIN_LEN 20

static struct th_redis redis;
static struct th_proc daemon_;
static char tmp[256], keys_file[320];

struct stored {
    long long seq;
    char *body, hash[65], sig[96];
};
static struct stored saved[CHAIN_LEN + 1];
static int nsaved;
static redisReply *saved_tree; /* the head's tree fields (tsize, root, frontier) */

static int setup(void **state)
{
    (void)state;
    const char *env[] = {"AUDIT_CHAIN=t", KEY_V1_ENV, NULL};
    if (th_tmpdir(tmp, sizeof(tmp)) != 0 || th_redis_start(&redis, NULL) != 0 ||
        au_start(&daemon_, &redis, env) != 0)
        return -1;
    snprintf(keys_file, sizeof(keys_file), "%s/keys.json", tmp);
    for (int i = 0; i < CHAIN_LEN - 1; i++)
        au_post(daemon_.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"a\"}", NULL);
    if (au_get_file(daemon_.port, "/v1/keys", keys_file) != 0)
        return -1;
    /* Keep the good chain to restore it before each tamper case. */
    redisReply *r = th_redis_cmd(&redis, "XRANGE audit:{t}:log - +");
    for (size_t i = 0; r && i < r->elements && i < CHAIN_LEN; i++) {
        redisReply *f = r->element[i]->element[1];
        saved[i].seq = atoll(r->element[i]->element[0]->str);
        saved[i].body = strdup(f->element[1]->str);
        snprintf(saved[i].hash, sizeof(saved[i].hash), "%s", f->element[3]->str);
        snprintf(saved[i].sig, sizeof(saved[i].sig), "%s", f->element[5]->str);
        nsaved++;
    }
    freeReplyObject(r);
    saved_tree = th_redis_cmd(&redis, "HMGET audit:{t}:head tsize root frontier");
    return nsaved == CHAIN_LEN && saved_tree && saved_tree->elements == 3 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&daemon_, SIGTERM, 5000);
    th_redis_stop(&redis);
    freeReplyObject(saved_tree);
    for (int i = 0; i < nsaved; i++)
        free(saved[i].body);
    return 0;
}

/* Write entries (a possibly edited copy of saved) back as the log, and the head. */
static void write_log(struct stored *e, int n, long long head, const char *head_hash)
{
    freeReplyObject(th_redis_cmd(&redis, "DEL audit:{t}:log"));
    for (int i = 0; i < n; i++) {
        if (!e[i].body)
            continue;
        freeReplyObject(th_redis_cmd(&redis, "XADD audit:{t}:log %lld-0 body %s hash %s sig %s",
                                     e[i].seq, e[i].body, e[i].hash, e[i].sig));
    }
    freeReplyObject(th_redis_cmd(&redis, "HSET audit:{t}:head seq %lld hash %s", head, head_hash));
    /* The tiles are never touched here: the head gets the tree of the chain as made. */
    redisReply *const *t = saved_tree->element;
    freeReplyObject(th_redis_cmd(&redis, "HSET audit:{t}:head tsize %b", t[0]->str, t[0]->len));
    freeReplyObject(th_redis_cmd(&redis, "HSET audit:{t}:head root %b", t[1]->str, t[1]->len));
    freeReplyObject(th_redis_cmd(&redis, "HSET audit:{t}:head frontier %b", t[2]->str, t[2]->len));
}

static struct stored *copy_chain(void)
{
    struct stored *c = calloc(CHAIN_LEN, sizeof(*c));
    for (int i = 0; i < CHAIN_LEN; i++) {
        c[i] = saved[i];
        c[i].body = strdup(saved[i].body);
    }
    return c;
}

static void free_chain(struct stored *c)
{
    for (int i = 0; i < CHAIN_LEN; i++)
        free(c[i].body);
    free(c);
}

/* audit-verify against Redis: exit status and summary line. */
static int verify_redis(const char *expect, char **out)
{
    const char *args[] = {"--redis",   redis.url, "--chain",
                          "t",         "--keys",  keys_file,
                          "--threads", "2",       expect ? "--expect" : NULL,
                          expect,      NULL};
    return au_verify(args, out);
}

static void assert_verify(int want_status, const char *want_line, const char *expect)
{
    char *out = NULL;
    int st = verify_redis(expect, &out);
    if (st != want_status || !out || !strstr(out, want_line))
        fail_msg("audit-verify: exit %d, %s (wanted %d, %s)", st, out ? out : "", want_status,
                 want_line);
    free(out);
}

/* /v1/verify reports the same first bad seq and reason. */
static void assert_api_verify(long long bad_seq, const char *reason)
{
    json_t *j = NULL;
    assert_int_equal(au_post(daemon_.port, "/v1/verify", "{\"from_seq\":1,\"to_seq\":null}", &j),
                     200);
    assert_false(json_is_true(json_object_get(j, "ok")));
    assert_int_equal(json_integer_value(json_object_get(j, "first_bad_seq")), bad_seq);
    assert_string_equal(json_string_value(json_object_get(j, "reason")), reason);
    json_decref(j);
}

static void test_intact_chain_verifies(void **state)
{
    (void)state;
    char line[160], file[320], *out = NULL;
    write_log(saved, CHAIN_LEN, CHAIN_LEN, saved[CHAIN_LEN - 1].hash);
    snprintf(line, sizeof(line), "OK: %d entries, seq 1..%d, head %s", CHAIN_LEN, CHAIN_LEN,
             saved[CHAIN_LEN - 1].hash);
    assert_verify(0, line, NULL);
    json_t *j = NULL;
    au_post(daemon_.port, "/v1/verify", "{}", &j);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_int_equal(json_integer_value(json_object_get(j, "checked")), CHAIN_LEN);
    json_decref(j);
    /* The export file verifies the same way. */
    snprintf(file, sizeof(file), "%s/export.jsonl", tmp);
    const char *exp[] = {"audit-export", "--redis", redis.url, "--chain", "t", NULL};
    assert_int_equal(th_run(th_bin("bin/audit-export"), exp, NULL, &out, NULL, 20000), 0);
    au_write(file, out);
    free(out);
    const char *args[] = {"--file", file, "--keys", keys_file, "--json", NULL};
    assert_int_equal(au_verify(args, &out), 0);
    assert_non_null(strstr(out, "\"ok\":true"));
    free(out);
}

static void test_one_byte_changed(void **state)
{
    (void)state;
    struct stored *c = copy_chain();
    char *p = strstr(c[6].body, "\"actor\":\"u\"");
    p[9] = 'v'; /* seq 7: actor "v" */
    write_log(c, CHAIN_LEN, CHAIN_LEN, c[CHAIN_LEN - 1].hash);
    assert_verify(1, "TAMPERED at seq 7: hash_mismatch", NULL);
    assert_api_verify(7, "hash_mismatch");
    free_chain(c);
}

static void test_deleted_entry(void **state)
{
    (void)state;
    write_log(saved, CHAIN_LEN, CHAIN_LEN, saved[CHAIN_LEN - 1].hash);
    freeReplyObject(th_redis_cmd(&redis, "XDEL audit:{t}:log 9-0"));
    assert_verify(1, "TAMPERED at seq 9: gap", NULL);
    assert_api_verify(9, "gap");
}

static void test_swapped_entries(void **state)
{
    (void)state;
    struct stored *c = copy_chain(), t;
    t = c[10];
    c[10] = c[11];
    c[11] = t;
    c[10].seq = 11;
    c[11].seq = 12;
    write_log(c, CHAIN_LEN, CHAIN_LEN, c[CHAIN_LEN - 1].hash);
    assert_verify(1, "TAMPERED at seq 11: gap", NULL);
    assert_api_verify(11, "gap");
    free_chain(c);
}

/* Entry 14 rewritten and re-signed with a key the keyring does not hold. */
static void test_resigned_unknown_key(void **state)
{
    (void)state;
    struct stored *c = copy_chain();
    struct audit_entry e = {0};
    json_t *event = NULL;
    uint8_t seed[32], pk[32], sk[64];
    crypto_unb64(SEED_ROGUE, strlen(SEED_ROGUE), seed, 32);
    crypto_ed25519_from_seed(seed, pk, sk);
    assert_int_equal(
        audit_body_parse(c[13].body, strlen(c[13].body), &e.seq, e.prev, e.ts, e.kv, &event), 0);
    snprintf(e.kv, sizeof(e.kv), "v9");
    assert_int_equal(audit_entry_seal(&e, event, sk), 0);
    free(c[13].body);
    c[13].body = strdup(e.body);
    snprintf(c[13].hash, sizeof(c[13].hash), "%s", e.hash);
    snprintf(c[13].sig, sizeof(c[13].sig), "%s", e.sig);
    write_log(c, CHAIN_LEN, CHAIN_LEN, c[CHAIN_LEN - 1].hash);
    assert_verify(2, "UNVERIFIABLE at seq 14: unknown_key", NULL);
    assert_api_verify(14, "unknown_key");
    audit_entry_clear(&e);
    json_decref(event);
    free_chain(c);
}

/* Entry idx rebuilt from its event with prev (NULL: its own) and signed by seed as kv. */
static void reseal(struct stored *c, int idx, const char *prev, const char *seed64, const char *kv)
{
    struct audit_entry e = {0};
    json_t *event = NULL;
    uint8_t seed[32], pk[32], sk[64];
    crypto_unb64(seed64, strlen(seed64), seed, 32);
    crypto_ed25519_from_seed(seed, pk, sk);
    assert_int_equal(
        audit_body_parse(c[idx].body, strlen(c[idx].body), &e.seq, e.prev, e.ts, e.kv, &event), 0);
    if (prev)
        snprintf(e.prev, sizeof(e.prev), "%s", prev);
    snprintf(e.kv, sizeof(e.kv), "%s", kv);
    assert_int_equal(audit_entry_seal(&e, event, sk), 0);
    free(c[idx].body);
    c[idx].body = strdup(e.body);
    snprintf(c[idx].hash, sizeof(c[idx].hash), "%s", e.hash);
    snprintf(c[idx].sig, sizeof(c[idx].sig), "%s", e.sig);
    audit_entry_clear(&e);
    json_decref(event);
}

/* The other reasons, each at its seq, from audit-verify and /v1/verify alike: a link
 * broken by an entry re-signed with the real key, a signature moved from another entry,
 * a head that is not the last entry, a head that is gone. */
static void test_other_reasons(void **state)
{
    (void)state;
    struct stored *c = copy_chain();
    reseal(c, 7, saved[5].hash, SEED_V1, "v1"); /* seq 8 now links to seq 6 */
    write_log(c, CHAIN_LEN, CHAIN_LEN, c[CHAIN_LEN - 1].hash);
    assert_verify(1, "TAMPERED at seq 8: prev_mismatch", NULL);
    assert_api_verify(8, "prev_mismatch");
    free_chain(c);
    c = copy_chain();
    snprintf(c[4].sig, sizeof(c[4].sig), "%s", saved[5].sig);
    write_log(c, CHAIN_LEN, CHAIN_LEN, c[CHAIN_LEN - 1].hash);
    assert_verify(1, "TAMPERED at seq 5: bad_signature", NULL);
    assert_api_verify(5, "bad_signature");
    free_chain(c);
    write_log(saved, CHAIN_LEN, CHAIN_LEN, saved[CHAIN_LEN - 2].hash);
    assert_verify(1, "TAMPERED at seq 20: head_mismatch", NULL);
    assert_api_verify(20, "head_mismatch");
    write_log(saved, CHAIN_LEN - 1, CHAIN_LEN, saved[CHAIN_LEN - 1].hash); /* log lost seq 20 */
    assert_verify(1, "TAMPERED at seq 20: head_mismatch", NULL);
    write_log(saved, CHAIN_LEN, CHAIN_LEN, saved[CHAIN_LEN - 1].hash);
    freeReplyObject(th_redis_cmd(&redis, "DEL audit:{t}:head"));
    assert_verify(2, "UNVERIFIABLE at seq 21: head_missing", NULL);
    assert_api_verify(21, "head_missing");
}

/* The export file: exactly the GET /v1/events entries, one per line; --from-seq and
 * --to-seq bound it; tampering with the file is caught like tampering with Redis. */
static void test_export_file(void **state)
{
    (void)state;
    char file[320], cp[320], *out = NULL;
    write_log(saved, CHAIN_LEN, CHAIN_LEN, saved[CHAIN_LEN - 1].hash);
    const char *exp[] = {"audit-export", "--redis", redis.url, "--chain", "t", NULL};
    assert_int_equal(th_run(th_bin("bin/audit-export"), exp, NULL, &out, NULL, 20000), 0);
    json_t *page = au_get(daemon_.port, "/v1/events?from_seq=1&limit=1000");
    json_t *entries = json_object_get(page, "entries");
    assert_int_equal(json_array_size(entries), CHAIN_LEN);
    char *line = out;
    for (int i = 0; i < CHAIN_LEN; i++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        json_t *j = json_loadb(line, (size_t)(nl - line), 0, NULL);
        assert_true(json_equal(j, json_array_get(entries, (size_t)i)));
        json_decref(j);
        line = nl + 1;
    }
    assert_string_equal(line, "");
    json_decref(page);
    snprintf(file, sizeof(file), "%s/t.jsonl", tmp);
    au_write(file, out);
    free(out);
    const char *range[] = {"audit-export", "--redis", redis.url,  "--chain", "t",
                           "--from-seq",   "3",       "--to-seq", "5",       NULL};
    assert_int_equal(th_run(th_bin("bin/audit-export"), range, NULL, &out, NULL, 20000), 0);
    assert_non_null(strstr(out, "{\"seq\":3,"));
    assert_non_null(strstr(out, "{\"seq\":5,"));
    assert_null(strstr(out, "{\"seq\":6,"));
    assert_int_equal(strchr(strchr(strchr(out, '\n') + 1, '\n') + 1, '\n')[1], '\0');
    free(out);
    const char *ok[] = {"--file", file, "--keys", keys_file, NULL};
    assert_int_equal(au_verify(ok, &out), 0);
    assert_non_null(strstr(out, "OK: 20 entries, seq 1..20"));
    free(out);
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "exec '%s' --file - --keys '%s' < '%s'", th_bin("bin/audit-verify"),
             keys_file, file);
    const char *sh[] = {"sh", "-c", cmd, NULL};
    assert_int_equal(th_run("/bin/sh", sh, NULL, &out, NULL, 20000), 0); /* from stdin */
    assert_non_null(strstr(out, "OK: 20 entries, seq 1..20"));
    free(out);
    /* one byte of seq 7's body, in the file */
    char *text = audit_tool_read_file(file, &(size_t){0});
    char *p = strstr(text, "{\"seq\":7,");
    p = strstr(p, "\"body\":\"") + 8;
    p = strstr(p, "\\\"actor\\\":\\\"u\\\"");
    p[12] = 'w'; /* actor "u" becomes "w" */
    au_write(file, text);
    assert_int_equal(au_verify(ok, &out), 1);
    assert_non_null(strstr(out, "TAMPERED at seq 7: hash_mismatch"));
    free(out);
    free(text);
    /* the tail cut off, against a checkpoint of the whole chain */
    snprintf(cp, sizeof(cp), "%s/t-cp.txt", tmp);
    assert_int_equal(au_get_file(daemon_.port, "/v1/checkpoint", cp), 0);
    const char *head[] = {"audit-export", "--redis", redis.url, "--chain", "t",
                          "--to-seq",     "15",      NULL};
    assert_int_equal(th_run(th_bin("bin/audit-export"), head, NULL, &out, NULL, 20000), 0);
    au_write(file, out);
    free(out);
    const char *trunc[] = {"--file", file, "--keys", keys_file, "--expect", cp, NULL};
    assert_int_equal(au_verify(trunc, &out), 2);
    assert_non_null(strstr(out, "UNVERIFIABLE at seq 16: truncated"));
    free(out);
    const char *bad[][8] = {{"audit-export", NULL},
                            {"audit-export", "--redis", redis.url, "--from-seq", "0", NULL},
                            {"audit-export", "--redis", redis.url, "--chain", "Bad", NULL},
                            {"audit-export", "--redis", "redis://127.0.0.1:1/0", NULL}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(th_run(th_bin("bin/audit-export"), bad[i], NULL, NULL, NULL, 20000), 3);
}

/* Exit 3: usage and I/O errors, each before any verdict. */
static void test_verify_exit_3(void **state)
{
    (void)state;
    char badring[320], head[96], *out = NULL, *err = NULL;
    write_log(saved, CHAIN_LEN, CHAIN_LEN, saved[CHAIN_LEN - 1].hash);
    snprintf(badring, sizeof(badring), "%s/bad.json", tmp);
    au_write(badring, "{\"keys\":[{\"version\":\"v1\",\"public_key\":\"AAAA\"}]}");
    snprintf(head, sizeof(head), "5:%s", saved[4].hash);
    const char *cases[][12] = {
        {"--redis", "redis://127.0.0.1:1/0", "--keys", keys_file, NULL},
        {"--file", "/nonexistent/x.jsonl", "--keys", keys_file, NULL},
        {"--redis", redis.url, "--chain", "t", "--keys", "/nonexistent/k.json", NULL},
        {"--redis", redis.url, "--chain", "t", "--keys", badring, NULL},
        {"--redis", redis.url, "--file", "x", "--keys", keys_file, NULL},
        {"--redis", redis.url, "--chain", "t", "--keys", keys_file, "--threads", "0", NULL},
        {"--redis", redis.url, "--chain", "t", "--keys", keys_file, "--from-seq", "x", NULL},
        {"--redis", redis.url, "--chain", "t", "--keys", keys_file, "--expect-head", "5", NULL},
        {"--redis", redis.url, "--chain", "t", "--keys", keys_file, "--expect", "/nonexistent",
         NULL},
        {"--redis", redis.url, "--chain", "t", "--keys", keys_file, "--expect-head", head,
         "--from-seq", "9", NULL},
        {"--redis", redis.url, "--chain", "t", "--keys", keys_file, "--bogus", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *argv[16] = {"audit-verify"};
        for (int k = 0; cases[i][k]; k++)
            argv[k + 1] = cases[i][k];
        int st = th_run(th_bin("bin/audit-verify"), argv, NULL, &out, &err, 30000);
        if (st != 3 || (out && *out) || !err || !*err)
            fail_msg("case %zu: exit %d, out '%s'", i, st, out ? out : "");
        free(out);
        free(err);
        out = err = NULL;
    }
}

/* --help, --version, --check-config (the URL's password masked), and REDIS_URL in the
 * environment standing in for --redis, for both tools. */
static void test_tool_flags(void **state)
{
    (void)state;
    char url[200], *out = NULL;
    write_log(saved, CHAIN_LEN, CHAIN_LEN, saved[CHAIN_LEN - 1].hash);
    const char *tools[] = {"bin/audit-verify", "bin/audit-export"};
    for (int i = 0; i < 2; i++) {
        const char *help[] = {"x", "--help", NULL}, *ver[] = {"x", "--version", NULL};
        assert_int_equal(th_run(th_bin(tools[i]), help, NULL, &out, NULL, 10000), 0);
        assert_non_null(strstr(out, "usage: warden-audit-"));
        free(out);
        assert_int_equal(th_run(th_bin(tools[i]), ver, NULL, &out, NULL, 10000), 0);
        assert_non_null(strstr(out, " 0.1.0"));
        free(out);
    }
    const char *chk[] = {
        "audit-verify",   "--redis", "redis://auditor:s3cret@127.0.0.1:1/0", "--keys", keys_file,
        "--check-config", NULL};
    assert_int_equal(th_run(th_bin("bin/audit-verify"), chk, NULL, &out, NULL, 10000), 0);
    assert_non_null(strstr(out, "redis=redis://auditor:<secret>@127.0.0.1:1/0"));
    assert_null(strstr(out, "s3cret"));
    free(out);
    snprintf(url, sizeof(url), "REDIS_URL=%s", redis.url);
    const char *env[] = {url, NULL};
    const char *v[] = {"audit-verify", "--chain", "t", "--keys", keys_file, NULL};
    assert_int_equal(th_run(th_bin("bin/audit-verify"), v, env, &out, NULL, 20000), 0);
    assert_non_null(strstr(out, "OK: 20 entries"));
    free(out);
    const char *x[] = {"audit-export", "--chain", "t", "--to-seq", "1", NULL};
    assert_int_equal(th_run(th_bin("bin/audit-export"), x, env, &out, NULL, 20000), 0);
    assert_int_equal(strncmp(out, "{\"seq\":1,", 9), 0);
    free(out);
}

/* --from-seq at the head + 1 (nothing new) verifies 0 entries; past it the chain is
 * shorter than asked for; an expected head right before --from-seq is the trusted link. */
static void test_from_seq_edges(void **state)
{
    (void)state;
    char link[96], wrong[96], *out = NULL;
    write_log(saved, CHAIN_LEN, CHAIN_LEN, saved[CHAIN_LEN - 1].hash);
    const char *next[] = {"--redis", redis.url,    "--chain", "t", "--keys",
                          keys_file, "--from-seq", "21",      NULL};
    assert_int_equal(au_verify(next, &out), 0);
    assert_non_null(strstr(out, "OK: 0 entries"));
    assert_non_null(strstr(out, saved[CHAIN_LEN - 1].hash));
    free(out);
    const char *past[] = {"--redis", redis.url,    "--chain", "t", "--keys",
                          keys_file, "--from-seq", "23",      NULL};
    assert_int_equal(au_verify(past, &out), 2);
    assert_non_null(strstr(out, "UNVERIFIABLE at seq 21: truncated"));
    free(out);
    snprintf(link, sizeof(link), "10:%s", saved[9].hash);
    snprintf(wrong, sizeof(wrong), "10:%s", saved[10].hash);
    const char *at[] = {"--redis",    redis.url, "--chain",       "t",  "--keys", keys_file,
                        "--from-seq", "11",      "--expect-head", link, NULL};
    assert_int_equal(au_verify(at, &out), 0);
    assert_non_null(strstr(out, "OK: 10 entries, seq 11..20"));
    free(out);
    at[9] = wrong;
    assert_int_equal(au_verify(at, &out), 1);
    assert_non_null(strstr(out, "TAMPERED at seq 10: head_mismatch"));
    free(out);
    json_t *j = NULL;
    assert_int_equal(au_post(daemon_.port, "/v1/verify", "{\"from_seq\":5,\"to_seq\":10}", &j),
                     200);
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_int_equal(json_integer_value(json_object_get(j, "checked")), 6);
    assert_int_equal(json_integer_value(json_object_get(j, "head_seq")), CHAIN_LEN);
    json_decref(j);
    /* a tampered entry outside the range is not looked at */
    struct stored *c = copy_chain();
    c[14].body[20] ^= 1;
    write_log(c, CHAIN_LEN, CHAIN_LEN, c[CHAIN_LEN - 1].hash);
    assert_int_equal(au_post(daemon_.port, "/v1/verify", "{\"to_seq\":14}", &j), 200);
    assert_true(json_is_true(json_object_get(j, "ok")));
    json_decref(j);
    assert_api_verify(15, "hash_mismatch");
    free_chain(c);
}

struct grower {
    int port, stop, posted;
};

static void *grow_main(void *arg)
{
    struct grower *g = arg;
    while (!__atomic_load_n(&g->stop, __ATOMIC_ACQUIRE)) {
        if (au_post(g->port, "/v1/events/batch",
                    "{\"events\":[{\"actor\":\"g\",\"action\":\"a\"},{\"actor\":\"g\","
                    "\"action\":\"b\"}]}",
                    NULL) == 201)
            g->posted += 2;
    }
    return NULL;
}

/* A live chain that keeps growing while audit-verify runs verifies cleanly, up to the head
 * read first. */
static void test_verify_live_chain(void **state)
{
    (void)state;
    struct th_proc p;
    struct grower g = {0};
    pthread_t t;
    char ring[320], *out = NULL, batch[64 * 40];
    const char *env[] = {"AUDIT_CHAIN=live", KEY_V1_ENV, NULL};
    assert_int_equal(au_start(&p, &redis, env), 0);
    int n = snprintf(batch, sizeof(batch), "{\"events\":[");
    for (int i = 0; i < 50; i++)
        n += snprintf(batch + n, sizeof(batch) - (size_t)n, "%s{\"actor\":\"s\",\"action\":\"x\"}",
                      i ? "," : "");
    snprintf(batch + n, sizeof(batch) - (size_t)n, "]}");
    for (int i = 0; i < 40; i++)
        assert_int_equal(au_post(p.port, "/v1/events/batch", batch, NULL), 201);
    snprintf(ring, sizeof(ring), "%s/live.json", tmp);
    assert_int_equal(au_get_file(p.port, "/v1/keys", ring), 0);
    g.port = p.port;
    assert_int_equal(pthread_create(&t, NULL, grow_main, &g), 0);
    usleep(100000);
    const char *args[] = {"--redis", redis.url, "--chain", "live", "--keys", ring, "--json", NULL};
    int st = au_verify(args, &out);
    __atomic_store_n(&g.stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    th_proc_stop(&p, SIGTERM, 5000);
    if (st != 0)
        fail_msg("audit-verify on a growing chain: exit %d: %s", st, out ? out : "");
    json_t *j = json_loads(out, 0, NULL);
    long long checked = json_integer_value(json_object_get(j, "checked"));
    assert_true(checked >= 2001);
    assert_int_equal(json_integer_value(json_object_get(j, "head_seq")), checked);
    assert_true(json_is_null(json_object_get(j, "first_bad_seq")));
    json_decref(j);
    free(out);
    assert_true(g.posted > 0);
    assert_true(th_redis_int(&redis, "HGET audit:{live}:head seq") > checked); /* it grew on */
}

/* A valid chain whose tail was cut off: fine on its own, caught against a checkpoint. */
static void test_truncated_tail_against_checkpoint(void **state)
{
    (void)state;
    char cp[320];
    write_log(saved, CHAIN_LEN, CHAIN_LEN, saved[CHAIN_LEN - 1].hash);
    snprintf(cp, sizeof(cp), "%s/checkpoint.txt", tmp);
    assert_int_equal(au_get_file(daemon_.port, "/v1/checkpoint", cp), 0);
    assert_verify(0, "OK: 20 entries", cp);
    write_log(saved, CHAIN_LEN - 3, CHAIN_LEN - 3, saved[CHAIN_LEN - 4].hash);
    assert_verify(1, "TAMPERED at seq 17: tree_mismatch", NULL); /* the tree says 20 */
    au_set_tree(&redis, "t", CHAIN_LEN - 3);                     /* cut back with care */
    assert_verify(0, "OK: 17 entries", NULL);
    assert_verify(2, "UNVERIFIABLE at seq 18: truncated", cp);
    /* A checkpoint signed by a key outside the keyring is refused (usage/I-O error). */
    FILE *f = fopen(cp, "r+");
    fseek(f, -5, SEEK_END);
    fputc('A', f);
    fclose(f);
    assert_verify(3, "", cp);
}

static void test_rotation(void **state)
{
    (void)state;
    struct th_proc p;
    char ring[320], ring1[320], doc[512], *out = NULL;
    const char *v1[] = {"AUDIT_CHAIN=rot", KEY_V1_ENV, NULL};
    const char *v12[] = {"AUDIT_CHAIN=rot", KEY_V1_ENV, KEY_V2_ENV, NULL};
    assert_int_equal(au_start(&p, &redis, v1), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"r1\"}", NULL),
                         201);
    snprintf(ring1, sizeof(ring1), "%s/ring1.json", tmp);
    assert_int_equal(au_get_file(p.port, "/v1/keys", ring1), 0);
    th_proc_stop(&p, SIGTERM, 5000);
    /* Staged: v2 present but held back; v1 keeps signing (seq 7), v2 never used. */
    const char *staged[] = {"AUDIT_CHAIN=rot", KEY_V1_ENV, KEY_V2_ENV,
                            "AUDIT_ACTIVE_KEY_VERSION=v1", NULL};
    json_t *j = NULL;
    assert_int_equal(au_start(&p, &redis, staged), 0);
    assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"s\"}", &j), 201);
    assert_string_equal(json_string_value(json_object_get(j, "key_version")), "v1");
    json_decref(j);
    j = au_get(p.port, "/v1/keys");
    assert_string_equal(json_string_value(json_object_get(j, "active")), "v1");
    json_t *s2 = json_array_get(json_object_get(j, "keys"), 1);
    assert_string_equal(json_string_value(json_object_get(s2, "version")), "v2");
    assert_true(json_is_true(json_object_get(s2, "signing")));
    assert_true(json_is_null(json_object_get(s2, "first_seq")));
    json_decref(j);
    th_proc_stop(&p, SIGTERM, 5000);
    assert_int_equal(au_start(&p, &redis, v12), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"r2\"}", NULL),
                         201);
    json_t *keys = au_get(p.port, "/v1/keys");
    assert_string_equal(json_string_value(json_object_get(keys, "active")), "v2");
    json_t *k2 = json_array_get(json_object_get(keys, "keys"), 1);
    assert_int_equal(json_integer_value(json_object_get(k2, "first_seq")), 8);
    json_t *e7 = au_get(p.port, "/v1/events/8");
    json_t *ev7 = json_object_get(e7, "event");
    assert_string_equal(json_string_value(json_object_get(ev7, "action")), "audit.key_activated");
    assert_string_equal(json_string_value(json_object_get(ev7, "actor")), "auditd");
    assert_string_equal(json_string_value(json_object_get(e7, "key_version")), "v2");
    json_t *meta = json_object_get(ev7, "metadata");
    assert_string_equal(json_string_value(json_object_get(meta, "version")), "v2");
    assert_string_equal(json_string_value(json_object_get(meta, "public_key")),
                        json_string_value(json_object_get(k2, "public_key")));
    json_decref(e7);
    json_t *e6 = au_get(p.port, "/v1/events/7"); /* the last v1 entry */
    assert_string_equal(json_string_value(json_object_get(e6, "key_version")), "v1");
    json_decref(e6);
    snprintf(ring, sizeof(ring), "%s/ring.json", tmp);
    char *text = json_dumps(keys, 0);
    au_write(ring, text);
    free(text);
    json_decref(keys);
    th_proc_stop(&p, SIGTERM, 5000);
    const char *both[] = {"--redis", redis.url, "--chain", "rot", "--keys", ring, NULL};
    assert_int_equal(au_verify(both, &out), 0);
    assert_non_null(strstr(out, "OK: 13 entries"));
    free(out);
    const char *only1[] = {"--redis", redis.url, "--chain", "rot", "--keys", ring1, NULL};
    assert_int_equal(au_verify(only1, &out), 2);
    assert_non_null(strstr(out, "UNVERIFIABLE at seq 8: unknown_key"));
    free(out);
    /* Retire v1 for signing, keep its public key: still listed, not signing. */
    char pub1[96];
    json_t *r1 = json_load_file(ring1, 0, NULL);
    snprintf(pub1, sizeof(pub1), "AUDIT_PUBLIC_KEY_V1=%s",
             json_string_value(
                 json_object_get(json_array_get(json_object_get(r1, "keys"), 0), "public_key")));
    json_decref(r1);
    const char *retired[] = {"AUDIT_CHAIN=rot", pub1, KEY_V2_ENV, NULL};
    assert_int_equal(au_start(&p, &redis, retired), 0);
    keys = au_get(p.port, "/v1/keys");
    json_t *k1 = json_array_get(json_object_get(keys, "keys"), 0);
    assert_string_equal(json_string_value(json_object_get(k1, "version")), "v1");
    assert_false(json_is_true(json_object_get(k1, "signing")));
    assert_int_equal(json_integer_value(json_object_get(k1, "first_seq")), 1);
    json_decref(keys);
    assert_int_equal(au_post(p.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"r3\"}", NULL),
                     201);
    json_t *e13 = au_get(p.port, "/v1/events/14"); /* no second activation of v2 */
    assert_string_equal(json_string_value(json_object_get(json_object_get(e13, "event"), "action")),
                        "r3");
    json_decref(e13);
    th_proc_stop(&p, SIGTERM, 5000);
    (void)doc;
}

/* A rolling restart: an old instance (v1 only) and two new ones (v1 + v2) append at the
 * same time to a new chain. Each version is activated exactly once, entries of both
 * versions interleave, and the chain verifies with both public keys. */
static void test_rolling_restart(void **state)
{
    (void)state;
    struct th_proc d[3];
    struct au_poster ps[3];
    pthread_t t[3];
    char ring[320], *out = NULL;
    const char *old[] = {"AUDIT_CHAIN=mix", KEY_V1_ENV, NULL};
    const char *nu[] = {"AUDIT_CHAIN=mix", KEY_V1_ENV, KEY_V2_ENV, NULL};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(au_start(&d[i], &redis, i == 0 ? old : nu), 0);
        ps[i] = (struct au_poster){
            .port = d[i].port, .n = 20, .body = "{\"actor\":\"u\",\"action\":\"mix\"}"};
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, au_poster_main, &ps[i]), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(ps[i].ok, 20);
    }
    snprintf(ring, sizeof(ring), "%s/mix.json", tmp);
    assert_int_equal(au_get_file(d[1].port, "/v1/keys", ring), 0);
    for (int i = 0; i < 3; i++)
        th_proc_stop(&d[i], SIGTERM, 5000);
    redisReply *r = th_redis_cmd(&redis, "XRANGE audit:{mix}:log - +");
    assert_non_null(r);
    assert_int_equal(r->elements, 62);
    int act_v1 = 0, act_v2 = 0, kv1 = 0, kv2 = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const char *body = r->element[i]->element[1]->element[1]->str;
        int is_v2 = strstr(body, "\"kv\":\"v2\"") != NULL;
        kv1 += !is_v2;
        kv2 += is_v2;
        if (strstr(body, "\"action\":\"audit.key_activated\"")) {
            act_v1 += !is_v2;
            act_v2 += is_v2;
        }
    }
    freeReplyObject(r);
    assert_int_equal(act_v1, 1);
    assert_int_equal(act_v2, 1);
    assert_true(kv1 >= 21 && kv2 >= 41);
    const char *args[] = {"--redis", redis.url, "--chain", "mix", "--keys", ring, NULL};
    assert_int_equal(au_verify(args, &out), 0);
    assert_non_null(strstr(out, "OK: 62 entries"));
    free(out);
}

/* --expect-head, --from-seq and the --json report of a failure. */
static void test_verify_options(void **state)
{
    (void)state;
    char head[96], wrong[96], *out = NULL;
    write_log(saved, CHAIN_LEN, CHAIN_LEN, saved[CHAIN_LEN - 1].hash);
    snprintf(head, sizeof(head), "10:%s", saved[9].hash);
    snprintf(wrong, sizeof(wrong), "10:%s", saved[8].hash);
    const char *good[] = {"--redis",    redis.url, "--chain",       "t",  "--keys", keys_file,
                          "--from-seq", "5",       "--expect-head", head, NULL};
    assert_int_equal(au_verify(good, &out), 0);
    assert_non_null(strstr(out, "OK: 16 entries, seq 5..20"));
    free(out);
    const char *bad[] = {"--redis", redis.url,       "--chain", "t",      "--keys",
                         keys_file, "--expect-head", wrong,     "--json", NULL};
    assert_int_equal(au_verify(bad, &out), 1);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_false(json_is_true(json_object_get(j, "ok")));
    assert_int_equal(json_integer_value(json_object_get(j, "first_bad_seq")), 10);
    assert_string_equal(json_string_value(json_object_get(j, "reason")), "head_mismatch");
    json_decref(j);
    free(out);
    const char *usage[] = {"--chain", "t", NULL}; /* neither --redis nor --file, no --keys */
    assert_int_equal(au_verify(usage, NULL), 3);
    /* A progress line on stderr when it is a terminal, and only then. */
    char cmd[1200], *err = NULL;
    const char *plain[] = {"audit-verify", "--redis", redis.url, "--chain", "t",
                           "--keys",       keys_file, NULL};
    assert_int_equal(th_run(th_bin("bin/audit-verify"), plain, NULL, &out, &err, 20000), 0);
    assert_null(strstr(err, "verified"));
    free(out);
    free(err);
    snprintf(cmd, sizeof(cmd), "exec '%s' --redis %s --chain t --keys '%s'",
             th_bin("bin/audit-verify"), redis.url, keys_file);
    const char *tty[] = {"script", "-qec", cmd, "/dev/null", NULL};
    assert_int_equal(th_run("/usr/bin/script", tty, NULL, &out, NULL, 20000), 0);
    assert_non_null(strstr(out, "verified 20 / 20"));
    assert_non_null(strstr(out, "OK: 20 entries"));
    free(out);
}

/* Two instances, a 1 s interval: a checkpoint is stored for every interval, also while
 * nothing is appended, at most one per interval (its stream id is the interval's start on
 * Redis's clock); each is a signed note audit-verify --expect accepts, and catches a
 * truncated chain with. */
static void test_periodic_checkpoints(void **state)
{
    (void)state;
    struct th_proc a, b;
    const char *env[] = {"AUDIT_CHAIN=cp", KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=1s", NULL};
    assert_int_equal(au_start(&a, &redis, env), 0);
    assert_int_equal(au_start(&b, &redis, env), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(au_post(i % 2 ? b.port : a.port, "/v1/events",
                                 "{\"actor\":\"u\",\"action\":\"c\"}", NULL),
                         201);
    int64_t t0 = th_now_ms();
    usleep(3300000); /* idle */
    double before = au_metric(a.port, "auditd_checkpoints_total ") +
                    au_metric(b.port, "auditd_checkpoints_total ");
    redisReply *r = th_redis_cmd(&redis, "XRANGE audit:{cp}:checkpoints - +");
    double after = au_metric(a.port, "auditd_checkpoints_total ") +
                   au_metric(b.port, "auditd_checkpoints_total ");
    int64_t elapsed = th_now_ms() - t0;
    long long n = (long long)r->elements, idle = 0, last_ms = -1;
    char cp[320];
    snprintf(cp, sizeof(cp), "%s/stored.txt", tmp);
    for (size_t i = 0; i < r->elements; i++) {
        long long ms = atoll(r->element[i]->element[0]->str);
        redisReply *f = r->element[i]->element[1];
        assert_int_equal(ms % 1000, 0); /* the start of its interval */
        assert_true(ms > last_ms);      /* one per interval */
        last_ms = ms;
        assert_string_equal(f->element[0]->str, "seq");
        assert_string_equal(f->element[4]->str, "note");
        if (atoll(f->element[1]->str) == 6) {
            idle++;
            au_write(cp, f->element[5]->str);
            char want[128];
            snprintf(want, sizeof(want), "warden-audit/cp\n6\n");
            assert_int_equal(strncmp(f->element[5]->str, want, strlen(want)), 0);
        }
    }
    freeReplyObject(r);
    assert_true(idle >= 2);               /* stored while idle */
    assert_true(n <= elapsed / 1000 + 3); /* the intervals since start, at most */
    assert_true((long long)before <= n && n <= (long long)after); /* counted once each */
    char ring[320], *out = NULL;
    snprintf(ring, sizeof(ring), "%s/cpring.json", tmp);
    assert_int_equal(au_get_file(a.port, "/v1/keys", ring), 0);
    th_proc_stop(&a, SIGTERM, 5000);
    th_proc_stop(&b, SIGTERM, 5000);
    const char *args[] = {"--redis", redis.url,  "--chain", "cp", "--keys",
                          ring,      "--expect", cp,        NULL};
    assert_int_equal(au_verify(args, &out), 0);
    assert_non_null(strstr(out, "OK: 6 entries"));
    free(out);
    /* cut the last entry and move the head back: the stored checkpoint catches it */
    redisReply *e5 = th_redis_cmd(&redis, "XRANGE audit:{cp}:log 5-0 5-0");
    freeReplyObject(th_redis_cmd(&redis, "XDEL audit:{cp}:log 6-0"));
    freeReplyObject(th_redis_cmd(&redis, "HSET audit:{cp}:head seq 5 hash %s",
                                 e5->element[0]->element[1]->element[3]->str));
    freeReplyObject(e5);
    au_set_tree(&redis, "cp", 5);
    assert_int_equal(au_verify(args, &out), 2);
    assert_non_null(strstr(out, "UNVERIFIABLE at seq 6: truncated"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intact_chain_verifies),
        cmocka_unit_test(test_one_byte_changed),
        cmocka_unit_test(test_deleted_entry),
        cmocka_unit_test(test_swapped_entries),
        cmocka_unit_test(test_resigned_unknown_key),
        cmocka_unit_test(test_truncated_tail_against_checkpoint),
        cmocka_unit_test(test_verify_options),
        cmocka_unit_test(test_other_reasons),
        cmocka_unit_test(test_export_file),
        cmocka_unit_test(test_verify_exit_3),
        cmocka_unit_test(test_tool_flags),
        cmocka_unit_test(test_from_seq_edges),
        cmocka_unit_test(test_verify_live_chain),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_rolling_restart),
        cmocka_unit_test(test_periodic_checkpoints),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
