/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of auditd's guard against a Redis that lost its data (defects issue,
 * defect 4): real redis-server, real auditd processes. A chain that is shorter than, or
 * different from, what an instance has seen — FLUSHALL under it, a Redis restarted empty,
 * an older backup, also across a restart with AUDIT_STATE_DIR — gets 503 chain_broken,
 * /ready 503 and nothing written; a fresh start on an empty Redis is still a new log;
 * an operator accepts a restored chain over the admin route or with --accept-chain, which
 * records audit.chain_accepted and verifies; instances appending together are never
 * refused; the Merkle tree alone rolled back is refused and accepted the same way; a bad
 * AUDIT_STATE_DIR or state file stops the start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>

#include "test_auditd_util.h"

#define EVENT "{\"actor\":\"u\",\"action\":\"guarded\"}"
#define API "guard-api-token-0123456789abcdef"
#define ADMIN "guard-admin-token-0123456789abcd"

static struct th_redis redis;
static char tmp[256];

static int setup(void **state)
{
    (void)state;
    if (th_tmpdir(tmp, sizeof(tmp)) != 0 || th_redis_start(&redis, NULL) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_redis_stop(&redis);
    return 0;
}

/* A new empty directory for one instance's state. */
static void state_dir(char *out, size_t size, const char *name)
{
    snprintf(out, size, "AUDIT_STATE_DIR=%s/%s", tmp, name);
    mkdir(strchr(out, '=') + 1, 0700);
}

/* POST with an optional bearer token; the status, and the body as JSON in *out. */
static int post_as(int port, const char *path, const char *json, const char *token, json_t **out)
{
    char auth[128];
    const char *headers[] = {"Content-Type: application/json", token ? auth : NULL, NULL};
    struct th_resp r;
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "");
    if (th_http(port, "POST", path, headers, json, json ? strlen(json) : 0, &r) != 0)
        return -1;
    int st = r.status;
    if (out)
        *out = th_json(&r);
    th_resp_free(&r);
    return st;
}

