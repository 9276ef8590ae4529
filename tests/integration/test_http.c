/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of the HTTP layer and the daemon lifecycle, over real sockets, against
 * testd (a daemon made of libshared alone) and a real redis-server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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

static struct th_redis redis;
static struct th_proc testd;

/* Start testd against the shared Redis, with a 1 KiB body limit and extra settings. */
static int start_testd(struct th_proc *p, const char *const *extra)
{
    const char *env[TH_DAEMON_EXTRA_MAX] = {"HTTP_MAX_BODY=1KiB"};
    for (int i = 0; extra && extra[i] && i + 2 < TH_DAEMON_EXTRA_MAX; i++)
        env[i + 1] = extra[i];
    return th_daemon_start(p, "tests/testd", redis.url, env);
}

static int setup(void **state)
{
    (void)state;
    if (th_redis_start(&redis, NULL) != 0)
        return -1;
    return start_testd(&testd, NULL);
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&testd, SIGTERM, 5000);
    th_redis_stop(&redis);
    return 0;
}

/* Assert a problem response: status, code, content type, request id. */
static void assert_problem(struct th_resp *r, int status, const char *code)
{
    char ct[128];
    assert_int_equal(r->status, status);
    assert_non_null(th_header(r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/problem+json");
    json_t *j = th_json(r);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "code")), code);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), status);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "about:blank");
    assert_non_null(json_string_value(json_object_get(j, "title")));
    assert_non_null(json_string_value(json_object_get(j, "detail")));
    assert_non_null(json_string_value(json_object_get(j, "request_id")));
    json_decref(j);
}

static void test_not_found(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(th_http(testd.port, "GET", "/v1/nope", NULL, NULL, 0, &r), 0);
    assert_problem(&r, 404, "not_found");
    th_resp_free(&r);
}

static void test_method_not_allowed(void **state)
{
    (void)state;
    struct th_resp r;
    char allow[64];
    assert_int_equal(th_http(testd.port, "DELETE", "/v1/echo", NULL, NULL, 0, &r), 0);
    assert_problem(&r, 405, "method_not_allowed");
    assert_non_null(th_header(&r, "Allow", allow, sizeof(allow)));
    assert_string_equal(allow, "POST");
    th_resp_free(&r);
}

/* A declared body over HTTP_MAX_BODY is refused before a byte of it is sent. */
static void test_body_too_large_before_read(void **state)
{
    (void)state;
    struct th_resp r;
    int fd = th_connect(testd.port);
    assert_true(fd >= 0);
    const char *head = "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 100000\r\n\r\n";
    assert_int_equal(th_send_all(fd, head, strlen(head)), 0);
    assert_int_equal(th_read_response(fd, &r, 2000), 0);
    close(fd);
    assert_problem(&r, 413, "body_too_large");
    th_resp_free(&r);
}

/* A chunked body that grows past the limit gets 413 too. */
static void test_body_too_large_chunked(void **state)
{
    (void)state;
    struct th_resp r;
    int fd = th_connect(testd.port);
    assert_true(fd >= 0);
    const char *head = "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n";
    char chunk[700];
    memset(chunk, ' ', sizeof(chunk));
    char size_line[16];
    snprintf(size_line, sizeof(size_line), "%zx\r\n", sizeof(chunk));
    assert_int_equal(th_send_all(fd, head, strlen(head)), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(th_send_all(fd, size_line, strlen(size_line)), 0);
        assert_int_equal(th_send_all(fd, chunk, sizeof(chunk)), 0);
        assert_int_equal(th_send_all(fd, "\r\n", 2), 0);
    }
    assert_int_equal(th_send_all(fd, "0\r\n\r\n", 5), 0);
    assert_int_equal(th_read_response(fd, &r, 2000), 0);
    close(fd);
    assert_problem(&r, 413, "body_too_large");
    th_resp_free(&r);
}

