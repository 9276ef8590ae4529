/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the test harness itself (tests/lib): a real redis-server started, killed,
 * restarted, paused and stopped; the HTTP client against tiny servers run in a thread;
 * subprocesses, their logs, exit statuses and environment. */
/* cmocka.h needs these first; its own include block keeps clang-format from sorting it up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/harness.h"

static char self_exe[PATH_MAX];

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Is pid gone (or a zombie nobody has reaped yet)? */
static int process_gone(pid_t pid)
{
    char path[64], stat_line[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    size_t n = fread(stat_line, 1, sizeof(stat_line) - 1, f);
    fclose(f);
    stat_line[n] = '\0';
    const char *paren = strrchr(stat_line, ')');
    return paren && paren[1] == ' ' && paren[2] == 'Z';
}

static int listen_on(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* ---- Redis ------------------------------------------------------------------------------ */

static void assert_config(struct th_redis *r, const char *name, const char *want)
{
    redisReply *reply = th_redis_cmd(r, "CONFIG GET %s", name);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_ARRAY);
    assert_int_equal(reply->elements, 2);
    assert_string_equal(reply->element[1]->str, want);
    freeReplyObject(reply);
}

static void assert_pong(struct th_redis *r)
{
    redisReply *reply = th_redis_cmd(r, "PING");
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    assert_string_equal(reply->str, "PONG");
    freeReplyObject(reply);
}

static void test_redis_start_commands_stop(void **state)
{
    (void)state;
    struct th_redis r;
    char url[128], pidfile[300], pid_text[32];
    assert_int_equal(th_redis_start(&r, NULL), 0);
    assert_true(r.port > 0 && r.port < 65536);
    assert_true(r.pid > 0);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", r.port);
    assert_string_equal(r.url, url);
    assert_true(path_exists(r.dir));
    const char *tmp = getenv("WARDEN_TEST_TMPDIR");
    assert_memory_equal(r.dir, tmp ? tmp : "/tmp", strlen(tmp ? tmp : "/tmp"));
    /* run.sh kills whatever a crashed test leaves: it finds it by this file. */
    snprintf(pidfile, sizeof(pidfile), "%s/redis.pid", r.dir);
    FILE *f = fopen(pidfile, "r");
    assert_non_null(f);
    assert_non_null(fgets(pid_text, sizeof(pid_text), f));
    fclose(f);
    assert_int_equal(atol(pid_text), r.pid);

    assert_pong(&r);
    assert_config(&r, "save", "");
    assert_config(&r, "appendonly", "no");
    assert_config(&r, "bind", "127.0.0.1");

    redisReply *reply = th_redis_cmd(&r, "SET %s %b", "bin", "a\0b", (size_t)3);
    assert_non_null(reply);
    assert_string_equal(reply->str, "OK");
    freeReplyObject(reply);
    reply = th_redis_cmd(&r, "GET bin");
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STRING);
    assert_int_equal(reply->len, 3);
    assert_memory_equal(reply->str, "a\0b", 3);
    freeReplyObject(reply);

    assert_int_equal(th_redis_int(&r, "INCRBY %s %d", "n", 41), 41);
    assert_int_equal(th_redis_int(&r, "INCR n"), 42);
    assert_int_equal(th_redis_int(&r, "GET n"), 42);     /* a string holding an integer */
    assert_int_equal(th_redis_int(&r, "GET bin"), -1);   /* not an integer */
    assert_int_equal(th_redis_int(&r, "GET nokey"), -1); /* nil */

    char dir[256];
    pid_t pid = r.pid;
    snprintf(dir, sizeof(dir), "%s", r.dir);
    th_redis_stop(&r);
    assert_int_equal(r.pid, 0);
    assert_false(path_exists(dir));
    assert_true(process_gone(pid));
    th_redis_stop(&r); /* twice is harmless */
}

