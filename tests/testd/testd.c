/* SPDX-License-Identifier: Apache-2.0 */
/* testd: a small daemon built on libshared alone, so the foundation (HTTP layer, pool,
 * scripts, lifecycle) is tested over real sockets before any real daemon exists. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/app.h"
#include "shared/jsonv.h"
#include "shared/redis_reply.h"
#include "test_scripts.h"

static void sleep_ms(long long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* POST /v1/echo: the body back. */
static void handle_echo(struct http_req *r, void *ctx)
{
    (void)ctx;
    http_reply_json(r, 200, json_pack("{s:O}", "echo", http_json(r)));
}

/* The answer to a Redis call, continued on the loop that made it. */
static void on_incr(void *arg, enum rcl_status st, redisReply *reply)
{
    struct http_req *r = arg;
    if (rreply_classify(st, reply) != RREPLY_OK)
        http_unavailable(r);
    else
        http_reply_json(r, 200, json_pack("{s:I}", "value", (json_int_t)reply->integer));
    http_resume(r);
}

/* POST /v1/incr {"key","by"}: one script run. */
static void handle_incr(struct http_req *r, void *ctx)
{
    struct jv_error e;
    const char *key;
    long long by = 1;
    (void)ctx;
    if (jv_string(http_json(r), "key", JV_REQUIRED, 1, 512, &key, NULL, &e) < 0 ||
        jv_int(http_json(r), "by", JV_OPTIONAL, -1000000, 1000000, &by, &e) < 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    char bys[24];
    snprintf(bys, sizeof(bys), "%lld", by);
    const char *argv[] = {key, bys};
    http_suspend(r);
    if (rcl_eval(app_rclient(r), &script_test_incr, 1, 2, argv, NULL, 0, on_incr, r) != 0) {
        http_problem(r, 500, "internal", "out of memory");
        http_resume(r);
    }
}

struct block {
    struct http_req *req;
    long long ms;
};

static void on_block(void *arg, enum rcl_status st, redisReply *reply)
{
    struct block *b = arg;
    if (rreply_classify(st, reply) != RREPLY_OK)
        http_unavailable(b->req);
    else
        http_reply_json(b->req, 200, json_pack("{s:I}", "waited_ms", (json_int_t)b->ms));
    http_resume(b->req);
    free(b);
}

/* POST /v1/block {"ms"}: waits on Redis (BLPOP on an empty key) for ms milliseconds —
 * a request that holds a connection to Redis while Redis makes it wait. */
static void handle_block(struct http_req *r, void *ctx)
{
    struct jv_error e;
    long long ms = 100;
    (void)ctx;
    if (jv_int(http_json(r), "ms", JV_OPTIONAL, 1, 10000, &ms, &e) < 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    struct block *b = malloc(sizeof(*b));
    if (!b) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    b->req = r;
    b->ms = ms;
    char secs[32];
    snprintf(secs, sizeof(secs), "%.3f", (double)ms / 1000.0);
    const char *argv[] = {"BLPOP", "testd:never", secs};
    http_suspend(r);
    if (rcl_command(app_rclient(r), 3, argv, NULL, ms + 1000, on_block, b) != 0) {
        free(b);
        http_problem(r, 500, "internal", "out of memory");
        http_resume(r);
    }
}

struct nap {
    struct loop_timer timer;
    struct http_req *req;
    long long ms;
};

static void on_nap_over(struct loop_timer *t)
{
    struct nap *n = t->arg;
    http_reply_json(n->req, 200, json_pack("{s:I}", "slept_ms", (json_int_t)n->ms));
    http_resume(n->req);
    free(n);
}

/* GET /v1/sleep?ms=N: holds the request on a timer (no Redis), for shutdown tests. */
static void handle_sleep(struct http_req *r, void *ctx)
{
    (void)ctx;
    const char *ms = http_query(r, "ms");
    long long v = ms ? atoll(ms) : 0;
    if (v < 0 || v > 30000) {
        http_invalid(r, "ms", "must be 0..30000");
        return;
    }
    struct nap *n = calloc(1, sizeof(*n));
    if (!n) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    n->timer = (struct loop_timer){.fn = on_nap_over, .arg = n};
    n->req = r;
    n->ms = v;
    http_suspend(r);
    loop_timer_start(http_loop(r), &n->timer, v);
}

/* GET /v1/params/:a/:b?q=: path parameters and a query value back. */
static void handle_params(struct http_req *r, void *ctx)
{
    (void)ctx;
    const char *q = http_query(r, "q");
    http_reply_json(
        r, 200,
        json_pack("{s:s, s:s, s:s?}", "a", http_param(r, "a"), "b", http_param(r, "b"), "q", q));
}

/* GET /v1/rest/:a/<anything>: the parameter and the rest of the path, with a long-lived
 * Cache-Control (an immutable resource). */
static void handle_rest(struct http_req *r, void *ctx)
{
    (void)ctx;
    http_add_header(r, "Cache-Control", "public, max-age=31536000, immutable");
    http_reply_json(
        r, 200, json_pack("{s:s, s:s}", "a", http_param(r, "a"), "rest", http_param(r, "rest")));
}

/* GET /v1/long-header?n=N: an answer whose head is longer than N bytes. */
static void handle_long_header(struct http_req *r, void *ctx)
{
    (void)ctx;
    const char *ns = http_query(r, "n");
    long n = ns ? atol(ns) : 0;
    if (n < 1 || n > 60000) {
        http_invalid(r, "n", "must be 1..60000");
        return;
    }
    char *v = malloc((size_t)n + 1);
    if (!v) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    memset(v, 'x', (size_t)n);
    v[n] = '\0';
    http_add_header(r, "X-Long", v);
    free(v);
    http_reply_json(r, 200, json_pack("{s:I}", "n", (json_int_t)n));
}

/* POST /v1/fields: the body's fields back, JSON or form-encoded. */
static void handle_fields(struct http_req *r, void *ctx)
{
    (void)ctx;
    http_reply_json(r, 200, json_pack("{s:O}", "fields", http_json(r)));
}

static void handle_admin(struct http_req *r, void *ctx)
{
    (void)ctx;
    http_reply_json(r, 200, json_pack("{s:b}", "admin", 1));
}

struct deferred {
    struct http_req *req;
    long long ms;
};

static void *answer_later(void *arg)
{
    struct deferred *d = arg;
    sleep_ms(d->ms);
    http_reply_json(d->req, 200, json_pack("{s:I}", "deferred_ms", (json_int_t)d->ms));
    http_resume(d->req);
    free(d);
    return NULL;
}

/* POST /v1/defer {"ms"}: answers from another thread after ms, the connection parked
 * meanwhile (holds no worker thread). */
static void handle_defer(struct http_req *r, void *ctx)
{
    struct jv_error e;
    long long ms = 0;
    pthread_t t;
    (void)ctx;
    if (jv_int(http_json(r), "ms", JV_OPTIONAL, 0, 10000, &ms, &e) < 0) {
        http_invalid(r, e.field, "%s", e.detail);
        return;
    }
    struct deferred *d = malloc(sizeof(*d));
    if (!d) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    d->req = r;
    d->ms = ms;
    http_suspend(r);
    if (pthread_create(&t, NULL, answer_later, d) != 0) {
        free(d);
        http_problem(r, 500, "internal", "cannot start a thread");
        http_resume(r);
        return;
    }
    pthread_detach(t);
}

int main(int argc, char **argv)
{
    /* A full pool is reached with few requests when connections carry few commands. */
    const char *mif = getenv("TESTD_MAX_IN_FLIGHT");
    struct app *a = app_create(&(struct app_spec){.name = "testd",
                                                  .port = 8099,
                                                  .summary = "libshared test daemon",
                                                  .scripts = test_scripts_all,
                                                  .redis_max_in_flight = mif ? atoi(mif) : 0},
                               argc, argv);
    cfg_int(app_cfg(a), "TESTD_KNOB", 5, 1, 10); /* a daemon-specific variable, for tests */
    app_config_done(a);
    app_route(a, "POST", "/v1/echo", handle_echo, NULL, 0);
    app_route(a, "POST", "/v1/incr", handle_incr, NULL, 0);
    app_route(a, "POST", "/v1/block", handle_block, NULL, 0);
    app_route(a, "GET", "/v1/sleep", handle_sleep, NULL, 0);
    app_route(a, "POST", "/v1/sleep", handle_sleep, NULL, HTTP_NO_BODY);
    app_route(a, "GET", "/v1/params/:a/:b", handle_params, NULL, 0);
    app_route(a, "GET", "/v1/admin", handle_admin, NULL, HTTP_ADMIN);
    app_route(a, "GET", "/v1/rest/:a/*rest", handle_rest, NULL, 0);
    app_route(a, "POST", "/v1/fields", handle_fields, NULL, HTTP_FORM_BODY);
    app_route(a, "GET", "/v1/long-header", handle_long_header, NULL, 0);
    app_route(a, "POST", "/v1/defer", handle_defer, NULL, 0);
    int rc = app_run(a);
    app_free(a);
    return rc;
}
