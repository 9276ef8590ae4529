/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the HTTP layer's request framing (libshared/src/http1.c): each rule of
 * RFC 9112 that http1.h lists, on whole requests, with the status of a refusal, the body of
 * an accepted request and where the next request starts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../libshared/src/http1.h"

#define MAX_BODY 64

struct outcome {
    int status;       /* 0: accepted */
    const char *body; /* accepted: the body read */
    size_t used;      /* accepted: bytes of the input the request took */
    int keep_alive;   /* accepted */
};

/* Read one request from raw (len bytes), its body fed step bytes at a time (0: whole). */
static struct outcome read_request(const char *raw, size_t len, size_t step)
{
    static char buf[8192];
    struct outcome o = {0};
    struct http1 r = {0};
    assert_true(len < sizeof(buf));
    memcpy(buf, raw, len);
    size_t head = http1_head_end(buf, len);
    assert_true(head > 0);
    if (http1_parse_head(&r, buf, head, MAX_BODY) != 0) {
        o.status = r.status;
        return o;
    }
    size_t pos = head;
    while (r.state == HTTP1_BODY && pos < len) {
        size_t n = step && len - pos > step ? step : len - pos;
        long used = http1_body(&r, buf + pos, n);
        if (used < 0) {
            o.status = r.status;
            http1_clear(&r);
            return o;
        }
        pos += (size_t)used;
    }
    assert_int_equal(r.state, HTTP1_DONE);
    static char body[MAX_BODY + 1];
    snprintf(body, sizeof(body), "%s", r.body ? r.body : "");
    o.body = body;
    o.used = pos;
    o.keep_alive = r.keep_alive;
    http1_clear(&r);
    return o;
}

#define REFUSED(raw, want)                                                                         \
    do {                                                                                           \
        assert_int_equal(read_request(raw, sizeof(raw) - 1, 0).status, want);                      \
        assert_int_equal(read_request(raw, sizeof(raw) - 1, 1).status, want);                      \
    } while (0)

static void test_content_length(void **state)
{
    (void)state;
    static const char ok[] = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}GET";
    for (size_t step = 0; step < 3; step++) {
        struct outcome o = read_request(ok, sizeof(ok) - 1, step);
        assert_int_equal(o.status, 0);
        assert_string_equal(o.body, "{}");
        assert_int_equal(o.used, sizeof(ok) - 1 - 3); /* "GET" is the next request's */
        assert_true(o.keep_alive);
    }
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 9\r\n\r\n{}", 400);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\n{}", 400);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}", 400);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400);
    /* Past the limit: refused as it arrives (the server refuses a declared length at once). */
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            413);
}

static void test_transfer_codings(void **state)
{
    (void)state;
    static const char ok[] = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
                             "2;name=value\r\n{\"\r\n1\r\n}\r\n0\r\nTrailer: t\r\n\r\nGET";
    for (size_t step = 0; step < 3; step++) {
        struct outcome o = read_request(ok, sizeof(ok) - 1, step);
        assert_int_equal(o.status, 0);
        assert_string_equal(o.body, "{\"}");
        assert_int_equal(o.used, sizeof(ok) - 1 - 3);
    }
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\n\r\n",
            400);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
            "0\r\n\r\n",
            400);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            "Transfer-Encoding: identity\r\n\r\n0\r\n\r\n",
            501);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            400);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", 400);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ;x\r\n\r\n0\r\n\r\n", 400);
}

static void test_chunk_framing(void **state)
{
    (void)state;
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r{}\r\n0\r\n\r\n",
            400); /* a bare CR after the size */
    REFUSED(
        "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2 2\r\n{}\r\n0\r\n\r\n",
        400); /* whitespace inside the size */
    REFUSED(
        "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}X\r\n0\r\n\r\n",
        400); /* data longer than its size */
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n;\r\n\r\n", 400);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n", 413);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            "fffffffffffffffff\r\n",
            413);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: \0\r\n\r\n",
            400); /* NUL in a trailer */
}

