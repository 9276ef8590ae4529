/* SPDX-License-Identifier: Apache-2.0 */
/* What operators see of idemd, against a real redis-server: keys and tokens never in the
 * logs (only their short hash), the metric families of the contract with exact counts,
 * and IDEM_WAIT_REPLICAS with a real replica, and without one: writes waiting for replicas
 * hold up nothing else and share their WAITs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/log.h"
#define IDEM_TEST_DAEMON
#include "test_idemd_util.h"

/* Every call idemd has, answered every way it can, on keys that must stay out of the log
 * (LOG_LEVEL=debug, so each decision is logged). */
static void log_workload(const char *key, const char *key2, char *tok)
{
    char tok2[64];
    claim_token(idemd.port, "t", key, "f", tok);
    json_decref(post(idemd.port, "/v1/claim", 409,
                     "{\"scope\":\"t\",\"key\":\"%s\",\"fingerprint\":\"f\",\"wait_ms\":100}",
                     key));
    json_decref(post(idemd.port, "/v1/claim", 422,
                     "{\"scope\":\"t\",\"key\":\"%s\",\"fingerprint\":\"g\"}", key));
    json_decref(post(idemd.port, "/v1/claim", 400,
                     "{\"scope\":\"t\",\"key\":\"%s\",\"fingerprint\":\"f\",\"lease_ms\":1}", key));
    json_decref(post(idemd.port, "/v1/complete", 409,
                     "{\"scope\":\"t\",\"key\":\"%s\",\"lease_token\":\"x\",\"status\":200}", key));
    json_decref(post(idemd.port, "/v1/extend", 200,
                     "{\"scope\":\"t\",\"key\":\"%s\",\"lease_token\":\"%s\"}", key, tok));
    json_decref(post(idemd.port, "/v1/checkpoint", 200,
                     "{\"scope\":\"t\",\"key\":\"%s\",\"lease_token\":\"%s\",\"checkpoint\":\"c\"}",
                     key, tok));
    json_decref(post(idemd.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"%s\",\"lease_token\":\"%s\",\"status\":200}", key,
                     tok));
    json_decref(post(idemd.port, "/v1/claim", 200,
                     "{\"scope\":\"t\",\"key\":\"%s\",\"fingerprint\":\"f\"}", key));
    json_decref(post(idemd.port, "/v1/release", 409,
                     "{\"scope\":\"t\",\"key\":\"%s\",\"lease_token\":\"%s\"}", key, tok));
    json_decref(post(idemd.port, "/v1/release", 404,
                     "{\"scope\":\"t\",\"key\":\"%s\",\"lease_token\":\"%s\"}", key2, tok));
    claim_token(idemd.port, "t", key2, "f", tok2);
    json_decref(post(idemd.port, "/v1/release", 200,
                     "{\"scope\":\"t\",\"key\":\"%s\",\"lease_token\":\"%s\"}", key2, tok2));
}

/* Keys and lease tokens never appear in the logs; their short hash does. */
static void test_keys_not_logged(void **state)
{
    (void)state;
    const char *key = "secret-key-7f3a9c", *key2 = "secret{brace}-5d1e";
    char tok[64];
    log_workload(key, key2, tok);
    json_decref(get(idemd.port, "/v1/record?scope=t&key=secret-key-7f3a9c", 200));
    json_decref(get(idemd.port, "/v1/record?scope=t&key=secret-missing-91ab", 404));
    char hash[13];
    log_hash_id("idem:t:secret-key-7f3a9c", strlen("idem:t:secret-key-7f3a9c"), hash);
    int64_t t0 = th_now_ms();
    while (!th_proc_log_contains(&idemd, "/v1/record") && th_now_ms() - t0 < 2000)
        sleep_ms(10);
    assert_true(th_proc_log_contains(&idemd, hash));
    /* Words no request id or hash can contain (they are hex), and the token itself. */
    const char *never[] = {"secret", "brace", tok};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        if (th_proc_log_contains(&idemd, never[i]))
            fail_msg("the log contains \"%s\"", never[i]);
}

/* Counts of each family the contract names, as deltas over a known workload. */
struct counts {
    double claimed, replay, in_progress, mismatch, recovered, completed, lease_lost, not_found,
        releases, extensions;
};

static void read_counts(int port, struct counts *c)
{
    c->claimed = metric_value(port, "idemd_claims_total{outcome=\"claimed\"}");
    c->replay = metric_value(port, "idemd_claims_total{outcome=\"replay\"}");
    c->in_progress = metric_value(port, "idemd_claims_total{outcome=\"in_progress\"}");
    c->mismatch = metric_value(port, "idemd_claims_total{outcome=\"mismatch\"}");
    c->recovered = metric_value(port, "idemd_claims_total{outcome=\"recovered\"}");
    c->completed = metric_value(port, "idemd_completions_total{outcome=\"completed\"}");
    c->lease_lost = metric_value(port, "idemd_completions_total{outcome=\"lease_lost\"}");
    c->not_found = metric_value(port, "idemd_completions_total{outcome=\"not_found\"}");
    c->releases = metric_value(port, "idemd_releases_total");
    c->extensions = metric_value(port, "idemd_lease_extensions_total");
}

