/* SPDX-License-Identifier: Apache-2.0 */
/* SIGTERM under keep-alive load, for every daemon: several clients keep appending (auditd),
 * claiming (idemd), issuing (tokend) or checking (ratelimitd) on keep-alive connections
 * while the signal arrives, many times over, in both threading modes. Every run must end
 * with the daemon exiting 0 within SHUTDOWN_TIMEOUT (plus a margin), every request that got
 * an answer got its success status or a 503 (never another status, never a hang), and for
 * auditd every event acknowledged with 201 is in Redis with the hash it was given, the
 * chain gap-free and verified by audit-verify. A request cut off unanswered (its
 * connection closed) is allowed: its outcome is unknown to the client, nothing was
 * promised. SHUTDOWN_RUNS (default 20) sets the runs per daemon. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "test_auditd_util.h"

#define RUNS 20
#define CLIENTS 6
#define SHUTDOWN_MS 2000 /* SHUTDOWN_TIMEOUT of the daemons */
#define MARGIN_MS 1000   /* process exit after the deadline: freeing, closing */
#define LOAD_MIN_MS 50   /* SIGTERM comes 50..250 ms after the clients start */
#define LOAD_SPREAD_MS 200

static struct th_redis redis;
static char tmp[256];

/* One daemon under test: its main write endpoint, a body ending in a unique id, and the
 * status of success there. */
struct target {
    const char *name;
    const char *bin;
    const char *path;
    const char *body_head; /* the body: this, a unique id, and "} */
    int ok_status;
    const char *env[4]; /* its own settings */
};

