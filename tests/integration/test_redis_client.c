/* SPDX-License-Identifier: Apache-2.0 */
/* The non-blocking Redis client (libshared/src/redis_client.c, redis_conn.c) against a real
 * redis-server on loopback, driven by a real event loop on the test's thread:
 *   - automatic pipelining: 2,000 commands issued in one turn leave in a handful of writes
 *     (the client's own counter), and Redis counts every one of them;
 *   - TLS against `redis-server --tls-port` with a CA made by the test; a wrong CA and a
 *     wrong host name are refused;
 *   - ACL AUTH and SELECT ahead of the first command;
 *   - a command past its deadline against a frozen Redis (SIGSTOP) fails as a timeout,
 *     with every other command on its connection, without waiting for the socket;
 *   - NOSCRIPT under load (SCRIPT FLUSH behind the client's back): every call succeeds;
 *   - Redis killed and restarted under load: failures are fast while it is down, and
 *     commands succeed again within a second of its return;
 *   - with every connection full, a command waits REDIS_POOL_TIMEOUT, then fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/harness.h"
#include "shared/loop.h"
#include "shared/redis_client.h"
#include "shared/script.h"

static struct th_redis redis;

static int setup(void **state)
{
    (void)state;
    return th_redis_start(&redis, NULL);
}

static int teardown(void **state)
{
    (void)state;
    th_redis_stop(&redis);
    return 0;
}

/* ---- driving a loop from the test -------------------------------------------------- */

struct tally {
    int ok, reply_error, conn, timeout, pool_timeout;
    int done;
    int64_t last_ms; /* when the last outcome came */
    struct loop *loop;
};

static void count(void *arg, enum rcl_status st, redisReply *reply)
{
    struct tally *t = arg;
    (void)reply;
    t->ok += st == RCL_OK;
    t->reply_error += st == RCL_REPLY_ERROR;
    t->conn += st == RCL_CONN;
    t->timeout += st == RCL_TIMEOUT;
    t->pool_timeout += st == RCL_POOL_TIMEOUT;
    t->done++;
    t->last_ms = loop_update_now(t->loop);
}

struct until {
    struct loop_timer timer;
    struct loop *loop;
    const int *counter;
    int target;
    int64_t give_up_ms;
};

static void check_until(struct loop_timer *t)
{
    struct until *u = t->arg;
    if (*u->counter >= u->target || loop_now_ms(u->loop) >= u->give_up_ms)
        loop_stop(u->loop);
    else
        loop_timer_start(u->loop, t, 1);
}

/* Run l until *counter reaches target or ms pass. */
static void run_until(struct loop *l, const int *counter, int target, int ms)
{
    struct until u = {.loop = l, .counter = counter, .target = target};
    u.timer = (struct loop_timer){.fn = check_until, .arg = &u};
    u.give_up_ms = loop_update_now(l) + th_ms(ms);
    loop_timer_start(l, &u.timer, 0);
    loop_run(l);
    loop_timer_stop(l, &u.timer);
}

static struct rcl_config config(const char *url)
{
    return (struct rcl_config){.url = url,
                               .pool_size = 4,
                               .loops = 1,
                               .min_idle = 1,
                               .pool_timeout_ms = 200,
                               .connect_timeout_ms = 1000,
                               .command_timeout_ms = 1000};
}

static struct rclient *client(struct loop *l, const struct rcl_config *conf)
{
    char err[256];
    struct rclient *c = rcl_create(l, conf, err, sizeof(err));
    if (!c)
        print_message("rcl_create: %s\n", err);
    assert_non_null(c);
    return c;
}

static int ping(struct loop *l, struct rclient *c)
{
    struct tally t = {.loop = l};
    const char *argv[] = {"PING"};
    assert_int_equal(rcl_command(c, 1, argv, NULL, 0, count, &t), 0);
    run_until(l, &t.done, 1, 3000);
    return t.ok == 1 ? 0 : -1;
}

/* ---- the tests ------------------------------------------------------------------------ */

static const struct script incr_script = {
    .name = "test_incr",
    .sha1 = "61636018f4e6b5817b89791bbed242f93fa089e3", /* of the source below */
    .source = "return redis.call('INCR', KEYS[1])",
};

static const struct script nargs_script = {
    .name = "test_nargs",
    .sha1 = "", /* filled by the test: SHA-1 of the source below */
    .source = "return #ARGV",
};

