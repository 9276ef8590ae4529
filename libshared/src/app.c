/* SPDX-License-Identifier: Apache-2.0 */
/* app: flags, common configuration, /health /ready /metrics, signals and graceful
 * shutdown — everything a daemon's main() would otherwise repeat. */
#include "shared/app.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shared/crypto.h"
#include "shared/listen.h"
#include "shared/log.h"
#include "shared/procstat.h"
#include "shared/redis_reply.h"
#include "shared/sdnotify.h"

/* What a worker of either server holds: its loop's Redis client, and for the API server
 * the daemon's own per-worker data. */
struct app_worker {
    struct app *a;
    struct rclient *rcl;
    void *data;
    int api; /* a worker of the API server (not of METRICS_ADDR's) */
};

struct app {
    struct app_spec spec;
    struct cfg *cfg;
    struct metrics *metrics;
    struct rcl_config rcl_conf; /* the same settings, for every loop's client */
    struct rcl_metrics rcl_metrics;
    struct http_config hconf;
    struct http_server *http;
    /* METRICS_ADDR: a second server with /metrics, /health and /ready only. Its own
     * request metrics go to a registry of their own (never rendered): the families of the
     * API server's are already registered under the same names. */
    const char *metrics_addr;
    struct http_config mconf;
    struct http_server *mhttp;
    struct metrics *mmetrics;
    /* systemd: the watchdog and STATUS= thread, and the Redis state it last reported */
    struct sdn_pulse *pulse;
    char redis_state[96];
    int64_t shutdown_timeout_ms;
    enum log_level level;
    int check_config;
    char **args;
    int nargs;
    sigset_t signals;
    void (*reload_fn)(void *);
    void *reload_arg;
    void (*drain_fn)(void *);
    void *drain_arg;
    void (*shutdown_fn)(void *);
    void *shutdown_arg;
    int (*ready_fn)(void *, char *, size_t);
    void *ready_arg;
    void *(*worker_start)(struct loop *, void *);
    void (*worker_stop)(void *, void *);
    void *worker_arg;
    _Atomic int draining; /* shutdown has begun: /ready 503 */
    _Atomic int policy_checked;
};

static const char COMMON_HELP[] =
    "Common environment (man warden-%s; the operations runbook, operations.md):\n"
    "  LISTEN_ADDR            host:port, [::1]:port or unix:/path (default 127.0.0.1:%d)\n"
    "  METRICS_ADDR           /metrics, /health, /ready on their own address (default: none)\n"
    "  HTTP_THREADS           worker threads, each an event loop (0: one per core)\n"
    "  HTTP_MAX_BODY          largest request body (e.g. 64KiB)\n"
    "  HTTP_CONNECTION_LIMIT  most open connections (1024)\n"
    "  HTTP_CONNECTION_TIMEOUT idle timeout, and time to send a whole request (30s)\n"
    "  API_TOKEN[_FILE]       bearer token required on /v1/...\n"
    "  ADMIN_TOKEN[_FILE]     bearer token required on admin routes\n"
    "  LOG_LEVEL              debug, info, warn, error, critical (info)\n"
    "  SHUTDOWN_TIMEOUT       drain time on SIGTERM/SIGINT (10s)\n"
    "  REDIS_URL              redis://[user:pass@]host:port[/db], rediss://... or unix:///path\n"
    "  REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE, REDIS_TLS_SERVER_NAME\n"
    "  REDIS_POOL_SIZE, REDIS_MIN_IDLE_CONNS, REDIS_MAX_CONN_AGE, REDIS_POOL_TIMEOUT,\n"
    "  REDIS_IDLE_TIMEOUT, REDIS_IDLE_CHECK_FREQ, REDIS_CONNECT_TIMEOUT, REDIS_COMMAND_TIMEOUT\n";

static void usage(const struct app_spec *s, FILE *out)
{
    fprintf(out, "warden-%s %s — %s\n\n", s->name, WARDEN_VERSION, s->summary ? s->summary : "");
    fprintf(out, "Usage: warden-%s [--help] [--version] [--check-config]", s->name);
    for (int i = 0; s->flags && s->flags[i]; i++)
        fprintf(out, " [%s]", s->flags[i]);
    fprintf(out, "\n\n");
    fprintf(out, COMMON_HELP, s->name, s->port);
    if (s->env_help)
        fprintf(out, "\n%s", s->env_help);
}

