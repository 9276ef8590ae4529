/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of auditd under concurrency and faults: three instances and many
 * clients append to one chain (gap-free, verifies, every 201 is in it, CAS conflicts
 * happen, client batches stay contiguous, and one Merkle tree: each instance's checkpoint
 * root is the one recomputed from the entries); group commit under 50 clients; an
 * appendfsync-always Redis killed -9, idle or under load, loses nothing acknowledged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>

#include "test_auditd_util.h"

#define INSTANCES 3
#define CLIENTS 51
#define PER_CLIENT 100 /* 5,100 events */

static char tmp[256];

struct ack {
    long long seq;
    char hash[65];
};

struct client {
    struct th_redis *redis;
    struct ack acks[PER_CLIENT];
    int port;
    int id;
    int check_every; /* look every check_every-th answer up in Redis at once */
    int nacks, errors, not_in_redis;
};

#define BATCHERS 3
#define BATCHES 20
#define BATCH_N 10

struct batcher {
    int port, id, errors, broken;
    long long first[BATCHES];
    char hash[BATCHES][BATCH_N][65];
};

/* Client batches among the single events: each one's seqs are contiguous. */
static void *batcher_main(void *arg)
{
    struct batcher *c = arg;
    char body[BATCH_N * 64 + 32];
    for (int k = 0; k < BATCHES; k++) {
        int n = snprintf(body, sizeof(body), "{\"events\":[");
        for (int i = 0; i < BATCH_N; i++)
            n += snprintf(body + n, sizeof(body) - (size_t)n,
                          "%s{\"actor\":\"b%d\",\"action\":\"batch\"}", i ? "," : "", c->id);
        snprintf(body + n, sizeof(body) - (size_t)n, "]}");
        json_t *j = NULL;
        if (au_post(c->port, "/v1/events/batch", body, &j) != 201) {
            c->errors++;
            json_decref(j);
            continue;
        }
        json_t *entries = json_object_get(j, "entries");
        c->first[k] = json_integer_value(json_object_get(json_array_get(entries, 0), "seq"));
        for (int i = 0; i < BATCH_N; i++) {
            json_t *e = json_array_get(entries, (size_t)i);
            if (json_integer_value(json_object_get(e, "seq")) != c->first[k] + i)
                c->broken++;
            snprintf(c->hash[k][i], 65, "%s", json_string_value(json_object_get(e, "hash")));
        }
        json_decref(j);
    }
    return NULL;
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    char body[128];
    for (int i = 0; i < PER_CLIENT; i++) {
        json_t *j = NULL;
        snprintf(body, sizeof(body),
                 "{\"actor\":\"c%d\",\"action\":\"race\",\"event_id\":\"c%d-%d\"}", c->id, c->id,
                 i);
        int st = au_post(c->port, "/v1/events", body, &j);
        if (st != 201 || !j) {
            c->errors++;
            json_decref(j);
            continue;
        }
        struct ack *a = &c->acks[c->nacks++];
        a->seq = json_integer_value(json_object_get(j, "seq"));
        snprintf(a->hash, sizeof(a->hash), "%s", json_string_value(json_object_get(j, "hash")));
        json_decref(j);
        /* Answered only once committed: the entry is in Redis right now. */
        if (i % c->check_every == 0) {
            redisReply *r =
                th_redis_cmd(c->redis, "XRANGE audit:{default}:log %lld-0 %lld-0", a->seq, a->seq);
            if (!r || r->elements != 1 ||
                strcmp(r->element[0]->element[1]->element[3]->str, a->hash) != 0)
                c->not_in_redis++;
            freeReplyObject(r);
        }
    }
    return NULL;
}

