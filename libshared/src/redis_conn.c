/* SPDX-License-Identifier: Apache-2.0 */
/* redis_conn: one non-blocking, pipelined connection to a Redis node on a loop (TCP, unix
 * socket, TLS), with its handshake, deadlines and in-order replies. */
#include "redis_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define RCONN_READ_CHUNK 16384
#define RCONN_RING_INITIAL 64

/* CONNECTING and TLS: the transport is being set up; HELLO: it is, and AUTH/SELECT are
 * answered yet; UP: commands may be given to it. */
enum rconn_state { RC_CONNECTING, RC_TLS, RC_HELLO, RC_UP, RC_DEAD };

/* A command waiting for its reply. arg NULL: one of the handshake's own. */
struct pending {
    void *arg;
    int64_t deadline_ms;
};

struct rconn {
    struct loop *loop;
    struct rconn_owner owner;
    enum rconn_state state;
    struct loop_io io;
    SSL *ssl;
    int ssl_wants_write; /* TLS needs the socket writable to go on */
    int64_t opened_ms;

    char *out; /* formatted commands not yet written: out[sent..len) */
    size_t out_len, out_sent, out_cap;
    struct loop_task flush;

    struct pending *ring; /* commands sent or queued, oldest first */
    size_t ring_head, ring_len, ring_cap;

    redisReader *reader;
    redisReply *current; /* the reply being handed to the owner */
    int stolen;
    struct loop_timer deadline; /* the connect deadline, then the earliest command's */
    int handshake_left;         /* AUTH/SELECT replies still to come */
    uint64_t commands, writes;
};

/* ---- the queue of commands awaiting replies ------------------------------------------ */

static int ring_push(struct rconn *c, void *arg, int64_t deadline_ms)
{
    if (c->ring_len == c->ring_cap) {
        size_t cap = c->ring_cap ? c->ring_cap * 2 : RCONN_RING_INITIAL;
        struct pending *r = malloc(cap * sizeof(struct pending));
        if (!r)
            return -1;
        for (size_t i = 0; i < c->ring_len; i++)
            r[i] = c->ring[(c->ring_head + i) % c->ring_cap];
        free(c->ring);
        c->ring = r;
        c->ring_cap = cap;
        c->ring_head = 0;
    }
    c->ring[(c->ring_head + c->ring_len++) % c->ring_cap] = (struct pending){arg, deadline_ms};
    return 0;
}

static struct pending ring_pop(struct rconn *c)
{
    struct pending p = c->ring[c->ring_head];
    c->ring_head = (c->ring_head + 1) % c->ring_cap;
    c->ring_len--;
    return p;
}

/* ---- failing ------------------------------------------------------------------------- */

static void release(struct rconn *c)
{
    loop_timer_stop(c->loop, &c->deadline);
    loop_io_stop(c->loop, &c->io);
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->io.fd >= 0)
        close(c->io.fd);
    c->io.fd = -1;
}

static void destroy(struct rconn *c)
{
    loop_cancel(c->loop, &c->flush);
    if (c->reader)
        redisReaderFree(c->reader);
    free(c->out);
    free(c->ring);
    free(c);
}

/* Answer every command still queued with st (the first with first_st: the one whose
 * deadline passed). */
static void fail_all(struct rconn *c, enum rcl_status first_st, enum rcl_status st)
{
    for (int first = 1; c->ring_len > 0; first = 0) {
        struct pending p = ring_pop(c);
        if (p.arg)
            c->owner.reply(c->owner.owner, c, p.arg, first ? first_st : st, NULL);
    }
}

/* The connection failed: tell the owner (it stops using c), then fail its commands. The
 * loop's callbacks below free c on their way out (a reply handed over may still be on the
 * stack until then). */
static void die(struct rconn *c, enum rcl_status why)
{
    if (c->state == RC_DEAD)
        return;
    int was_up = c->state == RC_UP;
    c->state = RC_DEAD;
    release(c);
    c->owner.down(c->owner.owner, c, why, was_up);
    fail_all(c, why, why == RCL_TIMEOUT ? RCL_TIMEOUT : RCL_CONN);
}