static void test_forbidden_bytes(void **state)
{
    (void)state;
    REFUSED("GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\0junk\r\n\r\n", 400);
    REFUSED("GET /a HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\0def\r\n\r\n", 400);
    REFUSED("GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400);
    REFUSED("GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\rTransfer-Encoding: chunked\r\n\r\n", 400);
    REFUSED("GET /a HTTP/1.1\r\nHost: x\r\nX-A: \x01\r\n\r\n", 400);
    REFUSED("GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", 400);
    REFUSED("GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n", 400);
    REFUSED("GET /a HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", 400);
}

static void test_request_line_and_host(void **state)
{
    (void)state;
    REFUSED("GET /a HTTP/1.1\r\n\r\n", 400);                       /* no Host */
    REFUSED("GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400); /* two */
    REFUSED("GET /a HTTP/2.0\r\nHost: x\r\n\r\n", 505);
    REFUSED("GET /a HTTP/1.2\r\nHost: x\r\n\r\n", 505);
    REFUSED("GET  /a HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    REFUSED("GET /a HTTP/1.1 \r\nHost: x\r\n\r\n", 400);
    REFUSED("G(T /a HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    /* HTTP/1.0 needs no Host; it keeps the connection only when asked to. */
    static const char v10[] = "GET /a HTTP/1.0\n\n";
    assert_int_equal(read_request(v10, sizeof(v10) - 1, 0).status, 0);
    assert_false(read_request(v10, sizeof(v10) - 1, 0).keep_alive);
    static const char v10ka[] = "GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    assert_true(read_request(v10ka, sizeof(v10ka) - 1, 0).keep_alive);
    static const char close[] = "GET /a HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n";
    assert_false(read_request(close, sizeof(close) - 1, 0).keep_alive);
}

/* One spelling per path: the router and the token check must see the same target. */
static void test_origin_form_only(void **state)
{
    (void)state;
    REFUSED("GET //v1/x HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    REFUSED("GET v1/x HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    REFUSED("GET /v1//x HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    REFUSED("GET /a/./v1/x HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    REFUSED("GET /a/../v1/x HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    REFUSED("GET http://x/v1/x HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    REFUSED("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    static const char ok[] = "GET /v1/x/?a=//b/../c HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(read_request(ok, sizeof(ok) - 1, 0).status, 0); /* the query is free */
    static const char root[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(read_request(root, sizeof(root) - 1, 0).status, 0);
}

static void test_chunked_edges(void **state)
{
    (void)state;
    /* HTTP/1.0 framing with Transfer-Encoding is faulty (RFC 9112 §6.1). */
    REFUSED("POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
    /* A second chunk size that would wrap the running total past the limit. */
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            "1\r\nX\r\nFFFFFFFFFFFFFFFF\r\n",
            413);
    /* Trailer lines must be fields. */
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\nnot a field\r\n\r\n",
            400);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\n folded: x\r\n\r\n",
            400);
    REFUSED("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\n: x\r\n\r\n",
            400);
}

static void test_head_limits(void **state)
{
    (void)state;
    static char big[HTTP1_HEAD_MAX + 64];
    int n = snprintf(big, sizeof(big), "GET /a HTTP/1.1\r\nHost: x\r\nX-Pad: ");
    memset(big + n, 'a', sizeof(big) - (size_t)n);
    for (size_t i = sizeof(big) - 4; i < sizeof(big); i++)
        big[i] = i % 2 ? '\n' : '\r';
    struct http1 r = {0};
    assert_int_equal(http1_parse_head(&r, big, sizeof(big), MAX_BODY), -1);
    assert_int_equal(r.status, 431);
    char many[HTTP1_MAX_HEADERS * 8 + 64];
    size_t len = (size_t)snprintf(many, sizeof(many), "GET /a HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < HTTP1_MAX_HEADERS; i++)
        len += (size_t)snprintf(many + len, sizeof(many) - len, "A%d: b\r\n", i);
    len += (size_t)snprintf(many + len, sizeof(many) - len, "\r\n");
    assert_int_equal(http1_parse_head(&r, many, len, MAX_BODY), -1);
    assert_int_equal(r.status, 431);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length),        cmocka_unit_test(test_transfer_codings),
        cmocka_unit_test(test_chunk_framing),         cmocka_unit_test(test_forbidden_bytes),
        cmocka_unit_test(test_request_line_and_host), cmocka_unit_test(test_head_limits),
        cmocka_unit_test(test_origin_form_only),      cmocka_unit_test(test_chunked_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
