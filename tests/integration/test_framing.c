/* SPDX-License-Identifier: Apache-2.0 */
/* Ambiguous HTTP/1.1 framing and forbidden bytes in header values, sent over raw sockets to
 * each of the four daemons (RFC 9112 §6.1, §6.3; RFC 9110 §5.5). Every request here is a
 * write that would change Redis if it ran, followed in the same packet by a second complete
 * write: the smuggled request a proxy in front would not have seen. Each must be refused
 * with the status named, the connection closed with nothing more answered, and Redis left
 * exactly as it was (DEBUG DIGEST of the whole data set, before and after). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/harness.h"
#include "test_auditd_util.h"
#include "test_tokend_util.h"

#define API "framing-api-token-0123456789abcdef"

struct daemon_case {
    const char *bin, *path, *body;
    struct th_proc proc;
};

static struct th_redis redis;
static struct daemon_case daemons[] = {
    {"bin/ratelimitd", "/v1/check", "{\"rule\":\"default\",\"key\":\"smuggled\"}", {0}},
    {"bin/auditd", "/v1/events", "{\"actor\":\"smuggler\",\"action\":\"a\"}", {0}},
    {"bin/idemd", "/v1/claim", "{\"scope\":\"s\",\"key\":\"smuggled\",\"fingerprint\":\"f\"}", {0}},
    {"bin/tokend",
     "/v1/tokens",
     "{\"user_id\":\"smuggler\",\"device_id\":\"d\",\"user_agent\":\"" CHROME120 "\"}",
     {0}},
};
#define NDAEMONS (sizeof(daemons) / sizeof(daemons[0]))

static int setup(void **state)
{
    (void)state;
    static const char *const args[] = {"--enable-debug-command", "local", NULL};
    if (th_redis_start(&redis, args) != 0)
        return -1;
    const char *extra[] = {"API_TOKEN=" API, KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=0", KEY, NULL};
    for (size_t i = 0; i < NDAEMONS; i++)
        if (th_daemon_start(&daemons[i].proc, daemons[i].bin, redis.url, extra) != 0)
            return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDAEMONS; i++)
        th_proc_stop(&daemons[i].proc, SIGTERM, 5000);
    th_redis_stop(&redis);
    return 0;
}

/* DEBUG DIGEST: one hash of every key and value in Redis. */
static void digest(char out[41])
{
    redisReply *rep = th_redis_cmd(&redis, "DEBUG DIGEST");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    snprintf(out, 41, "%s", rep->str);
    freeReplyObject(rep);
}

/* Does the server close fd within ms, answering nothing more? */
static int closed_quietly(int fd, int ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int64_t until = th_now_ms() + ms;
    while (th_now_ms() < until) {
        if (poll(&pf, 1, 50) <= 0)
            continue;
        char b[256];
        ssize_t n = recv(fd, b, sizeof(b), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return 1;
        if (n > 0) {
            print_message("answered after the refusal: %.*s\n", (int)n, b);
            return 0;
        }
    }
    return 0;
}

/* A complete write for d, with extra header lines (each ending in CRLF) and auth. */
static size_t write_request(char *buf, size_t size, const struct daemon_case *d, const char *extra,
                            const char *auth)
{
    int n = snprintf(buf, size,
                     "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n%s",
                     d->path, auth, extra, strlen(d->body), d->body);
    assert_true(n > 0 && (size_t)n < size);
    return (size_t)n;
}

/* Send raw to d: the answer must be want with the problem code and Connection: close, the
 * connection closed with nothing more answered, and Redis unchanged. */
static void expect_refused(const struct daemon_case *d, const char *what, const char *raw,
                           size_t len, int want, const char *code)
{
    char before[41], after[41];
    digest(before);
    int fd = th_connect(d->proc.port);
    assert_true(fd >= 0);
    assert_int_equal(th_send_all(fd, raw, len), 0);
    struct th_resp r;
    int rc = th_read_response(fd, &r, th_ms(3000));
    if (rc != 0 || r.status != want)
        print_message("%s, %s: answered %d, want %d\n", d->bin, what, rc ? -1 : r.status, want);
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, want);
    json_t *j = th_json(&r);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "code")), code);
    json_decref(j);
    char conn[32];
    assert_non_null(th_header(&r, "Connection", conn, sizeof(conn)));
    assert_string_equal(conn, "close");
    th_resp_free(&r);
    assert_true(closed_quietly(fd, th_ms(2000)));
    close(fd);
    digest(after);
    if (strcmp(before, after) != 0)
        print_message("%s, %s: Redis changed\n", d->bin, what);
    assert_string_equal(before, after);
}

/* tmpl with '@' replaced by len and '#' by len + 60, into out. */
static void expand(char *out, size_t size, const char *tmpl, size_t len)
{
    size_t n = 0;
    for (const char *p = tmpl; *p && n + 24 < size; p++) {
        if (*p == '@' || *p == '#')
            n += (size_t)snprintf(out + n, size - n, "%zu", len + (*p == '#' ? 60 : 0));
        else
            out[n++] = *p;
    }
    out[n] = '\0';
}

