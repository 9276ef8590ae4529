/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of auditd as a transparency log: a real redis-server and auditd. Trees
 * of every size from 1 to 1,000 checked by two independent implementations — a Python
 * RFC 6962 verifier (tests/tlog/rfc6962.py: roots of every prefix, every checkpoint kept on
 * the way, inclusion and consistency proofs at every size, every tile and bundle byte for
 * byte) and Go's golang.org/x/mod/sumdb/tlog and note (tests/tlog/tlogcheck.go: the
 * checkpoint's signature and key id, tiles checked against the root as a tlog-tiles client
 * reads them, the root recomputed from the entry bundles, proofs equal to tlog's own); the
 * proof and tile routes' refusals of bad input; a tile changed in Redis caught by both
 * checkers and by the instance itself (/ready, no checkpoint signed); audit-export --tiles
 * and audit-verify --tiles (alone, then with Redis), every kind of file of the archive
 * changed by one bit caught; inclusion and consistency proofs checked offline; every
 * signed checkpoint written to AUDIT_CHECKPOINT_WITNESS_DIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/stat.h>

#include "../../auditd/tool.h"
#include "test_tlog_util.h"

static struct th_redis redis;
static struct th_proc daemon_;
static char tmp[256], vkey[256];
static char checkpoints[64][320];
static int ncheckpoints;