/* Kill + restart: same port, same dir, same arguments (AOF on, so the data survives). */
static void test_redis_kill_restart(void **state)
{
    (void)state;
    struct th_redis r;
    const char *extra[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    assert_int_equal(th_redis_start(&r, extra), 0);
    assert_config(&r, "appendonly", "yes");
    assert_int_equal(th_redis_int(&r, "INCRBY kept %d", 7), 7);
    int port = r.port;
    pid_t old_pid = r.pid;

    th_redis_kill(&r);
    assert_true(process_gone(old_pid));
    assert_true(path_exists(r.dir));
    assert_null(th_redis_cmd(&r, "PING"));

    assert_int_equal(th_redis_restart(&r), 0);
    assert_int_equal(r.port, port);
    assert_true(r.pid > 0 && r.pid != old_pid);
    assert_pong(&r);
    assert_config(&r, "appendonly", "yes");
    assert_config(&r, "appendfsync", "always");
    assert_int_equal(th_redis_int(&r, "GET kept"), 7);
    th_redis_stop(&r);
}

struct port_holder {
    int fd;
    int hold_ms;
};

static void *release_port_later(void *arg)
{
    struct port_holder *h = arg;
    sleep_ms(h->hold_ms);
    close(h->fd);
    return NULL;
}

/* While something else holds the port, a restart keeps retrying (up to 2 s). */
static void test_redis_restart_waits_for_port(void **state)
{
    (void)state;
    struct th_redis r;
    assert_int_equal(th_redis_start(&r, NULL), 0);
    th_redis_kill(&r);
    struct port_holder h = {.fd = listen_on(r.port), .hold_ms = 500};
    assert_true(h.fd >= 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, release_port_later, &h), 0);
    int64_t start = th_now_ms();
    int rc = th_redis_restart(&r);
    int64_t took = th_now_ms() - start;
    pthread_join(t, NULL);
    assert_int_equal(rc, 0);
    assert_true(took >= 400);
    assert_pong(&r);
    th_redis_stop(&r);
}

static void test_redis_pause_resume(void **state)
{
    (void)state;
    struct th_redis r;
    assert_int_equal(th_redis_start(&r, NULL), 0);
    th_redis_pause(&r);
    int64_t start = th_now_ms();
    redisReply *reply = th_redis_cmd_ms(&r, 200, "PING");
    int64_t took = th_now_ms() - start;
    assert_null(reply);
    assert_true(took >= 150 && took < 1000);

    th_redis_resume(&r);
    assert_pong(&r);

    /* Stopping a paused server works too (and does not take the 5 s SIGKILL path). */
    th_redis_pause(&r);
    start = th_now_ms();
    th_redis_stop(&r);
    assert_true(th_now_ms() - start < 3000);
    assert_int_equal(r.pid, 0);
}

/* A Redis whose test process dies goes with it (PR_SET_PDEATHSIG). */
static void test_redis_dies_with_its_test(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct th_redis r;
        close(fds[0]);
        if (th_redis_start(&r, NULL) == 0) {
            (void)!write(fds[1], &r, sizeof(r));
        }
        _exit(0); /* without stopping it */
    }
    close(fds[1]);
    struct th_redis r;
    ssize_t n = read(fds[0], &r, sizeof(r));
    close(fds[0]);
    waitpid(child, NULL, 0);
    assert_int_equal(n, (ssize_t)sizeof(r));
    int64_t start = th_now_ms();
    while (!process_gone(r.pid) && th_now_ms() - start < 2000)
        sleep_ms(10);
    assert_true(process_gone(r.pid));
    r.pid = 0;
    th_redis_stop(&r); /* only removes its dir */
    assert_false(path_exists(r.dir));
}

/* ---- ports, paths, temp dirs ---------------------------------------------------------------- */

