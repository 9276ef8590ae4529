/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of retention: a real redis-server and auditd. audit-export --tiles, then
 * audit-trim removes the entries and full tiles before a seq — and Redis's memory of the
 * chain drops; the trim is an entry of the chain (audit.trimmed, with its checkpoint);
 * appends, proofs of retained entries, audit-verify over archive + Redis, a restart all go
 * on; audit-verify on Redis alone says trimmed (exit 2) and verifies from the first seq
 * kept. A trim is refused, removing and recording nothing, without an archive, with one
 * that does not verify, one that does not reach the seq, one of another tree. The
 * retention script the systemd timer runs keeps the newest entries it is told to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/stat.h>

#include "../../auditd/tool.h"
#include "test_auditd_util.h"
#include "test_ops_util.h"

#define ADMIN "trim-admin-token-0123456789abcdef"

static struct th_redis redis;
static struct th_proc daemon_, other;
static char tmp[256], ring[320], admin_file[320], env_admin[340];

static int setup(void **state)
{
    (void)state;
    if (th_tmpdir(tmp, sizeof(tmp)) != 0 || th_redis_start(&redis, NULL) != 0)
        return -1;
    snprintf(admin_file, sizeof(admin_file), "%s/admin-token", tmp);
    snprintf(env_admin, sizeof(env_admin), "ADMIN_TOKEN_FILE=%s", admin_file);
    snprintf(ring, sizeof(ring), "%s/ring.json", tmp);
    th_write_file(admin_file, ADMIN "\n");
    const char *env[] = {KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=0", env_admin, NULL};
    const char *env_other[] = {KEY_V1_ENV, "AUDIT_CHAIN=other", "AUDIT_CHECKPOINT_INTERVAL=0",
                               "AUDIT_ORIGIN=warden-audit/default", NULL};
    if (au_start(&daemon_, &redis, env) != 0 || au_start(&other, &redis, env_other) != 0)
        return -1;
    return au_get_file(daemon_.port, "/v1/keys", ring);
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&daemon_, SIGTERM, 5000);
    th_proc_stop(&other, SIGTERM, 5000);
    th_redis_stop(&redis);
    return 0;
}

/* n events in batches of up to 500 to auditd on port. */
static void append(int port, int n)
{
    while (n > 0) {
        int k = n < 500 ? n : 500;
        char *body = malloc((size_t)k * 48 + 32);
        size_t used = (size_t)sprintf(body, "{\"events\":[");
        for (int i = 0; i < k; i++)
            used += (size_t)sprintf(body + used, "%s{\"actor\":\"u\",\"action\":\"keep\"}",
                                    i ? "," : "");
        sprintf(body + used, "]}");
        assert_int_equal(au_post(port, "/v1/events/batch", body, NULL), 201);
        free(body);
        n -= k;
    }
}

/* Export chain's tree at auditd on port's checkpoint into dir. */
static void export_to(int port, const char *chain, const char *dir)
{
    char cp[400], *out = NULL;
    snprintf(cp, sizeof(cp), "%s.cp", dir);
    assert_int_equal(au_get_file(port, "/v1/checkpoint", cp), 0);
    const char *argv[] = {"audit-export", "--redis", redis.url,      "--chain", chain,
                          "--tiles",      dir,       "--checkpoint", cp,        NULL};
    int st = th_run(th_bin("bin/audit-export"), argv, NULL, &out, NULL, 60000);
    if (st != 0)
        fail_msg("audit-export --tiles: exit %d: %s", st, out ? out : "");
    free(out);
}

/* audit-trim of chain default before seq `before` with archive dir; its exit status, its
 * output (both streams) in *out. */
static int trim(const char *dir, long long before, char **out)
{
    char seq[24], url[64], *err = NULL;
    snprintf(seq, sizeof(seq), "%lld", before);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", daemon_.port);
    const char *argv[] = {"audit-trim", "--redis",      redis.url, "--tiles",  dir, "--keys",
                          ring,         "--before-seq", seq,       "--auditd", url, NULL};
    const char *env[] = {env_admin, NULL};
    int st = th_run(th_bin("bin/audit-trim"), argv, env, out, &err, 60000);
    size_t len = (*out ? strlen(*out) : 0) + (err ? strlen(err) : 0) + 1;
    char *both = malloc(len);
    snprintf(both, len, "%s%s", *out ? *out : "", err ? err : "");
    free(*out);
    free(err);
    *out = both;
    return st;
}