static int daemon_flag(const struct app_spec *s, const char *arg)
{
    for (int i = 0; s->flags && s->flags[i]; i++)
        if (strcmp(arg, s->flags[i]) == 0)
            return 1;
    return 0;
}

static void parse_flags(struct app *a, int argc, char **argv)
{
    a->args = calloc((size_t)argc + 1, sizeof(char *));
    if (!a->args)
        abort();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(&a->spec, stdout);
            exit(0);
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("warden-%s %s\n", a->spec.name, WARDEN_VERSION);
            exit(0);
        } else if (strcmp(argv[i], "--check-config") == 0) {
            a->check_config = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0' && !daemon_flag(&a->spec, argv[i])) {
            fprintf(stderr, "%s: unknown option %s (try --help)\n", a->spec.name, argv[i]);
            exit(2);
        } else {
            a->args[a->nargs++] = argv[i];
        }
    }
}

/* Every thread inherits this mask; only the main thread takes these signals, in
 * sigwait(), so no handler runs in the middle of a request. */
static void block_signals(struct app *a)
{
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&a->signals);
    sigaddset(&a->signals, SIGTERM);
    sigaddset(&a->signals, SIGINT);
    sigaddset(&a->signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &a->signals, NULL);
}

/* METRICS_ADDR: empty (the API listener serves /metrics), or an address like LISTEN_ADDR's. */
static int metrics_addr_ok(const char *v)
{
    return v[0] == '\0' || listen_addr_ok(v);
}

static void read_common(struct app *a)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", "critical", NULL};
    const struct app_spec *s = &a->spec;
    a->level = (enum log_level)cfg_enum(a->cfg, "LOG_LEVEL", "info", levels);
    a->shutdown_timeout_ms = cfg_duration_ms(a->cfg, "SHUTDOWN_TIMEOUT", "10s", 0, 3600 * 1000);
    http_config_load(&a->hconf, a->cfg, s->name, s->port, s->max_body ? s->max_body : 64 * 1024);
    a->metrics_addr = cfg_str(a->cfg, "METRICS_ADDR", "", metrics_addr_ok,
                              "empty, host:port, [v6]:port or unix:/path, port 0..65535");
    rcl_config_defaults(&a->rcl_conf);
    if (s->command_timeout_ms)
        a->rcl_conf.command_timeout_ms = s->command_timeout_ms;
    if (s->pool_timeout_ms)
        a->rcl_conf.pool_timeout_ms = s->pool_timeout_ms;
    if (s->connect_timeout_ms)
        a->rcl_conf.connect_timeout_ms = s->connect_timeout_ms;
    rcl_config_load(&a->rcl_conf, a->cfg);
    a->rcl_conf.loops = http_workers(&a->hconf);
    a->rcl_conf.max_in_flight = s->redis_max_in_flight;
    a->rcl_conf.metrics = &a->rcl_metrics;
}

/* glibc gives threads up to 8 malloc arenas per core; with a thread per connection each
 * connection ends up with an arena of its own, and memory freed in one cannot serve
 * another. Under steady load RSS crept up (make soak: auditd +5.5% in 3 minutes with 8
 * connections); one arena per core halves that and lowers RSS, at no throughput cost
 * measurable here (docs/reliability.md, soak). An operator's MALLOC_ARENA_MAX still wins.
 * Called before any thread starts. */
static void limit_malloc_arenas(void)
{
#ifdef M_ARENA_MAX
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (!getenv("MALLOC_ARENA_MAX"))
        mallopt(M_ARENA_MAX, cores > 0 ? (int)cores : 1);
#endif
}

struct app *app_create(const struct app_spec *spec, int argc, char **argv)
{
    limit_malloc_arenas();
    procstat_init();
    struct app *a = calloc(1, sizeof(*a));
    if (!a || crypto_init() != 0) {
        fprintf(stderr, "%s: cannot initialise\n", spec->name);
        exit(1);
    }
    a->spec = *spec;
    parse_flags(a, argc, argv);
    block_signals(a);
    a->cfg = cfg_create();
    if (!a->cfg)
        abort();
    read_common(a);
    log_init(spec->name, a->level);
    a->metrics = metrics_create(spec->name);
    metric_set(metric_with(metrics_gauge(a->metrics, "build_info", "Build version.", "version"),
                           WARDEN_VERSION),
               1);
    return a;
}