static int setup(void **state)
{
    (void)state;
    const char *env[] = {KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=0", NULL};
    if (th_tmpdir(tmp, sizeof(tmp)) != 0 || th_redis_start(&redis, NULL) != 0 ||
        au_start(&daemon_, &redis, env) != 0)
        return -1;
    return 0;
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
    json_t *h = au_get(daemon_.port, "/v1/head");
    long long seq = json_integer_value(json_object_get(h, "seq"));
    json_decref(h);
    return seq;
}

/* Post a batch of n events. */
static void post_batch(int n)
{
    char *body = malloc((size_t)n * 64 + 32);
    size_t used = (size_t)sprintf(body, "{\"events\":[");
    for (int i = 0; i < n; i++)
        used += (size_t)sprintf(body + used, "%s{\"actor\":\"u%d\",\"action\":\"tlog\"}",
                                i ? "," : "", i);
    sprintf(body + used, "]}");
    assert_int_equal(au_post(daemon_.port, "/v1/events/batch", body, NULL), 201);
    free(body);
}

/* The log grows to 1,000 entries in batches of 1, 2, 3, ... (the first entry is the key's
 * activation), a checkpoint kept after each; then both checkers go over every size. */
static void test_sizes_1_to_1000(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    const char *files[65];
    long long seq = 0;
    for (int k = 1; seq < 1000; k++) {
        post_batch(seq == 0 ? 1 : (int)(k < 1000 - seq ? k : 1000 - seq));
        seq = head_seq();
        snprintf(checkpoints[ncheckpoints], sizeof(checkpoints[0]), "%s/cp-%04lld.txt", tmp, seq);
        assert_int_equal(au_get_file(daemon_.port, "/v1/checkpoint", checkpoints[ncheckpoints]), 0);
        files[ncheckpoints] = checkpoints[ncheckpoints];
        ncheckpoints++;
    }
    files[ncheckpoints] = NULL;
    assert_int_equal(seq, 1000);
    int st = tl_python(daemon_.port, "1", files, &out, &err);
    if (st != 0 || !strstr(out, "ok: 1000 leaves"))
        fail_msg("rfc6962.py: exit %d: %s %s", st, out ? out : "", err ? err : "");
    free(out);
    free(err);
    out = err = NULL;
    tl_vkey(daemon_.port, "warden-audit/default", vkey, sizeof(vkey));
    assert_true(vkey[0] != '\0');
    st = tl_go(tmp, daemon_.port, vkey, "1", &out, &err);
    if (st != 0 || !strstr(out, "ok: tree of 1000 leaves"))
        fail_msg("tlogcheck: exit %d: %s %s", st, out ? out : "", err ? err : "");
    free(out);
    free(err);
}

static int get_status(const char *path, struct th_resp *r)
{
    assert_int_equal(th_http(daemon_.port, "GET", path, NULL, NULL, 0, r), 0);
    return r->status;
}

/* What the proof and tile routes refuse: sizes outside the tree, anything not a number,
 * paths that are not tlog-tiles paths; from == to is an empty proof. */
static void test_bad_input(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "/v1/proofs/inclusion?seq=0&tree_size=5",
        "/v1/proofs/inclusion?seq=6&tree_size=5",
        "/v1/proofs/inclusion?seq=1&tree_size=1001",
        "/v1/proofs/inclusion?seq=1",
        "/v1/proofs/inclusion?tree_size=5",
        "/v1/proofs/inclusion?seq=-1&tree_size=5",
        "/v1/proofs/inclusion?seq=1x&tree_size=5",
        "/v1/proofs/inclusion?seq=1&tree_size=+5",
        "/v1/proofs/inclusion?seq=1&tree_size=99999999999999999999999",
        "/v1/proofs/consistency?from=0&to=5",
        "/v1/proofs/consistency?from=6&to=5",
        "/v1/proofs/consistency?from=1&to=1001",
        "/v1/proofs/consistency?to=5",
        "/v1/proofs/consistency?from=%201&to=5",
        "/v1/proofs/consistency?from=1&to=",
    };
    static const char *const missing[] = {
        "/tile/0/004",       "/tile/0/003.p/233", "/tile/1/000",     "/tile/0/03",
        "/tile/0/x000/003",  "/tile/9/000",       "/tile/entries/4", "/tile/0/000.p/0",
        "/tile/0/000.p/256", "/tile/0/000/extra", "/tile/x/000",     "/tile/entries/003.p/233",
        "/tile/0/%30%30%30"};
    struct th_resp r;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (get_status(bad[i], &r) != 400 || !strstr(r.body, "invalid_request"))
            fail_msg("%s: %d %s", bad[i], r.status, r.body);
        th_resp_free(&r);
    }
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        if (get_status(missing[i], &r) != 404)
            fail_msg("%s: %d %s", missing[i], r.status, r.body);
        th_resp_free(&r);
    }
    assert_int_equal(get_status("/v1/proofs/consistency?from=7&to=7", &r), 200);
    assert_string_equal(r.body, "{\"hashes\":[]}");
    th_resp_free(&r);
    assert_int_equal(get_status("/v1/proofs/inclusion?seq=1&tree_size=1", &r), 200);
    assert_string_equal(r.body, "{\"leaf_index\":0,\"tree_size\":1,\"hashes\":[]}");
    th_resp_free(&r);
    char ct[64];
    assert_int_equal(get_status("/tile/0/003.p/232", &r), 200); /* 1000 = 3 * 256 + 232 */
    assert_int_equal(r.body_len, 232 * 32);
    assert_non_null(th_header(&r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/octet-stream");
    th_resp_free(&r);
    assert_int_equal(get_status("/tile/0/003.p/5", &r), 200); /* an older tree's: a prefix */
    assert_int_equal(r.body_len, 5 * 32);
    th_resp_free(&r);
    assert_int_equal(get_status("/tile/1/000.p/3", &r), 200);
    assert_int_equal(r.body_len, 3 * 32);
    th_resp_free(&r);
}

/* Flip one bit of byte at of a stored tile (key suffix "0:1"); returns the old byte. */
static char flip(const char *tile, int at)
{
    redisReply *r = th_redis_cmd(&redis, "GETRANGE audit:{default}:tile:%s %d %d", tile, at, at);
    assert_true(r && r->len == 1);
    char old = r->str[0], now = (char)(old ^ 0x01);
    freeReplyObject(r);
    freeReplyObject(
        th_redis_cmd(&redis, "SETRANGE audit:{default}:tile:%s %d %b", tile, at, &now, (size_t)1));
    return old;
}

static void put_back(const char *tile, int at, char old)
{
    freeReplyObject(
        th_redis_cmd(&redis, "SETRANGE audit:{default}:tile:%s %d %b", tile, at, &old, (size_t)1));
}

/* Both checkers refuse the log as it is now. */
static void checkers_refuse(void)
{
    char *out = NULL, *err = NULL;
    assert_int_equal(tl_python(daemon_.port, "97", NULL, &out, &err), 1);
    assert_non_null(strstr(err, "rfc6962:"));
    free(out);
    free(err);
    out = err = NULL;
    assert_int_equal(tl_go(tmp, daemon_.port, vkey, "97", &out, &err), 1);
    assert_non_null(strstr(err, "tlogcheck:"));
    free(out);
    free(err);
}

/* One byte of a stored tile changed. In a full level-0 tile (the root is computed from the
 * level above it, so only proofs and tiles show it): both checkers catch it. In the level-1
 * tile, which the root is computed from: the checkers, and the instance itself, which turns
 * not ready and signs no checkpoint. Put back, everything checks again. */
static void test_tampered_tile(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    struct th_resp r;
    char old = flip("0:1", 40);
    checkers_refuse();
    put_back("0:1", 40, old);
    old = flip("1:0", 33);
    checkers_refuse();
    assert_int_equal(get_status("/ready", &r), 503);
    assert_non_null(strstr(r.body, "chain_broken"));
    th_resp_free(&r);
    assert_int_equal(get_status("/v1/checkpoint", &r), 503);
    th_resp_free(&r);
    put_back("1:0", 33, old);
    /* /ready answers from what the instance last saw and looks again behind it: ready
     * once a look has seen the tile back. */
    int status = 0;
    for (int i = 0; i < 50 && status != 200; i++) {
        status = get_status("/ready", &r);
        th_resp_free(&r);
        if (status != 200)
            usleep((useconds_t)th_ms(40) * 1000);
    }
    assert_int_equal(status, 200);
    assert_int_equal(tl_go(tmp, daemon_.port, vkey, "97", &out, &err), 0);
    free(out);
    free(err);
}

/* dir/name, in a buffer of the caller's thread (the next call overwrites it). */
static const char *dir_file(const char *dir, const char *name)
{
    static char buf[600];
    snprintf(buf, sizeof(buf), "%s/%s", dir, name);
    return buf;
}

/* Flip one bit of the file at the middle of its length. */
static void flip_file(const char *path)
{
    size_t len = 0;
    char *text = audit_tool_read_file(path, &len);
    assert_non_null(text);
    text[len / 2] ^= 0x04;
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, len, f);
    fclose(f);
    free(text);
}

