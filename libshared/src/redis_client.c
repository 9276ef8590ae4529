/* SPDX-License-Identifier: Apache-2.0 */
/* redis_client: one loop's Redis client — which connection a command takes, scripts by
 * EVALSHA with a reload on NOSCRIPT, waiting for room, reconnecting with backoff, TLS
 * settings. The connections themselves are redis_conn.c's. */
#include "shared/redis_client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "shared/log.h"
#include "shared/redis_url.h"

#include "redis_conn.h"

#define RCL_MAX_CONNS 64
#define RCL_BACKOFF_MIN_MS 10
#define RCL_BACKOFF_MAX_MS 1000

/* One caller's command, from rcl_command/rcl_eval to its done function. */
struct rcl_call {
    struct rclient *client;
    struct rcl_call *next; /* in the waiting queue, or on the free list */
    rcl_done_fn fn;
    void *arg;
    const struct script *script; /* for the reload on NOSCRIPT */
    char *cmd;                   /* the formatted command (hiredis's), kept for a resend */
    size_t len;
    int64_t timeout_ms;
    int64_t wait_deadline_ms; /* while waiting for room */
    struct timespec issued;   /* for redis_command_duration_seconds */
    enum rcl_status fail_st;  /* while on the failed list */
    int reloaded;
    int internal; /* a SCRIPT LOAD of our own: its reply is not passed on */
};

struct rclient {
    struct loop *loop;
    struct rcl_config conf;
    struct redis_url url;
    SSL_CTX *tls;
    const char *server_name;
    int max_conns;

    struct rconn *conns[RCL_MAX_CONNS];
    int nconns;
    int64_t backoff_ms, next_connect_ms;

    struct rcl_call *waiting, *waiting_tail; /* for room or a connection, oldest first */
    struct rcl_call *failed, *failed_tail;   /* failed inside rcl_command: answered later */
    struct loop_task fail_task;
    struct loop_timer wait_timer;
    struct rcl_call *free_calls;

    struct rconn *replying; /* the connection whose reply is being handed over */
    int64_t last_critical_ms;
    struct rcl_stats stats;
    uint64_t closed_writes; /* of connections gone */
    int max_in_flight;
    const struct rcl_metrics *m;
    struct loop_timer gauge_timer; /* the connection gauges, once a second */
    int shown_total, shown_idle;   /* what this client has added to them */
};

#define COUNT(c, field)                                                                            \
    do {                                                                                           \
        if ((c)->m)                                                                                \
            metric_inc((c)->m->field);                                                             \
    } while (0)

void rcl_metrics_init(struct rcl_metrics *m, struct metrics *reg)
{
    static const char *const kinds[] = {NULL, "pool_timeout", "connect", "timeout", "reply"};
    m->commands = metric_series(
        metrics_counter(reg, "redis_commands_total", "Commands sent to Redis.", NULL), NULL);
    m->writes = metric_series(
        metrics_counter(reg, "redis_writes_total",
                        "Writes to Redis sockets; commands per write is the pipelining.", NULL),
        NULL);
    m->hits = metric_series(metrics_counter(reg, "redis_pool_hits_total",
                                            "Commands sent at once on an open connection.", NULL),
                            NULL);
    m->misses = metric_series(
        metrics_counter(reg, "redis_pool_misses_total",
                        "Commands that waited for a connection or for room on one.", NULL),
        NULL);
    m->pool_timeouts = metric_series(
        metrics_counter(reg, "redis_pool_timeouts_total",
                        "Commands that found no room within REDIS_POOL_TIMEOUT.", NULL),
        NULL);
    m->stale = metric_series(metrics_counter(reg, "redis_pool_stale_connections_total",
                                             "Connections closed for an error or their age.", NULL),
                             NULL);
    m->total = metric_series(
        metrics_gauge(reg, "redis_pool_total_connections", "Open Redis connections.", NULL), NULL);
    m->idle = metric_series(metrics_gauge(reg, "redis_pool_idle_connections",
                                          "Open Redis connections carrying no command.", NULL),
                            NULL);
    m->duration = metric_series(
        metrics_histogram(reg, "redis_command_duration_seconds",
                          "Time from a command's issue to its reply, waiting for room included.",
                          NULL, METRICS_LATENCY_BUCKETS, METRICS_LATENCY_BUCKETS_N),
        NULL);
    struct metric *errors =
        metrics_counter(reg, "redis_errors_total", "Failed Redis calls by kind.", "kind");
    m->errors[0] = NULL;
    for (int i = 1; i < 5; i++)
        m->errors[i] = metric_with(errors, kinds[i]);
}