static void test_metrics(void **state)
{
    (void)state;
    struct counts a, b;
    struct th_proc blk;
    char tok[64], tok2[64];
    const char *env[] = {"IDEM_ON_LEASE_EXPIRY=block", NULL};
    assert_int_equal(start_idemd(&blk, redis.url, env), 0);
    read_counts(idemd.port, &a);
    claim_token(idemd.port, "t", "m1", "f", tok);
    json_decref(post(idemd.port, "/v1/claim", 409,
                     "{\"scope\":\"t\",\"key\":\"m1\",\"fingerprint\":\"f\"}"));
    json_decref(post(idemd.port, "/v1/claim", 422,
                     "{\"scope\":\"t\",\"key\":\"m1\",\"fingerprint\":\"g\"}"));
    json_decref(post(idemd.port, "/v1/extend", 200,
                     "{\"scope\":\"t\",\"key\":\"m1\",\"lease_token\":\"%s\"}", tok));
    json_decref(post(idemd.port, "/v1/extend", 409,
                     "{\"scope\":\"t\",\"key\":\"m1\",\"lease_token\":\"x\"}"));
    json_decref(post(idemd.port, "/v1/release", 409,
                     "{\"scope\":\"t\",\"key\":\"m1\",\"lease_token\":\"x\"}"));
    json_decref(post(idemd.port, "/v1/complete", 409,
                     "{\"scope\":\"t\",\"key\":\"m1\",\"lease_token\":\"x\",\"status\":200}"));
    json_decref(post(idemd.port, "/v1/complete", 200,
                     "{\"scope\":\"t\",\"key\":\"m1\",\"lease_token\":\"%s\",\"status\":200}",
                     tok));
    json_decref(post(idemd.port, "/v1/claim", 200,
                     "{\"scope\":\"t\",\"key\":\"m1\",\"fingerprint\":\"f\"}"));
    json_decref(post(idemd.port, "/v1/complete", 404,
                     "{\"scope\":\"t\",\"key\":\"none\",\"lease_token\":\"x\",\"status\":200}"));
    claim_token(idemd.port, "t", "m2", "f", tok2);
    json_decref(post(idemd.port, "/v1/release", 200,
                     "{\"scope\":\"t\",\"key\":\"m2\",\"lease_token\":\"%s\"}", tok2));
    /* One lease left to run out under each mode. */
    json_decref(post(idemd.port, "/v1/claim", 201,
                     "{\"scope\":\"t\",\"key\":\"m3\",\"fingerprint\":\"f\",\"lease_ms\":1000}"));
    json_decref(post(blk.port, "/v1/claim", 201,
                     "{\"scope\":\"t\",\"key\":\"m4\",\"fingerprint\":\"f\",\"lease_ms\":1000}"));
    sleep_ms(1100);
    json_decref(post(idemd.port, "/v1/claim", 201,
                     "{\"scope\":\"t\",\"key\":\"m3\",\"fingerprint\":\"f\"}"));
    json_decref(
        post(blk.port, "/v1/claim", 409, "{\"scope\":\"t\",\"key\":\"m4\",\"fingerprint\":\"f\"}"));
    read_counts(idemd.port, &b);

    assert_true(b.claimed - a.claimed == 3); /* m1, m2, m3 */
    assert_true(b.in_progress - a.in_progress == 1);
    assert_true(b.mismatch - a.mismatch == 1);
    assert_true(b.replay - a.replay == 1);
    assert_true(b.recovered - a.recovered == 1);
    assert_true(b.completed - a.completed == 1);
    assert_true(b.lease_lost - a.lease_lost == 1);
    assert_true(b.not_found - a.not_found == 1);
    assert_true(b.releases - a.releases == 1);     /* not the refused one */
    assert_true(b.extensions - a.extensions == 1); /* not the refused one */
    assert_true(metric_value(blk.port, "idemd_claims_total{outcome=\"blocked\"}") == 1);
    assert_true(metric_value(blk.port, "idemd_claims_total{outcome=\"claimed\"}") == 1);
    th_proc_stop(&blk, SIGTERM, 5000);
}