/* audit-verify with args; asserts its exit status and that its output holds want. */
static void verify_is(const char *const *args, int status, const char *want)
{
    char *out = NULL;
    int st = au_verify(args, &out);
    if (st != status || !out || !strstr(out, want))
        fail_msg("audit-verify: exit %d: %s (wanted %d: %s)", st, out ? out : "", status, want);
    free(out);
}

/* audit-export --tiles writes the archive of a checkpoint; audit-verify --tiles checks it
 * alone and followed by Redis (which has grown on); each file of it changed by one bit is
 * caught: hash tiles (full, partial, level 1), entry bundles, signatures, the checkpoint. */
static void test_archive(void **state)
{
    (void)state;
    char dir[300], cp[320], ring[320], copy[320], path[400], cmd[1200], *out = NULL;
    snprintf(dir, sizeof(dir), "%s/archive", tmp);
    snprintf(cp, sizeof(cp), "%s/archive-cp.txt", tmp);
    snprintf(ring, sizeof(ring), "%s/ring.json", tmp);
    assert_int_equal(au_get_file(daemon_.port, "/v1/checkpoint", cp), 0);
    assert_int_equal(au_get_file(daemon_.port, "/v1/keys", ring), 0);
    const char *exp[] = {"audit-export", "--redis", redis.url, "--tiles", dir,
                         "--checkpoint", cp,        NULL};
    assert_int_equal(th_run(th_bin("bin/audit-export"), exp, NULL, &out, NULL, 60000), 0);
    assert_non_null(strstr(out, "5 tiles and 4 bundles written")); /* levels 0 (4) and 1 (1) */
    free(out);
    post_batch(10);
    const char *alone[] = {"--tiles", dir, "--keys", ring, NULL};
    verify_is(alone, 0, "OK: 1000 entries, seq 1..1000");
    const char *both[] = {"--tiles", dir, "--redis", redis.url, "--keys", ring, NULL};
    verify_is(both, 0, "OK: 1010 entries, seq 1..1010");
    static const char *const files[] = {
        "tile/0/001",       "tile/0/003.p/232",       "tile/1/000.p/3",
        "tile/entries/002", "tile/entries/003.p/232", "signatures/000",
        "checkpoint"};
    snprintf(copy, sizeof(copy), "%s/copy", tmp);
    const char *tampered[] = {"--tiles", copy, "--keys", ring, NULL};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s'", copy, dir, copy);
        assert_int_equal(system(cmd), 0);
        snprintf(path, sizeof(path), "%s/%s", copy, files[i]);
        flip_file(path);
        int st = au_verify(tampered, &out);
        if (st != (i + 1 < sizeof(files) / sizeof(files[0]) ? 1 : 3))
            fail_msg("%s changed: exit %d %s", files[i], st, out ? out : "");
        free(out);
        out = NULL;
    }
}

/* The proofs checked offline: an inclusion proof of an entry against a checkpoint, a
 * consistency proof between two checkpoints; a changed hash, another entry or a proof for
 * another size are caught. */