static long long head_seq(void)
{
    return th_redis_int(&redis, "HGET audit:{default}:head seq");
}

/* Nothing was removed nor recorded by a refused trim. */
static void assert_refused(const char *dir, long long before, const char *why)
{
    char *out = NULL;
    long long len = th_redis_int(&redis, "XLEN audit:{default}:log"), head = head_seq();
    int st = trim(dir, before, &out);
    if (st != 1 || !strstr(out, why))
        fail_msg("trim (%s): exit %d: %s (wanted 1: %s)", dir, st, out, why);
    free(out);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{default}:log"), len);
    assert_int_equal(head_seq(), head);
    assert_int_equal(th_redis_int(&redis, "EXISTS audit:{default}:trim"), 0);
}

static void test_refused_without_a_verifying_archive(void **state)
{
    (void)state;
    char dir[320], bad[320], other_dir[320], cmd[1000], path[400];
    append(daemon_.port, 2200);
    append(other.port, 300);
    snprintf(dir, sizeof(dir), "%s/archive", tmp);
    export_to(daemon_.port, "default", dir);
    snprintf(bad, sizeof(bad), "%s/nowhere", tmp);
    assert_refused(bad, 1025, "checkpoint: cannot be read");
    snprintf(bad, sizeof(bad), "%s/edited", tmp);
    snprintf(cmd, sizeof(cmd), "cp -r '%s' '%s'", dir, bad);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/tile/entries/001", bad);
    size_t len = 0;
    char *b = audit_tool_read_file(path, &len);
    b[len / 2] ^= 0x01;
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, len, f);
    fclose(f);
    free(b);
    assert_refused(bad, 1025, "the archive does not verify");
    assert_refused(dir, head_seq() + 5, "it does not hold");
    /* chain other, same key and origin: a valid archive, of another tree */
    snprintf(other_dir, sizeof(other_dir), "%s/other-archive", tmp);
    export_to(other.port, "other", other_dir);
    assert_refused(other_dir, 200, "not of the tree and chain in Redis");
}

/* POST /v1/admin/trim itself: the admin token, a body of before_seq and a checkpoint of
 * this log; anything else is refused and records nothing. */
static void test_trim_route_refusals(void **state)
{
    (void)state;
    char body[1400], note[1024];
    size_t len = 0;
    char path[400];
    snprintf(path, sizeof(path), "%s/archive/checkpoint", tmp);
    char *cp = audit_tool_read_file(path, &len);
    assert_non_null(cp);
    json_t *j = json_stringn(cp, len);
    char *quoted = json_dumps(j, JSON_ENCODE_ANY);
    snprintf(note, sizeof(note), "%s", quoted);
    free(quoted);
    json_decref(j);
    free(cp);
    const char *auth[] = {"Content-Type: application/json", "Authorization: Bearer " ADMIN, NULL};
    const char *wrong[] = {"Content-Type: application/json", NULL};
    static const char *const bad[] = {"{}",
                                      "{\"before_seq\":1,\"checkpoint\":%s}",
                                      "{\"before_seq\":\"5\",\"checkpoint\":%s}",
                                      "{\"before_seq\":5}",
                                      "{\"before_seq\":5,\"checkpoint\":\"not a note\"}",
                                      "{\"before_seq\":5,\"checkpoint\":%s,\"extra\":1}",
                                      "{\"before_seq\":999999999,\"checkpoint\":%s}"};
    long long head = head_seq();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct th_resp r;
        const char *at = strchr(bad[i], '@'); /* where the checkpoint goes */
        snprintf(body, sizeof(body), "%.*s%s%s", at ? (int)(at - bad[i]) : (int)strlen(bad[i]),
                 bad[i], at ? note : "", at ? at + 1 : "");
        assert_int_equal(
            th_http(daemon_.port, "POST", "/v1/admin/trim", auth, body, strlen(body), &r), 0);
        if (r.status != 400)
            fail_msg("%s: %d %s", body, r.status, r.body);
        th_resp_free(&r);
    }
    snprintf(body, sizeof(body), "{\"before_seq\":5,\"checkpoint\":%s}", note);
    struct th_resp r;
    assert_int_equal(th_http(daemon_.port, "POST", "/v1/admin/trim", wrong, body, strlen(body), &r),
                     0);
    assert_int_equal(r.status, 401);
    th_resp_free(&r);
    assert_int_equal(head_seq(), head);
}