/* An append refused as the issue asks: 503, problem+json, code chain_broken. */
static void assert_chain_broken(int port)
{
    struct th_resp r;
    char ct[64];
    assert_int_equal(th_post_json(port, "/v1/events", EVENT, &r), 0);
    if (r.status != 503 || !strstr(r.body, "\"chain_broken\""))
        fail_msg("append after the chain was lost: %d %s", r.status, r.body);
    assert_non_null(th_header(&r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/problem+json");
    th_resp_free(&r);
}

/* GET /ready: its status; with reason (may be NULL) the "reason" it gave must be it. */
static int ready_status(int port, const char *reason)
{
    struct th_resp r;
    assert_int_equal(th_http(port, "GET", "/ready", NULL, NULL, 0, &r), 0);
    int st = r.status;
    if (reason && !strstr(r.body, reason))
        fail_msg("/ready: %d %s (wanted reason %s)", st, r.body, reason);
    th_resp_free(&r);
    return st;
}

/* Post n events; returns the last answer (caller json_decref's). */
static json_t *append_n(int port, int n)
{
    json_t *last = NULL;
    for (int i = 0; i < n; i++) {
        json_decref(last);
        last = NULL;
        assert_int_equal(au_post(port, "/v1/events", EVENT, &last), 201);
    }
    return last;
}

static long long head_of(const char *chain)
{
    return th_redis_int(&redis, "HGET audit:{%s}:head seq", chain);
}

/* ---- a copy of a chain, as an older backup ------------------------------------------ */

static const char *const PARTS[] = {"head", "log", "keys", "ids", "idseq", "tile:0:0"};
#define NPARTS 6

struct backup {
    redisReply *dump[NPARTS];
};

static void backup_take(const char *chain, struct backup *b)
{
    for (int i = 0; i < NPARTS; i++)
        b->dump[i] = th_redis_cmd(&redis, "DUMP audit:{%s}:%s", chain, PARTS[i]);
}

/* Put the copy back in place of the chain (the backup restored), and free it. */
static void backup_restore(const char *chain, struct backup *b)
{
    for (int i = 0; i < NPARTS; i++) {
        freeReplyObject(th_redis_cmd(&redis, "DEL audit:{%s}:%s", chain, PARTS[i]));
        if (b->dump[i] && b->dump[i]->type == REDIS_REPLY_STRING)
            freeReplyObject(th_redis_cmd(&redis, "RESTORE audit:{%s}:%s 0 %b REPLACE", chain,
                                         PARTS[i], b->dump[i]->str, b->dump[i]->len));
        freeReplyObject(b->dump[i]);
    }
}

/* Entry seq of chain: its event, as stored (caller json_decref's). */
static json_t *stored_event(const char *chain, long long seq)
{
    redisReply *x = th_redis_cmd(&redis, "XRANGE audit:{%s}:log %lld-0 %lld-0", chain, seq, seq);
    assert_non_null(x);
    assert_int_equal(x->elements, 1);
    json_t *body = json_loads(x->element[0]->element[1]->element[1]->str, 0, NULL);
    freeReplyObject(x);
    json_t *event = json_incref(json_object_get(body, "event"));
    json_decref(body);
    return event;
}

/* ---- the tests -------------------------------------------------------------------- */

/* The reproduction: FLUSHALL under a running instance. Before the fix the next append got
 * 201 at seq 1 of a new chain (re-adding audit.key_activated), silently. */
static void test_flushall_under_running_instance(void **state)
{
    (void)state;
    struct th_proc p;
    const char *env[] = {"AUDIT_CHAIN=flush", KEY_V1_ENV, NULL};
    assert_int_equal(au_start(&p, &redis, env), 0);
    json_decref(append_n(p.port, 3));
    assert_int_equal(ready_status(p.port, NULL), 200);
    freeReplyObject(th_redis_cmd(&redis, "FLUSHALL"));
    assert_chain_broken(p.port);
    assert_int_equal(th_redis_int(&redis, "DBSIZE"), 0); /* nothing written */
    assert_int_equal(ready_status(p.port, "\"reason\":\"chain_broken\""), 503);
    assert_chain_broken(p.port);
    struct th_resp r;
    assert_int_equal(th_http(p.port, "GET", "/v1/checkpoint", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 503); /* no signed checkpoint of the emptied chain */
    th_resp_free(&r);
    assert_int_equal(th_redis_int(&redis, "DBSIZE"), 0);
    assert_true(au_metric(p.port, "auditd_chain_refusing ") == 1);
    /* Logged at critical once for the refusal, not once per request. */
    char *log = th_proc_log(&p);
    int critical = 0;
    for (const char *at = log; (at = strstr(at, "\"level\":\"critical\"")) != NULL; at++)
        critical++;
    assert_int_equal(critical, 1);
    assert_non_null(strstr(log, "\"redis_chain\":\"shorter\""));
    free(log);
    th_proc_stop(&p, SIGTERM, 5000);
}

/* A Redis without persistence killed and restarted: it comes back empty. */
static void test_redis_restarted_empty(void **state)
{
    (void)state;
    struct th_proc p;
    struct th_resp r;
    const char *env[] = {"AUDIT_CHAIN=restart", KEY_V1_ENV, NULL};
    assert_int_equal(au_start(&p, &redis, env), 0);
    json_decref(append_n(p.port, 2));
    th_redis_kill(&redis);
    assert_int_equal(th_redis_restart(&redis), 0);
    assert_int_equal(th_redis_int(&redis, "DBSIZE"), 0);
    /* The pool notices the restart on its first call (503 backend_unavailable); then the
     * empty chain is refused. */
    int st = 0;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(th_post_json(p.port, "/v1/events", EVENT, &r), 0);
        st = strstr(r.body, "chain_broken") ? 1 : 0;
        th_resp_free(&r);
        if (st)
            break;
        usleep((useconds_t)th_ms(100) * 1000);
    }
    assert_true(st);
    assert_chain_broken(p.port);
    assert_int_equal(th_redis_int(&redis, "DBSIZE"), 0);
    assert_int_equal(ready_status(p.port, "chain_broken"), 503);
    /* Accepting an empty Redis (no ADMIN_TOKEN here: the route is as open as the rest)
     * starts a new log, whose first entries say so. */
    json_t *j = NULL;
    assert_int_equal(post_as(p.port, "/v1/admin/chain/accept", NULL, NULL, &j), 200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "accepted"), "seq")), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "accepted"), "hash")),
                        ZERO_HASH);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "remembered"), "seq")),
                     3);
    json_decref(j);
    json_t *ev = stored_event("restart", 1);
    assert_string_equal(json_string_value(json_object_get(ev, "action")), "audit.key_activated");
    json_decref(ev);
    ev = stored_event("restart", 2);
    assert_string_equal(json_string_value(json_object_get(ev, "action")), "audit.chain_accepted");
    json_decref(ev);
    j = append_n(p.port, 1);
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 3);
    json_decref(j);
    assert_int_equal(ready_status(p.port, NULL), 200);
    th_proc_stop(&p, SIGTERM, 5000);
}

