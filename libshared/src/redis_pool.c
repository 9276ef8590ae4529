/* SPDX-License-Identifier: Apache-2.0 */
/* redis_pool: a bounded pool of blocking hiredis connections, with embedded-script
 * execution (EVALSHA, reload on NOSCRIPT), statistics and a maintenance thread. */
#include "shared/redis_pool.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/log.h"

#define RPOOL_MAX_STACK_ARGS 64

struct rconn {
    redisContext *ctx;
    int64_t created_ms;
    int64_t last_used_ms;
    int64_t timeout_ms; /* socket timeout currently set on ctx */
    struct rconn *next;
};

struct rpool {
    struct rpool_config conf;
    struct rpool_url url;

    pthread_mutex_t mu;
    pthread_cond_t freed;    /* a connection came back or a slot opened */
    pthread_cond_t maint_cv; /* wakes the maintenance thread early (shutdown) */
    struct rconn *idle;      /* LIFO: the most recently used is handed out first */
    int nidle;
    int total; /* open connections plus slots reserved for a connect */
    int stopping;
    pthread_t maint;

    _Atomic uint64_t hits, misses, timeouts, stale;
    _Atomic int64_t last_exhaustion_log_ms;

    const struct script *const *scripts;
    struct metrics *own_metrics; /* when the caller gave none */

    struct metric_series *m_hits, *m_misses, *m_timeouts, *m_total, *m_idle, *m_stale;
    struct metric_series *m_duration;
    struct metric *m_errors;
};

/* A connection closed for an error, its age or idleness: counted in the statistics and
 * on /metrics. */