static void test_three_writers_one_chain(void **state)
{
    (void)state;
    struct th_redis redis;
    struct th_proc d[INSTANCES];
    static struct client cl[CLIENTS];
    static struct batcher bt[BATCHERS];
    pthread_t t[CLIENTS], tb[BATCHERS];
    const char *env[] = {KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=0", NULL};
    assert_int_equal(th_redis_start(&redis, NULL), 0);
    for (int i = 0; i < INSTANCES; i++)
        assert_int_equal(au_start(&d[i], &redis, env), 0);
    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = (struct client){
            .port = d[i % INSTANCES].port, .id = i, .check_every = 10, .redis = &redis};
        assert_int_equal(pthread_create(&t[i], NULL, client_main, &cl[i]), 0);
    }
    for (int i = 0; i < BATCHERS; i++) {
        bt[i] = (struct batcher){.port = d[i % INSTANCES].port, .id = i};
        assert_int_equal(pthread_create(&tb[i], NULL, batcher_main, &bt[i]), 0);
    }
    int acked = 0;
    for (int i = 0; i < BATCHERS; i++) {
        pthread_join(tb[i], NULL);
        assert_int_equal(bt[i].errors, 0);
        assert_int_equal(bt[i].broken, 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(cl[i].errors, 0);
        assert_int_equal(cl[i].not_in_redis, 0);
        acked += cl[i].nacks;
    }
    assert_int_equal(acked, CLIENTS * PER_CLIENT);
    /* One chain: 1 activation entry (only one instance made it) + every event. */
    long long n = th_redis_int(&redis, "HGET audit:{default}:head seq");
    assert_int_equal(n, CLIENTS * PER_CLIENT + BATCHERS * BATCHES * BATCH_N + 1);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{default}:log"), n);
    char(*h)[65] = au_stored_hashes(&redis, n);
    for (int i = 0; i < CLIENTS; i++)
        for (int k = 0; k < cl[i].nacks; k++)
            if (strcmp(h[cl[i].acks[k].seq - 1], cl[i].acks[k].hash) != 0)
                fail_msg("acknowledged seq %lld not in the chain", cl[i].acks[k].seq);
    for (int i = 0; i < BATCHERS; i++)
        for (int k = 0; k < BATCHES; k++)
            for (int e = 0; e < BATCH_N; e++)
                if (strcmp(h[bt[i].first[k] + e - 1], bt[i].hash[k][e]) != 0)
                    fail_msg("batch entry %lld not in the chain", bt[i].first[k] + e);
    free(h);
    double conflicts = 0, grouped = 0;
    for (int i = 0; i < INSTANCES; i++) {
        conflicts += au_metric(d[i].port, "auditd_cas_conflicts_total ");
        grouped += au_metric(d[i].port, "auditd_append_batch_size_count ") -
                   au_metric(d[i].port, "auditd_append_batch_size_bucket{le=\"1\"} ");
    }
    assert_true(conflicts > 0);
    assert_true(grouped > 0); /* some commits carried more than one entry */
    /* One tree too: every instance's checkpoint carries the root recomputed here from the
     * entries' bodies. */
    uint8_t root[32];
    char root64[48], want[160];
    assert_int_equal(au_tree_root(d[0].port, n, root), 0);
    crypto_b64(root, 32, root64, sizeof(root64));
    snprintf(want, sizeof(want), "warden-audit/default\n%lld\n%s\n", n, root64);
    for (int i = 0; i < INSTANCES; i++) {
        struct th_resp r;
        assert_int_equal(th_http(d[i].port, "GET", "/v1/checkpoint", NULL, NULL, 0, &r), 0);
        if (r.status != 200 || strncmp(r.body, want, strlen(want)) != 0)
            fail_msg("instance %d's checkpoint: %d %s (wanted %s)", i, r.status, r.body, want);
        th_resp_free(&r);
    }
    char ring[320], *out = NULL;
    snprintf(ring, sizeof(ring), "%s/ring.json", tmp);
    assert_int_equal(au_get_file(d[0].port, "/v1/keys", ring), 0);
    for (int i = 0; i < INSTANCES; i++)
        th_proc_stop(&d[i], SIGTERM, 5000);
    const char *args[] = {"--redis", redis.url, "--keys", ring, "--threads", "2", NULL};
    assert_int_equal(au_verify(args, &out), 0);
    assert_non_null(strstr(out, "OK: 5701 entries, seq 1..5701"));
    free(out);
    th_redis_stop(&redis);
}

/* Group commit: one instance, 50 concurrent clients. Commits carry more than one entry
 * (the batch-size histogram shows it), its count and sum agree with the appends, and every
 * answer names an entry that is already in Redis with that hash. */
/* 50 clients on one instance with `threads` HTTP workers: every worker's appends go to the
 * one appender, which commits many at a time, without a conflict. */
static void group_commit(const char *threads)
{
    enum { N = 50 };
    struct th_redis redis;
    struct th_proc d;
    static struct client cl[N];
    pthread_t t[N];
    const char *env[] = {KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=0", threads, NULL};
    assert_int_equal(th_redis_start(&redis, NULL), 0);
    assert_int_equal(au_start(&d, &redis, env), 0);
    for (int i = 0; i < N; i++) {
        cl[i] = (struct client){.port = d.port, .id = i, .check_every = 1, .redis = &redis};
        assert_int_equal(pthread_create(&t[i], NULL, client_main, &cl[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(cl[i].errors, 0);
        assert_int_equal(cl[i].not_in_redis, 0);
        assert_int_equal(cl[i].nacks, PER_CLIENT);
    }
    double commits = au_metric(d.port, "auditd_append_batch_size_count ");
    double singles = au_metric(d.port, "auditd_append_batch_size_bucket{le=\"1\"} ");
    double entries = au_metric(d.port, "auditd_append_batch_size_sum ");
    double appends = au_metric(d.port, "auditd_appends_total ");
    assert_true(commits > 0 && singles >= 0);
    assert_true(commits - singles > 0); /* commits of more than one entry */
    assert_true(commits < appends);
    assert_int_equal((long long)entries, N * PER_CLIENT + 1);
    assert_int_equal((long long)appends, N * PER_CLIENT + 1);
    assert_int_equal(au_metric(d.port, "auditd_chain_head_seq "), N * PER_CLIENT + 1);
    assert_int_equal(au_metric(d.port, "auditd_cas_conflicts_total "), 0); /* one writer */
    assert_int_equal(au_metric(d.port, "auditd_append_duration_seconds_count "), commits);
    assert_int_equal(au_metric(d.port, "auditd_signing_key_info{version=\"v1\"} "), 1);
    assert_int_equal(au_metric(d.port, "auditd_checkpoints_total "), 0);
    th_proc_stop(&d, SIGTERM, 5000);
    th_redis_stop(&redis);
}

static void test_group_commit(void **state)
{
    (void)state;
    group_commit("HTTP_THREADS=0");
}

static void test_group_commit_across_workers(void **state)
{
    (void)state;
    group_commit("HTTP_THREADS=4");
}

struct loader {
    int port, id, stop, n, nacks;
    struct ack acks[4000];
    char unknown[4000]; /* 1: that event got no 201 */
};

static void *loader_main(void *arg)
{
    struct loader *c = arg;
    char body[128];
    while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE) && c->n < 4000) {
        json_t *j = NULL;
        snprintf(body, sizeof(body),
                 "{\"actor\":\"k\",\"action\":\"load\",\"event_id\":\"k%d-%d\"}", c->id, c->n);
        if (au_post(c->port, "/v1/events", body, &j) == 201) {
            struct ack *a = &c->acks[c->nacks++];
            a->seq = json_integer_value(json_object_get(j, "seq"));
            snprintf(a->hash, sizeof(a->hash), "%s", json_string_value(json_object_get(j, "hash")));
        } else {
            c->unknown[c->n] = 1;
        }
        json_decref(j);
        c->n++;
    }
    return NULL;
}

/* kill -9 of an appendfsync-always Redis in the middle of concurrent appends: every 201
 * given before is in the chain after the restart; every event left without a 201 (outcome
 * unknown) ends up in the chain exactly once when retried with its event_id; it verifies. */
static void test_kill_under_load(void **state)
{
    (void)state;
    enum { L = 16 };
    struct th_redis redis;
    struct th_proc d;
    static struct loader cl[L];
    pthread_t t[L];
    const char *extra[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    const char *env[] = {KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=0", NULL};
    assert_int_equal(th_redis_start(&redis, extra), 0);
    assert_int_equal(au_start(&d, &redis, env), 0);
    for (int i = 0; i < L; i++) {
        cl[i] = (struct loader){.port = d.port, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, loader_main, &cl[i]), 0);
    }
    usleep(600000);
    th_redis_kill(&redis);
    usleep(300000);
    for (int i = 0; i < L; i++)
        __atomic_store_n(&cl[i].stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < L; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(th_redis_restart(&redis), 0);
    long long n = th_redis_int(&redis, "HGET audit:{default}:head seq"), acked = 0, unknown = 0;
    char(*h)[65] = au_stored_hashes(&redis, n);
    for (int i = 0; i < L; i++)
        for (int k = 0; k < cl[i].nacks; k++, acked++)
            if (cl[i].acks[k].seq > n || strcmp(h[cl[i].acks[k].seq - 1], cl[i].acks[k].hash) != 0)
                fail_msg("acknowledged seq %lld lost by the kill", cl[i].acks[k].seq);
    free(h);
    assert_true(acked > 0);
    /* The unknown ones, retried with their event ids. */
    char body[128];
    for (int i = 0; i < L; i++)
        for (int k = 0; k < cl[i].n; k++) {
            if (!cl[i].unknown[k])
                continue;
            unknown++;
            snprintf(body, sizeof(body),
                     "{\"actor\":\"k\",\"action\":\"load\",\"event_id\":\"k%d-%d\"}", i, k);
            int st = -1;
            for (int tries = 0; tries < 50 && st != 200 && st != 201; tries++) {
                st = au_post(d.port, "/v1/events", body, NULL);
                if (st != 200 && st != 201)
                    usleep(100000);
            }
            assert_true(st == 200 || st == 201);
        }
    assert_true(unknown > 0); /* the kill did hit requests */
    /* Each event id exactly once: the chain holds the activation entry plus one per event. */
    long long posted = 0;
    for (int i = 0; i < L; i++)
        posted += cl[i].n;
    assert_int_equal(th_redis_int(&redis, "HGET audit:{default}:head seq"), posted + 1);
    assert_int_equal(th_redis_int(&redis, "HLEN audit:{default}:idseq"), posted);
    char ring[320], *out = NULL;
    snprintf(ring, sizeof(ring), "%s/kring.json", tmp);
    assert_int_equal(au_get_file(d.port, "/v1/keys", ring), 0);
    th_proc_stop(&d, SIGTERM, 5000);
    const char *args[] = {"--redis", redis.url, "--keys", ring, NULL};
    assert_int_equal(au_verify(args, &out), 0);
    free(out);
    th_redis_stop(&redis);
}

/* appendonly + appendfsync always: kill -9 Redis after N acknowledged appends; after the
 * restart all N are there and the chain verifies. */
static void test_durable_across_redis_kill(void **state)
{
    (void)state;
    struct th_redis redis;
    struct th_proc d;
    const char *extra[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    const char *env[] = {KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=0", NULL};
    struct ack acks[200];
    assert_int_equal(th_redis_start(&redis, extra), 0);
    assert_int_equal(au_start(&d, &redis, env), 0);
    for (int i = 0; i < 200; i++) {
        json_t *j = NULL;
        assert_int_equal(
            au_post(d.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"durable\"}", &j), 201);
        acks[i].seq = json_integer_value(json_object_get(j, "seq"));
        snprintf(acks[i].hash, sizeof(acks[i].hash), "%s",
                 json_string_value(json_object_get(j, "hash")));
        json_decref(j);
    }
    th_redis_kill(&redis);
    assert_int_equal(th_redis_restart(&redis), 0);
    char(*h)[65] = au_stored_hashes(&redis, 201);
    for (int i = 0; i < 200; i++)
        assert_string_equal(h[acks[i].seq - 1], acks[i].hash);
    free(h);
    char ring[320], *out = NULL;
    snprintf(ring, sizeof(ring), "%s/dring.json", tmp);
    assert_int_equal(au_get_file(d.port, "/v1/keys", ring), 0);
    /* The same daemon keeps appending on the surviving head. */
    json_t *j = NULL;
    assert_int_equal(au_post(d.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"after\"}", &j),
                     201);
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 202);
    json_decref(j);
    th_proc_stop(&d, SIGTERM, 5000);
    const char *args[] = {"--redis", redis.url, "--keys", ring, NULL};
    assert_int_equal(au_verify(args, &out), 0);
    free(out);
    th_redis_stop(&redis);
}

static int setup(void **state)
{
    (void)state;
    return th_tmpdir(tmp, sizeof(tmp));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_writers_one_chain),     cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_group_commit_across_workers), cmocka_unit_test(test_kill_under_load),
        cmocka_unit_test(test_durable_across_redis_kill),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
