/* SPDX-License-Identifier: Apache-2.0 */
/* http_server: the server half of the HTTP layer — HTTP_THREADS workers, each an event
 * loop (loop.h) owning its connections end to end: accepting, reading requests (framed by
 * http1.c), running handlers, writing answers, deadlines, and shutdown.
 *
 * A connection is in one of four states:
 *   HEAD    waiting for (the rest of) a request head; the deadline runs
 *   BODY    reading its body; the deadline runs
 *   HANDLER the request is in; its handler runs or has deferred its answer
 *   LINGER  answered with an error and shut for writing: what the client still sends is
 *           read and dropped for a moment before the close (a close with unread data
 *           would reset the connection and could destroy the answer before it is read)
 * Answers are appended to the connection's output buffer and written at the end of the
 * loop's turn, so the answers to a pipelined burst leave in one write. A request costs one
 * receive and one send; the connection's registration in epoll does not change. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "shared/log.h"

#include "http_internal.h"

/* A connection's input buffer: starts small, grows up to the head limit plus room to read
 * the body into after the head. */
#define HTTP_IN_INITIAL 4096
#define HTTP_IN_BODY_ROOM 16384
/* Answers waiting to be written beyond this: read no further request until they are. */
#define HTTP_OUT_HIGH (256 * 1024)
#define HTTP_LINGER_MS 500
#define HTTP_LINGER_BYTES (256 * 1024)
/* Connections taken per readiness of the listening socket, and the pause when the
 * process is out of descriptors (the backlog keeps the rest). */
#define HTTP_ACCEPT_BURST 16
#define HTTP_ACCEPT_PAUSE_MS 10

enum conn_state { CONN_HEAD, CONN_BODY, CONN_HANDLER, CONN_LINGER };

/* The worker whose loop runs on this thread, if any. */
static _Thread_local struct http_worker *this_worker;

/* Functions that may close a connection return -1 when they did: c must not be touched
 * any more (it may be freed). 0: it goes on. */
static int conn_process(struct http_conn *c);
static int conn_close(struct http_conn *c);

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

/* Room for n more bytes of output. Returns 0, or -1 when out of memory. */
static int out_reserve(struct http_conn *c, size_t n)
{
    if (c->out_cap - c->out_len >= n)
        return 0;
    if (c->out_off > 0) { /* what is written goes first: the buffer holds only what is not */
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_cap - c->out_len >= n)
            return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap - c->out_len < n)
        cap *= 2;
    char *nb = realloc(c->out, cap);
    if (!nb)
        return -1;
    c->out = nb;
    c->out_cap = cap;
    return 0;
}

static int out_append(struct http_conn *c, const void *data, size_t n)
{
    if (out_reserve(c, n) != 0)
        return -1;
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
    return 0;
}

/* Did the handler set Cache-Control itself (an immutable resource)? Else: no-store. */
static int own_cache_control(const struct http_req *r)
{
    for (int i = 0; i < r->nhdrs; i++)
        if (r->hdr_name[i] && strcasecmp(r->hdr_name[i], "Cache-Control") == 0)
            return 1;
    return 0;
}

/* The answer's head into buf (at most cap bytes, NUL-terminated when it fits); returns its
 * whole length, as snprintf does. */
static size_t format_head(const struct http_req *r, int keep_alive, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap,
                                "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                                "Content-Length: %zu\r\nX-Request-ID: %s\r\n%s%s",
                                r->status, http_status_title(r->status), http_date(),
                                r->resp_ctype ? r->resp_ctype : "application/json", r->resp_len,
                                r->rid, own_cache_control(r) ? "" : "Cache-Control: no-store\r\n",
                                !keep_alive         ? "Connection: close\r\n"
                                : r->msg.minor == 0 ? "Connection: keep-alive\r\n"
                                                    : "");
    for (int i = 0; i < r->nhdrs; i++)
        if (r->hdr_name[i] && r->hdr_value[i])
            n += (size_t)snprintf(buf + (n < cap ? n : cap), n < cap ? cap - n : 0, "%s: %s\r\n",
                                  r->hdr_name[i], r->hdr_value[i]);
    return n;
}

