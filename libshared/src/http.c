/* http: request checks and dispatch (routes in http_routes.c), JSON/problem responses,
 * deferred answers, access log and metrics over libmicrohttpd. */
#include "shared/http.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shared/conn_guard.h"
#include "shared/crypto.h"
#include "shared/jsonv.h"
#include "shared/listen.h"
#include "shared/log.h"

#include "http_routes.h"

/* 0: a thread per connection. Chosen by measurement: docs/architecture.md "Threading". */
#define HTTP_DEFAULT_THREADS 0
/* Per-connection threads need little stack: handlers keep small buffers only. */
#define HTTP_THREAD_STACK (512 * 1024)
#define HTTP_MAX_HEADERS 8
#define HTTP_RID_MAX 128

struct http_server {
    struct http_config conf;
    struct MHD_Daemon *mhd;
    struct conn_guard *guard; /* slots and request deadlines, while running */
    struct guard_metrics guard_metrics;
    struct listener lis;
    struct route_table routes;
    _Atomic int in_flight;
    struct metric *m_requests;
    struct metric *m_duration;
};

struct http_req {
    struct http_server *srv;
    struct MHD_Connection *conn;
    struct guard_conn *gc; /* the connection's deadline; NULL if unguarded */
    const struct route *route;
    const char *method;
    char *path;
    char rid[HTTP_RID_MAX + 1];
    struct timespec start;
    int started; /* first access-handler call done */

    char *body;
    size_t body_len, body_cap, discarded;
    int too_large;
    json_t *json;
    const char *params[HTTP_MAX_SEGS];
    struct owned_str *owned; /* decoded params and query values, freed with the request */

    int status;
    char *resp_body;
    size_t resp_len;
    const char *resp_ctype;
    char *hdr_name[HTTP_MAX_HEADERS], *hdr_value[HTTP_MAX_HEADERS];
    int nhdrs;

    /* Deferred answers: see http_suspend(). */
    pthread_mutex_t mu;
    pthread_cond_t resumed; /* thread-per-connection mode parks here */
    int want_suspend, suspended, resume_pending;
};

/* ---- configuration ------------------------------------------------------------ */

void http_config_load(struct http_config *hc, struct cfg *c, const char *daemon, int default_port,
                      uint64_t default_max_body)
{
    char def_listen[32];
    snprintf(def_listen, sizeof(def_listen), "127.0.0.1:%d", default_port);
    char def_body[32];
    snprintf(def_body, sizeof(def_body), "%lluB", (unsigned long long)default_max_body);

    hc->daemon = daemon;
    hc->listen = cfg_str(c, "LISTEN_ADDR", def_listen, listen_addr_ok,
                         "host:port, [v6]:port or unix:/path, port 0..65535");
    hc->threads = (int)cfg_int(c, "HTTP_THREADS", HTTP_DEFAULT_THREADS, 0, 1024);
    hc->max_body = cfg_size(c, "HTTP_MAX_BODY", def_body, 1, 1ull << 30);
    hc->connection_limit = (int)cfg_int(c, "HTTP_CONNECTION_LIMIT", 1024, 1, 1000000);
    hc->connection_timeout_ms =
        cfg_duration_ms(c, "HTTP_CONNECTION_TIMEOUT", "30s", 1000, 24 * 3600 * 1000);
    hc->api_token = cfg_secret(c, "API_TOKEN");
    hc->admin_token = cfg_secret(c, "ADMIN_TOKEN");
}

/* ---- routing (http_routes.c) ------------------------------------------------------ */

void http_route(struct http_server *s, const char *method, const char *pattern, http_handler h,
                void *ctx, unsigned flags)
{
    routes_add(&s->routes, method, pattern, h, ctx, flags);
}

/* ---- responses ------------------------------------------------------------------ */

static const char *status_title(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : "OK";
    }
}

void http_add_header(struct http_req *r, const char *name, const char *value)
{
    if (r->nhdrs >= HTTP_MAX_HEADERS)
        return;
    r->hdr_name[r->nhdrs] = strdup(name);
    r->hdr_value[r->nhdrs] = strdup(value);
    r->nhdrs++;
}