void rconn_close(struct rconn *c)
{
    if (!c)
        return;
    c->state = RC_DEAD;
    release(c);
    fail_all(c, RCL_CONN, RCL_CONN);
    destroy(c);
}

void rconn_retire(struct rconn *c)
{
    c->state = RC_DEAD;
    release(c);
    fail_all(c, RCL_CONN, RCL_CONN);
    /* Freed on the way out of its own callback (on_io), or by the task below: a caller up
     * the stack may be delivering one of its replies right now. */
    loop_defer(c->loop, &c->flush);
}

/* ---- deadlines ----------------------------------------------------------------------- */

static void arm_deadline(struct rconn *c, int64_t at_ms)
{
    if (!loop_timer_armed(&c->deadline) || at_ms < c->deadline.at_ms)
        loop_timer_start(c->loop, &c->deadline, at_ms - loop_now_ms(c->loop));
}

/* The timer fires at the earliest deadline it knew of; commands answered since may have
 * taken it away, so look again: fail on a deadline passed, else re-arm to the earliest. */
static void check_deadlines(struct rconn *c)
{
    int64_t now = loop_now_ms(c->loop), earliest = INT64_MAX;
    if (c->state == RC_CONNECTING || c->state == RC_TLS) {
        die(c, RCL_CONN); /* connecting took too long */
        return;
    }
    for (size_t i = 0; i < c->ring_len; i++) {
        int64_t d = c->ring[(c->ring_head + i) % c->ring_cap].deadline_ms;
        if (d <= now) {
            die(c, RCL_TIMEOUT);
            return;
        }
        if (d < earliest)
            earliest = d;
    }
    if (earliest != INT64_MAX)
        loop_timer_start(c->loop, &c->deadline, earliest - now);
}

static void on_deadline(struct loop_timer *t)
{
    struct rconn *c = t->arg;
    check_deadlines(c);
    if (c->state == RC_DEAD)
        destroy(c);
}

/* ---- writing ------------------------------------------------------------------------- */