static long long used_memory(void)
{
    redisReply *r = th_redis_cmd(&redis, "MEMORY USAGE audit:{default}:log SAMPLES 0");
    long long log = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    long long tiles = 0;
    for (int t = 0; t < 9; t++)
        tiles += th_redis_int(&redis, "STRLEN audit:{default}:tile:0:%d", t);
    return log + tiles;
}

static void proof_status(const char *path, int want)
{
    struct th_resp r;
    assert_int_equal(th_http(daemon_.port, "GET", path, NULL, NULL, 0, &r), 0);
    if (r.status != want)
        fail_msg("%s: %d %s (wanted %d)", path, r.status, r.body, want);
    th_resp_free(&r);
}

/* The trim itself, and everything that goes on after it. */
static void test_trim(void **state)
{
    (void)state;
    char dir[320], *out = NULL, path[160];
    snprintf(dir, sizeof(dir), "%s/archive", tmp);
    long long head = head_seq(), before_mem = used_memory();
    int st = trim(dir, 1025, &out);
    if (st != 0 || !strstr(out, "trimmed chain default before seq 1025: 1024 entries and 4 tiles "
                                "removed"))
        fail_msg("audit-trim: exit %d: %s", st, out);
    free(out);
    /* 1024 of the 2,202 entries and 4 of the 9 level-0 tiles are gone: the log and the
     * tiles take well under 60% of what they took */
    long long after_mem = used_memory();
    if (after_mem >= before_mem * 6 / 10)
        fail_msg("the chain's memory went from %lld to %lld bytes only", before_mem, after_mem);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{default}:log"), head + 1 - 1024);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{default}:trim first_seq"), 1025);
    assert_int_equal(th_redis_int(&redis, "EXISTS audit:{default}:tile:0:3"), 0);
    assert_int_equal(th_redis_int(&redis, "EXISTS audit:{default}:tile:0:4"), 1);
    /* recorded in the chain: audit.trimmed, with the checkpoint it relied on */
    snprintf(path, sizeof(path), "/v1/events/%lld", head + 1);
    json_t *rec = au_get(daemon_.port, path);
    json_t *ev = json_object_get(rec, "event"), *meta = json_object_get(ev, "metadata");
    assert_string_equal(json_string_value(json_object_get(ev, "action")), "audit.trimmed");
    assert_string_equal(json_string_value(json_object_get(ev, "actor")), "auditd");
    assert_int_equal(json_integer_value(json_object_get(meta, "before_seq")), 1025);
    assert_int_equal(json_integer_value(json_object_get(meta, "checkpoint_size")), head);
    assert_non_null(strstr(json_string_value(json_object_get(meta, "checkpoint")), "\nchain "));
    json_decref(rec);
    /* appends go on; proofs of what is kept are served, of what is gone 410 */
    append(daemon_.port, 300);
    long long size = head_seq();
    for (long long s = 1025; s <= size; s += 97) {
        snprintf(path, sizeof(path), "/v1/proofs/inclusion?seq=%lld&tree_size=%lld", s, size);
        proof_status(path, 200);
        snprintf(path, sizeof(path), "/v1/proofs/consistency?from=%lld&to=%lld", s - 1, size);
        proof_status(path, 200);
    }
    snprintf(path, sizeof(path), "/v1/proofs/inclusion?seq=3&tree_size=%lld", size);
    proof_status(path, 410);
    proof_status("/tile/0/000", 404);
    proof_status("/tile/1/000.p/9", 200);
    proof_status("/ready", 200);
    /* audit-verify: archive + Redis verify; Redis alone says trimmed; from the first seq kept */
    const char *both[] = {"--tiles", dir, "--redis", redis.url, "--keys", ring, NULL};
    assert_int_equal(au_verify(both, &out), 0);
    free(out);
    const char *alone[] = {"--redis", redis.url, "--keys", ring, NULL};
    assert_int_equal(au_verify(alone, &out), 2);
    assert_non_null(strstr(out, "UNVERIFIABLE at seq 1: trimmed"));
    free(out);
    const char *from[] = {"--redis", redis.url, "--keys", ring, "--from-seq", "1025", NULL};
    assert_int_equal(au_verify(from, &out), 0);
    free(out);
    /* the same trim again: nothing to do */
    assert_int_equal(trim(dir, 1025, &out), 0);
    assert_non_null(strstr(out, "nothing to trim"));
    free(out);
}