static void test_free_port_and_paths(void **state)
{
    (void)state;
    int a = th_free_port(), b = th_free_port();
    assert_true(a > 0 && a < 65536 && b > 0 && b < 65536);
    int fd = listen_on(a);
    assert_true(fd >= 0); /* really free */
    close(fd);

    const char *prev = getenv("WARDEN_BUILD");
    char *saved = prev ? strdup(prev) : NULL;
    setenv("WARDEN_BUILD", "out/asan", 1);
    assert_string_equal(th_bin("bin/idemd"), "out/asan/bin/idemd");
    unsetenv("WARDEN_BUILD");
    assert_string_equal(th_bin("tests/testd"), "build/tests/testd");
    if (saved)
        setenv("WARDEN_BUILD", saved, 1);
    free(saved);

    char d1[256], d2[256];
    assert_int_equal(th_tmpdir(d1, sizeof(d1)), 0);
    assert_int_equal(th_tmpdir(d2, sizeof(d2)), 0);
    assert_string_not_equal(d1, d2);
    assert_true(path_exists(d1) && path_exists(d2));
    char tiny[8];
    assert_int_equal(th_tmpdir(tiny, sizeof(tiny)), -1);
    rmdir(d1);
    rmdir(d2);
}

/* ---- HTTP client against a tiny server ------------------------------------------------------ */

/* Accepts one connection, reads the request (and a Content-Length body if read_body),
 * writes response in pieces of `piece` bytes, then holds the connection linger_ms (or, if
 * negative, until the client closes) and closes. */
struct mini {
    int listen_fd, port;
    const char *response;
    size_t piece;
    int read_body, linger_ms;
    char request[8192];
    size_t request_len;
    pthread_t thread;
};

static void mini_read_request(struct mini *m, int fd)
{
    char *end = NULL;
    while (!end && m->request_len < sizeof(m->request) - 1) {
        ssize_t n =
            recv(fd, m->request + m->request_len, sizeof(m->request) - 1 - m->request_len, 0);
        if (n <= 0)
            return;
        m->request_len += (size_t)n;
        m->request[m->request_len] = '\0';
        end = strstr(m->request, "\r\n\r\n");
    }
    const char *cl = strstr(m->request, "Content-Length: ");
    size_t want =
        m->read_body && cl ? (size_t)(end + 4 - m->request) + strtoul(cl + 16, NULL, 10) : 0;
    while (m->request_len < want && m->request_len < sizeof(m->request) - 1) {
        ssize_t n =
            recv(fd, m->request + m->request_len, sizeof(m->request) - 1 - m->request_len, 0);
        if (n <= 0)
            return;
        m->request_len += (size_t)n;
        m->request[m->request_len] = '\0';
    }
}

static void *mini_run(void *arg)
{
    struct mini *m = arg;
    int fd = accept(m->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    mini_read_request(m, fd);
    size_t len = strlen(m->response), piece = m->piece ? m->piece : len;
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        if (send(fd, m->response + off, n, MSG_NOSIGNAL) < 0)
            break;
        if (m->piece)
            sleep_ms(1);
    }
    if (m->linger_ms > 0) {
        sleep_ms(m->linger_ms);
    } else if (m->linger_ms < 0) {
        char c;
        while (recv(fd, &c, 1, 0) > 0)
            ;
    }
    close(fd);
    return NULL;
}

static void mini_start(struct mini *m)
{
    struct sockaddr_in sa = {0};
    socklen_t len = sizeof(sa);
    m->listen_fd = listen_on(0);
    assert_true(m->listen_fd >= 0);
    assert_int_equal(getsockname(m->listen_fd, (struct sockaddr *)&sa, &len), 0);
    m->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&m->thread, NULL, mini_run, m), 0);
}

static void mini_join(struct mini *m)
{
    pthread_join(m->thread, NULL);
    close(m->listen_fd);
}