/* IDEM_WAIT_REPLICAS: the answer is the same and says how many replicas acknowledged. */
static void test_wait_replicas(void **state)
{
    (void)state;
    struct th_redis replica;
    struct th_proc p;
    char of[16], tok[64];
    snprintf(of, sizeof(of), "%d", redis.port);
    const char *rargs[] = {"--replicaof", "127.0.0.1", of, NULL};
    /* The first sync would otherwise wait 5 s for more replicas to join it. */
    freeReplyObject(th_redis_cmd(&redis, "CONFIG SET repl-diskless-sync-delay 0"));
    assert_int_equal(th_redis_start(&replica, rargs), 0);
    int linked = 0;
    for (int64_t t0 = th_now_ms(); !linked && th_now_ms() - t0 < 5000; sleep_ms(20)) {
        redisReply *info = th_redis_cmd(&redis, "INFO replication");
        linked = info && info->str && strstr(info->str, "state=online");
        freeReplyObject(info);
    }
    assert_true(linked);
    const char *env[] = {"IDEM_WAIT_REPLICAS=1", "IDEM_WAIT_TIMEOUT=2s", NULL};
    assert_int_equal(start_idemd(&p, redis.url, env), 0);
    json_t *j =
        post(p.port, "/v1/claim", 201, "{\"scope\":\"t\",\"key\":\"rep\",\"fingerprint\":\"f\"}");
    assert_int_equal(jint(j, "replicas_acked"), 1);
    snprintf(tok, sizeof(tok), "%s", jstr(j, "lease_token"));
    json_decref(j);
    /* The replica has the record the answer was given for. */
    redisReply *r = th_redis_cmd(&replica, "HGET idem:t:rep lease_token");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, tok);
    freeReplyObject(r);
    j = post(p.port, "/v1/claim", 409, "{\"scope\":\"t\",\"key\":\"rep\",\"fingerprint\":\"f\"}");
    assert_int_equal(jint(j, "replicas_acked"), 1); /* problems carry it too */
    json_decref(j);
    j = post(p.port, "/v1/complete", 200,
             "{\"scope\":\"t\",\"key\":\"rep\",\"lease_token\":\"%s\",\"status\":201}", tok);
    assert_int_equal(jint(j, "replicas_acked"), 1);
    json_decref(j);

    th_redis_stop(&replica);
    int64_t t0 = th_now_ms();
    j = post(p.port, "/v1/claim", 201, "{\"scope\":\"t\",\"key\":\"rep2\",\"fingerprint\":\"f\"}");
    assert_int_equal(jint(j, "replicas_acked"), 0); /* fewer than asked: same answer */
    assert_true(th_now_ms() - t0 >= 1900);          /* it waited IDEM_WAIT_TIMEOUT */
    json_decref(j);
    /* A read has nothing to wait for. */
    t0 = th_now_ms();
    j = get(p.port, "/v1/record?scope=t&key=rep", 200);
    assert_true(th_now_ms() - t0 < 1000);
    assert_null(json_object_get(j, "replicas_acked"));
    json_decref(j);
    th_proc_stop(&p, SIGTERM, 5000);
}

/* IDEM_WAIT_REPLICAS with no replica, and a WAIT longer than REDIS_COMMAND_TIMEOUT: each
 * write is answered after the WAIT (replicas_acked 0), none fails for having queued
 * behind another's WAIT, writes that come while a WAIT is out share the next one, and a
 * read on the same worker is not held up by them. */
static void test_wait_replicas_missing(void **state)
{
    (void)state;
    enum { N = 12 };
    static struct waiter c[N];
    static char body[N][128];
    struct th_proc p;
    const char *env[] = {"IDEM_WAIT_REPLICAS=1", "IDEM_WAIT_TIMEOUT=1500ms",
                         "REDIS_COMMAND_TIMEOUT=1s", "HTTP_THREADS=1", NULL};
    assert_int_equal(start_idemd(&p, redis.url, env), 0);
    freeReplyObject(th_redis_cmd(&redis, "CONFIG RESETSTAT"));
    for (int i = 0; i < N; i++) {
        snprintf(body[i], sizeof(body[i]),
                 "{\"scope\":\"t\",\"key\":\"miss%d\",\"fingerprint\":\"f\"}", i);
        start_waiter(&c[i], p.port, body[i]);
        if (i == N / 2)
            sleep_ms(300); /* the second half comes while the first WAIT is out */
    }
    int64_t t0 = th_now_ms();
    json_decref(get(p.port, "/v1/record?scope=t&key=none", 404));
    assert_true(th_now_ms() - t0 < 500);
    for (int i = 0; i < N; i++) {
        pthread_join(c[i].thread, NULL);
        assert_int_equal(c[i].resp.status, 201);
        json_t *j = th_json(&c[i].resp);
        assert_non_null(j);
        assert_int_equal(jint(j, "replicas_acked"), 0);
        json_decref(j);
        assert_true(c[i].took_ms >= 1400 && c[i].took_ms < 4500);
        th_resp_free(&c[i].resp);
    }
    long long waits = command_calls(&redis, "wait");
    assert_true(waits >= 2 && waits < N); /* at least the two halves, fewer than the writes */
    assert_int_equal(command_calls(&redis, "evalsha"), N + 1); /* the claims and the read */
    th_proc_stop(&p, SIGTERM, 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_keys_not_logged, reset),
        cmocka_unit_test_setup(test_metrics, reset),
        cmocka_unit_test_setup(test_wait_replicas, reset),
        cmocka_unit_test_setup(test_wait_replicas_missing, reset),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