static long long processed(void)
{
    redisReply *r = th_redis_cmd(&redis, "INFO stats");
    assert_non_null(r);
    const char *p = strstr(r->str, "total_commands_processed:");
    long long n = p ? atoll(p + strlen("total_commands_processed:")) : -1;
    freeReplyObject(r);
    return n;
}

static void test_pipelining(void **state)
{
    (void)state;
    char err[128];
    struct loop *l = loop_create(err, sizeof(err));
    assert_non_null(l);
    struct rcl_config conf = config(redis.url);
    struct rclient *c = client(l, &conf);
    assert_int_equal(ping(l, c), 0);
    struct rcl_stats before;
    rcl_stats(c, &before);
    long long redis_before = processed();
    struct tally t = {.loop = l};
    const char *argv[] = {"pipelined"};
    for (int i = 0; i < 2000; i++)
        assert_int_equal(rcl_eval(c, &incr_script, 1, 1, argv, NULL, 0, count, &t), 0);
    run_until(l, &t.done, 2000, 5000);
    assert_int_equal(t.ok, 2000);
    struct rcl_stats after;
    rcl_stats(c, &after);
    uint64_t cmds = after.commands - before.commands, writes = after.writes - before.writes;
    print_message("2000 commands in %llu writes\n", (unsigned long long)writes);
    assert_int_equal(cmds, 2000);
    assert_true(writes >= 1 && writes <= 20); /* one turn's commands leave together */
    assert_int_equal(th_redis_int(&redis, "GET pipelined"), 2000);
    /* Redis ran them all (the first EVALSHA of a new script costs a SCRIPT LOAD too), plus
     * the INFO of this test. */
    assert_true(processed() - redis_before >= 2000);
    rcl_free(c);
    loop_free(l);
}

struct nargs {
    struct loop *loop;
    int done;
    long long n;
};

static void got_nargs(void *arg, enum rcl_status st, redisReply *reply)
{
    struct nargs *a = arg;
    a->n = st == RCL_OK && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    a->done = 1;
}

/* A script call with many arguments (auditd's batch of appends has hundreds). */
static void test_long_script_call(void **state)
{
    (void)state;
    char err[128], sha[41];
    redisReply *r = th_redis_cmd(&redis, "SCRIPT LOAD %s", nargs_script.source);
    assert_non_null(r);
    snprintf(sha, sizeof(sha), "%s", r->str);
    freeReplyObject(r);
    struct script s = nargs_script;
    s.sha1 = sha;
    struct loop *l = loop_create(err, sizeof(err));
    assert_non_null(l);
    struct rcl_config conf = config(redis.url);
    struct rclient *c = client(l, &conf);
    const char *argv[1001];
    argv[0] = "key";
    for (int i = 1; i < 1001; i++)
        argv[i] = i % 2 ? "odd" : "even";
    struct nargs a = {.loop = l};
    assert_int_equal(rcl_eval(c, &s, 1, 1001, argv, NULL, 0, got_nargs, &a), 0);
    run_until(l, &a.done, 1, 3000);
    assert_int_equal(a.n, 1000);
    rcl_free(c);
    loop_free(l);
}

static void test_auth_and_select(void **state)
{
    (void)state;
    freeReplyObject(th_redis_cmd(&redis, "ACL SETUSER rcl on >rcl-secret ~* +@all"));
    char url[256];
    snprintf(url, sizeof(url), "redis://rcl:rcl-secret@127.0.0.1:%d/3", redis.port);
    char err[128];
    struct loop *l = loop_create(err, sizeof(err));
    assert_non_null(l);
    struct rcl_config conf = config(url);
    struct rclient *c = client(l, &conf);
    struct tally t = {.loop = l};
    const char *set[] = {"SET", "in-db-3", "yes"};
    assert_int_equal(rcl_command(c, 3, set, NULL, 0, count, &t), 0);
    run_until(l, &t.done, 1, 3000);
    assert_int_equal(t.ok, 1);
    assert_int_equal(th_redis_int(&redis, "EXISTS in-db-3"), 0); /* not in db 0 */
    redisReply *r = th_redis_cmd(&redis, "SELECT 3");
    freeReplyObject(r);
    rcl_free(c);
    /* A wrong password: the connection fails, the command with it. */
    snprintf(url, sizeof(url), "redis://rcl:wrong@127.0.0.1:%d/0", redis.port);
    conf = config(url);
    c = client(l, &conf);
    assert_int_equal(ping(l, c), -1);
    rcl_free(c);
    loop_free(l);
    freeReplyObject(th_redis_cmd(&redis, "ACL DELUSER rcl"));
}