static void count_stale(struct rpool *p)
{
    atomic_fetch_add(&p->stale, 1);
    metric_inc(p->m_stale);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timespec deadline_ts(int64_t deadline_ms)
{
    struct timespec ts = {.tv_sec = deadline_ms / 1000, .tv_nsec = (deadline_ms % 1000) * 1000000};
    return ts;
}

static struct timeval ms_tv(int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

void rpool_config_defaults(struct rpool_config *rc)
{
    *rc = (struct rpool_config){
        .url = "redis://127.0.0.1:6379/0",
        .size = 100,
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
    struct rpool_url u;
    char err[128];
    return rpool_url_parse(s, &u, err, sizeof(err)) == 0;
}

static const char *ms_str(int64_t ms, char *buf, size_t size)
{
    snprintf(buf, size, "%lldms", (long long)ms);
    return buf;
}

void rpool_config_load(struct rpool_config *rc, struct cfg *c)
{
    char d[32];
    const int64_t hour = 3600 * 1000;

    /* The URL may carry a password: read it as a secret so it is masked in
     * --check-config and held in locked memory. */
    const char *url = cfg_secret(c, "REDIS_URL");
    if (url && !valid_url(url))
        cfg_fail(c, "REDIS_URL=<secret>: not a Redis URL (allowed: "
                    "redis://[user[:pass]@]host:port[/db] or unix:///path[?db=N])");
    if (url)
        rc->url = url;
    rc->size = (int)cfg_int(c, "REDIS_POOL_SIZE", rc->size, 1, 10000);
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
    if (rc->min_idle > rc->size)
        cfg_fail(c, "REDIS_MIN_IDLE_CONNS=%d: larger than REDIS_POOL_SIZE (allowed: 0..%d)",
                 rc->min_idle, rc->size);
}

/* ---- connections --------------------------------------------------------------- */

const char *rpool_status_name(enum rpool_status st)
{
    switch (st) {
    case RPOOL_OK: return "ok";
    case RPOOL_POOL_TIMEOUT: return "pool_timeout";
    case RPOOL_CONN: return "connect";
    case RPOOL_TIMEOUT: return "timeout";
    case RPOOL_REPLY_ERROR: return "reply";
    }
    return "unknown";
}

static void count_error(struct rpool *p, enum rpool_status st)
{
    if (p->m_errors)
        metric_inc(metric_with(p->m_errors, rpool_status_name(st)));
}

/* Run one handshake command; returns 0 when Redis answered without an error. */
static int handshake(redisContext *ctx, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Open a connection, connecting and authenticating within timeout_ms. */
static struct rconn *conn_open(struct rpool *p, int64_t timeout_ms)
{
    struct timeval tv = ms_tv(timeout_ms);
    redisContext *ctx = p->url.path[0] ? redisConnectUnixWithTimeout(p->url.path, tv)
                                       : redisConnectWithTimeout(p->url.host, p->url.port, tv);
    if (!ctx || ctx->err)
        goto fail;
    /* The connect timeout also bounds the handshake. */
    if (redisSetTimeout(ctx, tv) != REDIS_OK)
        goto fail;
    if (!p->url.path[0])
        redisEnableKeepAlive(ctx);
    if (p->url.pass[0]) {
        const char *auth_user[] = {"AUTH", p->url.user, p->url.pass};
        const char *auth_pass[] = {"AUTH", p->url.pass};
        int rc = p->url.user[0] ? handshake(ctx, 3, auth_user) : handshake(ctx, 2, auth_pass);
        if (rc != 0)
            goto fail;
    }
    if (p->url.db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", p->url.db);
        const char *sel[] = {"SELECT", db};
        if (handshake(ctx, 2, sel) != 0)
            goto fail;
    }
    struct rconn *c = calloc(1, sizeof(*c));
    if (!c)
        goto fail;
    c->ctx = ctx;
    c->created_ms = c->last_used_ms = now_ms();
    c->timeout_ms = timeout_ms;
    return c;
fail:
    if (ctx)
        redisFree(ctx);
    return NULL;
}

static void conn_close(struct rconn *c)
{
    if (!c)
        return;
    redisFree(c->ctx);
    free(c);
}

/* An idle connection is healthy if its socket has nothing to read: Redis never speaks
 * unasked, so readable means closed (restart, CLIENT KILL, timeout) or corrupt. */
static int conn_alive(const struct rconn *c)
{
    struct pollfd pfd = {.fd = c->ctx->fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 0;
}

static void log_exhaustion(struct rpool *p)
{
    int64_t now = now_ms();
    int64_t last = atomic_load(&p->last_exhaustion_log_ms);
    /* At most one line a second, whatever the request rate. */
    if (now - last < 1000 ||
        !atomic_compare_exchange_strong(&p->last_exhaustion_log_ms, &last, now))
        return;
    log_critical(NULL, "redis pool exhausted", LF_I("pool_size", p->conf.size),
                 LF_I("pool_timeout_ms", p->conf.pool_timeout_ms),
                 LF_I("timeouts_total", atomic_load(&p->timeouts)));
}

/* Take a connection: an idle one, else a new one if below the size, else wait until
 * the pool timeout. */
static enum rpool_status checkout(struct rpool *p, struct rconn **out)
{
    int64_t deadline = now_ms() + p->conf.pool_timeout_ms;
    struct timespec dl = deadline_ts(deadline);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->idle) {
            struct rconn *c = p->idle;
            p->idle = c->next;
            p->nidle--;
            pthread_mutex_unlock(&p->mu);
            if (conn_alive(c) && now_ms() - c->created_ms < p->conf.max_conn_age_ms) {
                atomic_fetch_add(&p->hits, 1);
                metric_inc(p->m_hits);
                *out = c;
                return RPOOL_OK;
            }
            conn_close(c);
            count_stale(p);
            pthread_mutex_lock(&p->mu);
            p->total--;
            continue;
        }
        if (p->total < p->conf.size) {
            p->total++; /* reserve the slot, connect outside the lock */
            pthread_mutex_unlock(&p->mu);
            atomic_fetch_add(&p->misses, 1);
            metric_inc(p->m_misses);
            /* The connect spends the checkout's own budget, so a call never waits
             * longer than the pool timeout plus the command timeout. */
            int64_t budget = deadline - now_ms();
            if (budget > p->conf.connect_timeout_ms)
                budget = p->conf.connect_timeout_ms;
            struct rconn *c = conn_open(p, budget > 0 ? budget : 1);
            if (c) {
                *out = c;
                return RPOOL_OK;
            }
            pthread_mutex_lock(&p->mu);
            p->total--;
            pthread_cond_signal(&p->freed);
            pthread_mutex_unlock(&p->mu);
            return RPOOL_CONN;
        }
        if (pthread_cond_timedwait(&p->freed, &p->mu, &dl) == ETIMEDOUT && !p->idle &&
            p->total >= p->conf.size) {
            pthread_mutex_unlock(&p->mu);
            atomic_fetch_add(&p->timeouts, 1);
            metric_inc(p->m_timeouts);
            log_exhaustion(p);
            return RPOOL_POOL_TIMEOUT;
        }
    }
}

/* Give a connection back; one that saw any error is closed, never reused as is. */
static void checkin(struct rpool *p, struct rconn *c, int healthy)
{
    int64_t now = now_ms();
    if (!healthy || now - c->created_ms >= p->conf.max_conn_age_ms) {
        conn_close(c);
        count_stale(p);
        pthread_mutex_lock(&p->mu);
        p->total--;
    } else {
        c->last_used_ms = now;
        pthread_mutex_lock(&p->mu);
        c->next = p->idle;
        p->idle = c;
        p->nidle++;
    }
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->mu);
}

/* ---- commands ----------------------------------------------------------------- */

static enum rpool_status io_status(const redisContext *ctx, int saved_errno)
{
    if (ctx->err == REDIS_ERR_IO &&
        (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT))
        return RPOOL_TIMEOUT;
    return RPOOL_CONN;
}

/* Append one command; scripts become EVALSHA <sha> <nkeys> argv... */
static int append_cmd(redisContext *ctx, const struct rpool_cmd *cmd)
{
    const char *stack_argv[RPOOL_MAX_STACK_ARGS];
    size_t stack_len[RPOOL_MAX_STACK_ARGS] = {0};
    const char **argv = stack_argv;
    size_t *lens = stack_len;
    int n = cmd->argc + (cmd->script ? 3 : 0);
    int i = 0, rc;
    char nkeys[16];

    if (n > RPOOL_MAX_STACK_ARGS) {
        argv = malloc(sizeof(*argv) * (size_t)n);
        lens = malloc(sizeof(*lens) * (size_t)n);
        if (!argv || !lens) {
            rc = REDIS_ERR;
            goto out;
        }
    }
    if (cmd->script) {
        snprintf(nkeys, sizeof(nkeys), "%d", cmd->nkeys);
        argv[0] = "EVALSHA", lens[0] = 7;
        argv[1] = cmd->script->sha1, lens[1] = 40;
        argv[2] = nkeys, lens[2] = strlen(nkeys);
        i = 3;
    }
    for (int a = 0; a < cmd->argc; a++, i++) {
        argv[i] = cmd->argv[a];
        lens[i] = cmd->argvlen ? cmd->argvlen[a] : strlen(cmd->argv[a]);
    }
    rc = redisAppendCommandArgv(ctx, n, argv, lens);
out:
    if (argv != stack_argv)
        free(argv);
    if (lens != stack_len)
        free(lens);
    return rc;
}

static int is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

static void set_timeout(struct rconn *c, int64_t timeout_ms)
{
    if (c->timeout_ms != timeout_ms && redisSetTimeout(c->ctx, ms_tv(timeout_ms)) == REDIS_OK)
        c->timeout_ms = timeout_ms;
}

/* Send cmds and read one reply each. Returns OK (all replies read) or a transport error
 * (replies freed). */
static enum rpool_status roundtrip(struct rconn *c, const struct rpool_cmd *cmds, size_t n,
                                   redisReply **replies)
{
    size_t got = 0;
    for (size_t i = 0; i < n; i++)
        if (append_cmd(c->ctx, &cmds[i]) != REDIS_OK)
            goto fail;
    for (; got < n; got++) {
        void *r = NULL;
        if (redisGetReply(c->ctx, &r) != REDIS_OK)
            goto fail;
        replies[got] = r;
    }
    return RPOOL_OK;
fail:;
    int saved = errno;
    for (size_t i = 0; i < got; i++) {
        freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
    return io_status(c->ctx, saved);
}

/* NOSCRIPT: the server lost its script cache (SCRIPT FLUSH, restart, failover). Load each
 * missing script once on this connection and run those commands again. */
static enum rpool_status reload_scripts(struct rconn *c, const struct rpool_cmd *cmds, size_t n,
                                        redisReply **replies)
{
    for (size_t i = 0; i < n; i++) {
        if (!cmds[i].script || !is_noscript(replies[i]))
            continue;
        const char *load[] = {"SCRIPT", "LOAD", cmds[i].script->source};
        struct rpool_cmd lc = {.argc = 3, .argv = load};
        redisReply *lr = NULL, *again = NULL;
        enum rpool_status st = roundtrip(c, &lc, 1, &lr);
        if (st != RPOOL_OK)
            return st;
        freeReplyObject(lr);
        st = roundtrip(c, &cmds[i], 1, &again);
        if (st != RPOOL_OK)
            return st;
        freeReplyObject(replies[i]);
        replies[i] = again;
    }
    return RPOOL_OK;
}

enum rpool_status rpool_exec(struct rpool *p, const struct rpool_cmd *cmds, size_t ncmds,
                             redisReply **replies, int64_t timeout_ms)
{
    struct rconn *c = NULL;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    for (size_t i = 0; i < ncmds; i++)
        replies[i] = NULL;
    enum rpool_status st = checkout(p, &c);
    if (st != RPOOL_OK) {
        count_error(p, st);
        return st;
    }
    set_timeout(c, timeout_ms > 0 ? timeout_ms : p->conf.command_timeout_ms);
    st = roundtrip(c, cmds, ncmds, replies);
    if (st == RPOOL_OK) {
        int need_reload = 0;
        for (size_t i = 0; i < ncmds; i++)
            need_reload |= cmds[i].script && is_noscript(replies[i]);
        if (need_reload)
            st = reload_scripts(c, cmds, ncmds, replies);
    }
    if (st != RPOOL_OK) {
        for (size_t i = 0; i < ncmds; i++) {
            freeReplyObject(replies[i]);
            replies[i] = NULL;
        }
        count_error(p, st);
    }
    checkin(p, c, st == RPOOL_OK);
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    metric_observe(p->m_duration,
                   (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return st;
}

static enum rpool_status single(struct rpool *p, const struct rpool_cmd *cmd, int64_t timeout_ms,
                                redisReply **reply)
{
    enum rpool_status st = rpool_exec(p, cmd, 1, reply, timeout_ms);
    if (st == RPOOL_OK && *reply && (*reply)->type == REDIS_REPLY_ERROR) {
        count_error(p, RPOOL_REPLY_ERROR);
        return RPOOL_REPLY_ERROR;
    }
    return st;
}

enum rpool_status rpool_command(struct rpool *p, int argc, const char *const *argv,
                                const size_t *argvlen, int64_t timeout_ms, redisReply **reply)
{
    struct rpool_cmd cmd = {.argc = argc, .argv = argv, .argvlen = argvlen};
    return single(p, &cmd, timeout_ms, reply);
}

enum rpool_status rpool_eval(struct rpool *p, const struct script *s, int nkeys, int argc,
                             const char *const *argv, const size_t *argvlen, int64_t timeout_ms,
                             redisReply **reply)
{
    struct rpool_cmd cmd = {
        .script = s, .nkeys = nkeys, .argc = argc, .argv = argv, .argvlen = argvlen};
    return single(p, &cmd, timeout_ms, reply);
}

/* ---- readiness, stats, maintenance ---------------------------------------------- */

void rpool_set_scripts(struct rpool *p, const struct script *const *scripts)
{
    p->scripts = scripts;
}

/* SCRIPT EXISTS every script; SCRIPT LOAD those missing. Returns 0 when all are loaded. */
static int ensure_scripts(struct rpool *p, char *reason, size_t reasonsize)
{
    size_t n = 0;
    while (p->scripts && p->scripts[n])
        n++;
    if (n == 0)
        return 0;
    const char **argv = calloc(n + 2, sizeof(*argv));
    if (!argv)
        return -1;
    argv[0] = "SCRIPT", argv[1] = "EXISTS";
    for (size_t i = 0; i < n; i++)
        argv[i + 2] = p->scripts[i]->sha1;
    redisReply *r = NULL;
    enum rpool_status st = rpool_command(p, (int)n + 2, argv, NULL, 0, &r);
    free(argv);
    if (st != RPOOL_OK || !r || r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        snprintf(reason, reasonsize, "%s",
                 st == RPOOL_OK ? "scripts_not_loaded" : rpool_status_name(st));
        freeReplyObject(r);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (r->element[i]->integer == 1)
            continue;
        const char *load[] = {"SCRIPT", "LOAD", p->scripts[i]->source};
        redisReply *lr = NULL;
        if (rpool_command(p, 3, load, NULL, 0, &lr) != RPOOL_OK || lr->type != REDIS_REPLY_STRING ||
            strcmp(lr->str, p->scripts[i]->sha1) != 0) {
            log_error(NULL, "script load failed", LF_S("script", p->scripts[i]->name),
                      LF_S("error", lr && lr->type == REDIS_REPLY_ERROR ? lr->str : "no reply"));
            snprintf(reason, reasonsize, "scripts_not_loaded");
            rc = -1;
        }
        freeReplyObject(lr);
    }
    freeReplyObject(r);
    return rc;
}

int rpool_ready(struct rpool *p, char *reason, size_t reasonsize)
{
    const char *ping[] = {"PING"};
    redisReply *r = NULL;
    enum rpool_status st = rpool_command(p, 1, ping, NULL, 0, &r);
    freeReplyObject(r);
    if (st != RPOOL_OK) {
        snprintf(reason, reasonsize, "%s", rpool_status_name(st));
        return -1;
    }
    return ensure_scripts(p, reason, reasonsize);
}

void rpool_stats(struct rpool *p, struct rpool_stats *out)
{
    pthread_mutex_lock(&p->mu);
    out->total = (uint32_t)p->total;
    out->idle = (uint32_t)p->nidle;
    pthread_mutex_unlock(&p->mu);
    out->hits = atomic_load(&p->hits);
    out->misses = atomic_load(&p->misses);
    out->timeouts = atomic_load(&p->timeouts);
    out->stale = atomic_load(&p->stale);
}

int64_t rpool_command_timeout_ms(const struct rpool *p)
{
    return p->conf.command_timeout_ms;
}

static void refresh_gauges(void *arg)
{
    struct rpool *p = arg;
    struct rpool_stats s;
    rpool_stats(p, &s);
    metric_set(p->m_total, s.total);
    metric_set(p->m_idle, s.idle);
}

/* Close idle connections past the idle timeout (keeping min_idle) or past their age,
 * then open connections up to min_idle. Connects happen outside the lock. */
static void maintain(struct rpool *p)
{
    int64_t now = now_ms();
    struct rconn *doomed = NULL;
    pthread_mutex_lock(&p->mu);
    struct rconn **link = &p->idle;
    int kept = 0;
    while (*link) {
        struct rconn *c = *link;
        int too_idle = now - c->last_used_ms >= p->conf.idle_timeout_ms && kept >= p->conf.min_idle;
        if (too_idle || now - c->created_ms >= p->conf.max_conn_age_ms) {
            *link = c->next;
            c->next = doomed;
            doomed = c;
            p->nidle--;
            p->total--;
        } else {
            kept++;
            link = &c->next;
        }
    }
    int want = p->conf.min_idle - p->nidle;
    if (want > p->conf.size - p->total)
        want = p->conf.size - p->total;
    if (want > 0)
        p->total += want;
    pthread_mutex_unlock(&p->mu);

    while (doomed) {
        struct rconn *next = doomed->next;
        conn_close(doomed);
        count_stale(p);
        doomed = next;
    }
    for (int i = 0; i < want; i++) {
        struct rconn *c = p->stopping ? NULL : conn_open(p, p->conf.connect_timeout_ms);
        if (c) {
            checkin(p, c, 1);
            continue;
        }
        pthread_mutex_lock(&p->mu); /* give back this and the remaining reserved slots */
        p->total -= want - i;
        pthread_cond_broadcast(&p->freed);
        pthread_mutex_unlock(&p->mu);
        break;
    }
}

static void *maint_main(void *arg)
{
    struct rpool *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        pthread_mutex_unlock(&p->mu);
        maintain(p);
        pthread_mutex_lock(&p->mu);
        struct timespec dl = deadline_ts(now_ms() + p->conf.idle_check_freq_ms);
        if (!p->stopping)
            pthread_cond_timedwait(&p->maint_cv, &p->mu, &dl);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void register_metrics(struct rpool *p, struct metrics *m)
{
    p->m_hits = metric_series(metrics_counter(m, "redis_pool_hits_total",
                                              "Checkouts served by an idle connection.", NULL),
                              NULL);
    p->m_misses = metric_series(
        metrics_counter(m, "redis_pool_misses_total", "Checkouts that opened a connection.", NULL),
        NULL);
    p->m_timeouts =
        metric_series(metrics_counter(m, "redis_pool_timeouts_total",
                                      "Checkouts that gave up after REDIS_POOL_TIMEOUT.", NULL),
                      NULL);
    p->m_total = metric_series(
        metrics_gauge(m, "redis_pool_total_connections", "Open Redis connections.", NULL), NULL);
    p->m_idle = metric_series(
        metrics_gauge(m, "redis_pool_idle_connections", "Idle Redis connections.", NULL), NULL);
    p->m_stale = metric_series(
        metrics_counter(m, "redis_pool_stale_connections_total",
                        "Connections closed for an error, their age or idleness.", NULL),
        NULL);
    p->m_duration =
        metric_series(metrics_histogram(m, "redis_command_duration_seconds",
                                        "Time for one Redis round trip, checkout included.", NULL,
                                        METRICS_LATENCY_BUCKETS, METRICS_LATENCY_BUCKETS_N),
                      NULL);
    p->m_errors = metrics_counter(m, "redis_errors_total", "Failed Redis calls by kind.", "kind");
    metrics_on_render(m, refresh_gauges, p);
}

struct rpool *rpool_create(const struct rpool_config *conf, struct metrics *metrics, char *err,
                           size_t errsize)
{
    struct rpool *p = calloc(1, sizeof(*p));
    pthread_condattr_t ca;
    if (!p) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    p->conf = *conf;
    if (rpool_url_parse(conf->url, &p->url, err, errsize) != 0 ||
        (p->url.tls && snprintf(err, errsize,
                                "rediss://: the offline tools speak plain TCP "
                                "and unix sockets only") > 0)) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->freed, &ca);
    pthread_cond_init(&p->maint_cv, &ca);
    pthread_condattr_destroy(&ca);
    /* Without a registry the series live in a private one, so updates need no checks. */
    if (metrics)
        register_metrics(p, metrics);
    else
        register_metrics(p, p->own_metrics = metrics_create("rpool"));
    if (pthread_create(&p->maint, NULL, maint_main, p) != 0) {
        snprintf(err, errsize, "cannot start the pool thread");
        rpool_free(p);
        return NULL;
    }
    return p;
}

void rpool_free(struct rpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    int had_thread = !p->stopping;
    p->stopping = 1;
    pthread_cond_broadcast(&p->maint_cv);
    pthread_mutex_unlock(&p->mu);
    if (had_thread && p->maint)
        pthread_join(p->maint, NULL);
    while (p->idle) {
        struct rconn *c = p->idle;
        p->idle = c->next;
        conn_close(c);
    }
    pthread_cond_destroy(&p->freed);
    pthread_cond_destroy(&p->maint_cv);
    pthread_mutex_destroy(&p->mu);
    metrics_free(p->own_metrics);
    free(p);
}