/* Write what is buffered; at the end of the turn, so that a burst leaves in one send. */
static void conn_flush_later(struct http_conn *c)
{
    loop_defer(c->w->loop, &c->flush);
}

/* Put r's answer in the output buffer. Returns 0, or -1 when out of memory. */
static int append_answer(struct http_conn *c, struct http_req *r, int keep_alive)
{
    if (r->status == 0)
        http_problem(r, 500, "internal", "the handler gave no answer");
    if (!r->resp_body && r->resp_len == 0 && r->status >= 400)
        r->resp_ctype = "application/problem+json";
    /* The head is written in place; a long one (many handler headers) twice. Room for the
     * blank line and snprintf's NUL too. */
    if (out_reserve(c, 2048 + r->resp_len) != 0)
        return -1;
    size_t n = format_head(r, keep_alive, c->out + c->out_len, c->out_cap - c->out_len);
    if (n + 3 + r->resp_len > c->out_cap - c->out_len) {
        if (out_reserve(c, n + 3 + r->resp_len) != 0)
            return -1;
        format_head(r, keep_alive, c->out + c->out_len, n + 3);
    }
    memcpy(c->out + c->out_len + n, "\r\n", 2);
    c->out_len += n + 2;
    if (r->resp_body && r->resp_len)
        memcpy(c->out + c->out_len, r->resp_body, r->resp_len);
    c->out_len += r->resp_len;
    conn_flush_later(c);
    return 0;
}

/* ---- the life of a request on its connection ---------------------------------------- */

/* Watch the socket for what the connection waits for: reading unless the client has closed
 * its side or there is no room for input, writing while output is pending. With nothing to
 * wait for, the socket leaves epoll altogether: a failed socket would otherwise be
 * reported (ERR, HUP) for ever. */
static void conn_rewatch(struct http_conn *c)
{
    unsigned events = (c->read_paused || c->peer_closed ? 0u : LOOP_READ) |
                      (c->out_off < c->out_len && c->write_blocked ? LOOP_WRITE : 0u);
    if (!events) {
        if (!c->unwatched)
            loop_io_stop(c->w->loop, &c->io);
        c->unwatched = 1;
    } else if (!c->unwatched) {
        loop_io_set(c->w->loop, &c->io, events);
    } else if (loop_io_start(c->w->loop, &c->io, events) == 0) {
        c->unwatched = 0;
    }
}

static void deadline_arm(struct http_conn *c, int64_t ms)
{
    loop_timer_start(c->w->loop, &c->deadline, ms);
}

/* Answer the current request and end it. After an error answer to a request whose body
 * is not read, or on Connection: close, the connection closes once the answer is out. */
static int conn_answer(struct http_conn *c, int linger)
{
    struct http_req *r = c->req;
    struct http_server *s = c->w->srv;
    int keep = !linger && r->msg.keep_alive && !r->close && !atomic_load(&s->quiescing);
    int sent = !c->gone && append_answer(c, r, keep) == 0;
    c->req = NULL;
    http_req_end(r, sent ? r->status : 0);
    if (!sent)
        return conn_close(c);
    if (!keep)
        c->close_after = linger ? 2 : 1;
    return 0;
}

/* The request's answer is set: send it, drop its bytes from the input, go on with the
 * next request if one is already there. */
static int conn_complete(struct http_conn *c)
{
    size_t used = c->used;
    if (conn_answer(c, 0) != 0)
        return -1;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    c->used = 0;
    c->state = CONN_HEAD;
    deadline_arm(c, c->w->srv->conf.connection_timeout_ms);
    if (c->close_after)
        return 0;
    return conn_process(c);
}

