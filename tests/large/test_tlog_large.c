/* SPDX-License-Identifier: Apache-2.0 */
/* The transparency log at 1,000,000 entries (make test-large; minutes, so outside make
 * test): a real redis-server and auditd, the log filled through POST /v1/events/batch, then
 * both independent checkers of tests/tlog over it — the Python RFC 6962 verifier (every
 * entry's leaf, the root of every prefix, every tile and bundle byte for byte, proofs at a
 * spread of sizes) and Go's sumdb/tlog (the checkpoint's signature, the tiles against its
 * root, the root recomputed from every bundle, proofs equal to tlog's) — and audit-verify
 * over Redis and over an archive of it. AUDIT_LARGE_ENTRIES sets another size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>

#include "../integration/test_tlog_util.h"

static struct th_redis redis;
static struct th_proc daemon_;
static char tmp[256], vkey[256];
static long long want;

static int setup(void **state)
{
    (void)state;
    const char *env[] = {KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=0", "AUDIT_BATCH_MAX=64", NULL};
    const char *n = getenv("AUDIT_LARGE_ENTRIES");
    want = n && atoll(n) > 0 ? atoll(n) : 1000000;
    if (th_tmpdir(tmp, sizeof(tmp)) != 0 || th_redis_start(&redis, NULL) != 0 ||
        au_start(&daemon_, &redis, env) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&daemon_, SIGTERM, 10000);
    th_redis_stop(&redis);
    return 0;
}

struct filler {
    int batches, failed;
    const char *body;
};

static void *fill_main(void *arg)
{
    struct filler *f = arg;
    for (int i = 0; i < f->batches; i++)
        f->failed += au_post(daemon_.port, "/v1/events/batch", f->body, NULL) != 201;
    return NULL;
}

static long long head_seq(void)
{
    return th_redis_int(&redis, "HGET audit:{default}:head seq");
}

/* Four clients post batches of 1,000 until the log holds want entries, then single events
 * up to it exactly. */
static void fill(void)
{
    char *body = malloc(1000 * 64 + 32);
    size_t used = (size_t)sprintf(body, "{\"events\":[");
    for (int i = 0; i < 1000; i++)
        used += (size_t)sprintf(body + used, "%s{\"actor\":\"user:%d\",\"action\":\"large\"}",
                                i ? "," : "", i);
    sprintf(body + used, "]}");
    struct filler f[4];
    pthread_t t[4];
    long long batches = (want - 1) / 1000;
    for (int i = 0; i < 4; i++) {
        f[i] = (struct filler){.batches = (int)(batches / 4 + (i < batches % 4)), .body = body};
        assert_int_equal(pthread_create(&t[i], NULL, fill_main, &f[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(f[i].failed, 0);
    }
    free(body);
    while (head_seq() < want)
        assert_int_equal(
            au_post(daemon_.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"x\"}", NULL), 201);
    assert_int_equal(head_seq(), want);
}

static void test_large_log(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL, cp[320], ring[320], dir[320], every[24];
    int64_t t0 = th_now_ms();
    fill();
    print_message("filled %lld entries in %.1f s\n", want, (double)(th_now_ms() - t0) / 1000);
    snprintf(cp, sizeof(cp), "%s/checkpoint.txt", tmp);
    snprintf(ring, sizeof(ring), "%s/ring.json", tmp);
    assert_int_equal(au_get_file(daemon_.port, "/v1/checkpoint", cp), 0);
    assert_int_equal(au_get_file(daemon_.port, "/v1/keys", ring), 0);
    snprintf(every, sizeof(every), "%lld", want / 97 + 1); /* ~100 sizes, the last included */
    const char *files[] = {cp, NULL};
    t0 = th_now_ms();
    int st = tl_python(daemon_.port, every, files, &out, &err);
    if (st != 0 || !strstr(out, "ok: "))
        fail_msg("rfc6962.py: exit %d: %s %s", st, out ? out : "", err ? err : "");
    print_message("%s(python, %.1f s)\n", out, (double)(th_now_ms() - t0) / 1000);
    free(out);
    free(err);
    out = err = NULL;
    tl_vkey(daemon_.port, "warden-audit/default", vkey, sizeof(vkey));
    t0 = th_now_ms();
    st = tl_go(tmp, daemon_.port, vkey, every, &out, &err);
    if (st != 0 || !strstr(out, "ok: tree of "))
        fail_msg("tlogcheck: exit %d: %s %s", st, out ? out : "", err ? err : "");
    print_message("%s(go, %.1f s)\n", out, (double)(th_now_ms() - t0) / 1000);
    free(out);
    free(err);
    out = NULL;
    const char *verify[] = {"--redis", redis.url,   "--keys", ring, "--expect",
                            cp,        "--threads", "2",      NULL};
    assert_int_equal(au_verify(verify, &out), 0);
    print_message("audit-verify --redis: %s", out);
    free(out);
    snprintf(dir, sizeof(dir), "%s/archive", tmp);
    const char *exp[] = {"audit-export", "--redis", redis.url, "--tiles", dir,
                         "--checkpoint", cp,        NULL};
    assert_int_equal(th_run(th_bin("bin/audit-export"), exp, NULL, NULL, NULL, 600000), 0);
    const char *tiles[] = {"--tiles", dir, "--keys", ring, "--threads", "2", NULL};
    assert_int_equal(au_verify(tiles, &out), 0);
    print_message("audit-verify --tiles: %s", out);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_large_log)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