struct cfg *app_cfg(struct app *a)
{
    return a->cfg;
}
struct metrics *app_metrics(struct app *a)
{
    return a->metrics;
}
const struct rcl_config *app_rcl_config(struct app *a)
{
    return &a->rcl_conf;
}

struct rclient *app_rclient(const struct http_req *r)
{
    return ((struct app_worker *)http_worker_data(r))->rcl;
}

void *app_worker_data(const struct http_req *r)
{
    return ((struct app_worker *)http_worker_data(r))->data;
}

void app_on_worker(struct app *a, void *(*start)(struct loop *l, void *arg),
                   void (*stop)(void *data, void *arg), void *arg)
{
    a->worker_start = start;
    a->worker_stop = stop;
    a->worker_arg = arg;
}

char **app_args(struct app *a, int *count)
{
    *count = a->nargs;
    return a->args;
}

void app_route(struct app *a, const char *method, const char *pattern, http_handler h, void *ctx,
               unsigned flags)
{
    http_route(a->http, method, pattern, h, ctx, flags);
}

void app_on_reload(struct app *a, void (*fn)(void *arg), void *arg)
{
    a->reload_fn = fn;
    a->reload_arg = arg;
}

void app_on_drain(struct app *a, void (*fn)(void *arg), void *arg)
{
    a->drain_fn = fn;
    a->drain_arg = arg;
}

void app_on_shutdown(struct app *a, void (*fn)(void *arg), void *arg)
{
    a->shutdown_fn = fn;
    a->shutdown_arg = arg;
}

void app_on_ready(struct app *a, int (*fn)(void *arg, char *reason, size_t size), void *arg)
{
    a->ready_fn = fn;
    a->ready_arg = arg;
}

/* ---- built-in routes ---------------------------------------------------------- */