/* A request refused before its handler, its connection closed after the answer. */
static int conn_refuse(struct http_conn *c)
{
    if (conn_answer(c, 1) != 0)
        return -1;
    c->state = CONN_LINGER;
    return 0;
}

static int conn_refuse_framing(struct http_conn *c)
{
    http_req_refused(c->req);
    return conn_refuse(c);
}

/* The whole request is in: run its handler. */
static int conn_dispatch(struct http_conn *c)
{
    struct http_req *r = c->req;
    c->state = CONN_HANDLER;
    loop_timer_stop(c->w->loop, &c->deadline); /* the handler's time does not count */
    r->in_handler = 1;
    http_req_dispatch(r);
    r->in_handler = 0;
    if (r->suspended && !r->resumed)
        return 0; /* http_resume() continues it */
    return conn_complete(c);
}

/* The head is in c->in[0..head): parse it and make the checks that need no body. */
static int conn_start_request(struct http_conn *c, size_t head)
{
    struct http_server *s = c->w->srv;
    /* Room to read the body after the head: the head's strings point into c->in, so it
     * must not move until the request is answered. */
    if (c->in_cap - head < HTTP_IN_BODY_ROOM) {
        char *nb = realloc(c->in, head + HTTP_IN_BODY_ROOM);
        if (!nb)
            return conn_close(c);
        c->in = nb;
        c->in_cap = head + HTTP_IN_BODY_ROOM;
    }
    struct http_req *r = http_req_new(c);
    if (!r)
        return conn_close(c);
    c->req = r;
    c->head = head;
    c->used = head;
    if (http1_parse_head(&r->msg, c->in, head, s->conf.max_body) != 0)
        return conn_refuse_framing(c);
    if (http_req_head(r) != 0) /* answered: a body nobody will read closes the connection */
        return r->msg.state == HTTP1_BODY ? conn_refuse(c) : conn_complete(c);
    if (r->msg.state != HTTP1_BODY)
        return conn_dispatch(c);
    if (r->msg.expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (out_append(c, cont, sizeof(cont) - 1) != 0)
            return conn_close(c);
        conn_flush_later(c);
    }
    c->state = CONN_BODY;
    return 0;
}

/* Go as far as the input allows: find heads, read bodies, run handlers. */
static int conn_take(struct http_conn *c)
{
    while (!c->close_after && c->out_len - c->out_off <= HTTP_OUT_HIGH) {
        if (c->state == CONN_BODY) {
            struct http_req *r = c->req;
            long n = http1_body(&r->msg, c->in + c->used, c->in_len - c->used);
            if (n < 0 || r->msg.state == HTTP1_ERROR)
                return conn_refuse_framing(c);
            c->used += (size_t)n;
            if (r->msg.state == HTTP1_BODY) {
                /* All taken: read the rest into the room after the head. */
                c->in_len = c->used = c->head;
                return 0;
            }
            if (conn_dispatch(c) != 0)
                return -1;
            continue;
        }
        if (c->state != CONN_HEAD)
            return 0;
        /* Empty lines before a request line are ignored (RFC 9112 §2.2). */
        size_t skip = 0;
        while (skip < c->in_len &&
               (c->in[skip] == '\n' ||
                (c->in[skip] == '\r' && skip + 1 < c->in_len && c->in[skip + 1] == '\n')))
            skip += c->in[skip] == '\r' ? 2 : 1;
        if (skip) {
            memmove(c->in, c->in + skip, c->in_len - skip);
            c->in_len -= skip;
        }
        size_t head = http1_head_end(c->in, c->in_len);
        if (head) {
            if (conn_start_request(c, head) != 0)
                return -1;
            continue;
        }
        if (c->in_len < HTTP1_HEAD_MAX)
            return 0;
        if (!(c->req = http_req_new(c)))
            return conn_close(c);
        c->req->msg.status = 431;
        c->req->msg.error = "the request head is too large";
        return conn_refuse_framing(c);
    }
    return 0;
}

/* ---- reading ---------------------------------------------------------------------- */