/* ---- configuration ---------------------------------------------------------------------- */

void rcl_config_defaults(struct rcl_config *rc)
{
    *rc = (struct rcl_config){
        .url = "redis://127.0.0.1:6379/0",
        .pool_size = 100,
        .loops = 1,
        .min_idle = 10,
        .max_conn_age_ms = 5 * 60 * 1000,
        .pool_timeout_ms = 1000,
        .idle_timeout_ms = 30 * 1000,
        .idle_check_freq_ms = 60 * 1000,
        .connect_timeout_ms = 1000,
        .command_timeout_ms = 1000,
    };
}

static int valid_url(const char *s)
{
    struct redis_url u;
    char err[128];
    return redis_url_parse(s, &u, err, sizeof(err)) == 0;
}

static const char *ms_str(int64_t ms, char *buf, size_t size)
{
    snprintf(buf, size, "%lldms", (long long)ms);
    return buf;
}

void rcl_config_load(struct rcl_config *rc, struct cfg *c)
{
    char d[32];
    const int64_t hour = 3600 * 1000;
    /* The URL may carry a password: read it as a secret so it is masked in
     * --check-config and held in locked memory. */
    const char *url = cfg_secret(c, "REDIS_URL");
    if (url && !valid_url(url))
        cfg_fail(c, "REDIS_URL=<secret>: not a Redis URL (allowed: "
                    "redis://[user[:pass]@]host:port[/db], rediss://... or unix:///path[?db=N])");
    if (url)
        rc->url = url;
    rc->pool_size = (int)cfg_int(c, "REDIS_POOL_SIZE", rc->pool_size, 1, 10000);
    rc->min_idle = (int)cfg_int(c, "REDIS_MIN_IDLE_CONNS", rc->min_idle, 0, 10000);
    rc->max_conn_age_ms = cfg_duration_ms(
        c, "REDIS_MAX_CONN_AGE", ms_str(rc->max_conn_age_ms, d, sizeof(d)), 1000, 24 * hour);
    rc->pool_timeout_ms = cfg_duration_ms(c, "REDIS_POOL_TIMEOUT",
                                          ms_str(rc->pool_timeout_ms, d, sizeof(d)), 1, 60000);
    rc->idle_timeout_ms = cfg_duration_ms(
        c, "REDIS_IDLE_TIMEOUT", ms_str(rc->idle_timeout_ms, d, sizeof(d)), 1000, 24 * hour);
    rc->idle_check_freq_ms = cfg_duration_ms(
        c, "REDIS_IDLE_CHECK_FREQ", ms_str(rc->idle_check_freq_ms, d, sizeof(d)), 100, 24 * hour);
    rc->connect_timeout_ms = cfg_duration_ms(
        c, "REDIS_CONNECT_TIMEOUT", ms_str(rc->connect_timeout_ms, d, sizeof(d)), 1, 60000);
    rc->command_timeout_ms = cfg_duration_ms(
        c, "REDIS_COMMAND_TIMEOUT", ms_str(rc->command_timeout_ms, d, sizeof(d)), 1, 60000);
    if (rc->min_idle > rc->pool_size)
        cfg_fail(c, "REDIS_MIN_IDLE_CONNS=%d: larger than REDIS_POOL_SIZE (allowed: 0..%d)",
                 rc->min_idle, rc->pool_size);
    rc->tls.ca_file = cfg_str(c, "REDIS_TLS_CA_FILE", NULL, NULL, NULL);
    rc->tls.cert_file = cfg_str(c, "REDIS_TLS_CERT_FILE", NULL, NULL, NULL);
    rc->tls.key_file = cfg_str(c, "REDIS_TLS_KEY_FILE", NULL, NULL, NULL);
    rc->tls.server_name = cfg_str(c, "REDIS_TLS_SERVER_NAME", NULL, NULL, NULL);
    if (!rc->tls.cert_file != !rc->tls.key_file)
        cfg_fail(c, "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together");
}