/* The file: named after chain and origin, mode 0600, the last acknowledged head, no
 * temporary file left. */
static void assert_state_file(const char *dir, const char *chain, const char *origin, long long seq,
                              const char *hash)
{
    uint8_t d[CRYPTO_SHA256_LEN];
    char hex[65], path[700], want[400];
    struct stat st;
    crypto_sha256(origin, strlen(origin), d);
    crypto_hex(d, sizeof(d), hex);
    snprintf(path, sizeof(path), "%s/audit-%s-%.16s.json", dir, chain, hex);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    FILE *f = fopen(path, "r");
    char line[600] = "";
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    /* the root is the tree's in Redis at that size (the chain has not grown since) */
    redisReply *root = th_redis_cmd(&redis, "HGET audit:{%s}:head root", chain);
    assert_true(root && root->type == REDIS_REPLY_STRING && root->len == 64);
    snprintf(want, sizeof(want),
             "{\"chain\":\"%s\",\"hash\":\"%s\",\"origin\":\"%s\",\"root\":\"%s\",\"seq\":%lld,"
             "\"tree_size\":%lld}\n",
             chain, hash, origin, root->str, seq, seq);
    freeReplyObject(root);
    assert_string_equal(line, want);
    DIR *dd = opendir(dir);
    int files = 0;
    for (struct dirent *e; (e = readdir(dd)) != NULL;)
        files += e->d_name[0] != '.';
    closedir(dd);
    assert_int_equal(files, 1);
}

/* An instance restarted with AUDIT_STATE_DIR still knows what it saw: an emptied Redis, an
 * older copy of the chain, and another chain written meanwhile are all refused. */
static void test_state_dir_remembers_across_restart(void **state)
{
    (void)state;
    struct th_proc a, b, other;
    struct backup older = {0};
    char sd[300];
    state_dir(sd, sizeof(sd), "restart-state");
    const char *env[] = {"AUDIT_CHAIN=sd", KEY_V1_ENV, sd, NULL};
    const char *plain[] = {"AUDIT_CHAIN=sd", KEY_V1_ENV, NULL};
    assert_int_equal(au_start(&a, &redis, env), 0);
    json_decref(append_n(a.port, 2));
    backup_take("sd", &older); /* seq 1..3 */
    json_t *last = append_n(a.port, 2);
    assert_int_equal(json_integer_value(json_object_get(last, "seq")), 5);
    assert_state_file(strchr(sd, '=') + 1, "sd", "warden-audit/sd", 5,
                      json_string_value(json_object_get(last, "hash")));
    json_decref(last);
    th_proc_stop(&a, SIGTERM, 5000);
    /* rolled back to the older copy */
    backup_restore("sd", &older);
    assert_int_equal(au_start(&b, &redis, env), 0);
    assert_int_equal(ready_status(b.port, "chain_broken"), 503);
    assert_chain_broken(b.port);
    assert_int_equal(head_of("sd"), 3);
    assert_true(th_proc_log_contains(&b, "\"redis_chain\":\"shorter\""));
    th_proc_stop(&b, SIGTERM, 5000);
    /* emptied */
    freeReplyObject(th_redis_cmd(&redis, "FLUSHALL"));
    assert_int_equal(au_start(&b, &redis, env), 0);
    assert_chain_broken(b.port);
    assert_int_equal(th_redis_int(&redis, "DBSIZE"), 0);
    th_proc_stop(&b, SIGTERM, 5000);
    /* another chain, longer than the one seen, written by an instance that knew nothing */
    assert_int_equal(au_start(&other, &redis, plain), 0);
    json_decref(append_n(other.port, 7));
    th_proc_stop(&other, SIGTERM, 5000);
    assert_int_equal(au_start(&b, &redis, env), 0);
    assert_chain_broken(b.port);
    assert_int_equal(head_of("sd"), 8);
    assert_true(th_proc_log_contains(&b, "\"redis_chain\":\"different\""));
    th_proc_stop(&b, SIGTERM, 5000);
}

