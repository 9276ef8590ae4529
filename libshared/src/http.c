/* http: request checks and dispatch (routes in http_routes.c, framing in http1.c),
 * JSON/problem responses, deferred answers, access log and metrics, and the server that
 * reads requests from its connections and writes the answers. */
#include "shared/http.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "shared/conn_guard.h"
#include "shared/crypto.h"
#include "shared/jsonv.h"
#include "shared/listen.h"
#include "shared/log.h"

#include "http1.h"
#include "http_routes.h"

/* HTTP_THREADS: 0, the default, is a thread per connection; docs/architecture.md. */
#define HTTP_DEFAULT_THREADS 0
/* Connection threads need little stack: handlers keep small buffers only. */
#define HTTP_THREAD_STACK (512 * 1024)
#define HTTP_MAX_HEADERS 8
#define HTTP_RID_MAX 128
/* A connection's input buffer: starts small, grows up to the head limit plus room to read
 * the body into after the head. */
#define HTTP_IN_INITIAL 4096
#define HTTP_IN_BODY_ROOM 16384
/* After an error answer the client may still be sending: what is in flight is read and
 * dropped for a moment before the close, or the close would reset the connection and
 * could destroy the answer before the client reads it. */
#define HTTP_LINGER_MS 500
#define HTTP_LINGER_BYTES (256 * 1024)

struct http_conn;

struct http_server {
    struct http_config conf;
    struct conn_guard *guard; /* slots and request deadlines, while running */
    struct guard_metrics guard_metrics;
    struct listener lis;
    struct route_table routes;
    _Atomic int in_flight;
    _Atomic int quiescing; /* no new connections; requests still arriving get 503 */
    struct metric *m_requests;
    struct metric *m_duration;

    int wake_fd; /* eventfd: wakes the accept thread to stop */
    pthread_t acceptor;
    int accepting; /* the accept thread runs */
    pthread_mutex_t conns_mu;
    pthread_cond_t conns_gone;
    struct http_conn *conns; /* every open connection */
};

struct http_conn {
    struct http_server *srv;
    struct http_conn *prev, *next;
    int fd;
    struct guard_conn *gc; /* the connection's deadline; NULL if unguarded */
    char *in;              /* bytes received, not yet consumed */
    size_t in_len, in_cap;
};

struct http_req {
    struct http_server *srv;
    struct http_conn *conn;
    struct http1 msg; /* the parsed head and the body */
    const struct route *route;
    const char *method;
    const char *path;  /* the target up to '?', still percent-encoded */
    const char *query; /* after '?', or NULL */
    char rid[HTTP_RID_MAX + 1];
    struct timespec start;

    json_t *json;
    const char *params[HTTP_MAX_SEGS];
    struct owned_str *owned; /* decoded params and query values, freed with the request */

    int status;
    char *resp_body;
    size_t resp_len;
    const char *resp_ctype;
    char *hdr_name[HTTP_MAX_HEADERS], *hdr_value[HTTP_MAX_HEADERS];
    int nhdrs;
    int close; /* close the connection after the answer */

    /* Deferred answers: see http_suspend(). */
    pthread_mutex_t mu;
    pthread_cond_t resumed;
    int want_suspend, resume_pending;
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
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
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

/* The first name=value of the query with this (raw) name; a name without '=' has no
 * value. */
const char *http_query(struct http_req *r, const char *name)
{
    size_t nlen = strlen(name);
    for (const char *p = r->query; p && *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        if (eq && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0)
            return owned_decode(&r->owned, eq + 1, len - nlen - 1, 1);
        p += len + (p[len] == '&');
    }
    return NULL;
}

const char *http_header(struct http_req *r, const char *name)
{
    return http1_header(&r->msg, name);
}

/* ---- the request path ------------------------------------------------------------ */

static int rid_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= HTTP_RID_MAX && jv_token_ok(s, n, "._:-");
}

/* A fresh request id: 64 bits from a per-thread generator seeded once from the system's
 * random source (splitmix64), not a system call per request. Ids need to be unique, not
 * secret. */