static void set_response(struct http_req *r, int status, const char *ctype, char *body, size_t len)
{
    free(r->resp_body); /* a second answer replaces the first; handlers give one */
    r->status = status;
    r->resp_ctype = ctype;
    r->resp_body = body;
    r->resp_len = len;
}

void http_reply_json(struct http_req *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        set_response(r, 500, "application/problem+json", NULL, 0);
        return;
    }
    set_response(r, status, "application/json", text, strlen(text));
}

void http_reply_raw(struct http_req *r, int status, const char *content_type, const void *body,
                    size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (copy && len)
        memcpy(copy, body, len);
    set_response(r, status, content_type, copy, copy ? len : 0);
}

static void problem_v(struct http_req *r, int status, const char *code, json_t *ext,
                      const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void problem_v(struct http_req *r, int status, const char *code, json_t *ext,
                      const char *fmt, va_list ap)
{
    char detail[512];
    vsnprintf(detail, sizeof(detail), fmt, ap);
    json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "type", "about:blank", "title",
                          status_title(status), "status", status, "code", code, "detail", detail,
                          "request_id", r->rid);
    if (ext && o)
        json_object_update(o, ext);
    json_decref(ext);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    set_response(r, status, "application/problem+json", text, text ? strlen(text) : 0);
}

void http_problem(struct http_req *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_v(r, status, code, NULL, fmt, ap);
    va_end(ap);
}

void http_problem_ext(struct http_req *r, int status, const char *code, json_t *ext,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_v(r, status, code, ext, fmt, ap);
    va_end(ap);
}

void http_invalid(struct http_req *r, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_v(r, 400, "invalid_request", json_pack("{s:s}", "field", field), fmt, ap);
    va_end(ap);
}

void http_unavailable(struct http_req *r)
{
    http_add_header(r, "Retry-After", "1");
    http_problem(r, 503, "backend_unavailable", "the backing store is unavailable; retry later");
}

