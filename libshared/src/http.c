/* SPDX-License-Identifier: Apache-2.0 */
/* http: the request half of the HTTP layer — configuration, routes, the checks made
 * before a handler runs, dispatch, deferred answers, JSON/problem responses, metrics and
 * the access log. Connections and bytes are http_server.c's; framing is http1.c's. */
#include "shared/http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "shared/crypto.h"
#include "shared/jsonv.h"
#include "shared/log.h"

#include "http_internal.h"

/* HTTP_THREADS: 0, the default, is one worker per core; docs/architecture.md. */
#define HTTP_DEFAULT_THREADS 0

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

const char *http_status_title(int status)
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
    case 410: return "Gone";
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
    /* A line break would let a value echoed from a caller start a header of its own. */
    if (r->nhdrs >= HTTP_MAX_HEADERS || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
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
                          http_status_title(status), "status", status, "code", code, "detail",
                          detail, "request_id", r->rid);
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

/* Is ct this media type, optionally with parameters? */
static int ctype_is(const char *ct, const char *type)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strlen(type);
    return strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* W3C traceparent: version 00 "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>",
 * neither id all zeros. Copies the trace id into out (33 bytes) and returns 0, or -1. */
static int trace_id_of(const char *tp, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    if (!tp || strlen(tp) != 55 || strncmp(tp, "00-", 3) != 0 || tp[35] != '-' || tp[52] != '-')
        return -1;
    for (int i = 3; i < 55; i++)
        if (i != 35 && i != 52 && !strchr(hex, tp[i]))
            return -1;
    if (strspn(tp + 3, "0") >= 32 || strspn(tp + 36, "0") >= 16)
        return -1;
    memcpy(out, tp + 3, 32);
    out[32] = '\0';
    return 0;
}

/* An application/x-www-form-urlencoded body as a JSON object of strings, so that handlers
 * read its fields as they read JSON. NULL if a name repeats or a part does not decode. */
static json_t *form_object(struct http_req *r)
{
    json_t *o = json_object();
    const char *p = r->msg.body ? r->msg.body : "", *end = p + r->msg.body_len;
    while (o && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (e > p) {
            const char *name = owned_decode(&r->owned, p, (size_t)((eq ? eq : e) - p), 1);
            const char *value = eq ? owned_decode(&r->owned, eq + 1, (size_t)(e - eq - 1), 1) : "";
            if (!name || !value || json_object_get(o, name) ||
                json_object_set_new(o, name, json_string(value)) != 0) {
                json_decref(o);
                return NULL; /* a repeated name, a NUL, or not UTF-8 */
            }
        }
        p = e + 1;
    }
    return o;
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
    if (!want ||
        (strncmp(r->path, "/v1/", 4) != 0 && !(r->route && (r->route->flags & HTTP_TOKEN))))
        return 1;
    const char *auth = http_header(r, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    return crypto_str_equal(auth + 7, want);
}

int http_req_head(struct http_req *r)
{
    r->method = r->msg.method;
    r->path = r->msg.target;
    char *q = strchr(r->msg.target, '?');
    if (q) {
        *q = '\0';
        r->query = q + 1;
    }
    /* Without an X-Request-ID of its own, a traced request is known by its trace id, so
     * that every log line of the request names the trace. */
    const char *rid = http_header(r, "X-Request-ID");
    if (trace_id_of(http_header(r, "traceparent"), r->trace_id) != 0)
        r->trace_id[0] = '\0';
    if (rid_ok(rid))
        snprintf(r->rid, sizeof(r->rid), "%s", rid);
    else if (r->trace_id[0])
        snprintf(r->rid, sizeof(r->rid), "%s", r->trace_id);
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
    if (r->msg.has_length && r->msg.content_length > r->srv->conf.max_body) {
        http_problem(r, 413, "body_too_large", "the body is larger than %llu bytes",
                     (unsigned long long)r->srv->conf.max_body);
        return -1;
    }
    if (!has_body_method(r->method) || (r->route->flags & HTTP_NO_BODY))
        return 0;
    const char *ct = http_header(r, "Content-Type");
    r->form =
        (r->route->flags & HTTP_FORM_BODY) && ctype_is(ct, "application/x-www-form-urlencoded");
    if (!r->form && !ctype_is(ct, "application/json")) {
        http_problem(r, 415, "unsupported_media_type",
                     (r->route->flags & HTTP_FORM_BODY)
                         ? "the body must be application/json or application/x-www-form-urlencoded"
                         : "the body must be application/json");
        return -1;
    }
    return 0;
}

void http_req_refused(struct http_req *r)
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
}

void http_req_dispatch(struct http_req *r)
{
    if (r->form) {
        r->json = form_object(r);
        if (!r->json) {
            http_problem(r, 400, "invalid_form",
                         "the form body repeats a name or holds a value that does not decode");
            return;
        }
    } else if (has_body_method(r->method) && !(r->route->flags & HTTP_NO_BODY)) {
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
}

void http_suspend(struct http_req *r)
{
    r->suspended = 1;
}

void http_resume(struct http_req *r)
{
    http_server_resume(r);
}

/* ---- accounting ------------------------------------------------------------------ */

struct http_req *http_req_new(struct http_conn *c)
{
    struct http_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->srv = c->w->srv;
    r->conn = c;
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    atomic_fetch_add(&r->srv->in_flight, 1);
    new_rid(r->rid);
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

void http_req_end(struct http_req *r, int status)
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
    if (r->trace_id[0])
        log_info(r->rid, "request", LF_S("method", method), LF_S("route", route),
                 LF_I("status", status), LF_I("duration_us", us), LF_S("trace_id", r->trace_id));
    else
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
    free(r);
    atomic_fetch_sub(&s->in_flight, 1);
}