/* deploy/scripts/audit-retention.sh, what the systemd timer runs: with an instance that
 * stores checkpoints every second, it exports at the newest one and keeps the last
 * AUDIT_RETENTION_KEEP entries of it in Redis. */
static void test_retention_script(void **state)
{
    (void)state;
    struct th_proc cp;
    char dir[320], env_dir[400], env_ring[400], env_url[200], env_bin[1100], url_file[320];
    char env_ufile[400], env_tfile[400], *out = NULL, *err = NULL;
    const char *env[] = {KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=1s", env_admin, NULL};
    assert_int_equal(au_start(&cp, &redis, env), 0);
    append(daemon_.port, 10);
    long long head = head_seq(), stored = 0;
    for (int i = 0; i < 60 && stored < head; i++) {
        redisReply *r = th_redis_cmd(&redis, "XREVRANGE audit:{default}:checkpoints + - COUNT 1");
        if (r && r->elements == 1)
            stored = atoll(r->element[0]->element[1]->element[1]->str);
        freeReplyObject(r);
        if (stored < head)
            usleep(100 * 1000);
    }
    assert_int_equal(stored, head);
    snprintf(dir, sizeof(dir), "%s/archive", tmp); /* the one that holds what was trimmed */
    snprintf(url_file, sizeof(url_file), "%s/redis-url", tmp);
    th_write_file(url_file, redis.url);
    snprintf(env_dir, sizeof(env_dir), "AUDIT_ARCHIVE_DIR=%s", dir);
    snprintf(env_ring, sizeof(env_ring), "AUDIT_KEYRING=%s", ring);
    snprintf(env_url, sizeof(env_url), "AUDITD_URL=http://127.0.0.1:%d", cp.port);
    snprintf(env_bin, sizeof(env_bin), "AUDIT_BIN=%s", th_bin("bin"));
    snprintf(env_ufile, sizeof(env_ufile), "AUDITOR_REDIS_URL_FILE=%s", url_file);
    snprintf(env_tfile, sizeof(env_tfile), "AUDITTRIM_REDIS_URL_FILE=%s", url_file);
    const char *renv[] = {env_dir,   env_ring,  env_url,   env_bin,
                          env_ufile, env_tfile, env_admin, "AUDIT_RETENTION_KEEP=200",
                          NULL};
    const char *argv[] = {"sh", ops_src("deploy/scripts/audit-retention.sh"), NULL};
    int st = th_run("/bin/sh", argv, renv, &out, &err, 60000);
    char want[96];
    snprintf(want, sizeof(want), "trimmed chain default before seq %lld:", head - 200 + 1);
    if (st != 0 || !strstr(out, want))
        fail_msg("audit-retention.sh: exit %d: %s %s (wanted %s)", st, out ? out : "",
                 err ? err : "", want);
    free(out);
    free(err);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{default}:trim first_seq"), head - 199);
    const char *both[] = {"--tiles", dir, "--redis", redis.url, "--keys", ring, NULL};
    assert_int_equal(au_verify(both, &out), 0);
    free(out);
    th_proc_stop(&cp, SIGTERM, 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_without_a_verifying_archive),
        cmocka_unit_test(test_trim_route_refusals),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_retention_script),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
