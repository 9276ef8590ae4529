/* SPDX-License-Identifier: Apache-2.0 */
/* http_server: the server half of the HTTP layer — the accept thread, a thread per
 * connection reading requests (framed by http1.c) and writing answers, and shutdown. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
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

#include "shared/log.h"

#include "http_internal.h"

/* Connection threads need little stack: handlers keep small buffers only. */
#define HTTP_THREAD_STACK (512 * 1024)
/* A connection's input buffer: starts small, grows up to the head limit plus room to read
 * the body into after the head. */
#define HTTP_IN_INITIAL 4096
#define HTTP_IN_BODY_ROOM 16384
/* After an error answer the client may still be sending: what is in flight is read and
 * dropped for a moment before the close, or the close would reset the connection and
 * could destroy the answer before the client reads it. */
#define HTTP_LINGER_MS 500
#define HTTP_LINGER_BYTES (256 * 1024)

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

/* Write the answer: the head in one buffer, the body beside it, in one system call. The
 * head fits the stack buffer but for long handler headers (many rate-limit policies). */
static int send_answer(struct http_req *r, int keep_alive)
{
    if (r->status == 0)
        http_problem(r, 500, "internal", "the handler gave no answer");
    if (!r->resp_body && r->resp_len == 0 && r->status >= 400)
        r->resp_ctype = "application/problem+json";
    char small[2048], *head = small;
    size_t n = format_head(r, keep_alive, small, sizeof(small));
    if (n + 3 > sizeof(small)) { /* the blank line and snprintf's NUL must fit too */
        if (!(head = malloc(n + 3)))
            return -1;
        format_head(r, keep_alive, head, n + 3);
    }
    head[n] = '\r'; /* the blank line that ends the head */
    head[n + 1] = '\n';
    struct iovec iov[2] = {{head, n + 2}, {r->resp_body, r->resp_len}};
    int rc = send_all(r->conn->fd, iov, r->resp_len ? 2 : 1);
    if (head != small)
        free(head);
    return rc;
}

/* Answer r, end it, and say whether the connection goes on (0) or closes (-1). */
static int answer(struct http_req *r)
{
    int keep = r->msg.keep_alive && !r->close && !atomic_load(&r->srv->quiescing);
    int sent = send_answer(r, keep);
    http_req_end(r, sent == 0 ? r->status : 0);
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
    for (;;) {
        /* Empty lines before a request line are ignored (RFC 9112 §2.2). */
        size_t skip = 0;
        while (skip < c->in_len &&
               (c->in[skip] == '\n' ||
                (c->in[skip] == '\r' && skip + 1 < c->in_len && c->in[skip + 1] == '\n')))
            skip += c->in[skip] == '\r' ? 2 : 1;
        memmove(c->in, c->in + skip, c->in_len - skip);
        c->in_len -= skip;
        if ((head = http1_head_end(c->in, c->in_len)))
            break;
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
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t dropped = 0; dropped < HTTP_LINGER_BYTES;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left =
            HTTP_LINGER_MS - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            break;
        ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n <= 0)
            break;
        dropped += (size_t)n;
    }
    return -1;
}

/* A request the codec refused: answer with the problem it names, and close. */
static int refuse_framing(struct http_req *r)
{
    http_req_refused(r);
    return refuse_and_close(r);
}

/* Answer r, whose request took c->in[0..used), and make ready for the next one. The
 * answer is written under the connection's deadline: a client that stops reading is cut
 * off by the watchdog like one that stops sending. */
static int finish(struct http_conn *c, struct http_req *r, size_t used)
{
    guard_arm(c->gc);
    int rc = answer(r);
    /* What is left is the start of the next request (pipelined). */
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    guard_arm(c->gc); /* the next request has its own deadline */
    return rc;
}

/* Serve the next request of c. Returns 0 to go on with the connection, -1 to close it. */
static int serve_one(struct http_conn *c)
{
    int too_large;
    size_t head = read_head(c, &too_large);
    if (head == 0 && !too_large)
        return -1; /* gone, or cut off by the watchdog, between requests */
    struct http_req *r = http_req_new(c);
    if (!r)
        return -1;
    if (too_large) {
        r->msg.status = 431;
        r->msg.error = "the request head is too large";
        return refuse_framing(r);
    }
    if (http1_parse_head(&r->msg, c->in, head, r->srv->conf.max_body) != 0)
        return refuse_framing(r);
    if (http_req_head(r) != 0) {
        if (r->msg.state == HTTP1_BODY)
            return refuse_and_close(r); /* a body nobody will read */
        return finish(c, r, head);
    }
    if (r->msg.state == HTTP1_BODY && r->msg.expect_continue) {
        static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        struct iovec iov = {cont, sizeof(cont) - 1};
        if (send_all(c->fd, &iov, 1) != 0) {
            http_req_end(r, 0);
            return -1;
        }
    }
    size_t next = read_body(c, r, head);
    if (r->msg.state == HTTP1_ERROR)
        return refuse_framing(r);
    if (next == 0) {
        http_req_end(r, 0); /* the client went away mid-body */
        return -1;
    }
    guard_disarm(c->gc); /* the request is in; the handler's time does not count */
    http_req_dispatch(r);
    return finish(c, r, next);
}

/* ---- connections --------------------------------------------------------------------- */

static void *conn_main(void *arg)
{
    struct http_conn *c = arg;
    struct http_server *s = c->srv;
    while (serve_one(c) == 0)
        ;
    /* Close first, while the server (and its guard) surely exists: once this connection
     * leaves the list, http_stop may free the server. The fd is taken out under the lock,
     * so http_stop never shuts down a number the kernel has given to someone else. */
    pthread_mutex_lock(&s->conns_mu);
    int fd = c->fd;
    c->fd = -1;
    pthread_mutex_unlock(&s->conns_mu);
    guard_close(s->guard, c->gc); /* before close: the watchdog never sees a reused fd */
    close(fd);
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
    free(c->in); /* s is not touched from here on */
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
        if (c->fd >= 0)
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
