/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of where and how a daemon listens: LISTEN_ADDR as a unix socket and
 * as [::1]:port, HTTP_CONNECTION_LIMIT and HTTP_CONNECTION_TIMEOUT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../lib/harness.h"

/* Start testd listening on listen (a LISTEN_ADDR value) with one extra setting; no
 * Redis is needed for these tests. Does not wait: the caller connects itself. */
static void start(struct th_proc *p, const char *listen, const char *extra)
{
    char addr[300];
    snprintf(addr, sizeof(addr), "LISTEN_ADDR=%s", listen);
    const char *env[] = {addr, "REDIS_URL=redis://127.0.0.1:1/0", extra, NULL};
    const char *argv[] = {"testd", NULL};
    assert_int_equal(th_proc_start(p, th_bin("tests/testd"), argv, env, 0), 0);
}

/* Connect to a unix or IPv6 address, retrying while the daemon starts (2 s, times the
 * harness's time scale). */
static int connect_retry(int family, const void *sa, socklen_t len)
{
    for (int i = 0; i < th_ms(100); i++) {
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, sa, len) == 0)
            return fd;
        if (fd >= 0)
            close(fd);
        usleep(20000);
    }
    return -1;
}

/* GET /health over fd; returns the status. */
static int get_health(int fd)
{
    struct th_resp r;
    const char *req = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    if (th_send_all(fd, req, strlen(req)) != 0 || th_read_response(fd, &r, th_ms(2000)) != 0)
        return -1;
    int status = r.status;
    th_resp_free(&r);
    return status;
}

/* Does p's log show needle within 2 s (times the time scale)? A thread writes the log. */
static int log_shows(const struct th_proc *p, const char *needle)
{
    for (int64_t end = th_now_ms() + th_ms(2000); !th_proc_log_contains(p, needle); usleep(20000))
        if (th_now_ms() >= end)
            return 0;
    return 1;
}

/* Has the peer closed fd within timeout_ms? */
static int closed_within(int fd, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char c;
    if (poll(&pfd, 1, timeout_ms) != 1)
        return 0;
    return recv(fd, &c, 1, 0) <= 0;
}

static void test_unix_socket(void **state)
{
    (void)state;
    char dir[256], listen[300];
    struct th_proc p;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_int_equal(th_tmpdir(dir, sizeof(dir)), 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%.90s/testd.sock", dir);
    snprintf(listen, sizeof(listen), "unix:%s", sa.sun_path);
    start(&p, listen, NULL);
    int fd = connect_retry(AF_UNIX, &sa, sizeof(sa));
    assert_true(fd >= 0);
    assert_int_equal(get_health(fd), 200);
    close(fd);
    assert_true(log_shows(&p, listen));
    assert_int_equal(th_proc_stop(&p, SIGTERM, 5000), 0);
    struct stat st;
    assert_int_equal(stat(sa.sun_path, &st), -1); /* removed on shutdown */
    rmdir(dir);
}

static void test_ipv6_loopback(void **state)
{
    (void)state;
    char listen[64], logged[80];
    struct th_proc p;
    int port = th_free_port();
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    inet_pton(AF_INET6, "::1", &sa.sin6_addr);
    snprintf(listen, sizeof(listen), "[::1]:%d", port);
    start(&p, listen, NULL);
    int fd = connect_retry(AF_INET6, &sa, sizeof(sa));
    assert_true(fd >= 0);
    assert_int_equal(get_health(fd), 200);
    close(fd);
    snprintf(logged, sizeof(logged), "\"addr\":\"[::1]:%d\"", port);
    assert_true(log_shows(&p, logged));
    assert_int_equal(th_proc_stop(&p, SIGTERM, 5000), 0);
}

/* An idle keep-alive connection is closed after HTTP_CONNECTION_TIMEOUT, not before. */
static void test_idle_timeout(void **state)
{
    (void)state;
    char listen[64];
    struct th_proc p;
    int port = th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    start(&p, listen, "HTTP_CONNECTION_TIMEOUT=1s");
    int fd = -1;
    for (int i = 0; i < th_ms(100) && fd < 0; i++, usleep(20000))
        fd = th_connect(port);
    assert_true(fd >= 0);
    assert_int_equal(get_health(fd), 200);
    int64_t idle_from = th_now_ms();
    assert_false(closed_within(fd, 600));
    assert_true(closed_within(fd, th_ms(3000)));
    int64_t closed_after = th_now_ms() - idle_from;
    assert_true(closed_after >= 900 && closed_after < th_ms(3500));
    close(fd);
    assert_int_equal(th_proc_stop(&p, SIGTERM, 5000), 0);
}

/* Beyond HTTP_CONNECTION_LIMIT a new connection is closed unanswered; once one closes,
 * a new connection is served again. */
static void test_connection_limit(void **state)
{
    (void)state;
    char listen[64];
    struct th_proc p;
    int port = th_free_port(), held[4];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    start(&p, listen, "HTTP_CONNECTION_LIMIT=4");
    held[0] = -1;
    for (int i = 0; i < th_ms(100) && held[0] < 0; i++, usleep(20000))
        held[0] = th_connect(port);
    assert_true(held[0] >= 0);
    assert_int_equal(get_health(held[0]), 200);
    for (int i = 1; i < 4; i++) {
        held[i] = th_connect(port);
        assert_int_equal(get_health(held[i]), 200);
    }
    int extra = th_connect(port);
    assert_true(extra < 0 || get_health(extra) == -1);
    if (extra >= 0)
        close(extra);
    close(held[3]);
    usleep((useconds_t)th_ms(100) * 1000);
    struct th_resp r;
    assert_int_equal(th_http(port, "GET", "/health", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    for (int i = 0; i < 3; i++)
        close(held[i]);
    assert_int_equal(th_proc_stop(&p, SIGTERM, 5000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unix_socket),
        cmocka_unit_test(test_ipv6_loopback),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_connection_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
