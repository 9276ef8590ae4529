/* SPDX-License-Identifier: Apache-2.0 */
/* http: the JSON-over-HTTP/1.1 layer every daemon serves.
 *
 * Before a handler runs, the layer has matched the route (404 / 405 + Allow), checked the
 * bearer token of /v1/... routes (401), refused a declared body above HTTP_MAX_BODY before
 * reading it (413), required a JSON content type on bodies (415), read the body and
 * parsed it as a JSON object (400 invalid_json). A handler then parses its fields, calls
 * domain code and sets exactly one response with http_reply_*() or http_problem*().
 * Every response carries X-Request-ID (the caller's, else the trace id of a W3C
 * traceparent, else a fresh one) and Cache-Control: no-store unless the handler set its
 * own; every request is counted, timed and access-logged (with its trace id if traced).
 *
 * Framing is strict (RFC 9112): a request whose length could be read two ways, a transfer
 * coding other than chunked, or a control character in its head is refused (400, or 501
 * for the coding) and its connection closed, so nothing a proxy in front took for body
 * ever runs as a request. After shutdown begins, requests get 503 shutting_down.
 *
 * Threading: HTTP_THREADS workers (0: one per core), each a thread running an event loop
 * (loop.h) that owns its connections end to end: a request is read, handled and answered
 * on the thread that accepted its connection. Handlers run on that thread and never block:
 * one that needs Redis (or anything else that takes time) defers its answer with
 * http_suspend(), starts the work and returns; whoever finishes it sets the answer and
 * calls http_resume(). No lock is taken on the way. */
#ifndef WARDEN_HTTP_H
#define WARDEN_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/config.h"
#include "shared/metrics.h"

struct http_server;
struct http_req;
struct loop;

struct http_config {
    const char *daemon; /* for metrics and logs */
    const char *listen; /* host:port, [v6]:port, unix:/path */
    int threads;        /* HTTP_THREADS: workers; 0 = one per core */
    uint64_t max_body;
    int connection_limit;
    int64_t connection_timeout_ms;
    const char *api_token;   /* NULL: /v1/... is open */
    const char *admin_token; /* NULL: admin routes take api_token */
};

/* Defaults for a daemon, then read LISTEN_ADDR, HTTP_THREADS, HTTP_MAX_BODY,
 * HTTP_CONNECTION_LIMIT, HTTP_CONNECTION_TIMEOUT, API_TOKEN(_FILE), ADMIN_TOKEN(_FILE). */
void http_config_load(struct http_config *hc, struct cfg *c, const char *daemon, int default_port,
                      uint64_t default_max_body);

/* Route flags. */
#define HTTP_ADMIN 0x1u   /* needs ADMIN_TOKEN when set (else API_TOKEN) */
#define HTTP_NO_BODY 0x2u /* a POST action without a body: no content type needed, body ignored */
/* The body may also be application/x-www-form-urlencoded (RFC 7662, RFC 7009): its fields
 * are then given by http_json() as an object of strings (a repeated name: 400
 * invalid_form). */
#define HTTP_FORM_BODY 0x4u
/* Needs API_TOKEN (when set) although outside /v1/ (paths fixed by an outside format). */
#define HTTP_TOKEN 0x8u

typedef void (*http_handler)(struct http_req *req, void *ctx);

struct http_server *http_create(const struct http_config *conf, struct metrics *metrics, char *err,
                                size_t errsize);
void http_free(struct http_server *s); /* stops first if running; NULL does nothing */

/* Register a route (before http_start). pattern segments starting with ':' are
 * parameters: "/v1/events/:seq". A last segment starting with '*' takes the rest of the
 * path, one segment or more, raw (not decoded): "/tile/:level" followed by the segment
 * "*index" matches "/tile/0/x001/234.p/17" with index "x001/234.p/17". Routes outside
 * /v1/ need no token. */
