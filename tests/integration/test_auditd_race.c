/* Integration tests of auditd under concurrency and faults: three instances and many
 * clients append to one chain (gap-free, verifies, every 201 is in it, CAS conflicts
 * happen, batches are grouped); appendfsync-always Redis killed -9 loses nothing
 * acknowledged. */
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
    int port;
    int id;
    struct th_redis *redis;
    struct ack acks[PER_CLIENT];
    int nacks, errors, not_in_redis;
};

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
        if (i % 10 == 0) {
            redisReply *r =
                th_redis_cmd(c->redis, "XRANGE audit:{default}:log %lld-0 %lld-0", a->seq, a->seq);
            if (!r || r->elements != 1)
                c->not_in_redis++;
            freeReplyObject(r);
        }
    }
    return NULL;
}

/* The stored hash of every seq 1..n (index seq-1), read in pages. */
static char (*stored_hashes(struct th_redis *r, long long n))[65]
{
    char(*h)[65] = calloc((size_t)n + 1, sizeof(*h));
    long long from = 1;
    while (from <= n) {
        redisReply *rep = th_redis_cmd(r, "XRANGE audit:{default}:log %lld-0 + COUNT 1000", from);
        if (!rep || rep->elements == 0) {
            freeReplyObject(rep);
            break;
        }
        for (size_t i = 0; i < rep->elements; i++) {
            long long seq = atoll(rep->element[i]->element[0]->str);
            if (seq >= 1 && seq <= n)
                snprintf(h[seq - 1], 65, "%s", rep->element[i]->element[1]->element[3]->str);
            from = seq + 1;
        }
        freeReplyObject(rep);
    }
    return h;
}

static void test_three_writers_one_chain(void **state)
{
    (void)state;
    struct th_redis redis;
    struct th_proc d[INSTANCES];
    static struct client cl[CLIENTS];
    pthread_t t[CLIENTS];
    const char *env[] = {KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=0", NULL};
    assert_int_equal(th_redis_start(&redis, NULL), 0);
    for (int i = 0; i < INSTANCES; i++)
        assert_int_equal(au_start(&d[i], &redis, env), 0);
    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = (struct client){.port = d[i % INSTANCES].port, .id = i, .redis = &redis};
        assert_int_equal(pthread_create(&t[i], NULL, client_main, &cl[i]), 0);
    }
    int acked = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(cl[i].errors, 0);
        assert_int_equal(cl[i].not_in_redis, 0);
        acked += cl[i].nacks;
    }
    assert_int_equal(acked, CLIENTS * PER_CLIENT);
    /* One chain: 1 activation entry (only one instance made it) + every event. */
    long long n = th_redis_int(&redis, "HGET audit:{default}:head seq");
    assert_int_equal(n, CLIENTS * PER_CLIENT + 1);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{default}:log"), n);
    char(*h)[65] = stored_hashes(&redis, n);
    for (int i = 0; i < CLIENTS; i++)
        for (int k = 0; k < cl[i].nacks; k++)
            if (strcmp(h[cl[i].acks[k].seq - 1], cl[i].acks[k].hash) != 0)
                fail_msg("acknowledged seq %lld not in the chain", cl[i].acks[k].seq);
    free(h);
    double conflicts = 0, grouped = 0;
    for (int i = 0; i < INSTANCES; i++) {
        conflicts += au_metric(d[i].port, "auditd_cas_conflicts_total ");
        grouped += au_metric(d[i].port, "auditd_append_batch_size_count ") -
                   au_metric(d[i].port, "auditd_append_batch_size_bucket{le=\"1\"} ");
    }
    assert_true(conflicts > 0);
    assert_true(grouped > 0); /* some commits carried more than one entry */
    char ring[320], *out = NULL;
    snprintf(ring, sizeof(ring), "%s/ring.json", tmp);
    assert_int_equal(au_get_file(d[0].port, "/v1/keys", ring), 0);
    for (int i = 0; i < INSTANCES; i++)
        th_proc_stop(&d[i], SIGTERM, 5000);
    const char *args[] = {"--redis", redis.url, "--keys", ring, "--threads", "2", NULL};
    assert_int_equal(au_verify(args, &out), 0);
    assert_non_null(strstr(out, "OK: 5101 entries, seq 1..5101"));
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
    char(*h)[65] = stored_hashes(&redis, 201);
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
        cmocka_unit_test(test_three_writers_one_chain),
        cmocka_unit_test(test_durable_across_redis_kill),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
