/* Integration tests of ratelimitd's circuit breaker and fallbacks. Redis sits behind a small
 * counting TCP proxy in the test: in `swallow` mode it accepts and reads everything but
 * forwards nothing (a hung Redis), and it counts every EVALSHA that reaches it, so the tests
 * can say exactly how many requests touched Redis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/harness.h"

/* ---- the counting proxy ---------------------------------------------------------------- */

static struct {
    int listen_fd, port, upstream_port;
    atomic_int swallow;
    atomic_int evalsha;
} proxy;

static int count_evalsha(const char *buf, size_t n)
{
    int c = 0;
    for (size_t i = 0; i + 7 <= n; i++)
        if (memcmp(buf + i, "EVALSHA", 7) == 0)
            c++;
    return c;
}

static void *proxy_conn(void *arg)
{
    int cfd = (int)(intptr_t)arg;
    int sfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(proxy.upstream_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (sfd < 0 || connect(sfd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto out;
    struct pollfd p[2] = {{.fd = cfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    char buf[16384];
    for (;;) {
        if (poll(p, 2, -1) < 0)
            break;
        if (p[0].revents) {
            ssize_t n = read(cfd, buf, sizeof(buf));
            if (n <= 0)
                break;
            atomic_fetch_add(&proxy.evalsha, count_evalsha(buf, (size_t)n));
            if (!atomic_load(&proxy.swallow) && th_send_all(sfd, buf, (size_t)n) != 0)
                break;
        }
        if (p[1].revents) {
            ssize_t n = read(sfd, buf, sizeof(buf));
            if (n <= 0 || th_send_all(cfd, buf, (size_t)n) != 0)
                break;
        }
    }
out:
    if (sfd >= 0)
        close(sfd);
    close(cfd);
    return NULL;
}

static void *proxy_accept(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(proxy.listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        pthread_t t;
        if (pthread_create(&t, NULL, proxy_conn, (void *)(intptr_t)fd) == 0)
            pthread_detach(t);
        else
            close(fd);
    }
}

static int proxy_start(int upstream_port)
{
    proxy.upstream_port = upstream_port;
    proxy.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(proxy.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    if (bind(proxy.listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(proxy.listen_fd, 128) != 0 ||
        getsockname(proxy.listen_fd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    proxy.port = ntohs(sa.sin_port);
    pthread_t t;
    if (pthread_create(&t, NULL, proxy_accept, NULL) != 0)
        return -1;
    pthread_detach(t);
    return 0;
}

/* ---- the daemon ---------------------------------------------------------------------- */

static struct th_redis redis;
static struct th_proc rl;
static char rules_env[340];

static int group_setup(void **state)
{
    (void)state;
    char dir[256], path[300];
    if (th_redis_start(&redis, NULL) != 0 || proxy_start(redis.port) != 0 ||
        th_tmpdir(dir, sizeof(dir)) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/rules.json", dir);
    if (th_write_file(
            path,
            "{\"rules\":[{\"name\":\"loc\",\"limit\":4,\"period\":\"1h\"},"
            "{\"name\":\"opn\",\"limit\":4,\"period\":\"1h\",\"on_redis_failure\":\"open\"},"
            "{\"name\":\"cls\",\"limit\":4,\"period\":\"1h\",\"on_redis_failure\":\"closed\"}]}") !=
        0)
        return -1;
    snprintf(rules_env, sizeof(rules_env), "RATELIMIT_RULES_FILE=%s", path);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    close(proxy.listen_fd);
    th_redis_stop(&redis);
    return 0;
}

/* timeout: REDIS_COMMAND_TIMEOUT. The proxy tests use 200ms rather than the 50ms default so
 * that "waited for the timeout" and "answered at once" stay far apart on a loaded machine. */
static int start_daemon(int redis_port, const char *timeout, const char *extra)
{
    char url[160];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", redis_port);
    const char *env[] = {rules_env,
                         "RATELIMIT_INSTANCES=2",
                         "BREAKER_FAILURE_THRESHOLD=3",
                         "BREAKER_OPEN_DURATION=300ms",
                         "BREAKER_OPEN_MAX=1s",
                         "REDIS_MIN_IDLE_CONNS=2",
                         timeout,
                         extra,
                         NULL};
    atomic_store(&proxy.swallow, 0);
    freeReplyObject(th_redis_cmd(&redis, "FLUSHALL"));
    return th_daemon_start(&rl, "bin/ratelimitd", url, env);
}

/* The daemon behind the counting proxy. */
static int setup(void **state)
{
    (void)state;
    return start_daemon(proxy.port, "REDIS_COMMAND_TIMEOUT=200ms", NULL);
}

/* A local fallback that holds at most 2 keys. */
static int setup_small_local(void **state)
{
    (void)state;
    return start_daemon(proxy.port, "REDIS_COMMAND_TIMEOUT=200ms", "RATELIMIT_LOCAL_MAX_KEYS=2");
}

/* The daemon straight on Redis, for the SIGSTOP test. */
static int setup_direct(void **state)
{
    (void)state;
    return start_daemon(redis.port, "REDIS_COMMAND_TIMEOUT=50ms", NULL);
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&rl, SIGTERM, 5000);
    atomic_store(&proxy.swallow, 0);
    return 0;
}

/* One check; returns its status and source (copied) and how long it took. */
static int check(const char *rule, const char *key, char *source, size_t size, int64_t *took_ms)
{
    char body[256];
    struct th_resp r;
    snprintf(body, sizeof(body), "{\"rule\":\"%s\",\"key\":\"%s\"}", rule, key);
    int64_t t0 = th_now_ms();
    assert_int_equal(th_post_json(rl.port, "/v1/check", body, &r), 0);
    if (took_ms)
        *took_ms = th_now_ms() - t0;
    json_t *j = th_json(&r);
    assert_non_null(j);
    snprintf(source, size, "%s", json_string_value(json_object_get(j, "source")));
    json_decref(j);
    int st = r.status;
    th_resp_free(&r);
    return st;
}

static json_t *breaker_state(void)
{
    struct th_resp r;
    assert_int_equal(th_http(rl.port, "GET", "/v1/breaker", NULL, NULL, 0, &r), 0);
    json_t *j = th_json(&r);
    th_resp_free(&r);
    assert_non_null(j);
    return j;
}

static void assert_state(const char *want)
{
    json_t *j = breaker_state();
    assert_string_equal(json_string_value(json_object_get(j, "state")), want);
    json_decref(j);
}

static int metrics_has(const char *needle)
{
    struct th_resp r;
    assert_int_equal(th_http(rl.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    int found = strstr(r.body, needle) != NULL;
    th_resp_free(&r);
    return found;
}

/* Warm a connection, then freeze Redis behind the proxy and fail `threshold` times. */
static void open_breaker(void)
{
    char src[32] = "";
    /* The first connections may take a moment to open on a busy machine. */
    for (int i = 0; i < 20 && strcmp(src, "redis") != 0; i++)
        check("opn", "warm", src, sizeof(src), NULL);
    assert_string_equal(src, "redis");
    assert_state("closed");
    atomic_store(&proxy.swallow, 1);
    atomic_store(&proxy.evalsha, 0);
    for (int i = 0; i < 3; i++) {
        int64_t took;
        assert_int_equal(check("opn", "k", src, sizeof(src), &took), 200);
        assert_string_equal(src, "fallback_open");
        /* Waited for the command timeout (200 ms), not much longer. */
        assert_in_range(took, 190, 600);
    }
    usleep(20000);
    assert_int_equal(atomic_load(&proxy.evalsha), 3);
    assert_state("open");
}

static void test_opens_after_threshold_and_stops_traffic(void **state)
{
    (void)state;
    char src[32];
    open_breaker();
    json_t *j = breaker_state();
    assert_true(json_is_integer(json_object_get(j, "open_until_ms")));
    json_decref(j);
    for (int i = 0; i < 10; i++) {
        int64_t took;
        assert_int_equal(check("opn", "k", src, sizeof(src), &took), 200);
        assert_string_equal(src, "fallback_open");
        assert_true(took < 100); /* no network, no waiting */
    }
    usleep(20000);
    assert_int_equal(atomic_load(&proxy.evalsha), 3); /* nothing reached Redis while open */
    assert_true(th_proc_log_contains(&rl, "\"msg\":\"breaker transition\",\"from\":\"closed\","
                                          "\"to\":\"open\""));
    assert_true(metrics_has("ratelimitd_breaker_transitions_total{from=\"closed\",to=\"open\"} 1"));
    assert_true(metrics_has("ratelimitd_breaker_state 1"));
}

static atomic_int probe_slow, probe_fast;
static void *concurrent_check(void *arg)
{
    (void)arg;
    char src[32];
    int64_t took;
    check("opn", "herd", src, sizeof(src), &took);
    atomic_fetch_add(took >= 190 ? &probe_slow : &probe_fast, 1);
    return NULL;
}

/* Half-open: of 20 concurrent checks exactly one reaches Redis; the rest fall back at once;
 * the hung probe fails after the command timeout and re-opens for twice as long. */
static void test_half_open_admits_exactly_one_probe(void **state)
{
    (void)state;
    open_breaker();
    usleep(400000); /* past 300 ms + 10% */
    atomic_store(&proxy.evalsha, 0);
    atomic_store(&probe_slow, 0);
    atomic_store(&probe_fast, 0);
    pthread_t t[20];
    for (int i = 0; i < 20; i++)
        assert_int_equal(pthread_create(&t[i], NULL, concurrent_check, NULL), 0);
    for (int i = 0; i < 20; i++)
        pthread_join(t[i], NULL);
    usleep(20000);
    assert_int_equal(atomic_load(&proxy.evalsha), 1);
    assert_int_equal(atomic_load(&probe_slow), 1);
    assert_int_equal(atomic_load(&probe_fast), 19);
    assert_true(metrics_has("ratelimitd_breaker_rejected_probes_total 19"));
    /* Re-opened with the period doubled: 600 ms +-10%, measured from the probe's failure. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_t *j = breaker_state();
    assert_string_equal(json_string_value(json_object_get(j, "state")), "open");
    long long left = (long long)json_integer_value(json_object_get(j, "open_until_ms")) -
                     ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    json_decref(j);
    assert_in_range(left, 300, 660);
    assert_true(metrics_has("{from=\"half_open\",to=\"open\"} 1"));
}

static void test_successful_probe_closes(void **state)
{
    (void)state;
    char src[32];
    open_breaker();
    atomic_store(&proxy.swallow, 0);
    usleep(400000);
    assert_int_equal(check("opn", "back", src, sizeof(src), NULL), 200);
    assert_string_equal(src, "redis");
    assert_state("closed");
    assert_true(metrics_has("{from=\"open\",to=\"half_open\"} 1"));
    assert_true(metrics_has("{from=\"half_open\",to=\"closed\"} 1"));
    assert_true(th_proc_log_contains(&rl, "\"from\":\"half_open\",\"to\":\"closed\""));
}

/* With Redis unreachable each rule's fallback decides, without touching the network. */
static void test_fallback_modes(void **state)
{
    (void)state;
    char src[32];
    open_breaker();
    /* local: limit 4 / 2 instances = 2 in memory. */
    assert_int_equal(check("loc", "a", src, sizeof(src), NULL), 200);
    assert_string_equal(src, "fallback_local");
    assert_int_equal(check("loc", "a", src, sizeof(src), NULL), 200);
    assert_int_equal(check("loc", "a", src, sizeof(src), NULL), 429);
    assert_string_equal(src, "fallback_local");
    assert_int_equal(check("loc", "other", src, sizeof(src), NULL), 200);
    assert_int_equal(check("opn", "a", src, sizeof(src), NULL), 200);
    assert_string_equal(src, "fallback_open");
    assert_int_equal(check("cls", "a", src, sizeof(src), NULL), 429);
    assert_string_equal(src, "fallback_closed");
    usleep(20000);
    assert_int_equal(atomic_load(&proxy.evalsha), 3);
    assert_true(metrics_has("ratelimitd_fallback_decisions_total{mode=\"local\"} 4"));
    assert_true(metrics_has("ratelimitd_decisions_total{rule=\"cls\",decision=\"denied\",source="
                            "\"fallback_closed\"} 1"));
}

static json_t *admin(const char *action)
{
    char body[64];
    struct th_resp r;
    snprintf(body, sizeof(body), "{\"action\":\"%s\"}", action);
    assert_int_equal(th_post_json(rl.port, "/v1/breaker", body, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = th_json(&r);
    th_resp_free(&r);
    return j;
}

static void test_admin_actions(void **state)
{
    (void)state;
    char src[32];
    json_t *j = admin("force_open");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "forced_open");
    json_decref(j);
    atomic_store(&proxy.evalsha, 0);
    assert_int_equal(check("opn", "f", src, sizeof(src), NULL), 200);
    assert_string_equal(src, "fallback_open");
    usleep(10000);
    assert_int_equal(atomic_load(&proxy.evalsha), 0);
    /* disabled: failures never open it; every request tries Redis. */
    json_decref(admin("disable"));
    atomic_store(&proxy.swallow, 1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(check("opn", "f", src, sizeof(src), NULL), 200);
        assert_string_equal(src, "fallback_open");
    }
    usleep(20000);
    assert_int_equal(atomic_load(&proxy.evalsha), 5);
    assert_state("disabled");
    atomic_store(&proxy.swallow, 0);
    j = admin("reset");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "closed");
    assert_int_equal(json_integer_value(json_object_get(j, "consecutive_failures")), 0);
    assert_true(json_is_null(json_object_get(j, "open_until_ms")));
    json_decref(j);
    assert_int_equal(check("opn", "f", src, sizeof(src), NULL), 200);
    assert_string_equal(src, "redis");
    assert_true(metrics_has("{from=\"disabled\",to=\"closed\"} 1"));
}

static json_t *admin(const char *action);

/* RATELIMIT_LOCAL_MAX_KEYS bounds the local fallback: past it the least recently used key
 * is forgotten (and starts afresh), so a flood of keys cannot grow memory. */
static void test_local_fallback_is_bounded(void **state)
{
    (void)state;
    char src[32];
    json_decref(admin("force_open"));
    atomic_store(&proxy.evalsha, 0);
    assert_int_equal(check("loc", "a", src, sizeof(src), NULL), 200);
    assert_int_equal(check("loc", "a", src, sizeof(src), NULL), 200);
    assert_int_equal(check("loc", "a", src, sizeof(src), NULL), 429);
    assert_string_equal(src, "fallback_local");
    assert_int_equal(check("loc", "b", src, sizeof(src), NULL), 200);
    assert_int_equal(check("loc", "c", src, sizeof(src), NULL), 200); /* evicts a */
    assert_int_equal(check("loc", "a", src, sizeof(src), NULL), 200);
    assert_string_equal(src, "fallback_local");
    assert_int_equal(atomic_load(&proxy.evalsha), 0);
}

/* Redis frozen with SIGSTOP: decisions fall back within the command timeout, the breaker
 * opens, then no decision waits; once Redis is back a probe closes it again. */
static void test_frozen_redis(void **state)
{
    (void)state;
    char src[32] = "";
    int64_t took;
    for (int i = 0; i < 20 && strcmp(src, "redis") != 0; i++)
        check("loc", "y", src, sizeof(src), NULL);
    assert_string_equal(src, "redis");
    assert_state("closed");
    th_redis_pause(&redis);
    for (int i = 0; i < 3; i++) {
        /* local: limit 4 / 2 instances = 2 in memory */
        assert_int_equal(check("loc", "z", src, sizeof(src), &took), i < 2 ? 200 : 429);
        assert_string_equal(src, "fallback_local");
        assert_true(took <= 400); /* 20 ms pool + 50 ms command timeout + scheduling */
    }
    assert_state("open");
    for (int i = 0; i < 5; i++) {
        check("opn", "z", src, sizeof(src), &took);
        assert_string_equal(src, "fallback_open");
        assert_true(took < 45);
    }
    th_redis_resume(&redis);
    usleep(400000);
    assert_int_equal(check("opn", "z", src, sizeof(src), NULL), 200);
    assert_string_equal(src, "redis");
    assert_state("closed");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_opens_after_threshold_and_stops_traffic, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_half_open_admits_exactly_one_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_successful_probe_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallback_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_actions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_fallback_is_bounded, setup_small_local,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_frozen_redis, setup_direct, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