static void handle_health(struct http_req *r, void *ctx)
{
    (void)ctx;
    http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* ---- GET /ready: Redis answers, the daemon's scripts are there, the daemon is ready ---- */

/* One readiness check in progress: PING (INFO memory the first time) and SCRIPT EXISTS
 * leave together; scripts Redis lacks are loaded, in one more round trip. Then done(). */
struct ready_check {
    struct app *a;
    struct rclient *rcl;
    void (*done)(struct ready_check *rc); /* frees rc */
    void *ctx;
    int pending;     /* replies still to come in this round */
    char reason[64]; /* "" when ready */
    const struct script *missing[16];
    int nmissing;
};

static int nscripts(const struct app *a)
{
    int n = 0;
    while (a->spec.scripts && a->spec.scripts[n] && n < 16)
        n++;
    return n;
}

/* Evicted records mean double execution or a broken chain: say so loudly, once. */
static void check_eviction_policy(struct app *a, const redisReply *info)
{
    if (atomic_exchange(&a->policy_checked, 1) || !info || info->type != REDIS_REPLY_STRING)
        return;
    const char *p = strstr(info->str, "maxmemory_policy:");
    char policy[64] = "unknown";
    if (p)
        sscanf(p + strlen("maxmemory_policy:"), "%63[^\r\n]", policy);
    if (strcmp(policy, "noeviction") != 0)
        log_warn(NULL, "redis maxmemory-policy is not noeviction: keys may be evicted",
                 LF_S("maxmemory_policy", policy));
}

/* The first failure names the outcome: "connect", "timeout", "pool_timeout", or
 * "scripts_not_loaded" for a script Redis would not take. */
static void ready_fail(struct ready_check *rc, enum rcl_status st)
{
    if (!rc->reason[0])
        snprintf(rc->reason, sizeof(rc->reason), "%s",
                 st == RCL_OK || st == RCL_REPLY_ERROR ? "scripts_not_loaded"
                                                       : rcl_status_name(st));
}

static void on_script_loaded(void *arg, enum rcl_status st, redisReply *reply)
{
    struct ready_check *rc = arg;
    if (st != RCL_OK || reply->type != REDIS_REPLY_STRING) {
        log_error(NULL, "script load failed",
                  LF_S("error", reply && reply->type == REDIS_REPLY_ERROR ? reply->str
                                                                          : rcl_status_name(st)));
        ready_fail(rc, st);
    }
    if (--rc->pending == 0)
        rc->done(rc);
}

static void load_missing(struct ready_check *rc)
{
    for (int i = 0; i < rc->nmissing; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", rc->missing[i]->source};
        if (rcl_command(rc->rcl, 3, argv, NULL, 0, on_script_loaded, rc) == 0)
            rc->pending++;
        else
            ready_fail(rc, RCL_CONN);
    }
    if (rc->pending == 0)
        rc->done(rc);
}

static void on_ready_reply(void *arg, enum rcl_status st, redisReply *reply)
{
    struct ready_check *rc = arg;
    if (st != RCL_OK) {
        ready_fail(rc, st == RCL_REPLY_ERROR ? RCL_CONN : st);
    } else if (reply->type == REDIS_REPLY_STRING) { /* INFO memory */
        check_eviction_policy(rc->a, reply);
    } else if (reply->type == REDIS_REPLY_ARRAY) { /* SCRIPT EXISTS */
        for (size_t i = 0; i < reply->elements && i < 16; i++)
            if (reply->element[i]->integer != 1)
                rc->missing[rc->nmissing++] = rc->a->spec.scripts[i];
    }
    if (--rc->pending > 0)
        return;
    if (!rc->reason[0] && rc->nmissing > 0)
        load_missing(rc);
    else
        rc->done(rc);
}

/* Start a check on the client of the loop running now; done(rc) runs later, on it. */
static void ready_check_start(struct app *a, struct rclient *rcl,
                              void (*done)(struct ready_check *rc), void *ctx)
{
    struct ready_check *rc = calloc(1, sizeof(*rc));
    if (!rc)
        abort(); /* a check that never answers would hang its caller */
    *rc = (struct ready_check){.a = a, .rcl = rcl, .done = done, .ctx = ctx};
    /* INFO memory answers like PING, and tells the eviction policy the first time. */
    static const char *const info[] = {"INFO", "memory"}, *const ping[] = {"PING"};
    int first = !atomic_load(&a->policy_checked);
    if (rcl_command(rcl, first ? 2 : 1, first ? info : ping, NULL, 0, on_ready_reply, rc) == 0)
        rc->pending++;
    int n = nscripts(a);
    if (n > 0) {
        const char *argv[18] = {"SCRIPT", "EXISTS"};
        for (int i = 0; i < n; i++)
            argv[i + 2] = a->spec.scripts[i]->sha1;
        if (rcl_command(rcl, n + 2, argv, NULL, 0, on_ready_reply, rc) == 0)
            rc->pending++;
        else
            ready_fail(rc, RCL_CONN);
    }
    if (rc->pending == 0) {
        ready_fail(rc, RCL_CONN);
        done(rc);
    }
}

static void ready_answer(struct ready_check *rc)
{
    struct http_req *r = rc->ctx;
    struct app *a = rc->a;
    char reason[64];
    if (atomic_load(&a->draining))
        http_reply_json(r, 503,
                        json_pack("{s:s,s:s}", "status", "not_ready", "redis", "shutting_down"));
    else if (rc->reason[0])
        http_reply_json(r, 503, json_pack("{s:s,s:s}", "status", "not_ready", "redis", rc->reason));
    else if (a->ready_fn && a->ready_fn(a->ready_arg, reason, sizeof(reason)) != 0)
        http_reply_json(
            r, 503,
            json_pack("{s:s,s:s,s:s}", "status", "not_ready", "redis", "ok", "reason", reason));
    else
        http_reply_json(r, 200, json_pack("{s:s,s:s}", "status", "ready", "redis", "ok"));
    free(rc);
    http_resume(r);
}

static void handle_ready(struct http_req *r, void *ctx)
{
    struct app *a = ctx;
    if (atomic_load(&a->draining)) {
        http_reply_json(r, 503,
                        json_pack("{s:s,s:s}", "status", "not_ready", "redis", "shutting_down"));
        return;
    }
    http_suspend(r);
    ready_check_start(a, app_rclient(r), ready_answer, r);
}

/* The same check from a thread outside the loops (start, systemd's STATUS): run on the
 * first worker, waited for. Returns 0 when Redis is ready, else -1 with the reason. */
struct waited_check {
    struct app *a;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finished;
    char reason[64];
};

static void waited_done(struct ready_check *rc)
{
    struct waited_check *w = rc->ctx;
    pthread_mutex_lock(&w->mu);
    snprintf(w->reason, sizeof(w->reason), "%s", rc->reason);
    w->finished = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    free(rc);
}

static void waited_start(struct loop *l, void *data, void *arg)
{
    struct app_worker *aw = data;
    struct waited_check *w = arg;
    (void)l;
    ready_check_start(w->a, aw->rcl, waited_done, w);
}

static int redis_check(struct app *a, char *reason, size_t size)
{
    struct waited_check w = {.a = a};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    if (http_post(a->http, waited_start, &w) != 0) {
        snprintf(w.reason, sizeof(w.reason), "internal");
        w.finished = 1;
    }
    pthread_mutex_lock(&w.mu);
    while (!w.finished)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    snprintf(reason, size, "%s", w.reason);
    return w.reason[0] ? -1 : 0;
}

/* The daemon's families, then the process_* ones. */
static void handle_metrics(struct http_req *r, void *ctx)
{
    struct app *a = ctx;
    size_t len = 0, plen = 0;
    char *text = metrics_render(a->metrics, &len);
    char *proc = text ? procstat_render(&plen) : NULL;
    char *all = proc ? realloc(text, len + plen + 1) : NULL;
    if (!all) {
        free(text);
        free(proc);
        http_problem(r, 500, "internal", "cannot render metrics");
        return;
    }
    memcpy(all + len, proc, plen + 1);
    http_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", all, len + plen);
    free(all);
    free(proc);
}

/* Counters whose label values are known before anything happens render at 0 from the
 * start, so that rate() and alerts see them before their first increment. */
static void known_series(struct app *a)
{
    static const char *const KINDS[] = {"pool_timeout", "connect", "timeout", "reply", NULL};
    struct metric *errors = metrics_find(a->metrics, "redis_errors_total");
    for (int i = 0; errors && KINDS[i]; i++)
        metric_with(errors, KINDS[i]);
}

/* ---- workers: every loop of either server has its Redis client ---------------------- */

static struct app_worker *worker_new(struct app *a, struct loop *l, int api)
{
    char err[160];
    struct app_worker *w = calloc(1, sizeof(*w));
    if (!w)
        abort(); /* at startup: nothing to serve without it */
    w->a = a;
    w->api = api;
    /* The configuration was checked by app_config_done(): only memory can fail here. */
    if (!(w->rcl = rcl_create(l, &a->rcl_conf, err, sizeof(err)))) {
        log_critical(NULL, "cannot create a Redis client", LF_S("error", err));
        abort();
    }
    if (api && a->worker_start)
        w->data = a->worker_start(l, a->worker_arg);
    return w;
}

static void *api_worker_start(struct loop *l, void *arg)
{
    return worker_new(arg, l, 1);
}

static void *metrics_worker_start(struct loop *l, void *arg)
{
    return worker_new(arg, l, 0);
}

static void worker_stop(void *data, void *arg)
{
    struct app_worker *w = data;
    struct app *a = arg;
    rcl_free(w->rcl); /* commands still waiting fail first, with the daemon's data alive */
    if (w->api && a->worker_stop)
        a->worker_stop(w->data, a->worker_arg);
    free(w);
}

/* A bad REDIS_URL or an unreadable TLS file is a configuration error: exit 2 at start
 * rather than fail every request. A client without idle connections opens nothing. */
static void check_redis_config(struct app *a)
{
    char err[160];
    struct rcl_config probe = a->rcl_conf;
    probe.min_idle = 0;
    probe.metrics = NULL;
    struct loop *l = loop_create(err, sizeof(err));
    struct rclient *c = l ? rcl_create(l, &probe, err, sizeof(err)) : NULL;
    if (!c) {
        fprintf(stderr, "%s: REDIS_URL: %s\n", a->spec.name, err);
        exit(2);
    }
    rcl_free(c);
    loop_free(l);
}

/* The METRICS_ADDR server: the API server's settings but its own address, no tokens (its
 * routes are outside /v1/), and the three routes a scraper and probes use. */
static void create_metrics_server(struct app *a)
{
    char err[160];
    a->mconf = a->hconf;
    a->mconf.listen = a->metrics_addr;
    a->mconf.api_token = NULL;
    a->mconf.admin_token = NULL;
    a->mconf.threads = 1; /* scrapes and probes */
    a->mmetrics = metrics_create(a->spec.name);
    a->mhttp = a->mmetrics ? http_create(&a->mconf, a->mmetrics, err, sizeof(err)) : NULL;
    if (!a->mhttp) {
        fprintf(stderr, "%s: METRICS_ADDR: %s\n", a->spec.name, a->mmetrics ? err : "no memory");
        exit(2);
    }
    http_on_worker(a->mhttp, metrics_worker_start, worker_stop, a);
    http_route(a->mhttp, "GET", "/health", handle_health, a, 0);
    http_route(a->mhttp, "GET", "/ready", handle_ready, a, 0);
    http_route(a->mhttp, "GET", "/metrics", handle_metrics, a, 0);
}

void app_config_done(struct app *a)
{
    char err[160];
    if (cfg_failed(a->cfg)) {
        fprintf(stderr, "%s: %s\n", a->spec.name, cfg_errstr(a->cfg));
        exit(2);
    }
    if (a->check_config) {
        cfg_print(a->cfg, stdout);
        exit(0);
    }
    log_start();
    check_redis_config(a);
    rcl_metrics_init(&a->rcl_metrics, a->metrics);
    a->http = http_create(&a->hconf, a->metrics, err, sizeof(err));
    if (!a->http) {
        fprintf(stderr, "%s: %s\n", a->spec.name, err);
        exit(2);
    }
    http_on_worker(a->http, api_worker_start, worker_stop, a);
    http_route(a->http, "GET", "/health", handle_health, a, 0);
    http_route(a->http, "GET", "/ready", handle_ready, a, 0);
    http_route(a->http, "GET", "/metrics", handle_metrics, a, 0);
    known_series(a);
    if (a->metrics_addr && a->metrics_addr[0])
        create_metrics_server(a);
}

/* ---- run and shut down ------------------------------------------------------------ */

static void log_startup(struct app *a)
{
    char reason[64];
    if (redis_check(a, reason, sizeof(reason)) == 0)
        log_info(NULL, "redis ready, scripts loaded");
    else /* not fatal: /ready stays 503 and every call retries */
        log_warn(NULL, "redis not ready at startup", LF_S("reason", reason));
    log_info(NULL, "redis client", LF_I("pool_size", a->rcl_conf.pool_size),
             LF_I("min_idle", a->rcl_conf.min_idle), LF_I("loops", a->rcl_conf.loops));
}

/* "ready", or "not ready (<reason>)": Redis as /ready sees it. */
static void redis_state(struct app *a, char *out, size_t size)
{
    char reason[64];
    if (redis_check(a, reason, sizeof(reason)) == 0)
        snprintf(out, size, "ready");
    else
        snprintf(out, size, "not ready (%s)", reason);
}

/* On the pulse thread: a STATUS= line whenever Redis's state changes. */
static void status_tick(void *arg)
{
    struct app *a = arg;
    char state[sizeof(a->redis_state)];
    redis_state(a, state, sizeof(state));
    if (strcmp(state, a->redis_state) == 0)
        return;
    snprintf(a->redis_state, sizeof(a->redis_state), "%s", state);
    sdn_send("STATUS=listening on %s; redis %s", http_listen_addr(a->http), state);
}

/* SIGHUP: the daemon's reload hook between RELOADING=1 and READY=1; a daemon without one
 * reads its settings at start only, and says so rather than pretend. */
static void on_sighup(struct app *a)
{
    if (!a->reload_fn) {
        log_info(NULL, "SIGHUP ignored: settings are read at start only; restart to apply "
                       "changes");
        return;
    }
    log_info(NULL, "SIGHUP: reloading");
    sdn_send("RELOADING=1\nSTATUS=reloading");
    a->reload_fn(a->reload_arg);
    sdn_send("READY=1\nSTATUS=listening on %s; reloaded", http_listen_addr(a->http));
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SHUTDOWN_TIMEOUT has passed with requests still in flight. Their handlers may be using
 * what the daemon frees next (auditd's appender), and the server cannot be stopped under
 * them without waiting for them: end the process here, with status 0 as after any
 * shutdown. Their clients see the connection close unanswered (outcome unknown, as after a
 * 503); nothing they sent was acknowledged. */
static void cut_off(struct app *a) __attribute__((noreturn));
static void cut_off(struct app *a)
{
    log_warn(NULL, "shutdown timeout: in-flight requests cut off",
             LF_I("in_flight", http_in_flight(a->http)));
    log_stop();
    _exit(0);
}

/* The order matters: the server quiesces first (no new connection, and a request whose
 * head arrives from now on is refused with 503 before any handler), then parked requests
 * are answered, then what is in flight is waited for, all within SHUTDOWN_TIMEOUT of the
 * signal. A handler runs only inside a request that http_in_flight() counts, so once none
 * is in flight after the quiesce, no handler runs and none can start. Only then does the
 * server stop and the daemon's shutdown hook free what handlers use. */
static void shut_down(struct app *a)
{
    int64_t deadline = now_ms() + a->shutdown_timeout_ms;
    atomic_store(&a->draining, 1);
    http_quiesce(a->http);
    if (a->mhttp)
        http_quiesce(a->mhttp);
    if (a->drain_fn)
        a->drain_fn(a->drain_arg);
    int64_t left = deadline - now_ms();
    if (http_drain(a->http, left > 0 ? left : 0) != 0)
        cut_off(a);
    http_stop(a->http);
    if (a->mhttp) {
        /* a scrape or probe in flight is short: a second at most */
        if (http_drain(a->mhttp, 1000) != 0)
            cut_off(a);
        http_stop(a->mhttp);
    }
    if (a->shutdown_fn)
        a->shutdown_fn(a->shutdown_arg);
}

int app_run(struct app *a)
{
    int sig = 0;
    if (http_start(a->http) != 0) {
        log_error(NULL, "cannot start", LF_S("error", http_errstr(a->http)));
        return 1;
    }
    if (a->mhttp && http_start(a->mhttp) != 0) {
        log_error(NULL, "cannot start the metrics listener", LF_S("error", http_errstr(a->mhttp)));
        return 1;
    }
    log_info(NULL, "listening", LF_S("addr", http_listen_addr(a->http)),
             LF_S("version", WARDEN_VERSION), LF_I("http_threads", a->hconf.threads));
    if (a->mhttp)
        log_info(NULL, "metrics listening", LF_S("addr", http_listen_addr(a->mhttp)));
    log_startup(a);
    /* Listening: systemd may start what depends on this unit. Redis may still be down
     * (/ready 503): STATUS says so, and says again when that changes. */
    redis_state(a, a->redis_state, sizeof(a->redis_state));
    sdn_send("READY=1\nSTATUS=listening on %s; redis %s", http_listen_addr(a->http),
             a->redis_state);
    a->pulse = sdn_pulse_start(status_tick, a);
    for (;;) {
        if (sigwait(&a->signals, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        on_sighup(a);
    }
    sdn_pulse_stop(a->pulse);
    a->pulse = NULL;
    sdn_send("STOPPING=1\nSTATUS=shutting down");
    log_info(NULL, "shutting down", LF_S("signal", sig == SIGINT ? "SIGINT" : "SIGTERM"),
             LF_I("in_flight", http_in_flight(a->http)));
    shut_down(a);
    log_info(NULL, "stopped");
    return 0;
}

void app_free(struct app *a)
{
    if (!a)
        return;
    http_free(a->mhttp);
    http_free(a->http);
    metrics_free(a->mmetrics);
    metrics_free(a->metrics);
    log_stop();
    cfg_free(a->cfg);
    free(a->args);
    free(a);
}