const char *rcl_status_name(enum rcl_status st)
{
    switch (st) {
    case RCL_OK: return "ok";
    case RCL_POOL_TIMEOUT: return "pool_timeout";
    case RCL_CONN: return "connect";
    case RCL_TIMEOUT: return "timeout";
    case RCL_REPLY_ERROR: return "reply";
    }
    return "unknown";
}

/* ---- calls ----------------------------------------------------------------------------- */

static struct rcl_call *call_new(struct rclient *c)
{
    struct rcl_call *k = c->free_calls;
    if (k)
        c->free_calls = k->next;
    else if (!(k = malloc(sizeof(*k))))
        return NULL;
    memset(k, 0, sizeof(*k));
    k->client = c;
    return k;
}

static void call_free(struct rcl_call *k)
{
    struct rclient *c = k->client;
    redisFreeCommand(k->cmd);
    k->cmd = NULL;
    k->next = c->free_calls;
    c->free_calls = k;
}

/* The call is over: tell its caller, and recycle it. */
static void finish(struct rcl_call *k, enum rcl_status st, redisReply *reply)
{
    const struct rcl_metrics *m = k->client->m;
    if (m && !k->internal) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        metric_observe(m->duration, (double)(now.tv_sec - k->issued.tv_sec) +
                                        (double)(now.tv_nsec - k->issued.tv_nsec) / 1e9);
        if (st != RCL_OK && (int)st < 5)
            metric_inc(m->errors[st]);
    }
    if (!k->internal)
        k->fn(k->arg, st, reply);
    call_free(k);
}

/* ---- connections ----------------------------------------------------------------------- */

static void on_reply(void *owner, struct rconn *rc, void *arg, enum rcl_status st,
                     redisReply *reply);
static void on_up(void *owner, struct rconn *rc);
static void on_down(void *owner, struct rconn *rc, enum rcl_status why, int was_up);

/* A connection never came up: the next attempt waits (10 ms, doubling to 1 s). */
static void backoff(struct rclient *c)
{
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : RCL_BACKOFF_MIN_MS;
    if (c->backoff_ms > RCL_BACKOFF_MAX_MS)
        c->backoff_ms = RCL_BACKOFF_MAX_MS;
    c->next_connect_ms = loop_now_ms(c->loop) + c->backoff_ms;
}

static struct rconn *open_conn(struct rclient *c)
{
    int64_t now = loop_now_ms(c->loop);
    if (c->nconns >= c->max_conns || now < c->next_connect_ms)
        return NULL;
    struct rconn_target t = {
        .host = c->url.host,
        .port = c->url.port,
        .path = c->url.path[0] ? c->url.path : NULL,
        .user = c->url.user[0] ? c->url.user : NULL,
        .pass = c->url.pass[0] ? c->url.pass : NULL,
        .db = c->url.db,
        .tls = c->tls,
        .server_name = c->server_name,
        .connect_timeout_ms = c->conf.connect_timeout_ms,
    };
    struct rconn_owner o = {.reply = on_reply,
                            .up = on_up,
                            .down = on_down,
                            .owner = c,
                            .writes = c->m ? c->m->writes : NULL};
    struct rconn *rc = rconn_open(c->loop, &t, &o);
    if (!rc) { /* failed at once (no such host, no such socket file): back off as below */
        backoff(c);
        return NULL;
    }
    if (c->stats.open++ > 0 || c->stats.commands > 0)
        c->stats.reconnects++;
    c->conns[c->nconns++] = rc;
    return rc;
}

