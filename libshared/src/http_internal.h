/* SPDX-License-Identifier: Apache-2.0 */
/* http_internal: what the HTTP layer's two halves share — the request half (http.c:
 * checks, dispatch, answers, accounting) and the server half (http_server.c: connections,
 * reading requests, writing answers). Private to them. */
#ifndef WARDEN_HTTP_INTERNAL_H
#define WARDEN_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "shared/http.h"
#include "shared/listen.h"
#include "shared/loop.h"

#include "http1.h"
#include "http_routes.h"

#define HTTP_MAX_HEADERS 8
#define HTTP_RID_MAX 128

struct http_conn;

/* A worker: a thread running an event loop that owns its connections. */
struct http_worker {
    struct http_server *srv;
    int index;
    struct loop *loop;
    pthread_t thread;
    int running;                    /* the thread was started */
    struct loop_io lis;             /* the shared listening socket, as this loop watches it */
    struct loop_timer accept_pause; /* out of descriptors: accepting waits a moment */
    struct http_conn *conns;        /* this worker's connections */
    int stopping;                   /* closing: the loop stops when the last connection goes */
    void *data;                     /* what the worker start hook returned */
};

struct http_server {
    struct http_config conf;
    struct listener lis;
    struct route_table routes;
    _Atomic int in_flight;
    _Atomic int quiescing; /* no new connections; requests still arriving get 503 */
    _Atomic int open;      /* connections holding a slot (HTTP_CONNECTION_LIMIT) */
    struct metric *m_requests;
    struct metric *m_duration;
    struct metric_series *m_open, *m_refused, *m_timed_out;

    struct http_worker *workers;
    int nworkers;
    int started, listening_stopped;
    void *(*worker_start)(struct loop *l, void *arg);
    void (*worker_stop)(void *data, void *arg);
    void *worker_arg;
    pthread_mutex_t mu; /* the main thread waits for work it posted to every worker */
    pthread_cond_t acked;
    int acks;
};

/* A connection, owned by its worker's loop (http_server.c says how it goes). */
struct http_conn {
    struct http_worker *w;
    struct http_conn *prev, *next;
    int fd; /* -1 once closed */
    int state;
    struct loop_io io;
    struct loop_timer deadline; /* the request's (or the idle) deadline; the linger's end */
    struct loop_task flush;     /* write the output at the end of the turn */
    struct loop_task resume;    /* a deferred answer is ready */
    char *in;                   /* bytes received, not yet consumed */
    size_t in_len, in_cap;
    size_t head;          /* the current request's head: c->in[0..head) */
    size_t used;          /* what the current request has taken of c->in so far */
    struct http_req *req; /* the request being received or handled */
    char *out;            /* answers not yet written: out[out_off..out_len) */
    size_t out_len, out_cap, out_off;
    size_t lingered;
    int close_after;   /* once the output is written: 1 close, 2 linger then close */
    int read_paused;   /* no room for input: read again once a request is answered */
    int peer_closed;   /* the client closed its side (or the socket failed) */
    int write_blocked; /* the socket took less than all: wait until it is writable */
    int unwatched;     /* taken out of epoll */
    int gone;          /* the answer has nowhere to go */
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

    /* Deferred answers: see http_suspend(). On the worker's thread only. */
    int in_handler, suspended, resumed;
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

/* The whole request is in: parse its body and run the handler (which may defer its
 * answer: r->suspended). */
void http_req_dispatch(struct http_req *r);

/* http_resume(): continue r on its worker's thread (http_server.c). */
void http_server_resume(struct http_req *r);

/* The request is over, answered with status (0: the client went away first): count, log,
 * free r. */
void http_req_end(struct http_req *r, int status);

#endif