void http_route(struct http_server *s, const char *method, const char *pattern, http_handler h,
                void *ctx, unsigned flags);

/* Before http_start: start(loop, arg) runs on each worker's thread before it serves and
 * returns the worker's data (http_worker_data); stop(data, arg) runs on it after its last
 * connection has closed. */
void http_on_worker(struct http_server *s, void *(*start)(struct loop *l, void *arg),
                    void (*stop)(void *data, void *arg), void *arg);
/* Run fn(loop, data, arg) on the first worker's thread (data: its start hook's), for work
 * that needs a worker's loop outside any request. After http_start. Returns 0 or -1. */
int http_post(struct http_server *s, void (*fn)(struct loop *l, void *data, void *arg), void *arg);
/* How many workers a configuration gives. */
int http_workers(const struct http_config *conf);

/* Bind and start serving. Returns 0, or -1 with errstr set (address in use, ...). */
int http_start(struct http_server *s);
const char *http_errstr(const struct http_server *s);
/* Where it listens, e.g. "127.0.0.1:8083" or "unix:/run/x.sock" (the real port when 0
 * was asked for). */
const char *http_listen_addr(const struct http_server *s);

/* Shutdown: stop accepting new connections; then wait until in-flight requests are
 * answered (0) or the deadline passes (-1); then close everything. */
void http_quiesce(struct http_server *s);
int http_drain(struct http_server *s, int64_t timeout_ms);
void http_stop(struct http_server *s);
/* Requests being handled now (accepted, not yet answered). */
int http_in_flight(struct http_server *s);

/* ---- request accessors (valid until the response is sent) ---- */
const char *http_method(const struct http_req *r);
const char *http_path(const struct http_req *r);
const char *http_request_id(const struct http_req *r);
/* Path parameter by name (":seq" → "seq"), URL-decoded; NULL if absent. A segment
 * holding an encoded NUL matches no route (404). */
const char *http_param(const struct http_req *r, const char *name);
/* Query argument, URL-decoded; NULL if absent (or if it holds an encoded NUL). */
const char *http_query(struct http_req *r, const char *name);
/* Request header (case-insensitive); NULL if absent. */
const char *http_header(struct http_req *r, const char *name);
/* The parsed JSON body (an object), borrowed; NULL when the request had no body. */
json_t *http_json(const struct http_req *r);

/* ---- responses (exactly one per request) ---- */
/* Add a response header (before the http_reply_* / http_problem call). A Cache-Control
 * of the handler's replaces the default no-store (for immutable resources). A name or
 * value holding CR or LF (or a name holding ':') is dropped. */
void http_add_header(struct http_req *r, const char *name, const char *value);
/* JSON response; steals body. */
void http_reply_json(struct http_req *r, int status, json_t *body);
/* Any content type; body is copied. */
void http_reply_raw(struct http_req *r, int status, const char *content_type, const void *body,
                    size_t len);
/* RFC 9457 problem with a stable code and a human detail (never secrets). */
void http_problem(struct http_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same with extension members (object, stolen; may be NULL). */
void http_problem_ext(struct http_req *r, int status, const char *code, json_t *ext,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* 400 invalid_request naming the field. */
void http_invalid(struct http_req *r, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 503 backend_unavailable with Retry-After: 1. */
void http_unavailable(struct http_req *r);

/* The loop of the worker serving r (its timers, its Redis client), and the data its start
 * hook returned. */
struct loop *http_loop(const struct http_req *r);
void *http_worker_data(const struct http_req *r);

/* ---- deferred answers ----
 * A handler may call http_suspend(r) and return without a response. Later — on r's worker
 * thread (from a Redis reply, a timer) or from any other thread — the response is set with
 * http_reply_* / http_problem* and http_resume(r) is called, after which r must not be
 * touched. The answer is written on r's worker thread. */
void http_suspend(struct http_req *r);
void http_resume(struct http_req *r);

#endif
