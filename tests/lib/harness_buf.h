/* SPDX-License-Identifier: Apache-2.0 */
/* harness_buf: a growable byte buffer shared by harness.c and harness_http.c. Internal to
 * the harness (tests include harness.h only); static inline so each file keeps its own. */
#ifndef WARDEN_TESTS_HARNESS_BUF_H
#define WARDEN_TESTS_HARNESS_BUF_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Always NUL-terminated once it holds anything; {0} is an empty buffer. */
struct th_buf {
    char *data;
    size_t len, cap;
};

/* Make room for n more bytes plus the NUL. Returns 0 or -1. */
static inline int th_buf_reserve(struct th_buf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

/* Append n bytes. Returns 0 or -1. */
static inline int th_buf_append(struct th_buf *b, const void *p, size_t n)
{
    if (th_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* Append printf-style. Returns 0 or -1. */
__attribute__((format(printf, 2, 3))) static inline int th_buf_printf(struct th_buf *b,
                                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || th_buf_reserve(b, (size_t)n) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* The contents as a malloc'd string ("" when empty, NULL if out of memory); the buffer is
 * left empty and no longer owns them. */
static inline char *th_buf_take(struct th_buf *b)
{
    char *s = b->data ? b->data : strdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

#endif
