/* SPDX-License-Identifier: Apache-2.0 */
/* http_routes: the HTTP layer's route table (method + pattern with :params), matching a
 * raw request path, and percent-decoding into strings the request owns. Private to http.c. */
#ifndef WARDEN_HTTP_ROUTES_H
#define WARDEN_HTTP_ROUTES_H

#include <stddef.h>

#include "shared/http.h"

#define HTTP_MAX_ROUTES 64
#define HTTP_MAX_SEGS 8

struct route {
    const char *method;
    const char *pattern;
    char *buf; /* the pattern's copy that segs point into */
    char *segs[HTTP_MAX_SEGS];
    int nsegs;
    http_handler handler;
    void *ctx;
    unsigned flags;
};

struct route_table {
    struct route routes[HTTP_MAX_ROUTES];
    int n;
};

/* Decoded strings, freed together with owned_free. */
struct owned_str {
    struct owned_str *next;
    char s[];
};

/* Add a route. A full table or a pattern of more than HTTP_MAX_SEGS segments is a
 * programming error: abort. */
void routes_add(struct route_table *t, const char *method, const char *pattern, http_handler h,
                void *ctx, unsigned flags);
void routes_free(struct route_table *t);

/* The route for method and the raw (still percent-encoded) path, its parameters decoded
 * into params (indexed by segment, onto *owned), or NULL; when only other methods match
 * the path, allow lists them ("GET, POST"), else it is "". */
const struct route *routes_find(const struct route_table *t, const char *method, const char *path,
                                const char *params[HTTP_MAX_SEGS], struct owned_str **owned,
                                char *allow, size_t allowsize);

/* The value of parameter name (":name" in the pattern) for a route found with params. */
const char *routes_param(const struct route *rt, const char *const params[HTTP_MAX_SEGS],
                         const char *name);

/* Percent-decode src[0..len) (and '+' → ' ' when plus_space, for query values) into a
 * string added to *owned. NULL if out of memory or if it decodes to a NUL, which would cut
 * the C string short (a%00b read as a). */
const char *owned_decode(struct owned_str **owned, const char *src, size_t len, int plus_space);
void owned_free(struct owned_str **owned);

#endif