static enum MHD_Result queue(struct http_req *r)
{
    if (r->status == 0)
        http_problem(r, 500, "internal", "the handler gave no answer");
    if (!r->resp_body && r->resp_len == 0 && r->status >= 400)
        r->resp_ctype = "application/problem+json";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->resp_len, r->resp_body, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        return MHD_NO;
    r->resp_body = NULL; /* owned by MHD now */
    MHD_add_response_header(resp, "Content-Type",
                            r->resp_ctype ? r->resp_ctype : "application/json");
    MHD_add_response_header(resp, "X-Request-ID", r->rid);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    for (int i = 0; i < r->nhdrs; i++)
        if (r->hdr_name[i] && r->hdr_value[i])
            MHD_add_response_header(resp, r->hdr_name[i], r->hdr_value[i]);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- request accessors ------------------------------------------------------------ */

const char *http_method(const struct http_req *r)
{
    return r->method;
}
const char *http_path(const struct http_req *r)
{
    return r->path;
}
const char *http_request_id(const struct http_req *r)
{
    return r->rid;
}
json_t *http_json(const struct http_req *r)
{
    return r->json;
}

const char *http_param(const struct http_req *r, const char *name)
{
    return r->route ? routes_param(r->route, r->params, name) : NULL;
}

const char *http_query(struct http_req *r, const char *name)
{
    const char *raw = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    return raw ? owned_decode(&r->owned, raw, strlen(raw), 1) : NULL;
}

const char *http_header(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* ---- the request path ------------------------------------------------------------ */

static int rid_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= HTTP_RID_MAX && jv_token_ok(s, n, "._:-");
}

/* Is this content type JSON? application/json, optionally with parameters. */
static int json_ctype(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static int has_body_method(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

/* Bearer check for /v1/...: admin routes take ADMIN_TOKEN when set, else API_TOKEN. */
static int authorized(struct http_req *r)
{
    const struct http_config *c = &r->srv->conf;
    const char *want = c->api_token;
    if (r->route && (r->route->flags & HTTP_ADMIN) && c->admin_token)
        want = c->admin_token;
    if (!want || strncmp(r->path, "/v1/", 4) != 0)
        return 1;
    const char *auth = http_header(r, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    return crypto_str_equal(auth + 7, want);
}

/* Checks made on the headers alone, before any body byte is read. Returns 0 to go on, or
 * -1 with a response set. */
static int check_headers(struct http_req *r)
{
    char allow[128];
    r->route = routes_find(&r->srv->routes, r->method, r->path, r->params, &r->owned, allow,
                           sizeof(allow));
    if (!authorized(r)) {
        http_add_header(r, "WWW-Authenticate", "Bearer");
        http_problem(r, 401, "unauthorized", "a valid bearer token is required");
        return -1;
    }
    if (!r->route && allow[0]) {
        http_add_header(r, "Allow", allow);
        http_problem(r, 405, "method_not_allowed", "%s is not allowed here", r->method);
        return -1;
    }
    if (!r->route) {
        http_problem(r, 404, "not_found", "no such route");
        return -1;
    }
    const char *cl = http_header(r, "Content-Length");
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && *end == '\0' && n > r->srv->conf.max_body) {
            http_problem(r, 413, "body_too_large", "the body is larger than %llu bytes",
                         (unsigned long long)r->srv->conf.max_body);
            return -1;
        }
    }
    if (has_body_method(r->method) && !(r->route->flags & HTTP_NO_BODY) &&
        !json_ctype(http_header(r, "Content-Type"))) {
        http_problem(r, 415, "unsupported_media_type", "the body must be application/json");
        return -1;
    }
    return 0;
}

/* Take a chunk of the body, within HTTP_MAX_BODY; beyond it the rest is discarded and
 * 413 answered once the upload ends (MHD cannot answer in the middle of an upload). */
static int take_body(struct http_req *r, const char *data, size_t len)
{
    if (r->too_large || r->body_len + len > r->srv->conf.max_body) {
        r->too_large = 1;
        r->discarded += len;
        /* A client that keeps streaming long past the limit is cut off. */
        return r->discarded > 16 * r->srv->conf.max_body ? -1 : 0;
    }
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb)
            return -1;
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

/* The whole request is in: check and parse the body, then run the handler. */
static void dispatch(struct http_req *r)
{
    if (r->too_large) {
        http_problem(r, 413, "body_too_large", "the body is larger than %llu bytes",
                     (unsigned long long)r->srv->conf.max_body);
        return;
    }
    if (has_body_method(r->method) && !(r->route->flags & HTTP_NO_BODY)) {
        json_error_t jerr;
        r->json = json_loadb(r->body ? r->body : "", r->body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!r->json || !json_is_object(r->json)) {
            http_problem(r, 400, "invalid_json",
                         r->json ? "the body must be a JSON object" : "the body is not valid JSON");
            return;
        }
    }
    r->route->handler(r, r->route->ctx);
}

/* After the handler: queue its answer, or park the connection if it deferred. The
 * resume may already have happened on another thread; then answer now. */
static enum MHD_Result finish(struct http_req *r)
{
    pthread_mutex_lock(&r->mu);
    if (r->want_suspend && r->srv->conf.threads == 0) {
        /* The connection has a thread of its own: parking it holds nobody else up. */
        while (!r->resume_pending)
            pthread_cond_wait(&r->resumed, &r->mu);
    } else if (r->want_suspend && !r->resume_pending) {
        r->suspended = 1;
        MHD_suspend_connection(r->conn);
        pthread_mutex_unlock(&r->mu);
        return MHD_YES;
    }
    r->want_suspend = 0;
    pthread_mutex_unlock(&r->mu);
    return queue(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct http_req *r = *req_cls;
    (void)cls, (void)url, (void)version;
    if (!r)
        return MHD_NO;
    if (!r->started) {
        r->started = 1;
        r->conn = conn;
        r->method = method;
        const char *rid = http_header(r, "X-Request-ID");
        if (rid_ok(rid)) {
            snprintf(r->rid, sizeof(r->rid), "%s", rid);
        } else {
            uint8_t rnd[8];
            crypto_random(rnd, sizeof(rnd));
            crypto_hex(rnd, sizeof(rnd), r->rid);
        }
        if (check_headers(r) != 0)
            return queue(r);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        int rc = take_body(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return rc == 0 ? MHD_YES : MHD_NO;
    }
    if (r->suspended) { /* resumed: the answer is ready */
        r->suspended = 0;
        return queue(r);
    }
    guard_disarm(r->gc); /* the request is in; the handler's time does not count */
    dispatch(r);
    return finish(r);
}

void http_suspend(struct http_req *r)
{
    r->want_suspend = 1;
}

void http_resume(struct http_req *r)
{
    pthread_mutex_lock(&r->mu);
    struct MHD_Connection *parked = r->suspended ? r->conn : NULL;
    if (!parked) {
        r->resume_pending = 1;
        pthread_cond_signal(&r->resumed);
    }
    pthread_mutex_unlock(&r->mu);
    /* Last: a worker may answer and free r as soon as the connection is resumed. */
    if (parked)
        MHD_resume_connection(parked);
}

/* MHD calls this first for every request, with the raw URI: the request starts here. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct http_server *s = cls;
    struct http_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->gc = ci ? ci->socket_context : NULL;
    size_t plen = strcspn(uri, "?");
    r->path = strndup(uri, plen);
    if (!r->path) {
        free(r);
        return NULL;
    }
    r->srv = s;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->resumed, NULL);
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    atomic_fetch_add(&s->in_flight, 1);
    return r;
}

static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};
    for (size_t i = 0; m && i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "other";
}

static void free_req(struct http_req *r)
{
    owned_free(&r->owned);
    for (int i = 0; i < r->nhdrs; i++) {
        free(r->hdr_name[i]);
        free(r->hdr_value[i]);
    }
    json_decref(r->json);
    free(r->body);
    free(r->resp_body);
    free(r->path);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->resumed);
    free(r);
}

/* The request is over (answered, or the client went away): count, log, free. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_req *r = *req_cls;
    (void)conn;
    if (!r)
        return;
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    long long us = (long long)(end.tv_sec - r->start.tv_sec) * 1000000 +
                   (end.tv_nsec - r->start.tv_nsec) / 1000;
    const char *route = r->route ? r->route->pattern : "unmatched";
    const char *method = method_label(r->method);
    char code[8];
    snprintf(code, sizeof(code), "%d", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status : 0);
    metric_inc(metric_with(s->m_requests, route, method, code));
    metric_observe(metric_with(s->m_duration, route), (double)us / 1e6);
    /* The path is not logged: it may carry caller secrets in its query. */
    log_info(r->rid[0] ? r->rid : NULL, "request", LF_S("method", method), LF_S("route", route),
             LF_I("status", atoi(code)), LF_I("duration_us", us));
    *req_cls = NULL;
    guard_arm(r->gc); /* the next request on this connection has its own deadline */
    free_req(r);
    atomic_fetch_sub(&s->in_flight, 1);
}

/* Every accepted connection needs a slot. Refused ones are closed at once, in both
 * threading modes, instead of waiting in the listen backlog for a slot to free up. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct http_server *s = cls;
    (void)addr, (void)addrlen;
    return guard_admit(s->guard) ? MHD_YES : MHD_NO;
}

/* MHD calls this when a connection starts, and when it ends before closing its socket. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? guard_open(s->guard, ci->connect_fd) : NULL;
        return;
    }
    guard_close(s->guard, *socket_context);
    *socket_context = NULL;
}

/* Keep the path raw: parameters are decoded per segment, query values on lookup. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls, (void)c;
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[256];
    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    log_warn(NULL, "http server", LF_S("detail", line));
}

/* ---- lifecycle ---------------------------------------------------------------------- */

struct http_server *http_create(const struct http_config *conf, struct metrics *metrics, char *err,
                                size_t errsize)
{
    struct http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    s->conf = *conf;
    s->lis.fd = -1;
    s->m_requests = metrics_counter(metrics, "http_requests_total", "HTTP requests answered.",
                                    "route,method,code");
    s->m_duration = metrics_histogram(metrics, "http_request_duration_seconds",
                                      "Time from request line to answer.", "route",
                                      METRICS_LATENCY_BUCKETS, METRICS_LATENCY_BUCKETS_N);
    guard_metrics_init(&s->guard_metrics, metrics);
    return s;
}

int http_start(struct http_server *s)
{
    if (listener_open(&s->lis, s->conf.listen) != 0)
        return -1;
    s->guard =
        guard_create(s->conf.connection_limit, s->conf.connection_timeout_ms, &s->guard_metrics);
    if (!s->guard) {
        snprintf(s->lis.errstr, sizeof(s->lis.errstr), "cannot start the connection watchdog");
        listener_close(&s->lis);
        return -1;
    }
    /* The guard enforces HTTP_CONNECTION_LIMIT. MHD's own limit sits above it, even for
     * one pool worker (MHD splits its limit among them): a daemon at its limit stops
     * accepting, and new connections would hang in the backlog instead of being refused. */
    unsigned mhd_limit = (unsigned)(s->conf.connection_limit + 1) *
                         (unsigned)(s->conf.threads ? s->conf.threads : 1);
    /* The idle timeout (whole seconds) closes silent connections; the guard also cuts off
     * a connection that keeps sending but never completes its request. */
    unsigned timeout_s = (unsigned)((s->conf.connection_timeout_ms + 999) / 1000);
    /* threads == 0: a thread per connection (poll); else a pool of epoll workers that
     * park deferred requests with MHD_suspend_connection. ITC lets MHD_quiesce_daemon()
     * wake the listener at shutdown in both modes. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    flags |= s->conf.threads == 0 ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL
                                  : MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    /* The pool size is an option only in pool mode (MHD warns about a zero size). */
    struct MHD_OptionItem pool[] = {
        {s->conf.threads ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)s->conf.threads,
         NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    s->mhd = MHD_start_daemon(
        flags, 0, on_accept, s, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, s->lis.fd, MHD_OPTION_ARRAY, pool, MHD_OPTION_THREAD_STACK_SIZE,
        (size_t)HTTP_THREAD_STACK, MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL, MHD_OPTION_END);
    if (!s->mhd) {
        snprintf(s->lis.errstr, sizeof(s->lis.errstr), "cannot start the HTTP server on %.100s",
                 s->lis.desc);
        listener_close(&s->lis);
        guard_free(s->guard);
        s->guard = NULL;
        return -1;
    }
    return 0;
}

const char *http_errstr(const struct http_server *s)
{
    return s->lis.errstr;
}

const char *http_listen_addr(const struct http_server *s)
{
    return s->lis.desc;
}

int http_in_flight(struct http_server *s)
{
    return atomic_load(&s->in_flight);
}

void http_quiesce(struct http_server *s)
{
    if (!s->mhd || s->lis.fd < 0)
        return;
    /* MHD hands the listening socket back: ours to close. */
    if (MHD_quiesce_daemon(s->mhd) == MHD_INVALID_SOCKET)
        return;
    listener_close(&s->lis);
}

int http_drain(struct http_server *s, int64_t timeout_ms)
{
    struct timespec step = {.tv_sec = 0, .tv_nsec = 10 * 1000000};
    for (int64_t waited = 0; atomic_load(&s->in_flight) > 0; waited += 10) {
        if (waited >= timeout_ms)
            return -1;
        nanosleep(&step, NULL);
    }
    return 0;
}

void http_stop(struct http_server *s)
{
    if (s->mhd) {
        MHD_stop_daemon(s->mhd);
        s->mhd = NULL;
        s->lis.fd = -1; /* MHD closes a listening socket it still holds */
    }
    guard_free(s->guard); /* after MHD: every connection is closed by now */
    s->guard = NULL;
    listener_close(&s->lis);
}

void http_free(struct http_server *s)
{
    if (!s)
        return;
    http_stop(s);
    routes_free(&s->routes);
    free(s);
}