static void test_offline_proofs(void **state)
{
    (void)state;
    char ring[320], cp_old[320], cp_new[320], proof[320], entry[320];
    snprintf(ring, sizeof(ring), "%s/ring.json", tmp);
    snprintf(proof, sizeof(proof), "%s/proof.json", tmp);
    snprintf(entry, sizeof(entry), "%s/entry.json", tmp);
    snprintf(cp_old, sizeof(cp_old), "%s", checkpoints[20]); /* an older size, kept earlier */
    snprintf(cp_new, sizeof(cp_new), "%s/new-cp.txt", tmp);
    assert_int_equal(au_get_file(daemon_.port, "/v1/checkpoint", cp_new), 0);
    long long size = head_seq();
    char path[128];
    snprintf(path, sizeof(path), "/v1/proofs/inclusion?seq=300&tree_size=%lld", size);
    assert_int_equal(au_get_file(daemon_.port, path, proof), 0);
    assert_int_equal(au_get_file(daemon_.port, "/v1/events/300", entry), 0);
    const char *incl[] = {"--inclusion", proof,    "--entry", entry, "--expect",
                          cp_new,        "--keys", ring,      NULL};
    verify_is(incl, 0, "OK: seq 300 is in the tree");
    assert_int_equal(au_get_file(daemon_.port, "/v1/events/301", entry), 0);
    verify_is(incl, 1, "TAMPERED");
    assert_int_equal(au_get_file(daemon_.port, "/v1/events/300", entry), 0);
    const char *incl_old[] = {"--inclusion", proof,    "--entry", entry, "--expect",
                              cp_old,        "--keys", ring,      NULL};
    verify_is(incl_old, 1, "TAMPERED"); /* a proof for another tree size */
    long long old_size = 0;             /* "cp-0123.txt" names its size */
    assert_int_equal(sscanf(strrchr(cp_old, '/'), "/cp-%lld.txt", &old_size), 1);
    snprintf(path, sizeof(path), "/v1/proofs/consistency?from=%lld&to=%lld", old_size, size);
    assert_int_equal(au_get_file(daemon_.port, path, proof), 0);
    const char *cons[] = {"--consistency", proof,    "--expect", cp_old, "--expect",
                          cp_new,          "--keys", ring,       NULL};
    verify_is(cons, 0, "OK: the tree of size");
    flip_file(proof); /* one base64 character of a hash */
    int st = au_verify(cons, NULL);
    assert_true(st == 1 || st == 3); /* a changed hash, or no longer base64 of 32 bytes */
    /* several checkpoints at once: the chain and the tree hold every one */
    const char *many[] = {"--redis",  redis.url,       "--keys",   ring,
                          "--expect", cp_old,          "--expect", cp_new,
                          "--expect", checkpoints[40], NULL};
    verify_is(many, 0, "OK: ");
}

/* AUDIT_CHECKPOINT_WITNESS_DIR: every checkpoint an instance signs (on demand, periodic)
 * lands there as a file an auditor can keep and hand to audit-verify --expect; a directory
 * that cannot be written stops the start. */
static void test_witness_dir(void **state)
{
    (void)state;
    struct th_proc w, bad;
    char dir[300], env_dir[340], ring[320], path[600];
    snprintf(dir, sizeof(dir), "%s/witness", tmp);
    snprintf(env_dir, sizeof(env_dir), "AUDIT_CHECKPOINT_WITNESS_DIR=%s", dir);
    snprintf(ring, sizeof(ring), "%s/ring.json", tmp);
    assert_int_equal(mkdir(dir, 0700), 0);
    const char *env[] = {KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=1s", env_dir, NULL};
    assert_int_equal(au_start(&w, &redis, env), 0);
    post_batch(3);
    long long seq = head_seq();
    snprintf(path, sizeof(path), "%s/default-%020lld.checkpoint", dir, seq);
    for (int i = 0; i < 40 && access(path, R_OK) != 0; i++)
        usleep(100 * 1000); /* the next periodic tick signs the new head */
    assert_int_equal(access(path, R_OK), 0);
    const char *args[] = {"--redis", redis.url, "--keys", ring, "--expect", path, NULL};
    verify_is(args, 0, "OK: ");
    post_batch(1);
    assert_int_equal(au_get_file(w.port, "/v1/checkpoint", dir_file(dir, "got.txt")), 0);
    snprintf(path, sizeof(path), "%s/default-%020lld.checkpoint", dir, head_seq());
    assert_int_equal(access(path, R_OK), 0); /* an on-demand one too */
    th_proc_stop(&w, SIGTERM, 5000);
    const char *env_bad[] = {KEY_V1_ENV, "AUDIT_CHECKPOINT_WITNESS_DIR=/nonexistent/witness", NULL};
    assert_int_equal(au_start(&bad, &redis, env_bad), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_1_to_1000), cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_tampered_tile),   cmocka_unit_test(test_archive),
        cmocka_unit_test(test_offline_proofs),  cmocka_unit_test(test_witness_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