static const struct target AUDITD = {
    .name = "auditd",
    .bin = "bin/auditd",
    .path = "/v1/events",
    .body_head = "{\"actor\":\"sd\",\"action\":\"shutdown\",\"event_id\":\"",
    .ok_status = 201,
    .env = {KEY_V1_ENV},
};
static const struct target IDEMD = {
    .name = "idemd",
    .bin = "bin/idemd",
    .path = "/v1/claim",
    .body_head = "{\"scope\":\"sd\",\"fingerprint\":\"f\",\"key\":\"",
    .ok_status = 201,
};
static const struct target TOKEND = {
    .name = "tokend",
    .bin = "bin/tokend",
    .path = "/v1/tokens",
    .body_head = "{\"device_id\":\"d\",\"user_agent\":\"Mozilla/5.0\",\"user_id\":\"",
    .ok_status = 201,
    .env = {"TOKEN_HASH_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
};
/* A new key each time: always allowed (200), the default rule is 100 per second per key. */
static const struct target RATELIMITD = {
    .name = "ratelimitd",
    .bin = "bin/ratelimitd",
    .path = "/v1/check",
    .body_head = "{\"rule\":\"default\",\"key\":\"",
    .ok_status = 200,
};

/* auditd: every (seq, hash) answered with 201, over all runs. */
struct ack {
    long long seq;
    char hash[65];
};
static struct ack *acks;
static size_t nacks, acks_cap;
static pthread_mutex_t acks_lock = PTHREAD_MUTEX_INITIALIZER;

static void remember_ack(const struct th_resp *r)
{
    json_t *j = th_json(r);
    const char *hash = json_string_value(json_object_get(j, "hash"));
    pthread_mutex_lock(&acks_lock);
    if (nacks == acks_cap) {
        acks_cap = acks_cap ? acks_cap * 2 : 4096;
        acks = realloc(acks, acks_cap * sizeof(*acks));
        if (!acks) /* no cmocka assert off the main thread */
            abort();
    }
    acks[nacks].seq = json_integer_value(json_object_get(j, "seq"));
    snprintf(acks[nacks].hash, sizeof(acks[nacks].hash), "%s", hash ? hash : "");
    nacks++;
    pthread_mutex_unlock(&acks_lock);
    json_decref(j);
}

/* Answers counted by kind. */
struct counts {
    int ok;             /* the endpoint's success status */
    int refused;        /* 503 as documented (refusal()) */
    int other;          /* anything else: a failure */
    int other_status;   /* the last of those */
    int unanswered;     /* the connection closed before an answer (outcome unknown) */
    int hangs;          /* no answer past SHUTDOWN_TIMEOUT with the daemon still running */
    int connect_errors; /* refused before the signal: a failure */
};

static void add_counts(struct counts *to, const struct counts *from)
{
    to->ok += from->ok;
    to->refused += from->refused;
    to->other += from->other;
    to->other_status = from->other ? from->other_status : to->other_status;
    to->unanswered += from->unanswered;
    to->hangs += from->hangs;
    to->connect_errors += from->connect_errors;
}

/* One client of one run. */
struct client {
    const struct target *t;
    atomic_int *signalled;
    int port, run, id;
    struct counts n;
};

/* Send one request on a keep-alive connection. Returns 0 (answered, out filled), -1 cut off
 * (closed unanswered) or -2 no answer past SHUTDOWN_TIMEOUT (a hang: the daemon is killed
 * only later). */
static int ask(struct client *c, int fd, int n, struct th_resp *out)
{
    char body[256], req[512];
    int blen = snprintf(body, sizeof(body), "%sr%d-c%d-%d\"}", c->t->body_head, c->run, c->id, n);
    int rlen = snprintf(req, sizeof(req),
                        "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\n\r\n%s",
                        c->t->path, blen, body);
    if (th_send_all(fd, req, (size_t)rlen) != 0)
        return -1;
    int64_t started = th_now_ms(), timeout = th_ms(SHUTDOWN_MS + MARGIN_MS / 2);
    if (th_read_response(fd, out, (int)timeout) == 0)
        return 0;
    return th_now_ms() - started >= timeout ? -2 : -1;
}

/* A 503 as documented: a problem with Retry-After, refused for the shutdown (or, if Redis
 * had failed, for that). */
static int refusal(const struct th_resp *r)
{
    char retry[16];
    json_t *j = th_json(r);
    const char *code = json_string_value(json_object_get(j, "code"));
    int ok = r->status == 503 && th_header(r, "Retry-After", retry, sizeof(retry)) && code &&
             (strcmp(code, "shutting_down") == 0 || strcmp(code, "backend_unavailable") == 0);
    json_decref(j);
    return ok;
}

static void tally(struct client *c, const struct th_resp *r)
{
    if (r->status == c->t->ok_status) {
        c->n.ok++;
        if (c->t == &AUDITD)
            remember_ack(r);
    } else if (refusal(r)) {
        c->n.refused++;
    } else {
        c->n.other++;
        c->n.other_status = r->status;
    }
}

/* Requests one after the other on a keep-alive connection, reconnecting when the daemon
 * closes it, until a connect fails after the signal (the daemon stopped listening). */
static void *client_main(void *arg)
{
    struct client *c = arg;
    int fd = -1;
    char conn[32];
    for (int n = 0;; n++) {
        if (fd < 0 && (fd = th_connect(c->port)) < 0) {
            if (atomic_load(c->signalled))
                break;
            c->n.connect_errors++;
            usleep(10000);
            continue;
        }
        struct th_resp r;
        int rc = ask(c, fd, n, &r);
        if (rc == 0) {
            tally(c, &r);
            if (th_header(&r, "Connection", conn, sizeof(conn)) && strcmp(conn, "close") == 0) {
                close(fd);
                fd = -1;
            }
            th_resp_free(&r);
            continue;
        }
        c->n.unanswered += rc == -1;
        c->n.hangs += rc == -2;
        close(fd);
        fd = -1;
    }
    return NULL;
}

/* Start the daemon (odd runs: a pool of 2 workers; even runs: a thread per connection,
 * the default); auditd's first run keeps its keyring for audit-verify. */
static void start_daemon(const struct target *t, int run, struct th_proc *p)
{
    char threads[32];
    const char *env[TH_DAEMON_EXTRA_MAX] = {"SHUTDOWN_TIMEOUT=2s", "LOG_LEVEL=warn", threads};
    snprintf(threads, sizeof(threads), "HTTP_THREADS=%d", run % 2 ? 2 : 0);
    for (int i = 0; t->env[i]; i++)
        env[3 + i] = t->env[i];
    assert_int_equal(th_daemon_start(p, t->bin, redis.url, env), 0);
    if (t == &AUDITD && run == 0) {
        char ring[320];
        snprintf(ring, sizeof(ring), "%s/ring.json", tmp);
        assert_int_equal(au_get_file(p->port, "/v1/keys", ring), 0);
    }
}

/* One run: start, load, SIGTERM, wait for the exit. Returns 0, or -1 after printing why the
 * run failed. Adds the run's answers to sum and its shutdown time to *took. */
static int one_run(const struct target *t, int run, struct counts *sum, int64_t *took)
{
    struct th_proc p;
    struct client c[CLIENTS];
    pthread_t tid[CLIENTS];
    struct counts n = {0};
    atomic_int signalled = 0;
    start_daemon(t, run, &p);
    for (int i = 0; i < CLIENTS; i++) {
        c[i] =
            (struct client){.t = t, .port = p.port, .run = run, .id = i, .signalled = &signalled};
        assert_int_equal(pthread_create(&tid[i], NULL, client_main, &c[i]), 0);
    }
    usleep((useconds_t)(LOAD_MIN_MS + (run * 37) % LOAD_SPREAD_MS) * 1000);
    int64_t signalled_at = th_now_ms();
    atomic_store(&signalled, 1);
    kill(p.pid, SIGTERM);
    int status = th_proc_wait(&p, SHUTDOWN_MS + MARGIN_MS);
    *took = th_now_ms() - signalled_at;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(tid[i], NULL);
        add_counts(&n, &c[i].n);
    }
    add_counts(sum, &n);
    int failed = status != 0 || *took > th_ms(SHUTDOWN_MS + MARGIN_MS) || n.other || n.hangs ||
                 n.connect_errors || n.ok == 0;
    if (failed)
        printf("# %s run %d (HTTP_THREADS=%d): exit %d after %lld ms; %d ok, %d refused (503), "
               "%d other (last %d), %d unanswered, %d hung, %d connect errors\n",
               t->name, run, run % 2 ? 2 : 0, status, (long long)*took, n.ok, n.refused, n.other,
               n.other_status, n.unanswered, n.hangs, n.connect_errors);
    return failed ? -1 : 0;
}