/* Nothing remembered (no AUDIT_STATE_DIR, or an empty one): an empty Redis is a new log. */
static void test_fresh_start_is_a_new_log(void **state)
{
    (void)state;
    struct th_proc p;
    json_t *j;
    char sd[300];
    state_dir(sd, sizeof(sd), "fresh-state");
    const char *plain[] = {"AUDIT_CHAIN=fresh", KEY_V1_ENV, NULL};
    const char *with_dir[] = {"AUDIT_CHAIN=fresh2", KEY_V1_ENV, sd, NULL};
    const char *const *envs[] = {plain, with_dir};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(au_start(&p, &redis, envs[i]), 0);
        assert_int_equal(ready_status(p.port, NULL), 200);
        j = append_n(p.port, 1);
        assert_int_equal(json_integer_value(json_object_get(j, "seq")), 2); /* after activation */
        json_decref(j);
        th_proc_stop(&p, SIGTERM, 5000);
    }
}

/* Fetch the keyring with the API token into file. */
static void keyring_to(int port, const char *file)
{
    const char *headers[] = {"Authorization: Bearer " API, NULL};
    struct th_resp r;
    assert_int_equal(th_http(port, "GET", "/v1/keys", headers, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    au_write(file, r.body);
    th_resp_free(&r);
}

static void assert_verifies(const char *chain, const char *ring, const char *line)
{
    char *out = NULL;
    const char *args[] = {"--redis", redis.url, "--chain", chain, "--keys", ring, NULL};
    int st = au_verify(args, &out);
    if (st != 0 || !strstr(out, line))
        fail_msg("audit-verify: exit %d, %s", st, out ? out : "");
    free(out);
}

/* The DR drill on a running instance: an older copy restored, refused, accepted by an
 * operator with the admin token; the acceptance is an entry of the chain; appends resume
 * on it and the chain verifies. */
static void test_accept_over_admin_route(void **state)
{
    (void)state;
    struct th_proc p;
    struct backup older = {0};
    char sd[300], ring[320], hash5[65];
    state_dir(sd, sizeof(sd), "accept-state");
    const char *env[] = {"AUDIT_CHAIN=acc", KEY_V1_ENV,           sd,
                         "API_TOKEN=" API,  "ADMIN_TOKEN=" ADMIN, NULL};
    assert_int_equal(au_start(&p, &redis, env), 0);
    json_t *j = NULL;
    for (int i = 0; i < 4; i++) {
        if (i == 2)
            backup_take("acc", &older); /* seq 1..3 */
        json_decref(j);
        assert_int_equal(post_as(p.port, "/v1/events", EVENT, API, &j), 201);
    }
    snprintf(hash5, sizeof(hash5), "%s", json_string_value(json_object_get(j, "hash")));
    json_decref(j);
    backup_restore("acc", &older);
    assert_int_equal(post_as(p.port, "/v1/events", EVENT, API, NULL), 503);
    /* Only the admin token accepts; a refused accept changes nothing. */
    const char *wrong[] = {NULL, API, ADMIN "x", ""};
    for (int i = 0; i < 4; i++)
        assert_int_equal(post_as(p.port, "/v1/admin/chain/accept", NULL, wrong[i], NULL), 401);
    assert_int_equal(head_of("acc"), 3);
    assert_int_equal(ready_status(p.port, "chain_broken"), 503);
    assert_int_equal(post_as(p.port, "/v1/admin/chain/accept", NULL, ADMIN, &j), 200);
    json_t *acc = json_object_get(j, "accepted"), *rem = json_object_get(j, "remembered");
    assert_int_equal(json_integer_value(json_object_get(acc, "seq")), 3);
    assert_int_equal(json_integer_value(json_object_get(rem, "seq")), 5);
    assert_string_equal(json_string_value(json_object_get(rem, "hash")), hash5);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "entry"), "seq")), 4);
    char acc_hash[65];
    snprintf(acc_hash, sizeof(acc_hash), "%s", json_string_value(json_object_get(acc, "hash")));
    json_decref(j);
    /* recorded in the chain */
    json_t *ev = stored_event("acc", 4);
    json_t *meta = json_object_get(ev, "metadata");
    assert_string_equal(json_string_value(json_object_get(ev, "actor")), "auditd");
    assert_string_equal(json_string_value(json_object_get(ev, "action")), "audit.chain_accepted");
    assert_string_equal(json_string_value(json_object_get(meta, "via")),
                        "POST /v1/admin/chain/accept");
    assert_int_equal(json_integer_value(json_object_get(meta, "remembered_seq")), 5);
    assert_string_equal(json_string_value(json_object_get(meta, "remembered_hash")), hash5);
    assert_int_equal(json_integer_value(json_object_get(meta, "accepted_seq")), 3);
    assert_string_equal(json_string_value(json_object_get(meta, "accepted_hash")), acc_hash);
    json_decref(ev);
    /* appends resume on it; ready again; the state file follows */
    assert_int_equal(ready_status(p.port, NULL), 200);
    assert_int_equal(post_as(p.port, "/v1/events", EVENT, API, &j), 201);
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 5);
    assert_state_file(strchr(sd, '=') + 1, "acc", "warden-audit/acc", 5,
                      json_string_value(json_object_get(j, "hash")));
    json_decref(j);
    snprintf(ring, sizeof(ring), "%s/acc-ring.json", tmp);
    keyring_to(p.port, ring);
    th_proc_stop(&p, SIGTERM, 5000);
    assert_verifies("acc", ring, "OK: 5 entries");
}