/* Where the next bytes go: the whole buffer may grow while no head is parsed; after that
 * its start holds the request's strings and only the room after it is used. Returns the
 * room (0: read nothing now). */
static size_t read_room(struct http_conn *c)
{
    if (c->state == CONN_HEAD && c->in_cap - c->in_len < 1024 && c->in_len < HTTP1_HEAD_MAX) {
        size_t cap = c->in_cap * 2 > HTTP1_HEAD_MAX + HTTP_IN_BODY_ROOM
                         ? HTTP1_HEAD_MAX + HTTP_IN_BODY_ROOM
                         : c->in_cap * 2;
        char *nb = realloc(c->in, cap);
        if (nb) {
            c->in = nb;
            c->in_cap = cap;
        }
    }
    return c->in_cap - c->in_len;
}

/* After the input is taken as far as it goes: read again when there is room; a client
 * that has closed its side gets what was answered, then the close; a body that will not
 * come ends the connection. */
static int conn_settle(struct http_conn *c)
{
    if (c->read_paused && read_room(c) > 0)
        c->read_paused = 0;
    if (c->peer_closed && c->state == CONN_BODY)
        return conn_close(c);
    if (c->peer_closed && c->state == CONN_HEAD && c->out_off == c->out_len && !c->close_after)
        return conn_close(c);
    conn_rewatch(c);
    return 0;
}

static int conn_process(struct http_conn *c)
{
    return conn_take(c) != 0 ? -1 : conn_settle(c);
}

/* The socket failed: nothing more can be read or written. A request with its handler
 * finishes unanswered when it resumes. */
static int conn_fail(struct http_conn *c)
{
    if (c->state != CONN_HANDLER)
        return conn_close(c);
    c->gone = 1;
    c->peer_closed = 1;
    c->out_off = c->out_len = 0;
    conn_rewatch(c); /* out of epoll */
    return 0;
}

static int conn_read(struct http_conn *c, unsigned ready)
{
    if (c->state == CONN_LINGER) {
        char sink[4096];
        ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        c->lingered += n > 0 ? (size_t)n : 0;
        if (n <= 0 || c->lingered >= HTTP_LINGER_BYTES)
            return conn_close(c);
        return 0;
    }
    size_t room = read_room(c);
    if (room == 0) {
        if (ready & LOOP_ERROR)
            return conn_fail(c);
        /* No room behind a request in progress (or answers piling up): read again once
         * it is answered. */
        c->read_paused = 1;
        conn_rewatch(c);
        return 0;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n < 0)
        return conn_fail(c);
    if (n == 0) { /* the client closed its side: answer what it sent */
        c->peer_closed = 1;
        if (c->state == CONN_HANDLER) {
            conn_rewatch(c);
            return 0;
        }
        return conn_process(c);
    }
    c->in_len += (size_t)n;
    if (c->state == CONN_HEAD || c->state == CONN_BODY)
        return conn_process(c);
    return 0;
}

/* ---- writing ---------------------------------------------------------------------- */

/* After an error answer: no more writing, read and drop what comes for a moment. */
static void conn_linger(struct http_conn *c)
{
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_LINGER;
    c->close_after = 0;
    c->peer_closed = 0;
    c->read_paused = 0;
    conn_rewatch(c);
    deadline_arm(c, HTTP_LINGER_MS);
}

static int conn_write(struct http_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            c->write_blocked = 1;
            conn_rewatch(c);
            return 0;
        }
        if (n <= 0)
            return conn_fail(c);
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    c->write_blocked = 0;
    if (c->close_after == 2) {
        conn_linger(c);
        return 0;
    }
    if (c->close_after)
        return conn_close(c);
    /* requests held back while answers piled up, or the close after the last answer */
    return c->state == CONN_HEAD ? conn_process(c) : conn_settle(c);
}

static void on_flush(struct loop_task *t)
{
    struct http_conn *c = t->arg;
    if (c->fd >= 0)
        conn_write(c);
}