static void test_tls(void **state)
{
    (void)state;
    char dir[256], other[256];
    assert_int_equal(th_tmpdir(dir, sizeof(dir)), 0);
    assert_int_equal(th_tmpdir(other, sizeof(other)), 0);
    assert_int_equal(th_make_certs(dir, "ca"), 0);
    assert_int_equal(th_make_certs(other, "otherca"), 0);
    char ca[300], wrong_ca[300];
    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    snprintf(wrong_ca, sizeof(wrong_ca), "%s/otherca.crt", other);
    struct th_redis tr;
    assert_int_equal(th_redis_start_tls(&tr, dir), 0);
    int tls_port = tr.tls_port;
    char err[128], url[128];
    struct loop *l = loop_create(err, sizeof(err));
    assert_non_null(l);
    struct {
        const char *host, *ca, *server_name;
        int want;
    } cases[] = {
        {"localhost", ca, NULL, 0},             /* the name in the certificate */
        {"127.0.0.1", ca, NULL, 0},             /* its IP entry */
        {"127.0.0.1", ca, "localhost", 0},      /* REDIS_TLS_SERVER_NAME */
        {"localhost", wrong_ca, NULL, -1},      /* not signed by the CA we trust */
        {"127.0.0.1", ca, "redis.example", -1}, /* a name the certificate does not hold */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(url, sizeof(url), "rediss://%s:%d/0", cases[i].host, tls_port);
        struct rcl_config conf = config(url);
        conf.tls.ca_file = cases[i].ca;
        conf.tls.server_name = cases[i].server_name;
        struct rclient *c = client(l, &conf);
        int rc = ping(l, c);
        if (rc != cases[i].want)
            print_message("case %zu (%s): ping %d\n", i, url, rc);
        assert_int_equal(rc, cases[i].want);
        rcl_free(c);
    }
    /* The plain port of the same server does not speak TLS: refused too. */
    snprintf(url, sizeof(url), "rediss://127.0.0.1:%d/0", tr.port);
    struct rcl_config conf = config(url);
    conf.tls.ca_file = ca;
    struct rclient *c = client(l, &conf);
    assert_int_equal(ping(l, c), -1);
    rcl_free(c);
    loop_free(l);
    th_redis_stop(&tr);
}

static void test_deadline_on_frozen_redis(void **state)
{
    (void)state;
    char err[128];
    struct loop *l = loop_create(err, sizeof(err));
    assert_non_null(l);
    struct rcl_config conf = config(redis.url);
    struct rclient *c = client(l, &conf);
    assert_int_equal(ping(l, c), 0);
    kill(redis.pid, SIGSTOP);
    struct tally t = {.loop = l};
    const char *argv[] = {"INCR", "frozen"};
    int64_t start = loop_update_now(l);
    for (int i = 0; i < 50; i++)
        assert_int_equal(rcl_command(c, 2, argv, NULL, 200, count, &t), 0);
    run_until(l, &t.done, 50, 3000);
    int64_t took = t.last_ms - start;
    kill(redis.pid, SIGCONT);
    print_message("50 commands failed after %lld ms (deadline 200 ms)\n", (long long)took);
    assert_int_equal(t.done, 50);
    assert_int_equal(t.timeout + t.conn, 50);
    assert_true(t.timeout >= 1);
    assert_true(took >= 190 && took < th_ms(400));
    /* The connection was replaced: the next command works. */
    assert_int_equal(ping(l, c), 0);
    struct rcl_stats st;
    rcl_stats(c, &st);
    assert_true(st.timeouts >= 1);
    rcl_free(c);
    loop_free(l);
}

/* Flush the scripts from Redis's side while commands flow. */
static void flush_scripts(struct loop_timer *t)
{
    (void)t;
    freeReplyObject(th_redis_cmd(&redis, "SCRIPT FLUSH"));
}

static void issue_evals(struct rclient *c, struct tally *t, int n)
{
    const char *argv[] = {"noscript"};
    for (int i = 0; i < n; i++)
        assert_int_equal(rcl_eval(c, &incr_script, 1, 1, argv, NULL, 0, count, t), 0);
}

struct feeder {
    struct loop_timer timer;
    struct rclient *c;
    struct tally *t;
    int rounds;
};

static void feed(struct loop_timer *tm)
{
    struct feeder *f = tm->arg;
    issue_evals(f->c, f->t, 100);
    if (--f->rounds > 0)
        loop_timer_start(f->t->loop, tm, 2);
}