static ssize_t raw_write(struct rconn *c, const char *buf, size_t len)
{
    if (!c->ssl) {
        ssize_t n = send(c->io.fd, buf, len, MSG_NOSIGNAL);
        return n < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : n;
    }
    ERR_clear_error();
    int n = SSL_write(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? 0 : -1;
}

/* Watch for what the connection waits for: replies always, writability while output is
 * pending or TLS needs it. */
static void watch(struct rconn *c)
{
    unsigned want = LOOP_READ | (c->out_len > c->out_sent || c->ssl_wants_write ? LOOP_WRITE : 0u);
    if (loop_io_set(c->loop, &c->io, want) != 0)
        die(c, RCL_CONN);
}

/* Write what is buffered; what the socket did not take moves to the front of the buffer
 * (TLS may retry from a moved buffer: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
static void flush(struct rconn *c)
{
    if (c->state != RC_UP && c->state != RC_HELLO)
        return;
    if (c->out_sent < c->out_len) {
        ssize_t n = raw_write(c, c->out + c->out_sent, c->out_len - c->out_sent);
        if (n < 0) {
            die(c, RCL_CONN);
            return;
        }
        if (n > 0) {
            c->writes++;
            if (c->owner.writes)
                metric_inc(c->owner.writes);
        }
        c->out_sent += (size_t)n;
        memmove(c->out, c->out + c->out_sent, c->out_len - c->out_sent);
        c->out_len -= c->out_sent;
        c->out_sent = 0;
    }
    watch(c);
}

static void on_flush(struct loop_task *t)
{
    struct rconn *c = t->arg;
    flush(c);
    if (c->state == RC_DEAD)
        destroy(c);
}

static int buffer(struct rconn *c, const char *cmd, size_t len)
{
    if (!c->out || c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + len)
            cap *= 2;
        char *o = realloc(c->out, cap);
        if (!o)
            return -1;
        c->out = o;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, cmd, len);
    c->out_len += len;
    return 0;
}

int rconn_push(struct rconn *c, const char *cmd, size_t len, int64_t deadline_ms, void *arg)
{
    if (buffer(c, cmd, len) != 0)
        return -1;
    if (ring_push(c, arg, deadline_ms) != 0) {
        c->out_len -= len;
        return -1;
    }
    c->commands++;
    if (c->state == RC_UP || c->state == RC_HELLO)
        arm_deadline(c, deadline_ms);
    loop_defer(c->loop, &c->flush);
    return 0;
}

/* ---- reading ------------------------------------------------------------------------- */

static void handshake_done(struct rconn *c)
{
    c->state = RC_UP;
    c->owner.up(c->owner.owner, c);
}

/* Hand each complete reply to the command it answers. */
static void deliver(struct rconn *c)
{
    void *r;
    while ((c->state == RC_UP || c->state == RC_HELLO) && c->ring_len > 0) {
        if (redisReaderGetReply(c->reader, &r) != REDIS_OK) {
            die(c, RCL_CONN); /* not RESP: nothing more can be trusted */
            return;
        }
        if (!r)
            return;
        struct pending p = ring_pop(c);
        redisReply *reply = r;
        if (!p.arg) { /* AUTH or SELECT */
            int ok = reply->type != REDIS_REPLY_ERROR;
            freeReplyObject(reply);
            if (!ok) {
                die(c, RCL_CONN);
                return;
            }
            if (--c->handshake_left == 0)
                handshake_done(c);
            continue;
        }
        c->current = reply;
        c->stolen = 0;
        c->owner.reply(c->owner.owner, c, p.arg,
                       reply->type == REDIS_REPLY_ERROR ? RCL_REPLY_ERROR : RCL_OK, reply);
        c->current = NULL;
        if (!c->stolen)
            freeReplyObject(reply);
    }
}

redisReply *rconn_steal_reply(struct rconn *c)
{
    c->stolen = 1;
    return c->current;
}

/* Read what there is (TLS: everything decrypted so far), then deliver. */
static void on_readable(struct rconn *c)
{
    char buf[RCONN_READ_CHUNK];
    for (;;) {
        ssize_t n;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_read(c->ssl, buf, sizeof(buf));
            int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                break;
            c->ssl_wants_write = e == SSL_ERROR_WANT_WRITE;
            if (c->ssl_wants_write)
                break;
            n = e == SSL_ERROR_NONE ? r : -1;
        } else {
            n = recv(c->io.fd, buf, sizeof(buf), 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                break;
        }
        if (n <= 0) {
            die(c, RCL_CONN); /* closed by Redis, or broken */
            return;
        }
        if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
            die(c, RCL_CONN);
            return;
        }
        if (!c->ssl && (size_t)n < sizeof(buf))
            break; /* drained: no need for a read that would say EAGAIN */
    }
    deliver(c);
}

/* ---- connecting ---------------------------------------------------------------------- */

/* The transport is up: AUTH and SELECT (queued at open) go out now; commands come once
 * they are answered. */
static void transport_up(struct rconn *c)
{
    loop_timer_stop(c->loop, &c->deadline);
    c->state = RC_HELLO;
    for (size_t i = 0; i < c->ring_len; i++)
        arm_deadline(c, c->ring[(c->ring_head + i) % c->ring_cap].deadline_ms);
    if (c->handshake_left == 0)
        handshake_done(c);
    if (c->state != RC_DEAD)
        flush(c);
}

static void tls_step(struct rconn *c)
{
    ERR_clear_error();
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        transport_up(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (loop_io_set(c->loop, &c->io, e == SSL_ERROR_WANT_READ ? LOOP_READ : LOOP_WRITE) != 0)
            die(c, RCL_CONN);
        return;
    }
    die(c, RCL_CONN); /* the handshake or the certificate check failed */
}

static void connected(struct rconn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        die(c, RCL_CONN);
        return;
    }
    if (!c->ssl) {
        transport_up(c);
        return;
    }
    c->state = RC_TLS;
    tls_step(c);
}