static void test_unsupported_media_type(void **state)
{
    (void)state;
    struct th_resp r;
    const char *hdr[] = {"Content-Type: text/plain", NULL};
    assert_int_equal(th_http(testd.port, "POST", "/v1/echo", hdr, "{}", 2, &r), 0);
    assert_problem(&r, 415, "unsupported_media_type");
    th_resp_free(&r);
    assert_int_equal(th_http(testd.port, "POST", "/v1/echo", NULL, "{}", 2, &r), 0);
    assert_problem(&r, 415, "unsupported_media_type");
    th_resp_free(&r);
    /* Parameters after the media type are fine. */
    const char *ok[] = {"Content-Type: application/json; charset=utf-8", NULL};
    assert_int_equal(th_http(testd.port, "POST", "/v1/echo", ok, "{}", 2, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
}

static void test_invalid_json(void **state)
{
    (void)state;
    static const char *const bodies[] = {"{\"a\":",           "[1,2]",  "", "nul",
                                         "{\"a\":1,\"a\":2}", "\"str\""};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct th_resp r;
        assert_int_equal(th_post_json(testd.port, "/v1/echo", bodies[i], &r), 0);
        assert_problem(&r, 400, "invalid_json");
        th_resp_free(&r);
    }
}

static void test_invalid_request_names_field(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(th_post_json(testd.port, "/v1/incr", "{\"key\":7}", &r), 0);
    assert_problem(&r, 400, "invalid_request");
    json_t *j = th_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "field")), "key");
    json_decref(j);
    th_resp_free(&r);
}

/* The caller's X-Request-ID is echoed when valid, replaced when not; every answer has
 * one and Cache-Control: no-store. */
static void test_request_id(void **state)
{
    (void)state;
    struct th_resp r;
    char rid[200], cc[64];
    const char *good[] = {"X-Request-ID: abc.DEF_1:2-3", NULL};
    assert_int_equal(th_http(testd.port, "GET", "/health", good, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(th_header(&r, "X-Request-ID", rid, sizeof(rid)), "abc.DEF_1:2-3");
    assert_string_equal(th_header(&r, "Cache-Control", cc, sizeof(cc)), "no-store");
    th_resp_free(&r);

    char long_id[160];
    memset(long_id, 'a', 129 + 14);
    memcpy(long_id, "X-Request-ID: ", 14);
    long_id[129 + 14] = '\0';
    const char *bad_ids[][2] = {
        {"X-Request-ID: has space", NULL}, {long_id, NULL}, {"X-Request-ID: semi;colon", NULL}};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(th_http(testd.port, "GET", "/nope", bad_ids[i], NULL, 0, &r), 0);
        assert_non_null(th_header(&r, "X-Request-ID", rid, sizeof(rid)));
        assert_int_equal(strlen(rid), 16);
        json_t *j = th_json(&r);
        assert_string_equal(json_string_value(json_object_get(j, "request_id")), rid);
        json_decref(j);
        th_resp_free(&r);
    }
}

static void test_path_params_and_query(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(
        th_http(testd.port, "GET", "/v1/params/x%2Fy/b%7Bc%7D?q=a+b%21", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = th_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "a")), "x/y");
    assert_string_equal(json_string_value(json_object_get(j, "b")), "b{c}");
    assert_string_equal(json_string_value(json_object_get(j, "q")), "a b!");
    json_decref(j);
    th_resp_free(&r);

    /* An encoded NUL never reaches a handler cut short: no route, or no value. */
    assert_int_equal(th_http(testd.port, "GET", "/v1/params/a%00b/c", NULL, NULL, 0, &r), 0);
    assert_problem(&r, 404, "not_found");
    th_resp_free(&r);
    assert_int_equal(th_http(testd.port, "GET", "/v1/params/a/b?q=x%00y", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    j = th_json(&r);
    assert_true(json_is_null(json_object_get(j, "q"))); /* testd renders NULL as null */
    json_decref(j);
    th_resp_free(&r);
}

/* A last pattern segment "*name" takes the rest of the path, raw; a handler's own
 * Cache-Control replaces no-store. */
static void test_rest_of_path_and_cache_control(void **state)
{
    (void)state;
    struct th_resp r;
    char cc[64];
    assert_int_equal(th_http(testd.port, "GET", "/v1/rest/0/x001/234.p/17", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = th_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "a")), "0");
    assert_string_equal(json_string_value(json_object_get(j, "rest")), "x001/234.p/17");
    json_decref(j);
    assert_string_equal(th_header(&r, "Cache-Control", cc, sizeof(cc)),
                        "public, max-age=31536000, immutable");
    assert_int_equal(strstr(r.headers, "no-store") == NULL, 1); /* only one Cache-Control */
    th_resp_free(&r);
    assert_int_equal(th_http(testd.port, "GET", "/v1/rest/5/abc", NULL, NULL, 0, &r), 0);
    j = th_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "rest")), "abc");
    json_decref(j);
    th_resp_free(&r);
    assert_int_equal(th_http(testd.port, "GET", "/v1/rest/5", NULL, NULL, 0, &r), 0);
    assert_problem(&r, 404, "not_found"); /* the rest is one segment or more */
    th_resp_free(&r);
}

