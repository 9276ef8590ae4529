/* SPDX-License-Identifier: Apache-2.0 */
/* http1: one HTTP/1.1 request's head and body, read strictly by RFC 9112's grammar
 * (http1.h lists what is refused and why). */
#include "http1.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Chunked framing phases (struct http1.phase). */
enum {
    CH_SIZE,     /* hex digits */
    CH_SIZE_WS,  /* whitespace after them: then ';' or the line end */
    CH_EXT,      /* chunk extensions, read past */
    CH_DATA,     /* left bytes of data */
    CH_DATA_END, /* the line end after the data */
    CH_TRAILER   /* trailer lines, read past, until an empty one */
};

static int refuse(struct http1 *r, int status, const char *why)
{
    r->state = HTTP1_ERROR;
    r->status = status;
    r->error = why;
    return -1;
}

/* RFC 9110 §5.6.2 tchar. */
static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static size_t token_len(const char *p, const char *end)
{
    const char *s = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    return (size_t)(p - s);
}

static int name_is(const struct http1_header *h, const char *name)
{
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* Does a comma-separated field value list this token (case-insensitive)? */
static int lists(const char *v, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = v; *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        size_t t = len;
        while (t > 0 && (p[t - 1] == ' ' || p[t - 1] == '\t'))
            t--;
        if (t == n && strncasecmp(p, token, n) == 0)
            return 1;
        p += len;
    }
    return 0;
}

size_t http1_head_end(const char *buf, size_t len)
{
    /* A line ends with CRLF or a bare LF: the head ends at an empty one. */
    for (const char *p = buf, *end = buf + len; (p = memchr(p, '\n', (size_t)(end - p)));) {
        p++;
        if (p < end && *p == '\n')
            return (size_t)(p + 1 - buf);
        if (p + 1 < end && p[0] == '\r' && p[1] == '\n')
            return (size_t)(p + 2 - buf);
    }
    return 0;
}

/* The head holds no control character but HTAB and its line ends, and a CR only before
 * an LF: a bare CR ends a line for some parsers and not for others, and a NUL cuts a C
 * string short. */
static int head_bytes_ok(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == 0x7f || (c < 0x20 && c != '\t' && c != '\n' &&
                          !(c == '\r' && i + 1 < len && buf[i + 1] == '\n')))
            return 0;
    }
    return 1;
}

/* The line starting at p: its end (the CR or LF) and where the next one starts. */
static char *line_end(char *p, char **next)
{
    char *lf = strchr(p, '\n'); /* the head ends with a blank line: always found */
    *next = lf + 1;
    return lf > p && lf[-1] == '\r' ? lf - 1 : lf;
}

