/* SPDX-License-Identifier: Apache-2.0 */
/* harness_http: the harness's minimal HTTP/1.1 client over real TCP sockets (see
 * harness.h). Thread-safe: no globals; every wait is bounded by a deadline. */
/* GNU extensions used: memmem, pipe2, close_range, environ (the Makefile passes it too). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "harness.h"
#include "harness_buf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define TH_HTTP_TIMEOUT_MS 10000
#define TH_CONNECT_TIMEOUT_MS 5000
#define TH_HEAD_MAX ((size_t)64 * 1024) /* status line + headers of one response */
#define TH_BODY_MAX (256u << 20)

/* Wait until fd is ready for events or the deadline passes. Returns 0 or -1. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - th_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, (int)left);
        if (n > 0)
            return 0;
        if (n == 0 || errno != EINTR)
            return -1;
    }
}

static int connect_port(int port, int64_t deadline)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int so_error = 0;
        socklen_t len = sizeof(so_error);
        if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) != 0 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0)
            goto fail;
    }
    /* Blocking again for callers that use the fd directly; the harness itself always
     * polls first and passes MSG_DONTWAIT. */
    int one = 1;
    struct timeval send_timeout = {.tv_sec = th_ms(TH_HTTP_TIMEOUT_MS) / 1000};
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout)) != 0)
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

int th_connect(int port)
{
    return connect_port(port, th_now_ms() + th_ms(TH_CONNECT_TIMEOUT_MS));
}

static int send_all(int fd, const char *p, size_t len, int64_t deadline)
{
    while (len > 0) {
        if (wait_fd(fd, POLLOUT, deadline) != 0)
            return -1;
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        }
    }
    return 0;
}

int th_send_all(int fd, const void *buf, size_t len)
{
    return send_all(fd, buf, len, th_now_ms() + th_ms(TH_HTTP_TIMEOUT_MS));
}

/* Receive up to len bytes, waiting until the deadline. Returns the count, 0 at the end of
 * the stream, -1 on an error or timeout. A reset counts as the end when eof_on_reset. */
static ssize_t recv_some(int fd, void *p, size_t len, int flags, int64_t deadline, int eof_on_reset)
{
    for (;;) {
        if (wait_fd(fd, POLLIN, deadline) != 0)
            return -1;
        ssize_t n = recv(fd, p, len, flags | MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno == ECONNRESET && eof_on_reset)
            return 0;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
    }
}

/* Append to b everything up to and including delim, never consuming a byte past it (the
 * next response on a keep-alive connection stays in the socket): peek, then take only what
 * is ours. Returns 0, or -1 at the end of the stream, on timeout or past max bytes. */
static int read_through(int fd, struct th_buf *b, const char *delim, size_t max, int64_t deadline)
{
    size_t dlen = strlen(delim), start = b->len;
    char chunk[4096];
    for (;;) {
        ssize_t n = recv_some(fd, chunk, sizeof(chunk), MSG_PEEK, deadline, 0);
        if (n <= 0)
            return -1;
        size_t before = b->len;
        if (th_buf_append(b, chunk, (size_t)n) != 0)
            return -1;
        /* The delimiter may straddle what we had and what we peeked. */
        size_t overlap = before - start < dlen - 1 ? before - start : dlen - 1;
        char *hit = memmem(b->data + before - overlap, b->len - before + overlap, delim, dlen);
        size_t take = hit ? (size_t)(hit - b->data) + dlen - before : (size_t)n;
        b->len = before + take;
        b->data[b->len] = '\0';
        while (take > 0) {
            ssize_t got = recv_some(fd, chunk, take, 0, deadline, 0);
            if (got <= 0)
                return -1;
            take -= (size_t)got;
        }
        if (hit)
            return 0;
        if (b->len - start > max)
            return -1;
    }
}