static void forget_conn(struct rclient *c, struct rconn *rc)
{
    uint64_t cmds, writes;
    rconn_counters(rc, &cmds, &writes);
    (void)cmds;
    c->closed_writes += writes;
    COUNT(c, stale);
    for (int i = 0; i < c->nconns; i++)
        if (c->conns[i] == rc) {
            c->conns[i] = c->conns[--c->nconns];
            break;
        }
    c->stats.open = (uint32_t)c->nconns;
}

/* A connection for one more command: the first that is up, has room and is not too old
 * (an old one with nothing left on it is retired on the way). NULL when there is none. */
static struct rconn *pick(struct rclient *c)
{
    int64_t now = loop_now_ms(c->loop);
    for (int i = 0; i < c->nconns; i++) {
        struct rconn *rc = c->conns[i];
        uint64_t carried, writes;
        rconn_counters(rc, &carried, &writes);
        /* Old: past REDIS_MAX_CONN_AGE, and it has carried a command (however short the
         * age, a connection is used before it is retired). */
        int old = c->conf.max_conn_age_ms > 0 && carried > 0 &&
                  now - rconn_opened_ms(rc) >= c->conf.max_conn_age_ms;
        if (old && rconn_is_up(rc) && rconn_in_flight(rc) == 0) {
            forget_conn(c, rc);
            rconn_retire(rc); /* it may be delivering the reply that brought us here */
            i--;
            continue;
        }
        if (!old && rconn_is_up(rc) && rconn_in_flight(rc) < (size_t)c->max_in_flight)
            return rc;
    }
    return NULL;
}

/* Any connection coming up (connecting, TLS, AUTH) that will take commands? */
static int connection_coming(const struct rclient *c)
{
    for (int i = 0; i < c->nconns; i++)
        if (!rconn_is_up(c->conns[i]))
            return 1;
    return 0;
}

static void enqueue(struct rcl_call **head, struct rcl_call **tail, struct rcl_call *k)
{
    k->next = NULL;
    if (*tail)
        (*tail)->next = k;
    else
        *head = k;
    *tail = k;
}

static struct rcl_call *dequeue(struct rcl_call **head, struct rcl_call **tail)
{
    struct rcl_call *k = *head;
    if (k && !(*head = k->next))
        *tail = NULL;
    return k;
}

static void on_fail_task(struct loop_task *t)
{
    struct rclient *c = t->arg;
    struct rcl_call *k;
    while ((k = dequeue(&c->failed, &c->failed_tail)))
        finish(k, k->fail_st, NULL);
}

/* Fail a call that could not even be queued: its caller hears of it at the end of the
 * turn, never inside rcl_command. */
static void fail_later(struct rcl_call *k, enum rcl_status st)
{
    struct rclient *c = k->client;
    k->fail_st = st;
    enqueue(&c->failed, &c->failed_tail, k);
    loop_defer(c->loop, &c->fail_task);
}

static void wait_for_room(struct rcl_call *k)
{
    struct rclient *c = k->client;
    k->wait_deadline_ms = loop_now_ms(c->loop) + c->conf.pool_timeout_ms;
    enqueue(&c->waiting, &c->waiting_tail, k);
    if (!loop_timer_armed(&c->wait_timer))
        loop_timer_start(c->loop, &c->wait_timer, c->conf.pool_timeout_ms);
}

/* Put a formatted command on a connection that is up; else wait for one (opening it if
 * the pool allows); else, Redis being down and the next connect not due, fail fast. */
static void dispatch(struct rcl_call *k)
{
    struct rclient *c = k->client;
    struct rconn *rc = pick(c);
    if (rc) {
        COUNT(c, hits);
        if (rconn_push(rc, k->cmd, k->len, loop_now_ms(c->loop) + k->timeout_ms, k) != 0)
            fail_later(k, RCL_CONN);
        return;
    }
    COUNT(c, misses);
    if (!connection_coming(c))
        open_conn(c);
    if (c->nconns == 0)
        fail_later(k, RCL_CONN);
    else
        wait_for_room(k);
}