/* ---- connections ------------------------------------------------------------------- */

static void on_conn_io(struct loop_io *io, unsigned ready)
{
    struct http_conn *c = io->arg;
    if ((ready & LOOP_WRITE) && conn_write(c) != 0)
        return;
    if (c->fd >= 0 && !c->unwatched && (ready & (LOOP_READ | LOOP_ERROR)))
        conn_read(c, ready);
}

static void on_deadline(struct loop_timer *t)
{
    struct http_conn *c = t->arg;
    if (c->state != CONN_LINGER)
        metric_inc(c->w->srv->m_timed_out);
    conn_close(c);
}

static void on_resume(struct loop_task *t)
{
    struct http_conn *c = t->arg;
    if (c->gone || c->fd < 0) {
        struct http_req *r = c->req;
        c->req = NULL;
        http_req_end(r, 0);
        conn_close(c);
        return;
    }
    conn_complete(c);
}

static void conn_free(struct http_conn *c)
{
    struct http_worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->in);
    free(c->out);
    free(c);
    if (w->stopping && !w->conns)
        loop_stop(w->loop);
}

/* Close the socket now; free the connection too unless its request is still with its
 * handler (then the resume frees it). */
static int conn_close(struct http_conn *c)
{
    struct http_worker *w = c->w;
    if (c->fd >= 0) {
        loop_io_stop(w->loop, &c->io);
        loop_timer_stop(w->loop, &c->deadline);
        loop_cancel(w->loop, &c->flush);
        close(c->fd);
        c->fd = -1;
        atomic_fetch_sub(&w->srv->open, 1);
        metric_gauge_add(w->srv->m_open, -1);
    }
    if (c->req && c->state == CONN_HANDLER) {
        c->gone = 1;
        return -1;
    }
    if (c->req) { /* a request still arriving */
        struct http_req *r = c->req;
        c->req = NULL;
        http_req_end(r, 0);
    }
    loop_cancel(w->loop, &c->resume);
    conn_free(c);
    return -1;
}

static void conn_start(struct http_worker *w, int fd)
{
    struct http_conn *c = calloc(1, sizeof(*c));
    char *in = malloc(HTTP_IN_INITIAL);
    if (!c || !in) {
        free(c);
        free(in);
        close(fd);
        atomic_fetch_sub(&w->srv->open, 1);
        return;
    }
    c->w = w;
    c->fd = fd;
    c->in = in;
    c->in_cap = HTTP_IN_INITIAL;
    c->io = (struct loop_io){.fd = fd, .fn = on_conn_io, .arg = c};
    c->deadline = (struct loop_timer){.fn = on_deadline, .arg = c};
    c->flush = (struct loop_task){.fn = on_flush, .arg = c};
    c->resume = (struct loop_task){.fn = on_resume, .arg = c};
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* fails on unix: fine */
    if (loop_io_start(w->loop, &c->io, LOOP_READ) != 0) {
        free(c);
        free(in);
        close(fd);
        atomic_fetch_sub(&w->srv->open, 1);
        return;
    }
    metric_gauge_add(w->srv->m_open, 1);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    deadline_arm(c, w->srv->conf.connection_timeout_ms);
}

/* ---- accepting ---------------------------------------------------------------------- */

static void on_accept_pause_over(struct loop_timer *t)
{
    struct http_worker *w = t->arg;
    if (!w->stopping && !atomic_load(&w->srv->quiescing))
        loop_io_start(w->loop, &w->lis, LOOP_READ);
}

/* Every worker watches the listening socket; whoever wakes first takes what is there. A
 * connection needs a slot, else it is closed at once instead of waiting in the backlog. */