/* One framing case for every daemon: its write with these header lines ('@': the body's
 * length, '#': that length + 60) and its body as is or chunked, followed in the same packet
 * by a second write (the smuggled request). */
static void framing_case(const char *what, const char *headers_tmpl, int chunked, int want,
                         const char *code)
{
    for (size_t i = 0; i < NDAEMONS; i++) {
        const struct daemon_case *d = &daemons[i];
        char headers[256], raw[4096];
        size_t blen = strlen(d->body);
        expand(headers, sizeof(headers), headers_tmpl, blen);
        int n = snprintf(raw, sizeof(raw),
                         "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " API
                         "\r\nContent-Type: application/json\r\n%s\r\n",
                         d->path, headers);
        if (chunked)
            n +=
                snprintf(raw + n, sizeof(raw) - (size_t)n, "%zx\r\n%s\r\n0\r\n\r\n", blen, d->body);
        else
            n += snprintf(raw + n, sizeof(raw) - (size_t)n, "%s", d->body);
        assert_true(n > 0 && (size_t)n < sizeof(raw));
        size_t len = (size_t)n + write_request(raw + n, sizeof(raw) - (size_t)n, d, "", API);
        expect_refused(d, what, raw, len, want, code);
    }
}

/* Two Content-Length values: the first used to frame the body, the rest ran as a request. */
static void test_content_length_twice(void **state)
{
    (void)state;
    framing_case("Content-Length twice", "Content-Length: @\r\nContent-Length: #\r\n", 0, 400,
                 "bad_request");
    framing_case("Content-Length twice, the larger first",
                 "Content-Length: #\r\nContent-Length: @\r\n", 0, 400, "bad_request");
}

/* Content-Length with Transfer-Encoding, in either order. */
static void test_content_length_with_chunked(void **state)
{
    (void)state;
    framing_case("Content-Length, then chunked",
                 "Content-Length: @\r\nTransfer-Encoding: chunked\r\n", 1, 400, "bad_request");
    framing_case("chunked, then Content-Length",
                 "Transfer-Encoding: chunked\r\nContent-Length: @\r\n", 1, 400, "bad_request");
}

/* A coding the server does not know is 501, wherever it stands; chunked must be alone. */
static void test_unknown_transfer_codings(void **state)
{
    (void)state;
    framing_case("chunked, then identity",
                 "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", 1, 501,
                 "not_implemented");
    framing_case("xchunked", "Transfer-Encoding: xchunked\r\n", 1, 501, "not_implemented");
    framing_case("gzip, chunked", "Transfer-Encoding: gzip, chunked\r\n", 1, 501,
                 "not_implemented");
    framing_case("chunked twice", "Transfer-Encoding: chunked, chunked\r\n", 1, 400, "bad_request");
}

/* Equal Content-Length values are refused too (RFC 9112 allows either), and one plain
 * Content-Length or chunked body on a keep-alive connection still works, twice in a row. */
static void test_plain_framing_still_works(void **state)
{
    (void)state;
    framing_case("Content-Length twice, equal", "Content-Length: @\r\nContent-Length: @\r\n", 0,
                 400, "bad_request");
    const struct daemon_case *d = &daemons[0]; /* ratelimitd: its checks may repeat */
    int fd = th_connect(d->proc.port);
    assert_true(fd >= 0);
    for (int i = 0; i < 2; i++) {
        char raw[1024];
        size_t len = write_request(raw, sizeof(raw), d, "", API);
        assert_int_equal(th_send_all(fd, raw, len), 0);
        struct th_resp r;
        assert_int_equal(th_read_response(fd, &r, th_ms(3000)), 0);
        assert_int_equal(r.status, 200);
        th_resp_free(&r);
        int n = snprintf(raw, sizeof(raw),
                         "POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " API
                         "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
                         "\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
                         strlen(d->body), d->body);
        assert_int_equal(th_send_all(fd, raw, (size_t)n), 0);
        assert_int_equal(th_read_response(fd, &r, th_ms(3000)), 0);
        assert_int_equal(r.status, 200);
        th_resp_free(&r);
    }
    close(fd);
}