static void new_rid(char out[17])
{
    static _Thread_local uint64_t state;
    static _Thread_local int seeded;
    if (!seeded) {
        crypto_random(&state, sizeof(state));
        seeded = 1;
    }
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(z >> (8 * i));
    crypto_hex(b, sizeof(b), out);
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

/* Checks made on the head alone, before any body byte is read. Returns 0 to go on, or
 * -1 with a response set. */
static int check_headers(struct http_req *r)
{
    char allow[128];
    if (atomic_load(&r->srv->quiescing)) {
        http_add_header(r, "Retry-After", "1");
        http_problem(r, 503, "shutting_down", "the server is shutting down; retry elsewhere");
        return -1;
    }
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
    if (r->msg.n_cl && r->msg.hp.content_length > r->srv->conf.max_body) {
        http_problem(r, 413, "body_too_large", "the body is larger than %llu bytes",
                     (unsigned long long)r->srv->conf.max_body);
        return -1;
    }
    if (has_body_method(r->method) && !(r->route->flags & HTTP_NO_BODY) &&
        !json_ctype(http_header(r, "Content-Type"))) {
        http_problem(r, 415, "unsupported_media_type", "the body must be application/json");
        return -1;
    }
    return 0;
}

/* The whole request is in: parse the body, then run the handler. */
static void dispatch(struct http_req *r)
{
    if (has_body_method(r->method) && !(r->route->flags & HTTP_NO_BODY)) {
        json_error_t jerr;
        r->json = json_loadb(r->msg.body ? r->msg.body : "", r->msg.body_len,
                             JSON_REJECT_DUPLICATES, &jerr);
        if (!r->json || !json_is_object(r->json)) {
            http_problem(r, 400, "invalid_json",
                         r->json ? "the body must be a JSON object" : "the body is not valid JSON");
            return;
        }
    }
    r->route->handler(r, r->route->ctx);
    /* A deferred answer: this thread is the connection's, so waiting holds nobody else up. */
    pthread_mutex_lock(&r->mu);
    while (r->want_suspend && !r->resume_pending)
        pthread_cond_wait(&r->resumed, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

void http_suspend(struct http_req *r)
{
    r->want_suspend = 1;
}

void http_resume(struct http_req *r)
{
    pthread_mutex_lock(&r->mu);
    r->resume_pending = 1;
    pthread_cond_signal(&r->resumed);
    pthread_mutex_unlock(&r->mu);
}

/* ---- writing answers -------------------------------------------------------------- */

/* The Date header's value, formatted once a second per thread. */
static const char *http_date(void)
{
    static _Thread_local char buf[32];
    static _Thread_local time_t at;
    time_t now = time(NULL);
    if (now != at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        at = now;
    }
    return buf;
}

/* Send all of iov (modified), or -1. */
static int send_all(int fd, struct iovec *iov, int n)
{
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    while (mh.msg_iovlen > 0) {
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        while (mh.msg_iovlen > 0 && (size_t)w >= mh.msg_iov->iov_len) {
            w -= (ssize_t)mh.msg_iov->iov_len;
            mh.msg_iov++;
            mh.msg_iovlen--;
        }
        if (mh.msg_iovlen > 0) {
            mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + w;
            mh.msg_iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Write the answer: the head in one buffer, the body beside it, in one system call. */
static int send_answer(struct http_req *r, int keep_alive)
{
    if (r->status == 0)
        http_problem(r, 500, "internal", "the handler gave no answer");
    if (!r->resp_body && r->resp_len == 0 && r->status >= 400)
        r->resp_ctype = "application/problem+json";
    char head[2048];
    size_t n =
        (size_t)snprintf(head, sizeof(head),
                         "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                         "X-Request-ID: %s\r\nCache-Control: no-store\r\n%s",
                         r->status, status_title(r->status), http_date(),
                         r->resp_ctype ? r->resp_ctype : "application/json", r->resp_len, r->rid,
                         !keep_alive                 ? "Connection: close\r\n"
                         : r->msg.hp.http_minor == 0 ? "Connection: keep-alive\r\n"
                                                     : "");
    for (int i = 0; i < r->nhdrs && n < sizeof(head); i++)
        if (r->hdr_name[i] && r->hdr_value[i])
            n += (size_t)snprintf(head + n, sizeof(head) - n, "%s: %s\r\n", r->hdr_name[i],
                                  r->hdr_value[i]);
    if (n + 2 >= sizeof(head)) /* headers are the handlers' own, short: a bug */
        return -1;
    memcpy(head + n, "\r\n", 2);
    struct iovec iov[2] = {{head, n + 2}, {r->resp_body, r->resp_len}};
    return send_all(r->conn->fd, iov, r->resp_len ? 2 : 1);
}

/* ---- a request's life on its connection ---------------------------------------------- */

static struct http_req *req_new(struct http_conn *c)
{
    struct http_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->srv = c->srv;
    r->conn = c;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->resumed, NULL);
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    atomic_fetch_add(&c->srv->in_flight, 1);
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

/* The request is over (answered, or the client went away: status 0): count, log, free. */
static void req_end(struct http_req *r, int status)
{
    struct http_server *s = r->srv;
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    long long us = (long long)(end.tv_sec - r->start.tv_sec) * 1000000 +
                   (end.tv_nsec - r->start.tv_nsec) / 1000;
    const char *route = r->route ? r->route->pattern : "unmatched";
    const char *method = method_label(r->method);
    char code[8];
    snprintf(code, sizeof(code), "%d", status);
    metric_inc(metric_with(s->m_requests, route, method, code));
    metric_observe(metric_with(s->m_duration, route), (double)us / 1e6);
    /* The path is not logged: it may carry caller secrets in its query. */
    log_info(r->rid, "request", LF_S("method", method), LF_S("route", route),
             LF_I("status", status), LF_I("duration_us", us));
    owned_free(&r->owned);
    for (int i = 0; i < r->nhdrs; i++) {
        free(r->hdr_name[i]);
        free(r->hdr_value[i]);
    }
    json_decref(r->json);
    http1_clear(&r->msg);
    free(r->resp_body);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->resumed);
    free(r);
    atomic_fetch_sub(&s->in_flight, 1);
}

/* Answer r, end it, and say whether the connection goes on (0) or closes (-1). */
static int answer(struct http_req *r)
{
    int keep = r->msg.keep_alive && !r->close && !atomic_load(&r->srv->quiescing);
    int sent = send_answer(r, keep);
    req_end(r, sent == 0 ? r->status : 0);
    return sent == 0 && keep ? 0 : -1;
}

/* Read more bytes into c->in at offset at (the buffer has room). Returns the count, 0 at
 * the end of the stream, -1 on error (a watchdog's shutdown ends the stream too). */
static ssize_t conn_read(struct http_conn *c, size_t at)
{
    ssize_t n;
    do
        n = recv(c->fd, c->in + at, c->in_cap - at, 0);
    while (n < 0 && errno == EINTR);
    return n;
}

/* Read until c->in holds a whole head. Returns its length, 0 when the connection ended
 * first, or -1 when the head outgrew the limit. */
static size_t read_head(struct http_conn *c, int *too_large)
{
    size_t head;
    *too_large = 0;
    while (!(head = http1_head_end(c->in, c->in_len))) {
        if (c->in_len >= HTTP1_HEAD_MAX) {
            *too_large = 1;
            return 0;
        }
        if (c->in_cap - c->in_len < 1024) {
            size_t cap = c->in_cap * 2 > HTTP1_HEAD_MAX + HTTP_IN_BODY_ROOM
                             ? HTTP1_HEAD_MAX + HTTP_IN_BODY_ROOM
                             : c->in_cap * 2;
            char *nb = realloc(c->in, cap);
            if (!nb)
                return 0;
            c->in = nb;
            c->in_cap = cap;
        }
        ssize_t n = conn_read(c, c->in_len);
        if (n <= 0)
            return 0;
        c->in_len += (size_t)n;
    }
    /* Room to read the body after the head: the head's strings point into c->in, so it
     * must not move until the request is answered. */
    if (c->in_cap - head < HTTP_IN_BODY_ROOM) {
        char *nb = realloc(c->in, head + HTTP_IN_BODY_ROOM);
        if (!nb)
            return 0;
        c->in = nb;
        c->in_cap = head + HTTP_IN_BODY_ROOM;
    }
    return head;
}

/* Take the body from what follows the head in c->in, then from the socket, reading into
 * the room after the head. Returns the offset in c->in where the next request starts, or
 * 0 when the connection ended first or the body was refused (r->msg says so). */
static size_t read_body(struct http_conn *c, struct http_req *r, size_t head)
{
    size_t pos = head;
    while (r->msg.state == HTTP1_BODY) {
        if (pos == c->in_len) {
            pos = c->in_len = head;
            ssize_t n = conn_read(c, head);
            if (n <= 0)
                return 0;
            c->in_len += (size_t)n;
        }
        long used = http1_body(&r->msg, c->in + pos, c->in_len - pos);
        if (used < 0)
            return 0;
        pos += (size_t)used;
    }
    return pos;
}

/* Answer a request refused before its handler, and close: the client may still be
 * sending a body nobody reads, so what is in flight is dropped for a moment first. */
static int refuse_and_close(struct http_req *r)
{
    struct http_conn *c = r->conn;
    r->close = 1;
    answer(r);
    shutdown(c->fd, SHUT_WR);
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    char sink[4096];
    for (size_t dropped = 0; dropped < HTTP_LINGER_BYTES;) {
        if (poll(&pf, 1, HTTP_LINGER_MS) <= 0)
            break;
        ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n <= 0)
            break;
        dropped += (size_t)n;
    }
    return -1;
}

/* A request the codec refused: the problem it names. */
static int refuse_framing(struct http_req *r)
{
    const struct http1 *m = &r->msg;
    const char *code = m->status == 413   ? "body_too_large"
                       : m->status == 431 ? "headers_too_large"
                       : m->status == 501 ? "not_implemented"
                       : m->status == 505 ? "http_version_not_supported"
                       : m->status == 500 ? "internal"
                                          : "bad_request";
    if (m->status == 413)
        http_problem(r, 413, code, "the body is larger than %llu bytes",
                     (unsigned long long)r->srv->conf.max_body);
    else
        http_problem(r, m->status, code, "%s", m->error ? m->error : "malformed request");
    return refuse_and_close(r);
}

/* Serve the next request of c. Returns 0 to go on with the connection, -1 to close it. */
static int serve_one(struct http_conn *c)
{
    int too_large;
    size_t head = read_head(c, &too_large);
    if (head == 0 && !too_large)
        return -1; /* gone, or cut off by the watchdog, between requests */
    struct http_req *r = req_new(c);
    if (!r)
        return -1;
    new_rid(r->rid);
    if (too_large) {
        r->msg.status = 431;
        r->msg.error = "the request head is too large";
        return refuse_framing(r);
    }
    if (http1_parse_head(&r->msg, c->in, head, r->srv->conf.max_body) != 0)
        return refuse_framing(r);
    r->method = r->msg.method;
    r->path = r->msg.target;
    char *q = strchr(r->msg.target, '?');
    if (q) {
        *q = '\0';
        r->query = q + 1;
    }
    const char *rid = http_header(r, "X-Request-ID");
    if (rid_ok(rid))
        snprintf(r->rid, sizeof(r->rid), "%s", rid);
    if (check_headers(r) != 0)
        return r->msg.state == HTTP1_BODY ? refuse_and_close(r) : answer(r);
    if (r->msg.state == HTTP1_BODY && r->msg.expect_continue) {
        static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        struct iovec iov = {cont, sizeof(cont) - 1};
        if (send_all(c->fd, &iov, 1) != 0) {
            req_end(r, 0);
            return -1;
        }
    }
    size_t next = read_body(c, r, head);
    if (r->msg.state == HTTP1_ERROR)
        return refuse_framing(r);
    if (next == 0) {
        req_end(r, 0); /* the client went away mid-body */
        return -1;
    }
    guard_disarm(c->gc); /* the request is in; the handler's time does not count */
    dispatch(r);
    int rc = answer(r);
    /* What is left is the start of the next request (pipelined). */
    memmove(c->in, c->in + next, c->in_len - next);
    c->in_len -= next;
    guard_arm(c->gc); /* the next request has its own deadline */
    return rc;
}

/* ---- connections --------------------------------------------------------------------- */

static void *conn_main(void *arg)
{
    struct http_conn *c = arg;
    struct http_server *s = c->srv;
    while (serve_one(c) == 0)
        ;
    pthread_mutex_lock(&s->conns_mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (!s->conns)
        pthread_cond_broadcast(&s->conns_gone);
    pthread_mutex_unlock(&s->conns_mu);
    guard_close(s->guard, c->gc); /* before close: the watchdog never sees a reused fd */
    close(c->fd);
    free(c->in);
    free(c);
    return NULL;
}

/* Start a thread for an accepted connection (its slot taken). Closes fd on failure. */
static void conn_start(struct http_server *s, int fd)
{
    struct http_conn *c = calloc(1, sizeof(*c));
    char *in = malloc(HTTP_IN_INITIAL);
    if (!c || !in)
        goto fail;
    c->srv = s;
    c->fd = fd;
    c->in = in;
    c->in_cap = HTTP_IN_INITIAL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails on unix: fine */
    c->gc = guard_open(s->guard, fd);
    pthread_mutex_lock(&s->conns_mu);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, HTTP_THREAD_STACK);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, conn_main, c);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        s->conns = c->next;
        if (c->next)
            c->next->prev = NULL;
    }
    pthread_mutex_unlock(&s->conns_mu);
    if (rc == 0)
        return;
    log_warn(NULL, "http server", LF_S("detail", "cannot start a connection thread"));
fail:
    guard_close(s->guard, c ? c->gc : NULL); /* gives the slot back */
    close(fd);
    free(in);
    free(c);
}

/* The accept thread: a connection needs a slot, else it is closed at once instead of
 * waiting in the listen backlog for one to free up. */
static void *accept_main(void *arg)
{
    struct http_server *s = arg;
    struct pollfd pf[2] = {{.fd = s->lis.fd, .events = POLLIN},
                           {.fd = s->wake_fd, .events = POLLIN}};
    for (;;) {
        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break;
        int fd = accept4(s->lis.fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warn(NULL, "http server", LF_S("detail", strerror(errno)));
                poll(NULL, 0, 10); /* the backlog keeps them: try again shortly */
            }
            continue;
        }
        if (!guard_admit(s->guard)) {
            close(fd);
            continue;
        }
        conn_start(s, fd);
    }
    return NULL;
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
    s->wake_fd = -1;
    pthread_mutex_init(&s->conns_mu, NULL);
    pthread_cond_init(&s->conns_gone, NULL);
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
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!s->guard || s->wake_fd < 0 || pthread_create(&s->acceptor, NULL, accept_main, s) != 0) {
        snprintf(s->lis.errstr, sizeof(s->lis.errstr), "cannot start the HTTP server on %.100s",
                 s->lis.desc);
        listener_close(&s->lis);
        guard_free(s->guard);
        s->guard = NULL;
        if (s->wake_fd >= 0)
            close(s->wake_fd);
        s->wake_fd = -1;
        return -1;
    }
    s->accepting = 1;
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
    atomic_store(&s->quiescing, 1);
    if (s->accepting) {
        uint64_t one = 1;
        if (write(s->wake_fd, &one, sizeof(one)) != sizeof(one))
            log_warn(NULL, "http server", LF_S("detail", "cannot wake the accept thread"));
        pthread_join(s->acceptor, NULL);
        s->accepting = 0;
    }
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
    http_quiesce(s);
    /* Wake every connection thread waiting for a request; one inside a handler finishes
     * it, finds its socket shut and ends. */
    pthread_mutex_lock(&s->conns_mu);
    for (struct http_conn *c = s->conns; c; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    while (s->conns)
        pthread_cond_wait(&s->conns_gone, &s->conns_mu);
    pthread_mutex_unlock(&s->conns_mu);
    guard_free(s->guard); /* after the connections: every one is closed by now */
    s->guard = NULL;
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    s->wake_fd = -1;
}

void http_free(struct http_server *s)
{
    if (!s)
        return;
    http_stop(s);
    routes_free(&s->routes);
    pthread_mutex_destroy(&s->conns_mu);
    pthread_cond_destroy(&s->conns_gone);
    free(s);
}