static void on_accept(struct loop_io *io, unsigned ready)
{
    struct http_worker *w = io->arg;
    struct http_server *s = w->srv;
    (void)ready;
    for (int i = 0; i < HTTP_ACCEPT_BURST; i++) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warn(NULL, "http server", LF_S("detail", strerror(errno)));
                loop_io_stop(w->loop, io);
                loop_timer_start(w->loop, &w->accept_pause, HTTP_ACCEPT_PAUSE_MS);
            }
            return;
        }
        if (atomic_fetch_add(&s->open, 1) >= s->conf.connection_limit) {
            atomic_fetch_sub(&s->open, 1);
            metric_inc(s->m_refused);
            close(fd);
            continue;
        }
        conn_start(w, fd);
    }
}

/* ---- workers ------------------------------------------------------------------------ */

static void *worker_main(void *arg)
{
    struct http_worker *w = arg;
    struct http_server *s = w->srv;
    this_worker = w;
    if (s->worker_start)
        w->data = s->worker_start(w->loop, s->worker_arg);
    if (loop_io_start(w->loop, &w->lis, LOOP_READ) != 0)
        log_error(NULL, "http server", LF_S("detail", "cannot watch the listening socket"));
    if (loop_run(w->loop) != 0)
        log_error(NULL, "http server", LF_S("detail", "event loop failed"));
    if (s->worker_stop)
        s->worker_stop(w->data, s->worker_arg);
    this_worker = NULL;
    return NULL;
}