/* An older copy restored while auditd was down: --accept-chain at start records the
 * acceptance before serving; appends go on and the chain verifies. Without Redis the flag
 * refuses to start rather than start unaccepted. */
static void test_accept_chain_flag_at_start(void **state)
{
    (void)state;
    struct th_proc a, b;
    struct backup older = {0};
    char sd[300], ring[320], *err = NULL;
    state_dir(sd, sizeof(sd), "flag-state");
    const char *env[] = {"AUDIT_CHAIN=flag", KEY_V1_ENV, sd, NULL};
    assert_int_equal(au_start(&a, &redis, env), 0);
    json_decref(append_n(a.port, 3));
    backup_take("flag", &older); /* seq 1..4 */
    json_decref(append_n(a.port, 3));
    th_proc_stop(&a, SIGTERM, 5000);
    backup_restore("flag", &older);
    assert_int_equal(au_start_flag(&b, &redis, env, "--accept-chain"), 0);
    assert_int_equal(ready_status(b.port, NULL), 200);
    json_t *ev = stored_event("flag", 5);
    json_t *meta = json_object_get(ev, "metadata");
    assert_string_equal(json_string_value(json_object_get(ev, "action")), "audit.chain_accepted");
    assert_string_equal(json_string_value(json_object_get(meta, "via")), "--accept-chain");
    assert_int_equal(json_integer_value(json_object_get(meta, "remembered_seq")), 7);
    assert_int_equal(json_integer_value(json_object_get(meta, "accepted_seq")), 4);
    json_decref(ev);
    json_t *j = append_n(b.port, 1);
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 6);
    json_decref(j);
    snprintf(ring, sizeof(ring), "%s/flag-ring.json", tmp);
    assert_int_equal(au_get_file(b.port, "/v1/keys", ring), 0);
    th_proc_stop(&b, SIGTERM, 5000);
    assert_verifies("flag", ring, "OK: 6 entries");
    /* Redis unreachable: exit 2, nothing accepted. */
    char listen[64];
    snprintf(listen, sizeof(listen), "LISTEN_ADDR=127.0.0.1:%d", th_free_port());
    const char *down[] = {
        "AUDIT_CHAIN=flag", KEY_V1_ENV, sd, "REDIS_URL=redis://127.0.0.1:1/0", listen, NULL};
    const char *argv[] = {"auditd", "--accept-chain", NULL};
    assert_int_equal(th_run(th_bin("bin/auditd"), argv, down, NULL, &err, 20000), 2);
    assert_non_null(strstr(err, "--accept-chain: Redis unavailable; nothing accepted"));
    free(err);
}

/* Three instances on one chain, two with a state dir each: every append of the others
 * moves the head forward, which is never a reason to refuse. */