static void test_noscript_under_load(void **state)
{
    (void)state;
    char err[128];
    struct loop *l = loop_create(err, sizeof(err));
    assert_non_null(l);
    struct rcl_config conf = config(redis.url);
    struct rclient *c = client(l, &conf);
    freeReplyObject(th_redis_cmd(&redis, "DEL noscript"));
    struct tally t = {.loop = l};
    struct feeder f = {.c = c, .t = &t, .rounds = 20};
    f.timer = (struct loop_timer){.fn = feed, .arg = &f};
    struct loop_timer flusher[3];
    for (int i = 0; i < 3; i++) {
        flusher[i] = (struct loop_timer){.fn = flush_scripts};
        loop_timer_start(l, &flusher[i], 5 + 10 * i);
    }
    loop_timer_start(l, &f.timer, 0);
    run_until(l, &t.done, 2000, 10000);
    assert_int_equal(t.ok, 2000);
    assert_int_equal(th_redis_int(&redis, "GET noscript"), 2000);
    rcl_free(c);
    loop_free(l);
}

/* Kill Redis under load, restart it after 500 ms: failures come fast while it is down, and
 * success is back within a second of its return. */
struct restart {
    struct loop_timer kill_timer, start_timer, load_timer;
    struct rclient *c;
    struct tally t;
    int64_t back_ms, first_ok_after_ms, slowest_fail_ms;
    int killed;
};

static void restart_probe(void *arg, enum rcl_status st, redisReply *reply)
{
    struct restart *r = arg;
    int64_t now = loop_update_now(r->t.loop);
    count(&r->t, st, reply);
    if (st == RCL_OK && r->back_ms && !r->first_ok_after_ms)
        r->first_ok_after_ms = now - r->back_ms;
}

static void restart_load(struct loop_timer *tm)
{
    struct restart *r = tm->arg;
    const char *argv[] = {"PING"};
    for (int i = 0; i < 10; i++)
        assert_int_equal(rcl_command(r->c, 1, argv, NULL, 0, restart_probe, r), 0);
    if (!r->first_ok_after_ms)
        loop_timer_start(r->t.loop, tm, 5);
    else
        loop_stop(r->t.loop);
}

static void restart_kill(struct loop_timer *tm)
{
    struct restart *r = tm->arg;
    th_redis_kill(&redis);
    r->killed = 1;
}

static void restart_start(struct loop_timer *tm)
{
    struct restart *r = tm->arg;
    assert_int_equal(th_redis_restart(&redis), 0);
    r->back_ms = loop_update_now(r->t.loop);
}

static void test_restart_under_load(void **state)
{
    (void)state;
    char err[128];
    struct loop *l = loop_create(err, sizeof(err));
    assert_non_null(l);
    struct rcl_config conf = config(redis.url);
    struct restart r = {.t = {.loop = l}};
    r.c = client(l, &conf);
    r.kill_timer = (struct loop_timer){.fn = restart_kill, .arg = &r};
    r.start_timer = (struct loop_timer){.fn = restart_start, .arg = &r};
    r.load_timer = (struct loop_timer){.fn = restart_load, .arg = &r};
    loop_timer_start(l, &r.kill_timer, 100);
    loop_timer_start(l, &r.start_timer, 600);
    loop_timer_start(l, &r.load_timer, 0);
    struct until guard = {.loop = l, .counter = &r.t.done, .target = INT32_MAX};
    guard.timer = (struct loop_timer){.fn = check_until, .arg = &guard};
    guard.give_up_ms = loop_update_now(l) + th_ms(8000);
    loop_timer_start(l, &guard.timer, 0);
    loop_run(l);
    loop_timer_stop(l, &guard.timer);
    loop_timer_stop(l, &r.load_timer);
    print_message("%d ok, %d failed fast while down; success %lld ms after Redis returned\n",
                  r.t.ok, r.t.conn, (long long)r.first_ok_after_ms);
    assert_true(r.killed && r.back_ms);
    assert_true(r.t.conn > 0);        /* it was noticed */
    assert_int_equal(r.t.timeout, 0); /* never by waiting out a deadline */
    assert_true(r.first_ok_after_ms > 0 && r.first_ok_after_ms <= th_ms(1000));
    rcl_free(r.c);
    loop_free(l);
}