/* Append exactly len bytes (len SIZE_MAX: everything until the peer closes). */
static int read_body(int fd, struct th_buf *b, size_t len, int64_t deadline)
{
    int to_close = len == SIZE_MAX;
    while (len > 0) {
        size_t want = len < 65536 ? len : 65536;
        if (b->len + want > TH_BODY_MAX || th_buf_reserve(b, want) != 0)
            return -1;
        ssize_t n = recv_some(fd, b->data + b->len, want, 0, deadline, to_close);
        if (n < 0 || (n == 0 && !to_close))
            return -1;
        if (n == 0)
            break;
        b->len += (size_t)n;
        b->data[b->len] = '\0';
        if (!to_close)
            len -= (size_t)n;
    }
    return 0;
}

static int read_chunked(int fd, struct th_buf *body, int64_t deadline)
{
    struct th_buf line = {0};
    for (;;) {
        line.len = 0;
        if (read_through(fd, &line, "\r\n", 1024, deadline) != 0)
            goto fail;
        char *end;
        errno = 0;
        unsigned long long size = strtoull(line.data, &end, 16);
        if (end == line.data || errno != 0 || size > TH_BODY_MAX)
            goto fail;
        if (size == 0)
            break;
        line.len = 0;
        if (read_body(fd, body, (size_t)size, deadline) != 0 ||
            read_through(fd, &line, "\r\n", 2, deadline) != 0 || line.len != 2)
            goto fail;
    }
    do { /* trailers, up to the empty line */
        line.len = 0;
        if (read_through(fd, &line, "\r\n", TH_HEAD_MAX, deadline) != 0)
            goto fail;
    } while (line.len != 2);
    free(line.data);
    return 0;
fail:
    free(line.data);
    return -1;
}

/* The value of the first header called name in a "Name: value\r\n"... block, trimmed;
 * its length in *len. NULL if there is none. */
static const char *find_header(const char *headers, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    for (const char *p = headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            eol = p + strlen(p);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon && (size_t)(colon - p) == nlen && strncasecmp(p, name, nlen) == 0) {
            const char *v = colon + 1, *e = eol;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *len = (size_t)(e - v);
            return v;
        }
        p = *eol ? eol + 2 : eol;
    }
    return NULL;
}

/* Does s[0..len) contain word, ignoring case? */
static int strcasestr_n(const char *s, size_t len, const char *word)
{
    size_t wlen = strlen(word);
    for (size_t i = 0; i + wlen <= len; i++)
        if (strncasecmp(s + i, word, wlen) == 0)
            return 1;
    return 0;
}

/* Read one response: status line, headers, and a body framed as the headers say (none if
 * no_body, the answer to HEAD). Returns 0 or -1. */
static int read_response(int fd, struct th_resp *out, int64_t deadline, int no_body)
{
    struct th_buf head = {0}, body = {0};
    char value[64];
    size_t te_len = 0, cl_len = 0;
    memset(out, 0, sizeof(*out));
    if (read_through(fd, &head, "\r\n\r\n", TH_HEAD_MAX, deadline) != 0 || head.len < 12 ||
        strncmp(head.data, "HTTP/1.", 7) != 0)
        goto fail;
    out->status = atoi(head.data + 9);
    char *eol = strstr(head.data, "\r\n");
    head.data[head.len - 2] = '\0'; /* drop the empty line, keep the last header's CRLF */
    out->headers = strdup(eol + 2);
    if (!out->headers || out->status < 100 || out->status > 999)
        goto fail;
    const char *te = find_header(out->headers, "Transfer-Encoding", &te_len);
    const char *cl = find_header(out->headers, "Content-Length", &cl_len);
    if (no_body || out->status < 200 || out->status == 204 || out->status == 304) {
        /* no body */
    } else if (te && strcasestr_n(te, te_len, "chunked")) {
        if (read_chunked(fd, &body, deadline) != 0)
            goto fail;
    } else if (cl) {
        char *end;
        snprintf(value, sizeof(value), "%.*s", (int)(cl_len < 63 ? cl_len : 63), cl);
        unsigned long long n = strtoull(value, &end, 10);
        if (end == value || *end || n > TH_BODY_MAX || read_body(fd, &body, (size_t)n, deadline))
            goto fail;
    } else if (read_body(fd, &body, SIZE_MAX, deadline) != 0) {
        goto fail;
    }
    out->body_len = body.len;
    out->body = th_buf_take(&body);
    free(head.data);
    return out->body ? 0 : -1;
fail:
    free(head.data);
    free(body.data);
    th_resp_free(out);
    return -1;
}