/* Room may have come: hand waiting commands over, oldest first. */
static void drain_waiting(struct rclient *c)
{
    struct rconn *rc;
    while (c->waiting && (rc = pick(c))) {
        struct rcl_call *k = dequeue(&c->waiting, &c->waiting_tail);
        if (rconn_push(rc, k->cmd, k->len, loop_now_ms(c->loop) + k->timeout_ms, k) != 0)
            finish(k, RCL_CONN, NULL);
    }
    if (c->waiting && !connection_coming(c)) /* pick() may have retired the last one */
        open_conn(c);
}

/* Commands that waited REDIS_POOL_TIMEOUT: for room (pool_timeout, logged critical at
 * most once a second), or for a connection that never came up (connect). */
static void on_wait_timer(struct loop_timer *t)
{
    struct rclient *c = t->arg;
    int64_t now = loop_now_ms(c->loop);
    while (c->waiting && c->waiting->wait_deadline_ms <= now) {
        struct rcl_call *k = dequeue(&c->waiting, &c->waiting_tail);
        if (connection_coming(c) || c->nconns == 0) {
            finish(k, RCL_CONN, NULL);
            continue;
        }
        c->stats.pool_timeouts++;
        COUNT(c, pool_timeouts);
        if (now - c->last_critical_ms >= 1000) {
            c->last_critical_ms = now;
            log_critical(NULL,
                         "redis pool exhausted: no room for a command within REDIS_POOL_TIMEOUT",
                         LF_I("connections", c->nconns), LF_I("pool_size", c->max_conns));
        }
        finish(k, RCL_POOL_TIMEOUT, NULL);
    }
    if (c->waiting)
        loop_timer_start(c->loop, t, c->waiting->wait_deadline_ms - now);
}

/* ---- what the connections report ---------------------------------------------------- */

static int is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* NOSCRIPT (SCRIPT FLUSH, a restarted or failed-over Redis): load the script and run the
 * command again on the same connection, right behind the load, once. */
static int reload_and_rerun(struct rclient *c, struct rconn *rc, struct rcl_call *k)
{
    struct rcl_call *load = call_new(c);
    if (!load)
        return -1;
    const char *argv[] = {"SCRIPT", "LOAD", k->script->source};
    int n = redisFormatCommandArgv(&load->cmd, 3, argv, NULL);
    int64_t deadline = loop_now_ms(c->loop) + k->timeout_ms;
    load->internal = 1;
    load->len = n < 0 ? 0 : (size_t)n;
    k->reloaded = 1;
    if (n < 0 || rconn_push(rc, load->cmd, load->len, deadline, load) != 0) {
        call_free(load);
        return -1;
    }
    return rconn_push(rc, k->cmd, k->len, deadline, k);
}

static void on_reply(void *owner, struct rconn *rc, void *arg, enum rcl_status st,
                     redisReply *reply)
{
    struct rclient *c = owner;
    struct rcl_call *k = arg;
    if (st == RCL_TIMEOUT)
        c->stats.timeouts++;
    if (st == RCL_REPLY_ERROR && k->script && !k->reloaded && is_noscript(reply) &&
        reload_and_rerun(c, rc, k) == 0)
        return;
    c->replying = rc;
    finish(k, st, reply);
    c->replying = NULL;
    if (c->waiting && rconn_in_flight(rc) < (size_t)c->max_in_flight)
        drain_waiting(c);
}

static void on_up(void *owner, struct rconn *rc)
{
    struct rclient *c = owner;
    (void)rc;
    c->backoff_ms = 0;
    drain_waiting(c);
}

/* A connection failed. One that never came up makes the next attempt wait (10 ms, doubling
 * to 1 s); one that worked is replaced at once. Commands waiting for a connection fail when
 * none is left or coming. */