/* "/" segments without "//", "/./" or "/../" (up to the query). */
static int origin_form_ok(const char *t)
{
    if (*t != '/')
        return 0;
    for (const char *seg = t + 1;; seg++) {
        size_t n = strcspn(seg, "/?");
        int last = seg[n] != '/';
        if ((n == 0 && !last) || (n == 1 && seg[0] == '.') ||
            (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
        if (last)
            return 1;
        seg += n;
    }
}

/* method SP request-target SP HTTP/1.x */
static int parse_request_line(struct http1 *r, char *p, char *end)
{
    size_t n = token_len(p, end);
    if (n == 0 || p + n >= end || p[n] != ' ')
        return refuse(r, 400, "malformed request line");
    p[n] = '\0';
    r->method = p;
    p += n + 1;
    char *t = p;
    while (p < end && (unsigned char)*p > ' ')
        p++;
    if (p == t || p >= end || *p != ' ')
        return refuse(r, 400, "malformed request line");
    *p++ = '\0';
    /* Origin form only ("/path?query"), without empty or dot segments: the router and the
     * token check must see the one spelling of a path ("//v1/x" or "v1/x" would otherwise
     * reach /v1/x under another name). */
    if (!origin_form_ok(t))
        return refuse(r, 400, "the request target must be an absolute path");
    r->target = t;
    if (end - p != 8 || strncmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '0' || p[5] > '9' ||
        p[7] < '0' || p[7] > '9')
        return refuse(r, 400, "malformed request line");
    if (p[5] != '1' || p[7] > '1')
        return refuse(r, 505, "only HTTP/1.0 and HTTP/1.1 are served");
    r->minor = p[7] - '0';
    return 0;
}

/* name ":" OWS value OWS, into the next header slot. */
static int parse_field(struct http1 *r, char *p, char *end)
{
    if (*p == ' ' || *p == '\t') /* obs-fold, which RFC 9112 §5.2 lets a server refuse */
        return refuse(r, 400, "a header field is folded over several lines");
    size_t n = token_len(p, end);
    if (n == 0 || p + n >= end || p[n] != ':') /* also whitespace before the colon */
        return refuse(r, 400, "malformed header field");
    if (r->nheaders >= HTTP1_MAX_HEADERS)
        return refuse(r, 431, "too many header fields");
    struct http1_header *h = &r->headers[r->nheaders++];
    p[n] = '\0';
    h->name = p;
    h->name_len = n;
    char *v = p + n + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    char *ve = end;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    *ve = '\0';
    h->value = v;
    h->value_len = (size_t)(ve - v);
    return 0;
}

/* Content-Length: 1*DIGIT, once. */
static int parse_length(struct http1 *r, const struct http1_header *h)
{
    if (r->has_length)
        return refuse(r, 400, "the message length is ambiguous");
    r->has_length = 1;
    if (h->value_len == 0 || h->value_len > 18 || strspn(h->value, "0123456789") != h->value_len)
        return refuse(r, 400, "Content-Length is not a number");
    r->content_length = strtoull(h->value, NULL, 10);
    return 0;
}

/* Transfer-Encoding: the only coding understood is chunked, alone in one field. A coding
 * anything else names is 501; chunked twice, beside nothing, with parameters or in a
 * malformed list is 400. */
static int parse_codings(struct http1 *r, const struct http1_header *h)
{
    int chunked = 0, other = 0;
    for (const char *p = h->value, *end = p + h->value_len; p < end;) {
        p += strspn(p, " \t");
        size_t n = token_len(p, end);
        int is_chunked = n == 7 && strncasecmp(p, "chunked", 7) == 0;
        chunked += is_chunked;
        other += n > 0 && !is_chunked;
        p += n;
        p += strspn(p, " \t");
        if (p < end && *p != ',') { /* parameters, or not a token at all */
            if (n > 0 && !is_chunked)
                return refuse(r, 501, "a transfer coding other than chunked");
            return refuse(r, 400, "malformed Transfer-Encoding");
        }
        p += p < end;
    }
    if (other)
        return refuse(r, 501, "a transfer coding other than chunked");
    if (r->chunked || chunked != 1)
        return refuse(r, 400, "chunked must be the only transfer coding, once");
    r->chunked = 1;
    return 0;
}

/* What the fields say about framing, the host and the connection. */
static int read_fields(struct http1 *r)
{
    int hosts = 0, te = 0;
    const char *connection = NULL;
    for (int i = 0; i < r->nheaders; i++) {
        const struct http1_header *h = &r->headers[i];
        if (name_is(h, "Content-Length") && parse_length(r, h) != 0)
            return -1;
        if (name_is(h, "Transfer-Encoding")) {
            if (r->minor == 0) /* RFC 9112 §6.1: HTTP/1.0 framing with it is faulty */
                return refuse(r, 400, "Transfer-Encoding in an HTTP/1.0 request");
            te++;
            if (parse_codings(r, h) != 0)
                return -1;
        }
        hosts += name_is(h, "Host");
        if (name_is(h, "Connection") && !connection)
            connection = h->value;
        if (name_is(h, "Expect") && strcasecmp(h->value, "100-continue") == 0)
            r->expect_continue = r->minor == 1;
    }
    if (te > 1)
        return refuse(r, 400, "chunked must be the only transfer coding, once");
    if (r->has_length && r->chunked)
        return refuse(r, 400, "the message length is ambiguous");
    if (hosts > 1 || (hosts == 0 && r->minor == 1))
        return refuse(r, 400, "an HTTP/1.1 request needs exactly one Host");
    r->keep_alive = r->minor == 1 ? !(connection && lists(connection, "close"))
                                  : connection && lists(connection, "keep-alive");
    return 0;
}

int http1_parse_head(struct http1 *r, char *buf, size_t head_len, uint64_t max_body)
{
    http1_clear(r);
    memset(r, 0, sizeof(*r));
    r->max_body = max_body;
    if (head_len > HTTP1_HEAD_MAX)
        return refuse(r, 431, "the request head is too large");
    if (!head_bytes_ok(buf, head_len))
        return refuse(r, 400, "a control character in the request head");
    buf[head_len - 1] = '\0'; /* the blank line's LF: the head is one string now */
    char *next, *end = line_end(buf, &next);
    if (parse_request_line(r, buf, end) != 0)
        return -1;
    for (char *p = next; *p && *p != '\r'; p = next) {
        end = line_end(p, &next);
        if (parse_field(r, p, end) != 0)
            return -1;
    }
    if (read_fields(r) != 0)
        return -1;
    r->left = r->chunked ? 0 : r->content_length;
    r->phase = CH_SIZE;
    r->state = r->chunked || r->left > 0 ? HTTP1_BODY : HTTP1_DONE;
    return 0;
}

static int take(struct http1 *r, const char *at, size_t len)
{
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

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* A line of chunked framing is over (CRLF or a bare LF). */
static int chunk_line_end(struct http1 *r)
{
    size_t len = r->line_len;
    r->line_len = 0;
    switch (r->phase) {
    case CH_SIZE:
        if (!r->saw_digit)
            return refuse(r, 400, "malformed chunk size");
        /* fall through */
    case CH_SIZE_WS:
    case CH_EXT:
        if (r->left > r->max_body - r->body_len)
            return refuse(r, 413, "the body is too large");
        r->phase = r->left ? CH_DATA : CH_TRAILER;
        return 0;
    case CH_DATA_END:
        r->phase = CH_SIZE;
        r->saw_digit = 0;
        return 0;
    default: /* CH_TRAILER: an empty line ends the message; others must be fields */
        if (len == 0)
            r->state = HTTP1_DONE;
        else if (!r->trailer_colon)
            return refuse(r, 400, "a malformed trailer field");
        r->trailer_colon = 0;
        return 0;
    }
}

/* One byte of chunked framing (anything but chunk data). Returns 0, or -1 having refused. */
static int chunk_byte(struct http1 *r, char c)
{
    unsigned char u = (unsigned char)c;
    if (r->saw_cr) {
        r->saw_cr = 0;
        if (c != '\n')
            return refuse(r, 400, "a CR not followed by LF in the chunked framing");
        return chunk_line_end(r);
    }
    if (c == '\r') {
        r->saw_cr = 1;
        return 0;
    }
    if (c == '\n')
        return chunk_line_end(r);
    if ((u < 0x20 && c != '\t') || u == 0x7f)
        return refuse(r, 400, "a control character in the chunked framing");
    if (++r->line_len > HTTP1_LINE_MAX ||
        (r->phase == CH_TRAILER && ++r->trailer_len > HTTP1_HEAD_MAX))
        return refuse(r, 400, "a chunked framing line is too long");
    int ws = c == ' ' || c == '\t';
    switch (r->phase) {
    case CH_SIZE:
        if (hexval(c) >= 0) {
            if (r->left > (UINT64_MAX >> 4))
                return refuse(r, 413, "the body is too large");
            r->left = r->left << 4 | (uint64_t)hexval(c);
            r->saw_digit = 1;
            return 0;
        }
        if (!r->saw_digit || (!ws && c != ';'))
            return refuse(r, 400, "malformed chunk size");
        r->phase = ws ? CH_SIZE_WS : CH_EXT;
        return 0;
    case CH_SIZE_WS: /* BWS, then only an extension may follow */
        if (!ws && c != ';')
            return refuse(r, 400, "malformed chunk size");
        r->phase = ws ? CH_SIZE_WS : CH_EXT;
        return 0;
    case CH_DATA_END: return refuse(r, 400, "chunk data not followed by a line end");
    case CH_TRAILER: /* name ":" value, the name a token; the value read past */
        if (r->trailer_colon)
            return 0;
        if (c == ':' && r->line_len > 1) {
            r->trailer_colon = 1;
            return 0;
        }
        return is_tchar(u) ? 0 : refuse(r, 400, "a malformed trailer field");
    default: /* CH_EXT */ return 0;
    }
}

long http1_body(struct http1 *r, const char *data, size_t len)
{
    size_t pos = 0;
    if (r->state == HTTP1_BODY && r->content_length > r->max_body) /* refused before a byte */
        return refuse(r, 413, "the body is too large");
    while (pos < len && r->state == HTTP1_BODY) {
        if (!r->chunked || r->phase == CH_DATA) {
            size_t n = len - pos < r->left ? len - pos : (size_t)r->left;
            if (take(r, data + pos, n) != 0)
                return -1;
            pos += n;
            r->left -= n;
            if (r->left == 0 && !r->chunked)
                r->state = HTTP1_DONE;
            else if (r->left == 0)
                r->phase = CH_DATA_END;
            continue;
        }
        if (chunk_byte(r, data[pos++]) != 0)
            return -1;
    }
    return (long)pos;
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
