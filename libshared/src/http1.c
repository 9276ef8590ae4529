/* http1: one HTTP/1.1 request's head and body over http-parser, with RFC 9112's framing
 * rules (http1.h says which). */
#include "http1.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct http1 *req_of(http_parser *hp)
{
    return hp->data;
}

/* Refuse the request: the callback's non-zero return stops the parser. */
static int refuse(struct http1 *r, int status, const char *why)
{
    r->status = status;
    r->error = why;
    return -1;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
    struct http1 *r = req_of(hp);
    (void)len;
    r->target = (char *)at; /* the head's buffer is the caller's and writable */
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct http1 *r = req_of(hp);
    if (r->nheaders >= HTTP1_MAX_HEADERS)
        return refuse(r, 431, "too many header fields");
    struct http1_header *h = &r->headers[r->nheaders++];
    h->name = at;
    h->name_len = len;
    h->value = at + len; /* an empty value until one comes */
    h->value_len = 0;
    r->in_value = 0;
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct http1 *r = req_of(hp);
    /* The head is parsed in one piece, so a second value for one field is a folded line
     * (obs-fold), which RFC 9112 §5.2 lets a server refuse. */
    if (r->in_value)
        return refuse(r, 400, "a header field is folded over several lines");
    r->in_value = 1;
    struct http1_header *h = &r->headers[r->nheaders - 1];
    h->value = at;
    h->value_len = len;
    return 0;
}

static int name_is(const struct http1_header *h, const char *name)
{
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* The transfer codings of every Transfer-Encoding field, in order: chunked alone is the
 * only one understood. Returns 0, or -1 having refused. */
static int check_codings(struct http1 *r)
{
    int chunked = 0, codings = 0, chunked_last = 0;
    for (int i = 0; i < r->nheaders; i++) {
        const struct http1_header *h = &r->headers[i];
        if (!name_is(h, "Transfer-Encoding"))
            continue;
        const char *p = h->value, *end = h->value + h->value_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *tok = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t' && *p != ';')
                p++;
            size_t n = (size_t)(p - tok);
            while (p < end && *p != ',') /* parameters, which chunked has none of */
                p++;
            if (n == 0)
                continue;
            codings++;
            chunked_last = n == 7 && strncasecmp(tok, "chunked", 7) == 0;
            if (chunked_last)
                chunked++;
            else
                return refuse(r, 501, "a transfer coding other than chunked");
        }
    }
    if (r->n_te > 0 && (codings == 0 || chunked != 1 || !chunked_last))
        return refuse(r, 400, "chunked must be the only transfer coding, once");
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    struct http1 *r = req_of(hp);
    int hosts = 0;
    for (int i = 0; i < r->nheaders; i++) {
        const struct http1_header *h = &r->headers[i];
        r->n_cl += name_is(h, "Content-Length");
        r->n_te += name_is(h, "Transfer-Encoding");
        hosts += name_is(h, "Host");
        if (name_is(h, "Expect") && h->value_len == 12 &&
            strncasecmp(h->value, "100-continue", 12) == 0)
            r->expect_continue = 1;
    }
    if (hp->http_major != 1 || hp->http_minor > 1)
        return refuse(r, 505, "only HTTP/1.0 and HTTP/1.1 are served");
    /* The parser refuses these too, but only after this callback has run. */
    if (r->n_cl > 1 || (r->n_cl && r->n_te))
        return refuse(r, 400, "the message length is ambiguous");
    if (check_codings(r) != 0)
        return -1;
    if (hosts > 1 || (hosts == 0 && hp->http_minor == 1))
        return refuse(r, 400, "an HTTP/1.1 request needs exactly one Host");
    r->keep_alive = http_should_keep_alive(hp);
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    struct http1 *r = req_of(hp);
    if (r->body_len + len > r->max_body)
        return refuse(r, 413, "the body is too large");
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb)
            return refuse(r, 500, "out of memory");
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    struct http1 *r = req_of(hp);
    r->complete = 1;
    /* Stop here: what follows is the next request, read only after this one is answered. */
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings SETTINGS = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

size_t http1_head_end(const char *buf, size_t len)
{
    /* A line ends with CRLF or a bare LF (RFC 9112 §2.2): the head ends at an empty one. */
    for (const char *p = buf, *end = buf + len; (p = memchr(p, '\n', (size_t)(end - p)));) {
        p++;
        if (p < end && *p == '\n')
            return (size_t)(p + 1 - buf);
        if (p + 1 < end && p[0] == '\r' && p[1] == '\n')
            return (size_t)(p + 2 - buf);
    }
    return 0;
}

/* After a parser error: the status and reason, unless a callback already chose them. */
static void parser_refused(struct http1 *r)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&r->hp);
    r->state = HTTP1_ERROR;
    if (r->status)
        return;
    r->status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
    r->error = e == HPE_UNEXPECTED_CONTENT_LENGTH ? "the message length is ambiguous"
               : e == HPE_INVALID_HEADER_TOKEN    ? "a header field holds a forbidden character"
                                                  : http_errno_description(e);
}

/* The request is complete when the parser paused at its end; another pause is an error. */
static int parsed(struct http1 *r)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&r->hp);
    if (e == HPE_PAUSED && r->complete) {
        r->state = HTTP1_DONE;
        return 0;
    }
    if (e != HPE_OK) {
        parser_refused(r);
        return -1;
    }
    r->state = HTTP1_BODY;
    return 0;
}

int http1_parse_head(struct http1 *r, char *buf, size_t head_len, uint64_t max_body)
{
    http1_clear(r);
    memset(r, 0, sizeof(*r));
    r->max_body = max_body;
    http_parser_init(&r->hp, HTTP_REQUEST);
    r->hp.data = r;
    if (head_len > HTTP1_HEAD_MAX) {
        r->state = HTTP1_ERROR;
        r->status = 431;
        r->error = "the request head is too large";
        return -1;
    }
    size_t n = http_parser_execute(&r->hp, &SETTINGS, buf, head_len);
    if (parsed(r) != 0)
        return -1;
    if (n != head_len || !r->target) { /* the head must end where its blank line is */
        r->state = HTTP1_ERROR;
        r->status = 400;
        r->error = "malformed request head";
        return -1;
    }
    /* Terminate the strings in place: each is followed by a delimiter of the head. */
    r->method = http_method_str((enum http_method)r->hp.method);
    r->target[strcspn(r->target, " ")] = '\0';
    for (int i = 0; i < r->nheaders; i++) {
        struct http1_header *h = &r->headers[i];
        ((char *)h->name)[h->name_len] = '\0';
        ((char *)h->value)[h->value_len] = '\0';
    }
    return 0;
}

long http1_body(struct http1 *r, const char *data, size_t len)
{
    if (r->state != HTTP1_BODY)
        return 0;
    size_t n = http_parser_execute(&r->hp, &SETTINGS, data, len);
    if (parsed(r) != 0)
        return -1;
    return (long)n;
}

const char *http1_header(const struct http1 *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (name_is(&r->headers[i], name))
            return r->headers[i].value;
    return NULL;
}

void http1_clear(struct http1 *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
}