static void on_down(void *owner, struct rconn *rc, enum rcl_status why, int was_up)
{
    struct rclient *c = owner;
    (void)why;
    forget_conn(c, rc);
    if (!was_up)
        backoff(c);
    if (c->waiting && !connection_coming(c) && !pick(c) && !open_conn(c)) {
        struct rcl_call *k;
        while ((k = dequeue(&c->waiting, &c->waiting_tail)))
            finish(k, RCL_CONN, NULL);
    }
}

/* The connection gauges: what this client adds to them, brought up to date. */
static void show_gauges(struct rclient *c, int total, int idle)
{
    if (!c->m)
        return;
    if (total != c->shown_total)
        metric_gauge_add(c->m->total, total - c->shown_total);
    if (idle != c->shown_idle)
        metric_gauge_add(c->m->idle, idle - c->shown_idle);
    c->shown_total = total;
    c->shown_idle = idle;
}

static void on_gauge_timer(struct loop_timer *t)
{
    struct rclient *c = t->arg;
    int idle = 0;
    for (int i = 0; i < c->nconns; i++)
        idle += rconn_is_up(c->conns[i]) && rconn_in_flight(c->conns[i]) == 0;
    show_gauges(c, c->nconns, idle);
    loop_timer_start(c->loop, t, 1000);
}

/* ---- the interface ---------------------------------------------------------------------- */