static void test_http_content_length(void **state)
{
    (void)state;
    struct mini m = {.read_body = 1,
                     .response = "HTTP/1.1 201 Created\r\n"
                                 "content-type: application/json\r\n"
                                 "X-Spaced:   two words \t\r\n"
                                 "Content-Length: 11\r\n"
                                 "\r\n"
                                 "{\"ok\":true}"};
    mini_start(&m);
    struct th_resp r;
    assert_int_equal(th_post_json(m.port, "/v1/things?x=1", "{\"a\":1}", &r), 0);
    mini_join(&m);

    char expect[128];
    snprintf(expect, sizeof(expect), "Host: 127.0.0.1:%d\r\n", m.port);
    assert_memory_equal(m.request, "POST /v1/things?x=1 HTTP/1.1\r\n", 30);
    assert_non_null(strstr(m.request, expect));
    assert_non_null(strstr(m.request, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(m.request, "\r\nContent-Length: 7\r\n"));
    assert_non_null(strstr(m.request, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(m.request, "\r\n\r\n{\"a\":1}"));

    char buf[64], tiny[4];
    assert_int_equal(r.status, 201);
    assert_string_equal(th_header(&r, "Content-Type", buf, sizeof(buf)), "application/json");
    assert_string_equal(th_header(&r, "x-spaced", buf, sizeof(buf)), "two words");
    assert_string_equal(th_header(&r, "Content-Type", tiny, sizeof(tiny)), "app");
    assert_null(th_header(&r, "X-Missing", buf, sizeof(buf)));
    assert_null(th_header(&r, "Content", buf, sizeof(buf))); /* a prefix is not a match */
    assert_int_equal(r.body_len, 11);
    assert_string_equal(r.body, "{\"ok\":true}");
    json_t *j = th_json(&r);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "ok")));
    json_decref(j);
    th_resp_free(&r);
    assert_null(r.body);
    th_resp_free(&r); /* twice is harmless */
    th_resp_free(NULL);
}

/* Chunked body (with a chunk extension and a trailer) arriving a few bytes at a time. */
static void test_http_chunked(void **state)
{
    (void)state;
    struct mini m = {.piece = 3,
                     .response = "HTTP/1.1 200 OK\r\n"
                                 "Transfer-Encoding: chunked\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "\r\n"
                                 "5\r\nhello\r\n"
                                 "7;ext=1\r\n, world\r\n"
                                 "0\r\nX-Trailer: t\r\n\r\n"};
    mini_start(&m);
    struct th_resp r;
    const char *headers[] = {"X-Request-ID: abc", "Host: example.test", NULL};
    assert_int_equal(th_http(m.port, "GET", "/chunks", headers, NULL, 0, &r), 0);
    mini_join(&m);
    assert_non_null(strstr(m.request, "\r\nX-Request-ID: abc\r\n"));
    assert_non_null(strstr(m.request, "\r\nHost: example.test\r\n"));
    assert_null(strstr(m.request, "Host: 127.0.0.1")); /* the caller's Host wins */
    assert_null(strstr(m.request, "Content-Length"));  /* no body, no length */
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 12);
    assert_string_equal(r.body, "hello, world");
    assert_null(th_json(&r));
    th_resp_free(&r);
}

/* No Content-Length, no chunking: the body runs until the server closes. */
static void test_http_body_until_close(void **state)
{
    (void)state;
    struct mini m = {.response = "HTTP/1.0 200 OK\r\nServer: mini\r\n\r\nall of it, then EOF"};
    mini_start(&m);
    struct th_resp r;
    assert_int_equal(th_http(m.port, "GET", "/", NULL, NULL, 0, &r), 0);
    mini_join(&m);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "all of it, then EOF");
    th_resp_free(&r);
}

