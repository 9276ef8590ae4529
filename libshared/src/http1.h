/* SPDX-License-Identifier: Apache-2.0 */
/* http1: one HTTP/1.1 request read from a connection's bytes — its head (request line and
 * headers), then its body (Content-Length or chunked). Private to the HTTP layer (http.c,
 * http_server.c) and its fuzz harness.
 *
 * Strict because warden sits behind proxies: a request that two programs could frame
 * differently is refused and its connection closed, so that bytes a proxy took for body are
 * never run as a request of their own (request smuggling):
 *   - several Content-Length fields, or one with Transfer-Encoding; a length that is not
 *     plain digits: 400;
 *   - a transfer coding other than chunked: 501; chunked not alone in one field: 400;
 *   - a control character in the head but HTAB and line ends, a CR not before an LF (so
 *     NUL, CR or LF inside a field value), a field name that is not a token (whitespace
 *     before the colon), a folded line, a malformed request line: 400;
 *   - no Host in HTTP/1.1, or several: 400; a version other than 1.0 and 1.1: 505;
 *   - a head above HTTP1_HEAD_MAX or more than HTTP1_MAX_HEADERS fields: 431;
 *   - a malformed chunk size, extension, data end or trailer: 400; a body above its limit:
 *     413.
 * A line may end with CRLF or a bare LF (RFC 9112 §2.2), in the head and in chunked
 * framing alike. After a refusal the caller answers and closes the connection.
 *
 * Not thread-safe: a request belongs to the thread serving its connection. */
#ifndef WARDEN_HTTP1_H
#define WARDEN_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define HTTP1_HEAD_MAX (32 * 1024) /* request line and headers */
#define HTTP1_MAX_HEADERS 64
#define HTTP1_LINE_MAX 4096 /* a chunk-size line, a trailer line */

struct http1_header {
    const char *name, *value; /* NUL-terminated, inside the head's buffer */
    size_t name_len, value_len;
};

enum http1_state {
    HTTP1_BODY, /* the head is in; body bytes are wanted (http1_body) */
    HTTP1_DONE, /* the whole request is in */
    HTTP1_ERROR /* refused: status and error say why; close after answering */
};

struct http1 {
    enum http1_state state;
    int status;        /* the answer to a refused request: 400, 413, 431, 501, 505 */
    const char *error; /* why, for the problem detail (a constant string) */

    /* The head: pointers into the caller's buffer, which must stay put until the request
     * is answered. */
    const char *method;
    char *target; /* request-target as sent (path and query, still percent-encoded) */
    int minor;    /* HTTP/1.<minor> */
    struct http1_header headers[HTTP1_MAX_HEADERS];
    int nheaders;
    int has_length; /* a Content-Length field */
    uint64_t content_length;
    int chunked;
    int keep_alive; /* the client may send another request on this connection */
    int expect_continue;

    /* The body, copied: at most max_body bytes. */
    uint64_t max_body;
    char *body; /* NUL-terminated for convenience; NULL until a byte arrives */
    size_t body_len, body_cap;

    /* Body framing in progress. */
    uint64_t left; /* bytes of the body (Content-Length) or of the chunk still to come */
    int phase;     /* where in the chunked framing (http1.c) */
    int saw_digit, saw_cr, trailer_colon;
    size_t line_len, trailer_len;
};

/* Where the head ends in buf[0..len): the offset just past its blank line, or 0 when it
 * is not all there yet. */
size_t http1_head_end(const char *buf, size_t len);

/* Parse the head buf[0..head_len) (as found by http1_head_end; buf is modified: the
 * method, target, names and values get NUL terminators) into r, whose body (if any) is
 * freed first; r must start zeroed. Returns 0 with r->state HTTP1_BODY or HTTP1_DONE (no
 * body), or -1 with r->state HTTP1_ERROR. */
int http1_parse_head(struct http1 *r, char *buf, size_t head_len, uint64_t max_body);

/* Feed body bytes. Returns how many were taken (fewer than len once the request is
 * complete: the rest belongs to the next one), or -1 with r->state HTTP1_ERROR. */
long http1_body(struct http1 *r, const char *data, size_t len);

/* The first value of a header (case-insensitive name), or NULL. */
const char *http1_header(const struct http1 *r, const char *name);

/* Free the body; r may be parsed again. */
void http1_clear(struct http1 *r);

#endif