static void test_instances_together_are_not_refused(void **state)
{
    (void)state;
    struct th_proc d[3];
    struct au_poster ps[3];
    pthread_t t[3];
    char sd0[300], sd1[300], ring[320];
    state_dir(sd0, sizeof(sd0), "together-0");
    state_dir(sd1, sizeof(sd1), "together-1");
    const char *e0[] = {"AUDIT_CHAIN=multi", KEY_V1_ENV, sd0, "AUDIT_CHECKPOINT_INTERVAL=1s", NULL};
    const char *e1[] = {"AUDIT_CHAIN=multi", KEY_V1_ENV, sd1, NULL};
    const char *e2[] = {"AUDIT_CHAIN=multi", KEY_V1_ENV, NULL};
    const char *const *envs[] = {e0, e1, e2};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(au_start(&d[i], &redis, envs[i]), 0);
        ps[i] = (struct au_poster){.port = d[i].port, .n = 40, .body = EVENT};
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, au_poster_main, &ps[i]), 0);
    for (int round = 0; round < 10; round++) /* /ready while the others append */
        for (int i = 0; i < 3; i++)
            assert_int_equal(ready_status(d[i].port, NULL), 200);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(ps[i].ok, 40);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ready_status(d[i].port, NULL), 200);
        assert_false(th_proc_log_contains(&d[i], "\"level\":\"critical\""));
    }
    assert_int_equal(head_of("multi"), 121);
    snprintf(ring, sizeof(ring), "%s/multi-ring.json", tmp);
    assert_int_equal(au_get_file(d[0].port, "/v1/keys", ring), 0);
    for (int i = 0; i < 3; i++)
        th_proc_stop(&d[i], SIGTERM, 5000);
    assert_verifies("multi", ring, "OK: 121 entries");
}

/* Exit 2 with one line naming what is wrong. */
static void assert_start_refused(const char *const *env, const char *want)
{
    char url[160], *err = NULL;
    snprintf(url, sizeof(url), "REDIS_URL=%s", redis.url);
    const char *full[8] = {url};
    int n = 1;
    for (int i = 0; env[i] && n < 7; i++)
        full[n++] = env[i];
    const char *argv[] = {"auditd", NULL};
    int st = th_run(th_bin("bin/auditd"), argv, full, NULL, &err, 20000);
    if (st != 2 || !err || !strstr(err, want))
        fail_msg("exit %d, %s (wanted 2 and %s)", st, err ? err : "", want);
    free(err);
}

/* The tree alone rolled back to an older valid state (its head fields and tile from an
 * earlier copy; the chain intact): refused by the running instance (the script's size
 * check) and by a restarted one (the state file's root); accepted over the admin route, the
 * tree catches up from the entries and checkpoints carry the root recomputed from them. */
