/* SPDX-License-Identifier: Apache-2.0 */
/* systemd readiness, with the test standing in for systemd: a datagram socket given as
 * NOTIFY_SOCKET (as systemd-notify's peer would be). READY=1 comes once the daemon
 * answers; STATUS= tells Redis's state, at start and whenever it changes; WATCHDOG=1
 * comes at half of WATCHDOG_USEC; SIGHUP gives RELOADING=1 then READY=1 where the daemon
 * reloads (ratelimitd) and is logged as ignored where it does not (no "reloading");
 * SIGTERM gives STOPPING=1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "test_ops_util.h"

struct listener {
    int fd;
    char path[108];
    char env[128];
};

static void listen_notify(struct listener *l)
{
    char dir[96];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_int_equal(th_tmpdir(dir, sizeof(dir)), 0);
    snprintf(l->path, sizeof(l->path), "%s/notify", dir);
    memcpy(sa.sun_path, l->path, strlen(l->path) + 1);
    l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(l->fd >= 0);
    assert_int_equal(bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(l->env, sizeof(l->env), "NOTIFY_SOCKET=%s", l->path);
}

/* The next notification within timeout_ms into buf; 0, or -1 on timeout. */
static int next_msg(struct listener *l, char *buf, size_t size, int timeout_ms)
{
    struct pollfd p = {.fd = l->fd, .events = POLLIN};
    if (poll(&p, 1, th_ms(timeout_ms)) != 1)
        return -1;
    ssize_t n = recv(l->fd, buf, size - 1, 0);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

/* Wait for a notification containing needle (other ones are skipped); 0 or -1. */
static int wait_msg(struct listener *l, const char *needle, char *buf, size_t size, int ms)
{
    int64_t end = th_now_ms() + th_ms(ms);
    while (th_now_ms() < end)
        if (next_msg(l, buf, size, (int)(end - th_now_ms())) == 0 && strstr(buf, needle))
            return 0;
    return -1;
}

static void test_ready_status_and_watchdog(void **state)
{
    (void)state;
    struct th_redis redis;
    struct listener l = {0};
    struct th_proc d = {0};
    char msg[512], want[128];
    listen_notify(&l);
    assert_int_equal(th_redis_start(&redis, NULL), 0);
    const char *env[] = {l.env, "WATCHDOG_USEC=400000", NULL};
    assert_int_equal(th_daemon_start(&d, "bin/idemd", redis.url, env), 0);
    /* READY=1 came with where it listens and Redis's state; by then /health answered */
    assert_int_equal(wait_msg(&l, "READY=1", msg, sizeof(msg), 2000), 0);
    snprintf(want, sizeof(want), "STATUS=listening on 127.0.0.1:%d; redis ready", d.port);
    if (!strstr(msg, want))
        fail_msg("READY=1 without \"%s\": %s", want, msg);
    /* the watchdog at half of 400 ms: at least 4 in a second and a half */
    int pings = 0;
    int64_t end = th_now_ms() + th_ms(1500);
    while (th_now_ms() < end)
        if (next_msg(&l, msg, sizeof(msg), 200) == 0 && strstr(msg, "WATCHDOG=1"))
            pings++;
    assert_true(pings >= 4);
    /* Redis goes away: STATUS says so within a few seconds, and again when it is back */
    th_redis_kill(&redis);
    assert_int_equal(wait_msg(&l, "STATUS=", msg, sizeof(msg), 5000), 0);
    assert_non_null(strstr(msg, "redis not ready"));
    assert_int_equal(th_redis_restart(&redis), 0);
    assert_int_equal(wait_msg(&l, "STATUS=", msg, sizeof(msg), 8000), 0);
    assert_non_null(strstr(msg, "redis ready"));
    /* SIGHUP: idemd does not reload, and says so instead of "reloading" */
    kill(d.pid, SIGHUP);
    int64_t deadline = th_now_ms() + th_ms(3000);
    while (!th_proc_log_contains(&d, "SIGHUP ignored") && th_now_ms() < deadline)
        usleep(20000);
    assert_true(th_proc_log_contains(&d, "SIGHUP ignored"));
    assert_false(th_proc_log_contains(&d, "reloading"));
    th_proc_stop(&d, SIGTERM, 5000);
    assert_int_equal(wait_msg(&l, "STOPPING=1", msg, sizeof(msg), 2000), 0);
    th_redis_stop(&redis);
    close(l.fd);
}

static void test_ready_while_redis_is_down(void **state)
{
    (void)state;
    struct listener l = {0};
    struct th_proc d = {0};
    char msg[512];
    listen_notify(&l);
    const char *env[] = {l.env, NULL};
    assert_int_equal(th_daemon_start(&d, "bin/idemd", "redis://127.0.0.1:1/0", env), 0);
    /* it serves (/health), so it is started; Redis is reported, not waited for */
    assert_int_equal(wait_msg(&l, "READY=1", msg, sizeof(msg), 2000), 0);
    assert_non_null(strstr(msg, "redis not ready"));
    th_proc_stop(&d, SIGTERM, 5000);
    close(l.fd);
}

static void test_reload_is_announced(void **state)
{
    (void)state;
    struct th_redis redis;
    struct listener l = {0};
    struct th_proc d = {0};
    char msg[512];
    listen_notify(&l);
    assert_int_equal(th_redis_start(&redis, NULL), 0);
    const char *env[] = {l.env, NULL};
    assert_int_equal(th_daemon_start(&d, "bin/ratelimitd", redis.url, env), 0);
    assert_int_equal(wait_msg(&l, "READY=1", msg, sizeof(msg), 2000), 0);
    kill(d.pid, SIGHUP);
    assert_int_equal(wait_msg(&l, "RELOADING=1", msg, sizeof(msg), 3000), 0);
    assert_int_equal(wait_msg(&l, "READY=1", msg, sizeof(msg), 3000), 0);
    assert_non_null(strstr(msg, "reloaded"));
    th_proc_stop(&d, SIGTERM, 5000);
    th_redis_stop(&redis);
    close(l.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_status_and_watchdog),
        cmocka_unit_test(test_ready_while_redis_is_down),
        cmocka_unit_test(test_reload_is_announced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