static int runs(void)
{
    const char *s = getenv("SHUTDOWN_RUNS");
    int n = s ? atoi(s) : RUNS;
    return n > 0 ? n : RUNS;
}

static void shutdown_runs(const struct target *t)
{
    struct counts sum = {0};
    int failed = 0, n = runs();
    int64_t took, took_max = 0;
    for (int run = 0; run < n; run++) {
        failed += one_run(t, run, &sum, &took) != 0;
        took_max = took > took_max ? took : took_max;
    }
    printf("# %s: %d runs, %d failed; %d ok, %d refused (503), %d unanswered; "
           "slowest exit %lld ms after SIGTERM\n",
           t->name, n, failed, sum.ok, sum.refused, sum.unanswered, (long long)took_max);
    if (failed)
        fail_msg("%s: %d of %d SIGTERM runs failed", t->name, failed, n);
    /* Shutdown did meet requests in flight: some were refused or cut off. */
    assert_true(sum.refused + sum.unanswered > 0);
}

/* Every acknowledged entry is in the log with its hash; the chain is gap-free and
 * audit-verify finds it intact. */
static void check_chain(void)
{
    long long head = th_redis_int(&redis, "HGET audit:{default}:head seq");
    assert_true(head >= (long long)nacks);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{default}:log"), head);
    char(*h)[65] = au_stored_hashes(&redis, head);
    if (!h) {
        fail_msg("out of memory");
        return;
    }
    for (size_t i = 0; i < nacks; i++)
        if (acks[i].seq < 1 || acks[i].seq > head || strcmp(h[acks[i].seq - 1], acks[i].hash) != 0)
            fail_msg("acknowledged seq %lld is not in the chain", acks[i].seq);
    free(h);
    char ring[320], *out = NULL;
    snprintf(ring, sizeof(ring), "%s/ring.json", tmp);
    const char *args[] = {"--redis", redis.url, "--keys", ring, NULL};
    assert_int_equal(au_verify(args, &out), 0);
    assert_non_null(strstr(out, "OK: "));
    free(out);
}