static void test_tree_rolled_back(void **state)
{
    (void)state;
    struct th_proc a, b;
    char sd[300], ring[320], want[200], root64[48];
    uint8_t root[32];
    state_dir(sd, sizeof(sd), "tree-state");
    const char *env[] = {"AUDIT_CHAIN=tr", KEY_V1_ENV,           sd,
                         "API_TOKEN=" API, "ADMIN_TOKEN=" ADMIN, NULL};
    assert_int_equal(au_start(&a, &redis, env), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(post_as(a.port, "/v1/events", EVENT, API, NULL), 201);
    redisReply *fields = th_redis_cmd(&redis, "HMGET audit:{tr}:head tsize root frontier");
    redisReply *tile = th_redis_cmd(&redis, "DUMP audit:{tr}:tile:0:0");
    for (int i = 0; i < 3; i++)
        assert_int_equal(post_as(a.port, "/v1/events", EVENT, API, NULL), 201);
    redisReply *const *f = fields->element;
    freeReplyObject(th_redis_cmd(&redis, "HSET audit:{tr}:head tsize %b root %b frontier %b",
                                 f[0]->str, f[0]->len, f[1]->str, f[1]->len, f[2]->str, f[2]->len));
    freeReplyObject(
        th_redis_cmd(&redis, "RESTORE audit:{tr}:tile:0:0 0 %b REPLACE", tile->str, tile->len));
    freeReplyObject(fields);
    freeReplyObject(tile);
    assert_int_equal(post_as(a.port, "/v1/events", EVENT, API, NULL), 503);
    assert_int_equal(ready_status(a.port, "chain_broken"), 503);
    assert_int_equal(head_of("tr"), 7);
    th_proc_stop(&a, SIGTERM, 5000);
    assert_int_equal(au_start(&b, &redis, env), 0);
    assert_int_equal(ready_status(b.port, "chain_broken"), 503);
    assert_int_equal(post_as(b.port, "/v1/events", EVENT, API, NULL), 503);
    assert_true(th_proc_log_contains(&b, "\"redis_chain\":\"shorter\""));
    assert_int_equal(post_as(b.port, "/v1/admin/chain/accept", NULL, ADMIN, NULL), 200);
    assert_int_equal(post_as(b.port, "/v1/events", EVENT, API, NULL), 201);
    assert_int_equal(head_of("tr"), 9);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{tr}:head tsize"), 9);
    assert_int_equal(ready_status(b.port, NULL), 200);
    /* the checkpoint's root is the one of the entries as they are */
    const char *auth[] = {"Authorization: Bearer " API, NULL};
    struct th_resp r;
    assert_int_equal(th_http(b.port, "GET", "/v1/checkpoint", auth, NULL, 0, &r), 0);
    uint8_t(*lh)[32] = calloc(9, 32);
    redisReply *log = th_redis_cmd(&redis, "XRANGE audit:{tr}:log - +");
    for (size_t i = 0; i < 9 && log && i < log->elements; i++) {
        redisReply *body = log->element[i]->element[1]->element[1];
        audit_merkle_leaf_hash(body->str, body->len, lh[i]);
    }
    freeReplyObject(log);
    au_mth(lh, 0, 9, root);
    free(lh);
    crypto_b64(root, 32, root64, sizeof(root64));
    snprintf(want, sizeof(want), "warden-audit/tr\n9\n%s\n", root64);
    if (r.status != 200 || strncmp(r.body, want, strlen(want)) != 0)
        fail_msg("checkpoint: %d %s (wanted %s)", r.status, r.body, want);
    th_resp_free(&r);
    snprintf(ring, sizeof(ring), "%s/tr-ring.json", tmp);
    keyring_to(b.port, ring);
    th_proc_stop(&b, SIGTERM, 5000);
    assert_verifies("tr", ring, "OK: 9 entries");
}

static void test_bad_state_dir_or_file(void **state)
{
    (void)state;
    char sd[300], file[700], listen[64];
    uint8_t d[CRYPTO_SHA256_LEN];
    char hex[65];
    snprintf(listen, sizeof(listen), "LISTEN_ADDR=127.0.0.1:%d", th_free_port());
    state_dir(sd, sizeof(sd), "bad-state");
    crypto_sha256("warden-audit/bad", 16, d);
    crypto_hex(d, sizeof(d), hex);
    snprintf(file, sizeof(file), "%s/audit-bad-%.16s.json", strchr(sd, '=') + 1, hex);
    const char *rel[] = {KEY_V1_ENV, "AUDIT_STATE_DIR=relative/dir", listen, NULL};
    assert_start_refused(rel, "AUDIT_STATE_DIR=relative/dir");
    const char *missing[] = {KEY_V1_ENV, "AUDIT_CHAIN=bad", "AUDIT_STATE_DIR=/nonexistent/warden",
                             listen, NULL};
    assert_start_refused(missing, "AUDIT_STATE_DIR=/nonexistent/warden: No such file");
    const char *env[] = {KEY_V1_ENV, "AUDIT_CHAIN=bad", sd, listen, NULL};
    static const char *const bad[][2] = {
        {"not json", "not JSON"},
        {"{\"chain\":\"bad\",\"hash\":\"" ZERO_HASH "\",\"origin\":\"warden-audit/other\","
         "\"seq\":0}",
         "another chain or origin"},
        {"{\"chain\":\"bad\",\"hash\":\"XYZ\",\"origin\":\"warden-audit/bad\",\"seq\":4}",
         "hash is not 64 lowercase hex"},
        {"{\"chain\":\"bad\",\"hash\":\"" ZERO_HASH "\",\"origin\":\"warden-audit/bad\","
         "\"seq\":-1}",
         "seq is not a whole number"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        au_write(file, bad[i][0]);
        assert_start_refused(env, "is not a state file of chain bad, origin warden-audit/bad");
        assert_start_refused(env, bad[i][1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flushall_under_running_instance),
        cmocka_unit_test(test_redis_restarted_empty),
        cmocka_unit_test(test_state_dir_remembers_across_restart),
        cmocka_unit_test(test_fresh_start_is_a_new_log),
        cmocka_unit_test(test_accept_over_admin_route),
        cmocka_unit_test(test_accept_chain_flag_at_start),
        cmocka_unit_test(test_instances_together_are_not_refused),
        cmocka_unit_test(test_tree_rolled_back),
        cmocka_unit_test(test_bad_state_dir_or_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
