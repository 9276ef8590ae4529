/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the HTTP server itself (libshared/src/http_server.c: a worker's
 * event loop, its connection states, input and output buffers, pipelining, deferred
 * answers, lingering closes): the input is what a client sends on one connection to a
 * real server, started once, on a unix socket. The client sends it all, shuts its side,
 * and reads until the server closes. Every answer must be a whole HTTP/1.1 response, and
 * the server must close the connection in time: a connection that never ends is a hang.
 *
 * Routes: POST /v1/echo (the JSON body back), GET /v1/now (answered at once), GET
 * /v1/later (answered from a timer of the loop, 0 ms), POST /v1/form (a form body). */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "shared/http.h"
#include "shared/log.h"
#include "shared/loop.h"

#define READ_LIMIT_MS 3000

static struct http_server *server;
static struct metrics *registry; /* lives as long as the server */
static char sock_path[108];

static void handle_echo(struct http_req *r, void *ctx)
{
    (void)ctx;
    http_reply_json(r, 200, json_pack("{s:O}", "echo", http_json(r)));
}

static void handle_now(struct http_req *r, void *ctx)
{
    (void)ctx;
    http_reply_json(r, 200, json_pack("{s:s?}", "q", http_query(r, "q")));
}

struct later {
    struct loop_timer t;
    struct http_req *r;
};

static void on_later(struct loop_timer *t)
{
    struct later *l = t->arg;
    http_reply_json(l->r, 200, json_pack("{s:b}", "later", 1));
    http_resume(l->r);
    free(l);
}

static void handle_later(struct http_req *r, void *ctx)
{
    (void)ctx;
    struct later *l = calloc(1, sizeof(*l));
    if (!l) {
        http_problem(r, 500, "internal", "out of memory");
        return;
    }
    l->t = (struct loop_timer){.fn = on_later, .arg = l};
    l->r = r;
    http_suspend(r);
    loop_timer_start(http_loop(r), &l->t, 0);
}

static void start_server(void)
{
    char err[160];
    log_init("fuzz", LOG_CRITICAL);
    snprintf(sock_path, sizeof(sock_path), "unix:/tmp/fuzz-http-%d.sock", (int)getpid());
    struct http_config hc = {.daemon = "fuzz",
                             .listen = sock_path,
                             .threads = 1,
                             .max_body = 512,
                             .connection_limit = 64,
                             .connection_timeout_ms = 2000};
    registry = metrics_create("fuzz");
    server = registry ? http_create(&hc, registry, err, sizeof(err)) : NULL;
    if (!server)
        abort();
    http_route(server, "POST", "/v1/echo", handle_echo, NULL, 0);
    http_route(server, "GET", "/v1/now", handle_now, NULL, 0);
    http_route(server, "GET", "/v1/later", handle_later, NULL, 0);
    http_route(server, "POST", "/v1/form", handle_echo, NULL, HTTP_FORM_BODY);
    if (http_start(server) != 0)
        abort();
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Every "HTTP/1.1 " in what came back starts a whole response: a status line, a head ended
 * by an empty line, and as many body bytes as its Content-Length says. */
static void check_responses(const char *buf, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        if (len - pos < 12 || memcmp(buf + pos, "HTTP/1.1 ", 9) != 0)
            abort();
        const char *end = memmem(buf + pos, len - pos, "\r\n\r\n", 4);
        if (!end)
            abort();
        size_t head = (size_t)(end - (buf + pos)) + 4;
        const char *cl = memmem(buf + pos, head, "Content-Length: ", 16);
        size_t body = cl ? strtoul(cl + 16, NULL, 10) : 0;
        int status = atoi(buf + pos + 9);
        if (status == 100) {
            pos += head;
            continue;
        }
        if (!cl || pos + head + body > len)
            abort();
        pos += head + body;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server)
        start_server();
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path + 5);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        abort();
    /* Send and read at once: the server may answer (and close) before it has all. */
    size_t sent = 0, got = 0, cap = 65536;
    char *in = malloc(cap);
    if (!in)
        abort();
    int64_t deadline = now_ms() + READ_LIMIT_MS;
    int wr_open = 1;
    for (;;) {
        if (wr_open && sent == size) {
            shutdown(fd, SHUT_WR);
            wr_open = 0;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN | (wr_open ? POLLOUT : 0)};
        int64_t left = deadline - now_ms();
        if (left <= 0)
            abort(); /* the server neither answered nor closed: a hang */
        if (poll(&pf, 1, (int)left) <= 0)
            continue;
        if (wr_open && (pf.revents & POLLOUT)) {
            ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN)
                wr_open = 0; /* the server closed: what it answered is still readable */
        }
        if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
            if (got == cap) {
                char *more = realloc(in, cap *= 2);
                if (!more)
                    abort();
                in = more;
            }
            ssize_t n = recv(fd, in + got, cap - got, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN))
                break;
            if (n > 0)
                got += (size_t)n;
        }
    }
    close(fd);
    check_responses(in, got);
    free(in);
    return 0;
}