static void test_pool_timeout(void **state)
{
    (void)state;
    char err[128];
    struct loop *l = loop_create(err, sizeof(err));
    assert_non_null(l);
    struct rcl_config conf = config(redis.url);
    conf.pool_size = 1;
    conf.command_timeout_ms = 3000;
    struct rclient *c = client(l, &conf);
    assert_int_equal(ping(l, c), 0);
    kill(redis.pid, SIGSTOP);
    struct tally t = {.loop = l};
    const char *argv[] = {"PING"};
    for (int i = 0; i < RCL_MAX_IN_FLIGHT + 5; i++)
        assert_int_equal(rcl_command(c, 1, argv, NULL, 0, count, &t), 0);
    int64_t start = loop_update_now(l);
    run_until(l, &t.pool_timeout, 5, 2000);
    int64_t took = loop_update_now(l) - start;
    kill(redis.pid, SIGCONT);
    assert_int_equal(t.pool_timeout, 5);
    assert_true(took >= 190 && took < th_ms(1000));
    run_until(l, &t.done, RCL_MAX_IN_FLIGHT + 5, 5000);
    assert_int_equal(t.ok, RCL_MAX_IN_FLIGHT); /* the ones on the connection got through */
    rcl_free(c);
    loop_free(l);
}

/* A connection past REDIS_MAX_CONN_AGE is retired while it delivers the reply whose done
 * function issues the next command (make asan sees any use after free); an idle
 * connection costs no loop turns; and a done function never runs inside the call that
 * issued it, even when Redis cannot be reached. */
struct chain {
    struct rclient *c;
    struct tally t;
    int inside; /* set while rcl_command runs */
    int ran_inside;
};

static void chain_next(void *arg, enum rcl_status st, redisReply *reply)
{
    struct chain *ch = arg;
    count(&ch->t, st, reply);
    ch->ran_inside |= ch->inside;
    if (ch->t.done < 40) {
        const char *argv[] = {"PING"};
        ch->inside = 1;
        assert_int_equal(rcl_command(ch->c, 1, argv, NULL, 0, chain_next, ch), 0);
        ch->inside = 0;
    }
}

static void pause_ms(struct loop *l, int ms)
{
    int never = 0;
    run_until(l, &never, 1, ms);
}

static void test_lifetimes_and_idleness(void **state)
{
    (void)state;
    char err[128];
    struct loop *l = loop_create(err, sizeof(err));
    assert_non_null(l);
    struct rcl_config conf = config(redis.url);
    conf.max_conn_age_ms = 1; /* every connection is old by its second reply */
    struct chain ch = {.t = {.loop = l}};
    ch.c = client(l, &conf);
    chain_next(&ch, RCL_OK, NULL);
    ch.t.ok = ch.t.done = 0;
    run_until(l, &ch.t.done, 40, 5000);
    assert_int_equal(ch.t.ok, 40);
    assert_false(ch.ran_inside);
    rcl_free(ch.c);

    /* Idle: a connection up, nothing to send. */
    conf.max_conn_age_ms = 0;
    struct rclient *c = client(l, &conf);
    assert_int_equal(ping(l, c), 0);
    struct loop_stats before, after;
    loop_stats(l, &before);
    pause_ms(l, 200); /* th_ms(200): longer under a checker */
    loop_stats(l, &after);
    print_message("idle for %lld ms: %llu turns\n", (long long)th_ms(200),
                  (unsigned long long)(after.turns - before.turns));
    /* the 1 ms check timer, not a spin */
    assert_true(after.turns - before.turns < (uint64_t)(2 * th_ms(200)));
    rcl_free(c);

    /* Unreachable: the failure comes later, from the loop. */
    conf.url = "redis://127.0.0.1:1/0";
    conf.min_idle = 0;
    c = client(l, &conf);
    struct chain un = {.c = c, .t = {.loop = l}};
    const char *argv[] = {"PING"};
    for (int i = 0; i < 3; i++) {
        un.inside = 1;
        assert_int_equal(rcl_command(c, 1, argv, NULL, 0, count, &un.t), 0);
        un.inside = 0;
        assert_int_equal(un.t.done, i); /* not answered inside the call */
        run_until(l, &un.t.done, i + 1, 3000);
        assert_int_equal(un.t.conn, i + 1);
    }
    rcl_free(c);
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_auth_and_select),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_long_script_call),
        cmocka_unit_test(test_deadline_on_frozen_redis),
        cmocka_unit_test(test_noscript_under_load),
        cmocka_unit_test(test_restart_under_load),
        cmocka_unit_test(test_pool_timeout),
        cmocka_unit_test(test_lifetimes_and_idleness),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
