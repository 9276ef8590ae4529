/* SPDX-License-Identifier: Apache-2.0 */
/* http_internal: what the HTTP layer's two halves share — the request half (http.c:
 * checks, dispatch, answers, accounting) and the server half (http_server.c: connections,
 * reading requests, writing answers). Private to them. */
#ifndef WARDEN_HTTP_INTERNAL_H
#define WARDEN_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "shared/conn_guard.h"
#include "shared/http.h"
#include "shared/listen.h"

#include "http1.h"
#include "http_routes.h"

#define HTTP_MAX_HEADERS 8
#define HTTP_RID_MAX 128

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
    int close;         /* close the connection after the answer */
    int form;          /* the body is a form (HTTP_FORM_BODY), read into json */
    char trace_id[33]; /* from a W3C traceparent, or "" */

    /* Deferred answers: see http_suspend(). */
    pthread_mutex_t mu;
    pthread_cond_t resumed;
    int want_suspend, resume_pending;
};

/* ---- http.c: one request, from its head to its end ---- */

/* The reason phrase of a status. */
const char *http_status_title(int status);

/* A new request on connection c, counted in flight, with a fresh request id. NULL if out
 * of memory. */
struct http_req *http_req_new(struct http_conn *c);

/* The head is parsed (r->msg): take the path, query and X-Request-ID, then make the checks
 * that need no body (shutdown, route, token, size, content type). Returns 0 to go on, or
 * -1 with the answer set. */
int http_req_head(struct http_req *r);

/* The answer to a request the codec refused (r->msg.status says which). */
void http_req_refused(struct http_req *r);

/* The whole request is in: parse its body, run the handler, and wait if it deferred its
 * answer. */
void http_req_dispatch(struct http_req *r);

/* The request is over, answered with status (0: the client went away first): count, log,
 * free r. */
void http_req_end(struct http_req *r, int status);

#endif