/* Work posted to every worker, waited for by the caller. */
static void on_all_workers(struct http_server *s, void (*fn)(void *arg))
{
    pthread_mutex_lock(&s->mu);
    s->acks = 0;
    pthread_mutex_unlock(&s->mu);
    int posted = 0;
    for (int i = 0; i < s->nworkers; i++)
        if (loop_post(s->workers[i].loop, fn, &s->workers[i]) == 0)
            posted++;
    pthread_mutex_lock(&s->mu);
    while (s->acks < posted)
        pthread_cond_wait(&s->acked, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static void ack(struct http_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->acks++;
    pthread_cond_broadcast(&s->acked);
    pthread_mutex_unlock(&s->mu);
}

static void worker_stop_listening(void *arg)
{
    struct http_worker *w = arg;
    loop_io_stop(w->loop, &w->lis);
    loop_timer_stop(w->loop, &w->accept_pause);
    ack(w->srv);
}

/* Close every connection; the loop stops when the last one is gone (a request still with
 * its handler keeps its connection until it is resumed; answers still being written get a
 * second). */
static void worker_close_all(void *arg)
{
    struct http_worker *w = arg;
    w->stopping = 1;
    loop_io_stop(w->loop, &w->lis);
    loop_timer_stop(w->loop, &w->accept_pause);
    for (struct http_conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (c->fd >= 0 && c->out_off < c->out_len && c->state != CONN_HANDLER) {
            /* answers still going out: they get a second, then the close */
            c->close_after = c->close_after ? c->close_after : 1;
            deadline_arm(c, 1000);
        } else if (c->fd >= 0) {
            conn_close(c);
        }
    }
    if (!w->conns)
        loop_stop(w->loop);
    ack(w->srv);
}

/* ---- the request half's view of workers ------------------------------------------------ */

struct loop *http_loop(const struct http_req *r)
{
    return r->conn->w->loop;
}

void *http_worker_data(const struct http_req *r)
{
    return r->conn->w->data;
}

static void on_posted_resume(void *arg)
{
    struct http_req *r = arg;
    r->resumed = 1;
    loop_defer(r->conn->w->loop, &r->conn->resume);
}

void http_server_resume(struct http_req *r)
{
    struct http_worker *w = r->conn->w;
    if (this_worker != w) {
        if (loop_post(w->loop, on_posted_resume, r) != 0)
            log_error(r->rid, "http server", LF_S("detail", "cannot resume a request: no memory"));
        return;
    }
    r->resumed = 1;
    if (!r->in_handler)
        loop_defer(w->loop, &r->conn->resume);
}

struct posted_work {
    struct http_worker *w;
    void (*fn)(struct loop *l, void *data, void *arg);
    void *arg;
};

static void on_posted_work(void *arg)
{
    struct posted_work *p = arg;
    p->fn(p->w->loop, p->w->data, p->arg);
    free(p);
}

int http_post(struct http_server *s, void (*fn)(struct loop *l, void *data, void *arg), void *arg)
{
    struct posted_work *p = malloc(sizeof(*p));
    if (!p || !s->started) {
        free(p);
        return -1;
    }
    *p = (struct posted_work){.w = &s->workers[0], .fn = fn, .arg = arg};
    if (loop_post(p->w->loop, on_posted_work, p) != 0) {
        free(p);
        return -1;
    }
    return 0;
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
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->acked, NULL);
    s->m_requests = metrics_counter(metrics, "http_requests_total", "HTTP requests answered.",
                                    "route,method,code");
    s->m_duration = metrics_histogram(metrics, "http_request_duration_seconds",
                                      "Time from request line to answer.", "route",
                                      METRICS_LATENCY_BUCKETS, METRICS_LATENCY_BUCKETS_N);
    s->m_open = metric_series(
        metrics_gauge(metrics, "http_connections", "Open HTTP connections.", NULL), NULL);
    s->m_refused = metric_series(
        metrics_counter(metrics, "http_connections_refused_total",
                        "Connections closed at once: HTTP_CONNECTION_LIMIT reached.", NULL),
        NULL);
    s->m_timed_out = metric_series(
        metrics_counter(metrics, "http_request_timeouts_total",
                        "Connections cut off: no whole request within HTTP_CONNECTION_TIMEOUT.",
                        NULL),
        NULL);
    return s;
}

void http_on_worker(struct http_server *s, void *(*start)(struct loop *l, void *arg),
                    void (*stop)(void *data, void *arg), void *arg)
{
    s->worker_start = start;
    s->worker_stop = stop;
    s->worker_arg = arg;
}

int http_workers(const struct http_config *conf)
{
    if (conf->threads > 0)
        return conf->threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

/* Stop the workers that run and free every loop. */
static void workers_free(struct http_server *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        struct http_worker *w = &s->workers[i];
        if (w->running)
            pthread_join(w->thread, NULL);
        loop_free(w->loop);
    }
    free(s->workers);
    s->workers = NULL;
    s->nworkers = 0;
}

int http_start(struct http_server *s)
{
    char err[128];
    if (listener_open(&s->lis, s->conf.listen) != 0)
        return -1;
    int n = http_workers(&s->conf);
    s->workers = calloc((size_t)n, sizeof(*s->workers));
    if (!s->workers)
        goto fail;
    s->nworkers = n;
    for (int i = 0; i < n; i++) {
        struct http_worker *w = &s->workers[i];
        w->srv = s;
        w->index = i;
        w->lis = (struct loop_io){.fd = s->lis.fd, .fn = on_accept, .arg = w};
        w->accept_pause = (struct loop_timer){.fn = on_accept_pause_over, .arg = w};
        if (!(w->loop = loop_create(err, sizeof(err))))
            goto fail;
    }
    for (int i = 0; i < n; i++) {
        struct http_worker *w = &s->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            for (int j = 0; j < i; j++)
                loop_stop(s->workers[j].loop);
            goto fail;
        }
        w->running = 1;
    }
    s->started = 1;
    return 0;
fail:
    workers_free(s);
    snprintf(s->lis.errstr, sizeof(s->lis.errstr), "cannot start the HTTP server on %.100s",
             s->lis.desc);
    listener_close(&s->lis);
    return -1;
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
    if (s->started && !s->listening_stopped) {
        on_all_workers(s, worker_stop_listening);
        s->listening_stopped = 1;
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
    if (!s->started)
        return;
    on_all_workers(s, worker_close_all);
    workers_free(s);
    s->started = 0;
}

void http_free(struct http_server *s)
{
    if (!s)
        return;
    http_stop(s);
    routes_free(&s->routes);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->acked);
    free(s);
}