static void test_auditd(void **state)
{
    (void)state;
    shutdown_runs(&AUDITD);
    assert_true(nacks > 0);
    check_chain();
}

static void test_idemd(void **state)
{
    (void)state;
    shutdown_runs(&IDEMD);
}

static void test_tokend(void **state)
{
    (void)state;
    shutdown_runs(&TOKEND);
}

static void test_ratelimitd(void **state)
{
    (void)state;
    shutdown_runs(&RATELIMITD);
}

/* A request that holds on past SHUTDOWN_TIMEOUT: its status, or -1 if it got no answer. */
struct held {
    int port;
    const char *path, *body; /* body NULL: GET */
    int status;
};

static void *held_main(void *arg)
{
    struct held *h = arg;
    struct th_resp r;
    int rc = h->body ? th_post_json(h->port, h->path, h->body, &r)
                     : th_http(h->port, "GET", h->path, NULL, NULL, 0, &r);
    h->status = rc == 0 ? r.status : -1;
    if (rc == 0)
        th_resp_free(&r);
    return NULL;
}

/* SHUTDOWN_TIMEOUT bounds the whole shutdown: a handler still running (testd's sleep) and a
 * request still parked (testd's deferred answer) at the deadline are cut off there, and the
 * process exits 0 then, not when they would have finished. */
static void test_deadline_cuts_off(void **state)
{
    (void)state;
    for (int pool = 0; pool <= 1; pool++) {
        const char *env[] = {"SHUTDOWN_TIMEOUT=1s", pool ? "HTTP_THREADS=2" : "HTTP_THREADS=0",
                             NULL};
        struct th_proc p;
        assert_int_equal(th_daemon_start(&p, "tests/testd", redis.url, env), 0);
        struct held h[2] = {{.port = p.port, .path = "/v1/sleep?ms=5000"},
                            {.port = p.port, .path = "/v1/defer", .body = "{\"ms\":5000}"}};
        pthread_t tid[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&tid[i], NULL, held_main, &h[i]), 0);
        usleep(300000);
        int64_t signalled_at = th_now_ms();
        kill(p.pid, SIGTERM);
        int status = th_proc_wait(&p, 1000 + MARGIN_MS);
        int64_t took = th_now_ms() - signalled_at;
        for (int i = 0; i < 2; i++)
            pthread_join(tid[i], NULL);
        printf("# testd (HTTP_THREADS=%d): exit %d after %lld ms\n", pool ? 2 : 0, status,
               (long long)took);
        assert_int_equal(status, 0);
        assert_true(took >= 1000 && took <= th_ms(1000 + MARGIN_MS));
        assert_int_equal(h[0].status, -1);
        assert_int_equal(h[1].status, -1);
        assert_true(th_proc_log_contains(&p, "in-flight requests cut off"));
    }
}

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (th_tmpdir(tmp, sizeof(tmp)) != 0)
        return -1;
    return th_redis_start(&redis, NULL);
}

static int teardown(void **state)
{
    (void)state;
    th_redis_stop(&redis);
    free(acks);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auditd),
        cmocka_unit_test(test_idemd),
        cmocka_unit_test(test_tokend),
        cmocka_unit_test(test_ratelimitd),
        cmocka_unit_test(test_deadline_cuts_off),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