static SSL_CTX *tls_context(const struct rcl_tls *t, char *err, size_t errsize)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if ((t->ca_file ? SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL)
                    : SSL_CTX_set_default_verify_paths(ctx)) != 1) {
        snprintf(err, errsize, "REDIS_TLS_CA_FILE: cannot load %s",
                 t->ca_file ? t->ca_file : "the system's trust store");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (t->cert_file && (SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1 ||
                         SSL_CTX_use_PrivateKey_file(ctx, t->key_file, SSL_FILETYPE_PEM) != 1)) {
        snprintf(err, errsize, "REDIS_TLS_CERT_FILE/REDIS_TLS_KEY_FILE: cannot load them");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* The output buffer grows and moves between a write TLS could not finish and its
     * retry. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
fail:
    snprintf(err, errsize, "cannot set up TLS");
    return NULL;
}

struct rclient *rcl_create(struct loop *l, const struct rcl_config *conf, char *err, size_t errsize)
{
    struct rclient *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    c->loop = l;
    c->conf = *conf;
    c->m = conf->metrics;
    c->max_in_flight = conf->max_in_flight > 0 ? conf->max_in_flight : RCL_MAX_IN_FLIGHT;
    c->gauge_timer = (struct loop_timer){.fn = on_gauge_timer, .arg = c};
    if (c->m)
        loop_timer_start(l, &c->gauge_timer, 0);
    c->wait_timer = (struct loop_timer){.fn = on_wait_timer, .arg = c};
    c->fail_task = (struct loop_task){.fn = on_fail_task, .arg = c};
    if (redis_url_parse(conf->url, &c->url, err, errsize) != 0)
        goto fail;
    if (c->url.tls) {
        c->tls = tls_context(&conf->tls, err, errsize);
        if (!c->tls)
            goto fail;
        c->server_name = conf->tls.server_name ? conf->tls.server_name : c->url.host;
    }
    int loops = conf->loops > 0 ? conf->loops : 1;
    c->max_conns = conf->pool_size / loops;
    c->max_conns = c->max_conns < 1               ? 1
                   : c->max_conns > RCL_MAX_CONNS ? RCL_MAX_CONNS
                                                  : c->max_conns;
    for (int i = 0; i < conf->min_idle / loops && i < c->max_conns; i++)
        open_conn(c);
    return c;
fail:
    rcl_free(c);
    return NULL;
}

void rcl_free(struct rclient *c)
{
    if (!c)
        return;
    loop_timer_stop(c->loop, &c->wait_timer);
    loop_timer_stop(c->loop, &c->gauge_timer);
    show_gauges(c, 0, 0);
    loop_cancel(c->loop, &c->fail_task);
    on_fail_task(&c->fail_task);
    struct rcl_call *k;
    while ((k = dequeue(&c->waiting, &c->waiting_tail)))
        finish(k, RCL_CONN, NULL);
    while (c->nconns > 0) {
        struct rconn *rc = c->conns[c->nconns - 1];
        forget_conn(c, rc);
        rconn_close(rc);
    }
    while ((k = c->free_calls)) {
        c->free_calls = k->next;
        free(k);
    }
    SSL_CTX_free(c->tls);
    free(c);
}

/* Format and send; scripts keep their command for a reload. */
static int issue(struct rclient *c, const struct script *s, int argc, const char *const *argv,
                 const size_t *argvlen, int64_t timeout_ms, rcl_done_fn fn, void *arg)
{
    struct rcl_call *k = call_new(c);
    if (!k)
        return -1;
    int n = redisFormatCommandArgv(&k->cmd, argc, (const char **)argv, argvlen);
    if (n < 0) {
        call_free(k);
        return -1;
    }
    k->len = (size_t)n;
    k->fn = fn;
    k->arg = arg;
    k->script = s;
    k->timeout_ms = timeout_ms > 0 ? timeout_ms : c->conf.command_timeout_ms;
    c->stats.commands++;
    if (c->m) {
        metric_inc(c->m->commands);
        clock_gettime(CLOCK_MONOTONIC, &k->issued);
    }
    dispatch(k);
    return 0;
}

int rcl_command(struct rclient *c, int argc, const char *const *argv, const size_t *argvlen,
                int64_t timeout_ms, rcl_done_fn fn, void *arg)
{
    return issue(c, NULL, argc, argv, argvlen, timeout_ms, fn, arg);
}

/* Arguments of a script call kept on the stack; a longer call (auditd's batch of
 * appends) allocates. */
#define RCL_EVAL_STACK_ARGS 64

int rcl_eval(struct rclient *c, const struct script *s, int nkeys, int argc,
             const char *const *argv, const size_t *argvlen, int64_t timeout_ms, rcl_done_fn fn,
             void *arg)
{
    const char *sv[RCL_EVAL_STACK_ARGS + 3];
    size_t svl[RCL_EVAL_STACK_ARGS + 3];
    const char **v = sv;
    size_t *vl = svl;
    char nk[16];
    if (argc > RCL_EVAL_STACK_ARGS) {
        v = malloc((size_t)(argc + 3) * sizeof(*v));
        vl = malloc((size_t)(argc + 3) * sizeof(*vl));
        if (!v || !vl) {
            free(v);
            free(vl);
            return -1;
        }
    }
    snprintf(nk, sizeof(nk), "%d", nkeys);
    v[0] = "EVALSHA", v[1] = s->sha1, v[2] = nk;
    for (int i = 0; i < 3; i++)
        vl[i] = strlen(v[i]);
    for (int i = 0; i < argc; i++) {
        v[i + 3] = argv[i];
        vl[i + 3] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    int rc = issue(c, s, argc + 3, v, vl, timeout_ms, fn, arg);
    if (v != sv) {
        free(v);
        free(vl);
    }
    return rc;
}

redisReply *rcl_steal(struct rclient *c)
{
    return c->replying ? rconn_steal_reply(c->replying) : NULL;
}

void rcl_stats(const struct rclient *c, struct rcl_stats *out)
{
    *out = c->stats;
    out->writes = c->closed_writes;
    out->open = (uint32_t)c->nconns;
    out->in_flight = 0;
    for (int i = 0; i < c->nconns; i++) {
        uint64_t cmds, writes;
        rconn_counters(c->conns[i], &cmds, &writes);
        out->writes += writes;
        out->in_flight += (uint32_t)rconn_in_flight(c->conns[i]);
    }
    for (const struct rcl_call *k = c->waiting; k; k = k->next)
        out->in_flight++;
}