static void on_io(struct loop_io *io, unsigned ready)
{
    struct rconn *c = io->arg;
    if (c->state == RC_CONNECTING)
        connected(c);
    else if (c->state == RC_TLS)
        tls_step(c);
    else if (c->state != RC_DEAD) {
        if (ready & (LOOP_READ | LOOP_ERROR) || (c->ssl_wants_write && (ready & LOOP_WRITE)))
            on_readable(c);
        if (c->state != RC_DEAD)
            flush(c);
    }
    if (c->state == RC_DEAD)
        destroy(c);
}

/* A non-blocking socket with its connect under way. Returns the fd, or -1. */
static int start_connect(const struct rconn_target *t)
{
    if (t->path) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(t->path) >= sizeof(sa.sun_path))
            return -1;
        memcpy(sa.sun_path, t->path, strlen(t->path) + 1);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 &&
            errno != EINPROGRESS && errno != EAGAIN) {
            close(fd);
            return -1;
        }
        return fd;
    }
    /* Numeric hosts resolve without a query; a name is looked up here, once per connect
     * (configure an address to keep DNS off the loop). */
    char port[8];
    snprintf(port, sizeof(port), "%d", t->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(t->host, port, &hints, &ai) != 0 || !ai)
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    return fd;
}

static SSL *tls_session(SSL_CTX *ctx, int fd, const char *name)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    SSL_set_connect_state(ssl);
    /* The certificate must name the server: a chain to the CA alone is not enough. An
     * address is matched against the certificate's IP entries and sends no SNI. */
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
    if (SSL_set_fd(ssl, fd) != 1 ||
        (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name)
               : SSL_set1_host(ssl, name) & SSL_set_tlsext_host_name(ssl, name)) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    return ssl;
}

/* The handshake's commands, queued ahead of everything else. */
static int queue_handshake(struct rconn *c, const struct rconn_target *t)
{
    char *cmd = NULL;
    char db[16];
    snprintf(db, sizeof(db), "%d", t->db);
    const char *auth[] = {"AUTH", t->user ? t->user : t->pass, t->pass};
    const char *select[] = {"SELECT", db};
    int rc = 0;
    if (t->pass) {
        int n = redisFormatCommandArgv(&cmd, t->user ? 3 : 2, auth, NULL);
        rc = n < 0 ? -1 : rconn_push(c, cmd, (size_t)n, INT64_MAX, NULL);
        redisFreeCommand(cmd);
        c->handshake_left++;
    }
    if (rc == 0 && t->db != 0) {
        int n = redisFormatCommandArgv(&cmd, 2, select, NULL);
        rc = n < 0 ? -1 : rconn_push(c, cmd, (size_t)n, INT64_MAX, NULL);
        redisFreeCommand(cmd);
        c->handshake_left++;
    }
    c->commands = 0; /* counted: the callers' commands */
    return rc;
}

struct rconn *rconn_open(struct loop *l, const struct rconn_target *t, const struct rconn_owner *o)
{
    struct rconn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = l;
    c->owner = *o;
    c->io = (struct loop_io){.fd = -1, .fn = on_io, .arg = c};
    c->flush = (struct loop_task){.fn = on_flush, .arg = c};
    c->deadline = (struct loop_timer){.fn = on_deadline, .arg = c};
    c->opened_ms = loop_now_ms(l);
    c->reader = redisReaderCreate();
    if (!c->reader || queue_handshake(c, t) != 0)
        goto fail;
    c->io.fd = start_connect(t);
    if (c->io.fd < 0)
        goto fail;
    if (t->tls && !(c->ssl = tls_session(t->tls, c->io.fd, t->server_name)))
        goto fail;
    if (loop_io_start(l, &c->io, LOOP_WRITE) != 0)
        goto fail;
    loop_timer_start(l, &c->deadline, t->connect_timeout_ms);
    return c;
fail:
    release(c);
    destroy(c);
    return NULL;
}

size_t rconn_in_flight(const struct rconn *c)
{
    return c->ring_len;
}

int rconn_is_up(const struct rconn *c)
{
    return c->state == RC_UP;
}

int64_t rconn_opened_ms(const struct rconn *c)
{
    return c->opened_ms;
}

void rconn_counters(const struct rconn *c, uint64_t *commands, uint64_t *writes)
{
    *commands = c->commands;
    *writes = c->writes;
}
