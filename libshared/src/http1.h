/* http1: one HTTP/1.1 request read from a connection's bytes — its head (request line and
 * headers), then its body — over http-parser, with the framing rules of RFC 9112 that the
 * parser leaves to its caller. Private to the HTTP layer (http.c) and its fuzz harness.
 *
 * Framing is strict because warden sits behind proxies: a request whose length two
 * programs could read differently is refused and its connection closed, so that bytes a
 * proxy took for body are never run as a request of their own (request smuggling):
 *   - several Content-Length values, or Content-Length with Transfer-Encoding: 400;
 *   - a transfer coding other than chunked: 501; chunked that is not the only coding: 400;
 *   - a header value holding NUL, CR or LF, a folded header line, a malformed line: 400;
 *   - no Host in HTTP/1.1, or several: 400; a head above HTTP1_HEAD_MAX: 431.
 * After any of these the caller answers and closes the connection, reading nothing more.
 *
 * Not thread-safe: a request belongs to the thread serving its connection. */
#ifndef WARDEN_HTTP1_H
#define WARDEN_HTTP1_H

#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP1_HEAD_MAX (32 * 1024) /* request line and headers */
#define HTTP1_MAX_HEADERS 64

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
    http_parser hp;
    enum http1_state state;
    int status;        /* the answer to a refused request: 400, 413, 431, 501, 505 */
    const char *error; /* why, for the problem detail (a constant string) */

    /* The head: pointers into the caller's buffer, which must stay put until the request
     * is answered. */
    const char *method;
    char *target; /* request-target as sent (path and query, still percent-encoded) */
    struct http1_header headers[HTTP1_MAX_HEADERS];
    int nheaders;
    int keep_alive; /* the client may send another request on this connection */
    int expect_continue;

    /* The body, copied: at most max_body bytes. */
    uint64_t max_body;
    char *body; /* NUL-terminated for convenience; NULL until a byte arrives */
    size_t body_len, body_cap;

    /* Parser bookkeeping. */
    int in_value; /* the last callback was a header value (a second one is a fold) */
    int n_cl;     /* Content-Length headers seen */
    int n_te;     /* Transfer-Encoding headers seen */
    int complete; /* on_message_complete fired */
};

/* Where the head ends in buf[0..len): the offset just past its blank line, or 0 when it
 * is not all there yet. */
size_t http1_head_end(const char *buf, size_t len);

/* Parse the head buf[0..head_len) (as found by http1_head_end; buf is modified: names
 * and values get NUL terminators) into r, which is reset first. Returns 0 with r->state
 * HTTP1_BODY or HTTP1_DONE (no body), or -1 with r->state HTTP1_ERROR. */
int http1_parse_head(struct http1 *r, char *buf, size_t head_len, uint64_t max_body);

/* Feed body bytes. Returns how many were taken (fewer than len once the request is
 * complete: the rest belongs to the next one), or -1 with r->state HTTP1_ERROR (413 when
 * the body grows past max_body). */
long http1_body(struct http1 *r, const char *data, size_t len);

/* The first value of a header (case-insensitive name), or NULL. */
const char *http1_header(const struct http1 *r, const char *name);

/* Free the body; r may be parsed again. */
void http1_clear(struct http1 *r);

#endif