/* An answer whose head outgrows the usual buffer is still sent whole. */
static void test_long_response_head(void **state)
{
    (void)state;
    struct th_resp r;
    char *v = malloc(8000);
    assert_non_null(v);
    assert_int_equal(th_http(testd.port, "GET", "/v1/long-header?n=5000", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(th_header(&r, "X-Long", v, 8000));
    assert_int_equal(strlen(v), 5000);
    th_resp_free(&r);
    free(v);
}

/* HTTP_FORM_BODY: a form-encoded body reads like a JSON object of strings; JSON still
 * works; a repeated name is refused; other routes still take JSON only. */
static void test_form_bodies(void **state)
{
    (void)state;
    struct th_resp r;
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    const char body[] = "token=a%2Bb+c&token_type_hint=refresh_token&empty=";
    assert_int_equal(th_http(testd.port, "POST", "/v1/fields", form, body, strlen(body), &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = th_json(&r), *f = json_object_get(j, "fields");
    assert_string_equal(json_string_value(json_object_get(f, "token")), "a+b c");
    assert_string_equal(json_string_value(json_object_get(f, "token_type_hint")), "refresh_token");
    assert_string_equal(json_string_value(json_object_get(f, "empty")), "");
    json_decref(j);
    th_resp_free(&r);
    assert_int_equal(th_post_json(testd.port, "/v1/fields", "{\"token\":\"t\"}", &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    const char twice[] = "token=a&token=b";
    assert_int_equal(th_http(testd.port, "POST", "/v1/fields", form, twice, strlen(twice), &r), 0);
    assert_problem(&r, 400, "invalid_form");
    th_resp_free(&r);
    const char nul[] = "token=a%00b";
    assert_int_equal(th_http(testd.port, "POST", "/v1/fields", form, nul, strlen(nul), &r), 0);
    assert_problem(&r, 400, "invalid_form");
    th_resp_free(&r);
    assert_int_equal(th_http(testd.port, "POST", "/v1/echo", form, body, strlen(body), &r), 0);
    assert_problem(&r, 415, "unsupported_media_type");
    th_resp_free(&r);
}

/* W3C traceparent: its trace id is the request id when the caller sends none, and is in
 * the access log line; a malformed one is ignored. */
static void test_traceparent(void **state)
{
    (void)state;
    struct th_resp r;
    char rid[64];
    const char *tp[] = {"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                        NULL};
    assert_int_equal(th_http(testd.port, "GET", "/health", tp, NULL, 0, &r), 0);
    assert_string_equal(th_header(&r, "X-Request-ID", rid, sizeof(rid)),
                        "4bf92f3577b34da6a3ce929d0e0e4736");
    th_resp_free(&r);
    const char *both[] = {"X-Request-ID: mine-1", tp[0], NULL};
    assert_int_equal(th_http(testd.port, "GET", "/health", both, NULL, 0, &r), 0);
    assert_string_equal(th_header(&r, "X-Request-ID", rid, sizeof(rid)), "mine-1");
    th_resp_free(&r);
    int logged = 0;
    for (int i = 0; i < 100 && !logged; i++, usleep(20000))
        logged = th_proc_log_contains(&testd, "\"request_id\":\"mine-1\"") &&
                 th_proc_log_contains(&testd, "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"");
    assert_true(logged);
    const char *bad[] = {"traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                         NULL};
    assert_int_equal(th_http(testd.port, "GET", "/health", bad, NULL, 0, &r), 0);
    assert_int_equal(strlen(th_header(&r, "X-Request-ID", rid, sizeof(rid))), 16);
    th_resp_free(&r);
}

/* API_TOKEN guards /v1/..., ADMIN_TOKEN admin routes; /health stays open. */
static void test_bearer_tokens(void **state)
{
    (void)state;
    struct th_proc p;
    struct th_resp r;
    char www[64];
    const char *extra[] = {"API_TOKEN=api-secret", "ADMIN_TOKEN=admin-secret", NULL};
    assert_int_equal(start_testd(&p, extra), 0);

    assert_int_equal(th_post_json(p.port, "/v1/echo", "{}", &r), 0);
    assert_problem(&r, 401, "unauthorized");
    assert_string_equal(th_header(&r, "WWW-Authenticate", www, sizeof(www)), "Bearer");
    th_resp_free(&r);

    const char *wrong[] = {"Authorization: Bearer api-secreT", "Content-Type: application/json",
                           NULL};
    assert_int_equal(th_http(p.port, "POST", "/v1/echo", wrong, "{}", 2, &r), 0);
    assert_problem(&r, 401, "unauthorized");
    th_resp_free(&r);

    const char *right[] = {"Authorization: Bearer api-secret", "Content-Type: application/json",
                           NULL};
    assert_int_equal(th_http(p.port, "POST", "/v1/echo", right, "{}", 2, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);

    assert_int_equal(th_http(p.port, "GET", "/v1/admin", right, NULL, 0, &r), 0);
    assert_problem(&r, 401, "unauthorized");
    th_resp_free(&r);
    const char *admin[] = {"Authorization: Bearer admin-secret", NULL};
    assert_int_equal(th_http(p.port, "GET", "/v1/admin", admin, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);

    assert_int_equal(th_http(p.port, "GET", "/health", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    assert_int_equal(th_proc_stop(&p, SIGTERM, 5000), 0);
    assert_false(th_proc_log_contains(&p, "api-secret"));

    /* Without API_TOKEN (the shared testd) the same call needs nothing. */
    assert_int_equal(th_post_json(testd.port, "/v1/echo", "{}", &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
}

static void assert_ready(int expect_status, const char *expect_redis)
{
    struct th_resp r;
    assert_int_equal(th_http(testd.port, "GET", "/ready", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, expect_status);
    json_t *j = th_json(&r);
    assert_non_null(j);
    if (expect_redis)
        assert_string_equal(json_string_value(json_object_get(j, "redis")), expect_redis);
    assert_string_equal(json_string_value(json_object_get(j, "status")),
                        expect_status == 200 ? "ready" : "not_ready");
    json_decref(j);
    th_resp_free(&r);
}

/* /ready follows Redis: 503 while it is frozen, 200 again once it answers. */
static void test_ready_follows_redis(void **state)
{
    (void)state;
    assert_ready(200, "ok");
    th_redis_pause(&redis);
    assert_ready(503, NULL);
    struct th_resp r;
    int64_t start = th_now_ms();
    assert_int_equal(th_post_json(testd.port, "/v1/incr", "{\"key\":\"h:frozen\"}", &r), 0);
    int64_t took = th_now_ms() - start;
    assert_problem(&r, 503, "backend_unavailable");
    char ra[16];
    assert_string_equal(th_header(&r, "Retry-After", ra, sizeof(ra)), "1");
    assert_true(took < 3000); /* pool timeout + command timeout, never a hang */
    th_resp_free(&r);
    th_redis_resume(&redis);
    assert_ready(200, "ok");
    assert_int_equal(th_post_json(testd.port, "/v1/incr", "{\"key\":\"h:frozen\"}", &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
}

static void test_metrics(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(th_post_json(testd.port, "/v1/incr", "{\"key\":\"h:m\"}", &r), 0);
    th_resp_free(&r);
    assert_int_equal(th_http(testd.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    char ct[80];
    assert_string_equal(th_header(&r, "Content-Type", ct, sizeof(ct)),
                        "text/plain; version=0.0.4; charset=utf-8");
    static const char *const want[] = {
        "testd_http_requests_total{route=\"/v1/incr\",method=\"POST\",code=\"200\"} ",
        "# TYPE testd_http_request_duration_seconds histogram",
        "testd_http_request_duration_seconds_bucket{route=\"/v1/incr\",le=\"+Inf\"} ",
        "testd_redis_pool_hits_total ",
        "testd_redis_pool_misses_total ",
        "testd_redis_pool_timeouts_total ",
        "testd_redis_pool_total_connections ",
        "testd_redis_pool_idle_connections ",
        "testd_redis_pool_stale_connections_total ",
        "# TYPE testd_redis_command_duration_seconds histogram",
        "testd_build_info{version=\"",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (!strstr(r.body, want[i]))
            fail_msg("metrics lack: %s", want[i]);
    }
    th_resp_free(&r);
}

struct load {
    int port;
    const char *path;
    const char *body;
    _Atomic int ok, unavailable, other;
};

static void *post_worker(void *arg)
{
    struct load *l = arg;
    struct th_resp r;
    if (th_post_json(l->port, l->path, l->body, &r) != 0) {
        atomic_fetch_add(&l->other, 1);
        return NULL;
    }
    if (r.status == 200)
        atomic_fetch_add(&l->ok, 1);
    else if (r.status == 503)
        atomic_fetch_add(&l->unavailable, 1);
    else
        atomic_fetch_add(&l->other, 1);
    th_resp_free(&r);
    return NULL;
}

static void run_load(struct load *l, int n)
{
    pthread_t *t = calloc((size_t)n, sizeof(*t));
    assert_non_null(t);
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&t[i], NULL, post_worker, l), 0);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    free(t);
}

/* 80 requests at once, each held 200 ms (parked on a timer of its loop): all answered, no
 * error — a held request holds no thread. */
static void test_eighty_in_flight(void **state)
{
    (void)state;
    struct load l = {.port = testd.port, .path = "/v1/sleep?ms=200", .body = "{}"};
    run_load(&l, 80);
    assert_int_equal(atomic_load(&l.ok), 80);
    assert_int_equal(atomic_load(&l.unavailable) + atomic_load(&l.other), 0);
}

/* A counter's value in a /metrics text, or -1. */
static double metric_in(const char *text, const char *name)
{
    char want[160];
    snprintf(want, sizeof(want), "\n%s ", name);
    const char *p = strstr(text, want);
    return p ? strtod(p + strlen(want), NULL) : -1;
}

static void *incr_worker(void *arg)
{
    struct load *l = arg;
    for (int i = 0; i < 20; i++)
        post_worker(l);
    return NULL;
}

/* Automatic pipelining, counted by the client itself: 50 callers at once on one worker
 * loop, and the commands of a turn leave in one write — many commands per write. */
static void test_pipelining_counted(void **state)
{
    (void)state;
    struct th_proc p;
    const char *extra[] = {"HTTP_THREADS=1", "REDIS_MIN_IDLE_CONNS=1", NULL};
    assert_int_equal(start_testd(&p, extra), 0);
    struct load l = {.port = p.port, .path = "/v1/incr", .body = "{\"key\":\"h:pipe\"}"};
    pthread_t t[50];
    for (int i = 0; i < 50; i++)
        assert_int_equal(pthread_create(&t[i], NULL, incr_worker, &l), 0);
    for (int i = 0; i < 50; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&l.ok), 1000);
    struct th_resp r;
    assert_int_equal(th_http(p.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    double cmds = metric_in(r.body, "testd_redis_commands_total");
    double writes = metric_in(r.body, "testd_redis_writes_total");
    th_resp_free(&r);
    printf("# %.0f commands in %.0f writes: %.1f per write\n", cmds, writes, cmds / writes);
    assert_true(cmds >= 1000);
    assert_true(writes > 0 && cmds / writes >= 3);
    assert_int_equal(th_proc_stop(&p, SIGTERM, 5000), 0);
}

/* REDIS_URL=rediss://... with REDIS_TLS_CA_FILE: the daemon's calls go over TLS; with a CA
 * that did not sign Redis's certificate, or a name the certificate does not hold, nothing
 * does (/ready says so) — never a call over an unverified connection. */
static void test_redis_over_tls(void **state)
{
    (void)state;
    char dir[256], other[256], url[128], ca[300], wrong_ca[300];
    assert_int_equal(th_tmpdir(dir, sizeof(dir)), 0);
    assert_int_equal(th_tmpdir(other, sizeof(other)), 0);
    assert_int_equal(th_make_certs(dir, "ca"), 0);
    assert_int_equal(th_make_certs(other, "otherca"), 0);
    snprintf(ca, sizeof(ca), "REDIS_TLS_CA_FILE=%s/ca.crt", dir);
    snprintf(wrong_ca, sizeof(wrong_ca), "REDIS_TLS_CA_FILE=%s/otherca.crt", other);
    struct th_redis tr;
    assert_int_equal(th_redis_start_tls(&tr, dir), 0);
    snprintf(url, sizeof(url), "rediss://localhost:%d/0", tr.tls_port);
    struct {
        const char *ca, *name;
        int ready;
    } cases[] = {
        {ca, NULL, 200}, {ca, "REDIS_TLS_SERVER_NAME=redis.example", 503}, {wrong_ca, NULL, 503}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *env[] = {"HTTP_MAX_BODY=1KiB", cases[i].ca, cases[i].name, NULL};
        struct th_proc p;
        struct th_resp r;
        assert_int_equal(th_daemon_start(&p, "tests/testd", url, env), 0);
        assert_int_equal(th_http(p.port, "GET", "/ready", NULL, NULL, 0, &r), 0);
        assert_int_equal(r.status, cases[i].ready);
        th_resp_free(&r);
        assert_int_equal(th_post_json(p.port, "/v1/incr", "{\"key\":\"h:tls\"}", &r), 0);
        assert_int_equal(r.status, cases[i].ready == 200 ? 200 : 503);
        th_resp_free(&r);
        assert_int_equal(th_proc_stop(&p, SIGTERM, 5000), 0);
    }
    assert_int_equal(th_redis_int(&tr, "GET h:tls"), 1); /* the one call that went through */
    th_redis_stop(&tr);
}

/* Everything the server sends until it closes, within timeout_ms; the byte count. */
static size_t read_to_close(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t got = 0;
    int64_t end = th_now_ms() + timeout_ms;
    while (got < cap && th_now_ms() < end) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, buf + got, cap - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

static int count_of(const char *hay, size_t len, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = memmem(p, len - (size_t)(p - hay), needle, strlen(needle))); p++)
        n++;
    return n;
}

/* A client that sends two requests and closes its side at once (the first held 100 ms by
 * its handler) still gets both answers, then the close. */
static void test_half_close_gets_every_answer(void **state)
{
    (void)state;
    int fd = th_connect(testd.port);
    assert_true(fd >= 0);
    const char req[] = "GET /v1/sleep?ms=100 HTTP/1.1\r\nHost: t\r\n\r\n"
                       "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_send_all(fd, req, sizeof(req) - 1), 0);
    shutdown(fd, SHUT_WR);
    char buf[8192];
    size_t n = read_to_close(fd, buf, sizeof(buf), 3000);
    close(fd);
    assert_int_equal(count_of(buf, n, "HTTP/1.1 200 OK\r\n"), 2);
    assert_non_null(memmem(buf, n, "slept_ms", 8));
    assert_non_null(memmem(buf, n, "\"status\":\"ok\"", strlen("\"status\":\"ok\"")));
}

/* CPU ticks (user + system) a process has used. */
static long cpu_ticks(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(line, sizeof(line), f)) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    const char *p = strrchr(line, ')');
    long ut = 0, st = 0;
    /* fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime */
    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st);
    return ut + st;
}

/* A client pipelines more than fits behind a request its handler holds, then resets the
 * connection: the worker takes the socket out of epoll instead of being told of the
 * error for ever (no busy loop while the request is held). */
static void test_reset_behind_a_held_request(void **state)
{
    (void)state;
    int fd = th_connect(testd.port);
    assert_true(fd >= 0);
    const char first[] = "GET /v1/sleep?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_send_all(fd, first, sizeof(first) - 1), 0);
    static const char one[] = "GET /health HTTP/1.1\r\nHost: tt\r\n\r\n";
    static char more[64 * 1024];
    size_t len = 0;
    while (len + sizeof(one) - 1 <= sizeof(more)) {
        memcpy(more + len, one, sizeof(one) - 1);
        len += sizeof(one) - 1;
    }
    /* as much as the server takes before it stops reading */
    for (size_t sent = 0; sent < len;) {
        ssize_t n = send(fd, more + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    usleep(100000);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd); /* RST */
    usleep(100000);
    long t0 = cpu_ticks(testd.pid);
    usleep(600000);
    long t1 = cpu_ticks(testd.pid);
    print_message("testd used %ld ticks in 600 ms after the reset\n", t1 - t0);
    assert_true(t0 >= 0 && t1 - t0 <= 10); /* a spinning worker would use about 60 */
    struct th_resp r;
    assert_int_equal(th_http(testd.port, "GET", "/health", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
}

struct probe {
    int port;
    int64_t worst_ms;
};

/* GET /health every 20 ms, keeping the slowest answer time. */
static void *health_probe(void *arg)
{
    struct probe *pr = arg;
    struct th_resp r;
    for (int i = 0; i < 10; i++) {
        int64_t t0 = th_now_ms();
        if (th_http(pr->port, "GET", "/health", NULL, NULL, 0, &r) == 0)
            th_resp_free(&r);
        int64_t took = th_now_ms() - t0;
        if (took > pr->worst_ms)
            pr->worst_ms = took;
        usleep(20000);
    }
    return NULL;
}

/* Deferred answers hold up nobody: 50 answers deferred 300 ms all come back together,
 * and /health is answered at once meanwhile — in pool mode with only 2 workers (the
 * connections are parked) and in thread-per-connection mode. Under a time scale (make
 * valgrind) the deferral, the bounds and so their ratio scale alike. */
static void deferred_answers(const char *threads)
{
    struct th_proc p;
    char body[32];
    const char *extra[] = {threads, NULL};
    assert_int_equal(start_testd(&p, extra), 0);
    snprintf(body, sizeof(body), "{\"ms\":%d}", th_ms(300));
    struct load l = {.port = p.port, .path = "/v1/defer", .body = body};
    struct probe probe = {.port = p.port};
    pthread_t prober;
    int64_t start = th_now_ms();
    assert_int_equal(pthread_create(&prober, NULL, health_probe, &probe), 0);
    run_load(&l, 50);
    int64_t took = th_now_ms() - start;
    pthread_join(prober, NULL);
    assert_int_equal(atomic_load(&l.ok), 50);
    assert_true(took < th_ms(2000));          /* 50 x 300 ms on 2 held workers: 7.5 s */
    assert_true(probe.worst_ms < th_ms(250)); /* /health never waited behind the parked */
    assert_int_equal(th_proc_stop(&p, SIGTERM, 5000), 0);
}

static void test_deferred_answers_pool(void **state)
{
    (void)state;
    deferred_answers("HTTP_THREADS=2");
}

static void test_deferred_answers_per_connection(void **state)
{
    (void)state;
    deferred_answers("HTTP_THREADS=0");
}

/* Two connections carrying 4 commands each (testd's TESTD_MAX_IN_FLIGHT) and 20
 * concurrent Redis-held requests (BLPOP, which holds its connection): the excess gets 503
 * quickly, the exhaustion is logged at critical and counted, and the daemon keeps
 * serving. */
static void test_pool_exhaustion_logged(void **state)
{
    (void)state;
    struct th_proc p;
    const char *extra[] = {"REDIS_POOL_SIZE=2", "REDIS_MIN_IDLE_CONNS=2", "REDIS_POOL_TIMEOUT=20ms",
                           "HTTP_THREADS=2",    "TESTD_MAX_IN_FLIGHT=4",  NULL};
    assert_int_equal(start_testd(&p, extra), 0);
    struct load l = {.port = p.port, .path = "/v1/block", .body = "{\"ms\":100}"};
    run_load(&l, 20);
    assert_true(atomic_load(&l.ok) >= 2);
    assert_true(atomic_load(&l.unavailable) > 0);
    assert_int_equal(atomic_load(&l.other), 0);
    struct th_resp r;
    assert_int_equal(th_http(p.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_null(strstr(r.body, "testd_redis_pool_timeouts_total 0\n"));
    assert_non_null(strstr(r.body, "testd_redis_pool_timeouts_total "));
    th_resp_free(&r);
    assert_int_equal(th_proc_stop(&p, SIGTERM, 5000), 0);
    assert_true(th_proc_log_contains(&p, "\"level\":\"critical\""));
    assert_true(th_proc_log_contains(&p, "redis pool exhausted"));
}

struct slow_req {
    int port;
    int status;
};

static void *slow_worker(void *arg)
{
    struct slow_req *s = arg;
    struct th_resp r;
    s->status = -1;
    if (th_http(s->port, "GET", "/v1/sleep?ms=800", NULL, NULL, 0, &r) == 0) {
        s->status = r.status;
        th_resp_free(&r);
    }
    return NULL;
}

/* SIGTERM: /ready turns 503 at once, the in-flight request still gets its answer, new
 * connections are refused, and the process exits 0. */
static void test_graceful_shutdown(void **state)
{
    (void)state;
    struct th_proc p;
    struct th_resp r;
    assert_int_equal(start_testd(&p, NULL), 0);
    int keep = th_connect(p.port); /* an open connection, to ask /ready while draining */
    assert_true(keep >= 0);
    struct slow_req s = {.port = p.port};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_worker, &s), 0);
    usleep(200000);
    kill(p.pid, SIGTERM);
    usleep(100000);

    const char *ask = "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(th_send_all(keep, ask, strlen(ask)), 0);
    assert_int_equal(th_read_response(keep, &r, 2000), 0);
    assert_int_equal(r.status, 503);
    th_resp_free(&r);
    close(keep);
    assert_int_equal(th_connect(p.port), -1);

    pthread_join(t, NULL);
    assert_int_equal(s.status, 200);
    assert_int_equal(th_proc_wait(&p, 5000), 0);
    assert_true(th_proc_log_contains(&p, "\"msg\":\"stopped\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_body_too_large_before_read),
        cmocka_unit_test(test_body_too_large_chunked),
        cmocka_unit_test(test_unsupported_media_type),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_invalid_request_names_field),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_path_params_and_query),
        cmocka_unit_test(test_rest_of_path_and_cache_control),
        cmocka_unit_test(test_form_bodies),
        cmocka_unit_test(test_long_response_head),
        cmocka_unit_test(test_traceparent),
        cmocka_unit_test(test_bearer_tokens),
        cmocka_unit_test(test_ready_follows_redis),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_eighty_in_flight),
        cmocka_unit_test(test_pipelining_counted),
        cmocka_unit_test(test_redis_over_tls),
        cmocka_unit_test(test_half_close_gets_every_answer),
        cmocka_unit_test(test_reset_behind_a_held_request),
        cmocka_unit_test(test_deferred_answers_pool),
        cmocka_unit_test(test_deferred_answers_per_connection),
        cmocka_unit_test(test_pool_exhaustion_logged),
        cmocka_unit_test(test_graceful_shutdown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