/* An interim 100 Continue is skipped by th_http. */
static void test_http_skips_interim(void **state)
{
    (void)state;
    struct mini m = {.response = "HTTP/1.1 100 Continue\r\n\r\n"
                                 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"};
    mini_start(&m);
    struct th_resp r;
    assert_int_equal(th_http(m.port, "PUT", "/x", NULL, "", 0, &r), 0);
    mini_join(&m);
    assert_non_null(strstr(m.request, "\r\nContent-Length: 0\r\n"));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    th_resp_free(&r);
}

/* HEAD: Content-Length describes a body that never comes; do not wait for it. */
static void test_http_head(void **state)
{
    (void)state;
    struct mini m = {.linger_ms = 1500,
                     .response = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"};
    mini_start(&m);
    struct th_resp r;
    int64_t start = th_now_ms();
    assert_int_equal(th_http(m.port, "HEAD", "/", NULL, NULL, 0, &r), 0);
    assert_true(th_now_ms() - start < 1000);
    mini_join(&m);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(r.body, "");
    th_resp_free(&r);
}

/* Two responses in one packet on a keep-alive connection: th_read_response takes exactly
 * one each time, and then times out instead of hanging. */
static void test_keepalive_exact_reads(void **state)
{
    (void)state;
    struct mini m = {.linger_ms = -1,
                     .response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "3\r\none\r\n0\r\n\r\n"
                                 "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\ntwo"};
    mini_start(&m);
    int fd = th_connect(m.port);
    assert_true(fd >= 0);
    const char req[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(th_send_all(fd, req, strlen(req)), 0);
    struct th_resp r;
    assert_int_equal(th_read_response(fd, &r, 2000), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "one");
    th_resp_free(&r);
    assert_int_equal(th_read_response(fd, &r, 2000), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "two");
    th_resp_free(&r);
    int64_t start = th_now_ms();
    assert_int_equal(th_read_response(fd, &r, 200), -1);
    int64_t took = th_now_ms() - start;
    assert_true(took >= 150 && took < 1000);
    close(fd);
    mini_join(&m);
}

/* The server answers 413 without reading a big body and closes: the answer still counts. */
static void test_http_early_answer(void **state)
{
    (void)state;
    struct mini m = {.response = "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n"
                                 "Connection: close\r\n\r\ntoo big!"};
    size_t len = 8u << 20;
    char *body = malloc(len);
    assert_non_null(body);
    memset(body, 'x', len);
    mini_start(&m);
    struct th_resp r;
    assert_int_equal(th_http(m.port, "POST", "/upload", NULL, body, len, &r), 0);
    mini_join(&m);
    free(body);
    assert_int_equal(r.status, 413);
    assert_string_equal(r.body, "too big!");
    th_resp_free(&r);
}

static void test_http_refused(void **state)
{
    (void)state;
    struct th_resp r;
    int port = th_free_port();
    int64_t start = th_now_ms();
    assert_int_equal(th_http(port, "GET", "/", NULL, NULL, 0, &r), -1);
    assert_true(th_now_ms() - start < 1000);
    assert_int_equal(th_connect(port), -1);
}

/* A response that is not HTTP at all is an error, not a hang or a crash. */
static void test_http_garbage(void **state)
{
    (void)state;
    struct mini m = {.response = "SSH-2.0-OpenSSH\r\n\r\n"};
    mini_start(&m);
    struct th_resp r;
    assert_int_equal(th_http(m.port, "GET", "/", NULL, NULL, 0, &r), -1);
    mini_join(&m);
}

/* ---- subprocesses --------------------------------------------------------------------------- */

static void test_run_captures(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    const char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    assert_int_equal(th_run("/bin/sh", argv, NULL, &out, &err, 5000), 3);
    assert_string_equal(out, "out\n");
    assert_string_equal(err, "err\n");
    free(out);
    free(err);

    /* Either stream may be discarded; "sh" is found on PATH. */
    assert_int_equal(th_run("sh", argv, NULL, NULL, &err, 5000), 3);
    assert_string_equal(err, "err\n");
    free(err);
    assert_int_equal(th_run("/bin/sh", argv, NULL, NULL, NULL, 5000), 3);

    /* Killed by a signal: 128 + signal. */
    const char *killed[] = {"sh", "-c", "kill -TERM $$", NULL};
    assert_int_equal(th_run("/bin/sh", killed, NULL, NULL, NULL, 5000), 128 + SIGTERM);

    /* Not there at all. */
    const char *none[] = {"nope", NULL};
    assert_int_equal(th_run("/nonexistent/nope", none, NULL, &out, NULL, 5000), -1);
    assert_null(out);
}

/* The environment is PATH plus what the caller gives, nothing else from the test. */
static void test_run_environment(void **state)
{
    (void)state;
    char *out = NULL;
    setenv("TH_LEAK_CHECK", "leaked", 1);
    const char *argv[] = {"sh", "-c", "echo \"$FOO|$TH_LEAK_CHECK|${PATH:+path}\"", NULL};
    const char *env[] = {"FOO=bar baz", NULL};
    assert_int_equal(th_run("/bin/sh", argv, env, &out, NULL, 5000), 0);
    unsetenv("TH_LEAK_CHECK");
    assert_string_equal(out, "bar baz||path\n");
    free(out);

    const char *own_path[] = {"PATH=/custom", NULL};
    const char *show_path[] = {"sh", "-c", "echo $PATH", NULL};
    assert_int_equal(th_run("/bin/sh", show_path, own_path, &out, NULL, 5000), 0);
    assert_string_equal(out, "/custom\n");
    free(out);
}

static void test_run_timeout(void **state)
{
    (void)state;
    char *out = NULL;
    const char *argv[] = {"sh", "-c", "echo before; exec sleep 10", NULL};
    int64_t start = th_now_ms();
    assert_int_equal(th_run("/bin/sh", argv, NULL, &out, NULL, 300), -1);
    int64_t took = th_now_ms() - start;
    assert_true(took >= th_ms(250) && took < th_ms(2000)); /* the harness scales its waits */
    free(out);
}

static int wait_for_log(struct th_proc *p, const char *needle)
{
    int64_t start = th_now_ms();
    while (!th_proc_log_contains(p, needle) && th_now_ms() - start < 3000)
        sleep_ms(10);
    return th_proc_log_contains(p, needle);
}

static void test_proc_log_and_stop(void **state)
{
    (void)state;
    struct th_proc p;
    const char *argv[] = {"sh", "-c", "echo \"started $GREETING\"; echo oops >&2; exec sleep 30",
                          NULL};
    const char *env[] = {"GREETING=hi", NULL};
    assert_int_equal(th_proc_start(&p, "/bin/sh", argv, env, 0), 0);
    assert_true(p.pid > 0);
    assert_true(wait_for_log(&p, "started hi\n"));
    assert_true(wait_for_log(&p, "oops\n"));
    assert_false(th_proc_log_contains(&p, "never printed"));
    char *log = th_proc_log(&p);
    assert_non_null(log);
    assert_non_null(strstr(log, "started hi"));
    free(log);

    char pidfile[300];
    int dir_len = (int)(strrchr(p.log_path, '/') - p.log_path);
    snprintf(pidfile, sizeof(pidfile), "%.*s/proc.pid", dir_len, p.log_path);
    assert_true(path_exists(pidfile));

    pid_t pid = p.pid;
    assert_int_equal(th_proc_stop(&p, SIGTERM, 2000), 128 + SIGTERM);
    assert_int_equal(p.pid, 0);
    assert_true(process_gone(pid));
    assert_false(path_exists(pidfile));
    assert_true(th_proc_log_contains(&p, "oops")); /* the log outlives the process */
    assert_int_equal(th_proc_stop(&p, SIGTERM, 100), -1);
}

/* A program that ignores the signal is killed after the timeout. */
static void test_proc_stop_escalates(void **state)
{
    (void)state;
    struct th_proc p;
    const char *argv[] = {"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done",
                          NULL};
    assert_int_equal(th_proc_start(&p, "/bin/sh", argv, NULL, 0), 0);
    assert_true(wait_for_log(&p, "ready"));
    int64_t start = th_now_ms();
    assert_int_equal(th_proc_stop(&p, SIGTERM, 300), 128 + SIGKILL);
    int64_t took = th_now_ms() - start;
    assert_true(took >= th_ms(290) && took < th_ms(2000));

    const char *exits[] = {"sh", "-c", "exit 7", NULL};
    assert_int_equal(th_proc_start(&p, "/bin/sh", exits, NULL, 0), 0);
    assert_int_equal(th_proc_wait(&p, 2000), 7);
}

/* --health-server mode of this binary: GET /health is 503 twice, then 200; GET /env shows
 * $TH_ECHO. Run by test_proc_health as a daemon would be. */
static int health_server(int port)
{
    int lfd = listen_on(port), served = 0;
    if (lfd < 0)
        return 2;
    for (;;) {
        char req[2048] = "", resp[512];
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        ssize_t n = recv(fd, req, sizeof(req) - 1, 0);
        req[n > 0 ? n : 0] = '\0';
        const char *echo = getenv("TH_ECHO");
        const char *body = strncmp(req, "GET /env ", 9) == 0 ? (echo ? echo : "(unset)")
                           : served++ < 2                    ? "starting"
                                                             : "ok";
        int status = strcmp(body, "starting") == 0 ? 503 : 200;
        int len = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n\r\n%s",
                           status, strlen(body), body);
        (void)!send(fd, resp, (size_t)len, MSG_NOSIGNAL);
        close(fd);
    }
}

static void test_proc_health(void **state)
{
    (void)state;
    struct th_proc p;
    char port_arg[16];
    int port = th_free_port();
    snprintf(port_arg, sizeof(port_arg), "%d", port);
    const char *argv[] = {"test_harness", "--health-server", port_arg, NULL};
    const char *env[] = {"TH_ECHO=from env", NULL};
    assert_int_equal(th_proc_start(&p, self_exe, argv, env, port), 0);
    assert_int_equal(p.port, port);
    struct th_resp r;
    assert_int_equal(th_http(port, "GET", "/health", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200); /* start waited through the two 503s */
    th_resp_free(&r);
    assert_int_equal(th_http(port, "GET", "/env", NULL, NULL, 0, &r), 0);
    assert_string_equal(r.body, "from env");
    th_resp_free(&r);
    assert_int_equal(th_proc_stop(&p, SIGTERM, 2000), 128 + SIGTERM);

    /* A program that exits instead of answering fails the start at once. */
    const char *quits[] = {"sh", "-c", "echo giving up; exit 4", NULL};
    int64_t start = th_now_ms();
    assert_int_equal(th_proc_start(&p, "/bin/sh", quits, NULL, th_free_port()), -1);
    assert_true(th_now_ms() - start < 2000);
    assert_int_equal(p.pid, 0);
    assert_true(th_proc_log_contains(&p, "giving up"));
}

/* --print-env mode: $TH_ECHO and $WARDEN_WRAP_TAG; --time-scale mode: th_ms(100). */
static int print_env(void)
{
    const char *echo = getenv("TH_ECHO"), *tag = getenv("WARDEN_WRAP_TAG");
    printf("%s %s\n", echo ? echo : "(unset)", tag ? tag : "(unset)");
    return 0;
}

/* Run the copy of this binary in the build dir (where WARDEN_WRAP applies) in a mode. */
static int run_self(const char *mode, const char *const *env, char **out)
{
    const char *argv[] = {"test_harness", mode, NULL};
    return th_run(th_bin("tests/integration/test_harness"), argv, env, out, NULL, 5000);
}

/* WARDEN_WRAP goes before the programs of the build dir, each with its own tag, and before
 * nothing else. */
static void test_wrap_build_programs_only(void **state)
{
    (void)state;
    const char *wrap = getenv("WARDEN_WRAP");
    char *saved = wrap ? strdup(wrap) : NULL, *out = NULL;
    char tag[64];
    setenv("WARDEN_WRAP", " /usr/bin/env  TH_ECHO=wrapped", 1);
    int st1 = run_self("--print-env", NULL, &out);
    char *first = out;
    int st2 = run_self("--print-env", NULL, &out);
    const char *sh_argv[] = {"sh", "-c", "echo \"${TH_ECHO:-plain} ${WARDEN_WRAP_TAG:-none}\"",
                             NULL};
    char *sh_out = NULL;
    int st3 = th_run("/bin/sh", sh_argv, NULL, &sh_out, NULL, 5000);
    if (saved)
        setenv("WARDEN_WRAP", saved, 1);
    else
        unsetenv("WARDEN_WRAP");
    free(saved);
    assert_int_equal(st1, 0);
    assert_int_equal(st2, 0);
    assert_int_equal(st3, 0);
    snprintf(tag, sizeof(tag), "wrapped test_harness.%ld.", (long)getpid());
    assert_memory_equal(first, tag, strlen(tag));
    assert_memory_equal(out, tag, strlen(tag));
    assert_string_not_equal(first, out); /* a new number for each process */
    assert_string_equal(sh_out, "plain none\n");
    free(first);
    free(out);
    free(sh_out);
}

/* WARDEN_TIME_SCALE multiplies; a value that is not a whole number from 1 to 100 stops the
 * test with a message instead of being taken as 1. */
static void test_time_scale(void **state)
{
    (void)state;
    char *out = NULL;
    const char *three[] = {"WARDEN_TIME_SCALE=3", NULL}, *none[] = {"WARDEN_TIME_SCALE=", NULL};
    assert_int_equal(run_self("--time-scale", three, &out), 0);
    assert_string_equal(out, "300\n");
    free(out);
    assert_int_equal(run_self("--time-scale", none, &out), 0);
    assert_string_equal(out, "100\n");
    free(out);
    static const char *const bad[] = {"0", "101", "2x", "-1", "1.5", NULL};
    for (int i = 0; bad[i]; i++) {
        char env_bad[64], *err = NULL;
        snprintf(env_bad, sizeof(env_bad), "WARDEN_TIME_SCALE=%s", bad[i]);
        const char *env[] = {env_bad, NULL};
        const char *argv[] = {"test_harness", "--time-scale", NULL};
        assert_int_equal(
            th_run(th_bin("tests/integration/test_harness"), argv, env, &out, &err, 5000), 2);
        assert_string_equal(out, "");
        assert_non_null(strstr(err, "WARDEN_TIME_SCALE"));
        free(out);
        free(err);
    }
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--health-server") == 0)
        return health_server(atoi(argv[2]));
    if (argc == 2 && strcmp(argv[1], "--print-env") == 0)
        return print_env();
    if (argc == 2 && strcmp(argv[1], "--time-scale") == 0)
        return printf("%d\n", th_ms(100)) > 0 ? 0 : 1;
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (n <= 0)
        return 1;
    self_exe[n] = '\0';

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_start_commands_stop),
        cmocka_unit_test(test_redis_kill_restart),
        cmocka_unit_test(test_redis_restart_waits_for_port),
        cmocka_unit_test(test_redis_pause_resume),
        cmocka_unit_test(test_redis_dies_with_its_test),
        cmocka_unit_test(test_free_port_and_paths),
        cmocka_unit_test(test_http_content_length),
        cmocka_unit_test(test_http_chunked),
        cmocka_unit_test(test_http_body_until_close),
        cmocka_unit_test(test_http_skips_interim),
        cmocka_unit_test(test_http_head),
        cmocka_unit_test(test_keepalive_exact_reads),
        cmocka_unit_test(test_http_early_answer),
        cmocka_unit_test(test_http_refused),
        cmocka_unit_test(test_http_garbage),
        cmocka_unit_test(test_run_captures),
        cmocka_unit_test(test_run_environment),
        cmocka_unit_test(test_run_timeout),
        cmocka_unit_test(test_proc_log_and_stop),
        cmocka_unit_test(test_proc_stop_escalates),
        cmocka_unit_test(test_proc_health),
        cmocka_unit_test(test_wrap_build_programs_only),
        cmocka_unit_test(test_time_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