int th_read_response(int fd, struct th_resp *out, int timeout_ms)
{
    return read_response(fd, out, th_now_ms() + timeout_ms, 0);
}

static int has_header(const char *const *headers, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; headers && headers[i]; i++)
        if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':')
            return 1;
    return 0;
}

static int build_request(struct th_buf *req, int port, const char *method, const char *path,
                         const char *const *headers, const char *body, size_t body_len)
{
    int rc = th_buf_printf(req, "%s %s HTTP/1.1\r\n", method, path);
    if (rc == 0 && !has_header(headers, "Host"))
        rc = th_buf_printf(req, "Host: 127.0.0.1:%d\r\n", port);
    for (size_t i = 0; rc == 0 && headers && headers[i]; i++)
        rc = th_buf_printf(req, "%s\r\n", headers[i]);
    if (rc == 0 && body && !has_header(headers, "Content-Length") &&
        !has_header(headers, "Transfer-Encoding"))
        rc = th_buf_printf(req, "Content-Length: %zu\r\n", body_len);
    if (rc == 0 && !has_header(headers, "Connection"))
        rc = th_buf_printf(req, "Connection: close\r\n");
    if (rc == 0)
        rc = th_buf_append(req, "\r\n", 2);
    if (rc == 0 && body)
        rc = th_buf_append(req, body, body_len);
    return rc;
}

static int http_request(int port, const char *method, const char *path, const char *const *headers,
                        const char *body, size_t body_len, struct th_resp *out, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    struct th_buf req = {0};
    int fd = -1;
    memset(out, 0, sizeof(*out));
    if (build_request(&req, port, method, path, headers, body, body_len) != 0)
        goto fail;
    fd = connect_port(port, deadline);
    if (fd < 0)
        goto fail;
    /* A server may answer before it has read the whole body (413) and close: a failed send
     * is not the end, what it said is still read. */
    (void)send_all(fd, req.data, req.len, deadline);
    do {
        th_resp_free(out);
        if (read_response(fd, out, deadline, strcmp(method, "HEAD") == 0) != 0)
            goto fail;
    } while (out->status < 200 && out->status != 101);
    close(fd);
    free(req.data);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(req.data);
    return -1;
}

int th_http(int port, const char *method, const char *path, const char *const *headers,
            const char *body, size_t body_len, struct th_resp *out)
{
    return http_request(port, method, path, headers, body, body_len, out,
                        th_ms(TH_HTTP_TIMEOUT_MS));
}

int th_post_json(int port, const char *path, const char *json, struct th_resp *out)
{
    const char *headers[] = {"Content-Type: application/json", NULL};
    return th_http(port, "POST", path, headers, json, strlen(json), out);
}

const char *th_header(const struct th_resp *r, const char *name, char *buf, size_t bufsize)
{
    size_t len;
    const char *v = r ? find_header(r->headers, name, &len) : NULL;
    if (!v || bufsize == 0)
        return NULL;
    snprintf(buf, bufsize, "%.*s", (int)(len < bufsize ? len : bufsize - 1), v);
    return buf;
}

json_t *th_json(const struct th_resp *r)
{
    if (!r || !r->body)
        return NULL;
    return json_loadb(r->body, r->body_len, 0, NULL);
}

void th_resp_free(struct th_resp *r)
{
    if (!r)
        return;
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}
