/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the HTTP layer's request framing (libshared/src/http1.c): the
 * input is what a client sends on one connection. Each request is read twice, its body fed
 * whole and a byte at a time, and both readings must agree (state, status, body): a
 * request's meaning never depends on how the bytes arrive. An accepted head holds no NUL,
 * CR or LF in a name or value, at most one Content-Length and never one beside
 * Transfer-Encoding, and only chunked as a coding; a body stays within its limit. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../libshared/src/http1.h"
#include "fuzz.h"

#define MAX_BODY 512

static void check_head(const struct http1 *r)
{
    int cl = 0, te = 0;
    if (!r->method || !r->target)
        abort();
    for (int i = 0; i < r->nheaders; i++) {
        const struct http1_header *h = &r->headers[i];
        if (strlen(h->name) != h->name_len || strlen(h->value) != h->value_len)
            abort(); /* a NUL inside */
        if (strpbrk(h->value, "\r\n") || strpbrk(h->name, "\r\n:"))
            abort();
        cl += strcasecmp(h->name, "Content-Length") == 0;
        if (strcasecmp(h->name, "Transfer-Encoding") == 0) {
            te++;
            char coding[16];
            size_t n = 0; /* the value less whitespace and empty list elements */
            for (const char *v = h->value; *v && n < sizeof(coding) - 1; v++)
                if (!strchr(" \t,", *v))
                    coding[n++] = *v;
            coding[n] = '\0';
            if (strcasecmp(coding, "chunked") != 0)
                abort();
        }
    }
    if (cl > 1 || (cl && te) || te > 1)
        abort();
}

/* Read one request from buf: its body fed in pieces of step bytes (0: whole). Returns the
 * bytes it took, or 0 when it is incomplete or refused. */
static size_t read_one(struct http1 *r, char *buf, size_t len, size_t step)
{
    size_t head = http1_head_end(buf, len);
    if (head == 0 || http1_parse_head(r, buf, head, MAX_BODY) != 0)
        return 0;
    check_head(r);
    size_t pos = head;
    while (r->state == HTTP1_BODY && pos < len) {
        size_t n = step && len - pos > step ? step : len - pos;
        long used = http1_body(r, buf + pos, n);
        if (used < 0)
            return 0;
        pos += (size_t)used;
    }
    if (r->body_len > MAX_BODY)
        abort();
    return r->state == HTTP1_DONE ? pos : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Each reading gets its own copy: parsing writes terminators into the head. */
    char *a = malloc(size + 1), *b = malloc(size + 1);
    if (!a || !b)
        goto done;
    memcpy(a, data, size);
    memcpy(b, data, size);
    size_t off = 0;
    for (int req = 0; req < 8 && off < size; req++) {
        struct http1 whole = {0}, bytes = {0};
        size_t na = read_one(&whole, a + off, size - off, 0);
        size_t nb = read_one(&bytes, b + off, size - off, 1);
        if (na != nb || whole.state != bytes.state || whole.status != bytes.status ||
            (na && (whole.body_len != bytes.body_len ||
                    (whole.body_len && memcmp(whole.body, bytes.body, whole.body_len) != 0))))
            abort();
        http1_clear(&whole);
        http1_clear(&bytes);
        if (na == 0)
            break;
        off += na;
    }
done:
    free(a);
    free(b);
    return 0;
}