/* NUL, CR or LF inside a header value: 400, never a value cut short at the NUL. */
static void test_forbidden_bytes_in_values(void **state)
{
    (void)state;
    static const struct {
        const char *what, *line;
        size_t len;
    } cases[] = {
#define LINE(what, s) {what, s, sizeof(s) - 1}
        LINE("NUL in X-Request-ID", "X-Request-ID: abc\0def\r\n"),
        LINE("CR in a value", "X-Note: a\rb\r\n"),
        LINE("LF in a value", "X-Note: a\nb\r\n"),
        LINE("NUL in a name", "X-No\0te: a\r\n"),
#undef LINE
    };
    for (size_t i = 0; i < NDAEMONS; i++) {
        const struct daemon_case *d = &daemons[i];
        /* The right token, then NUL and junk: it must not authenticate. */
        char raw[2048], auth[64];
        memcpy(auth, API "\0junk", sizeof(API "\0junk"));
        size_t len = write_request(raw, sizeof(raw), d, "", "");
        char *at = strstr(raw, "Bearer ") + 7;
        memmove(at + sizeof(API "\0junk") - 1, at, len - (size_t)(at - raw));
        memcpy(at, auth, sizeof(API "\0junk") - 1);
        len += sizeof(API "\0junk") - 1;
        expect_refused(d, "NUL in Authorization", raw, len, 400, "bad_request");
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
            char head[512];
            memcpy(head, cases[c].line, cases[c].len);
            head[cases[c].len] = '\0'; /* only for the copy below: the line may hold NUL */
            size_t n = write_request(raw, sizeof(raw), d, "", API);
            char *hdrs = strstr(raw, "\r\n") + 2; /* after the request line */
            memmove(hdrs + cases[c].len, hdrs, n - (size_t)(hdrs - raw));
            memcpy(hdrs, cases[c].line, cases[c].len);
            expect_refused(d, cases[c].what, raw, n + cases[c].len, 400, "bad_request");
        }
    }
}

/* X-Request-ID with a NUL on a read: refused, never echoed cut short. */
static void test_request_id_with_nul_not_echoed(void **state)
{
    (void)state;
    static const char raw[] = "GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\0def\r\n\r\n";
    for (size_t i = 0; i < NDAEMONS; i++) {
        int fd = th_connect(daemons[i].proc.port);
        assert_true(fd >= 0);
        assert_int_equal(th_send_all(fd, raw, sizeof(raw) - 1), 0);
        struct th_resp r;
        assert_int_equal(th_read_response(fd, &r, th_ms(3000)), 0);
        assert_int_equal(r.status, 400);
        char rid[64];
        assert_non_null(th_header(&r, "X-Request-ID", rid, sizeof(rid)));
        assert_string_not_equal(rid, "abc");
        th_resp_free(&r);
        close(fd);
    }
}

/* "//v1/..." and "v1/..." once reached /v1/... routes without the token check (the router
 * skips empty segments, the check looked for "/v1/"): refused now, with nothing run. */
static void test_no_second_spelling_of_a_path(void **state)
{
    (void)state;
    for (size_t i = 0; i < NDAEMONS; i++) {
        const struct daemon_case *d = &daemons[i];
        /* "//v1/...", "v1/..." and "/x/../v1/...": the prefix and where in the path to go on */
        static const struct {
            const char *prefix;
            size_t skip;
        } spellings[] = {{"/", 0}, {"", 1}, {"/x/..", 0}};
        for (size_t p = 0; p < sizeof(spellings) / sizeof(spellings[0]); p++) {
            char raw[2048];
            int n = snprintf(raw, sizeof(raw),
                             "POST %s%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                             "\r\nContent-Length: %zu\r\n\r\n%s",
                             spellings[p].prefix, d->path + spellings[p].skip, strlen(d->body),
                             d->body);
            expect_refused(d, spellings[p].prefix, raw, (size_t)n, 400, "bad_request");
        }
    }
}

/* A refusal that needs no body to be read (404, 401) keeps the connection: the next
 * request on it is served. */
static void test_keep_alive_after_a_refusal(void **state)
{
    (void)state;
    const struct daemon_case *d = &daemons[0];
    int fd = th_connect(d->proc.port);
    assert_true(fd >= 0);
    static const char two[] = "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /v1/rules HTTP/1.1\r\nHost: x\r\n\r\n"
                              "\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(th_send_all(fd, two, sizeof(two) - 1), 0);
    struct th_resp r;
    assert_int_equal(th_read_response(fd, &r, th_ms(3000)), 0);
    assert_int_equal(r.status, 404);
    th_resp_free(&r);
    assert_int_equal(th_read_response(fd, &r, th_ms(3000)), 0);
    assert_int_equal(r.status, 401); /* API_TOKEN is set */
    th_resp_free(&r);
    assert_int_equal(th_read_response(fd, &r, th_ms(3000)), 0); /* after an empty line */
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length_twice),
        cmocka_unit_test(test_content_length_with_chunked),
        cmocka_unit_test(test_unknown_transfer_codings),
        cmocka_unit_test(test_plain_framing_still_works),
        cmocka_unit_test(test_forbidden_bytes_in_values),
        cmocka_unit_test(test_request_id_with_nul_not_echoed),
        cmocka_unit_test(test_no_second_spelling_of_a_path),
        cmocka_unit_test(test_keep_alive_after_a_refusal),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
