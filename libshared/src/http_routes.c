/* SPDX-License-Identifier: Apache-2.0 */
/* http_routes: the route table, path matching and percent-decoding of the HTTP layer
 * (see http_routes.h). */
#include "http_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int split_path(char *path, char **segs, int max)
{
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(path, "/", &save); tok;
         tok = strtok_r(NULL, "/", &save)) {
        if (n == max)
            return -1;
        segs[n++] = tok;
    }
    return n;
}

void routes_add(struct route_table *t, const char *method, const char *pattern, http_handler h,
                void *ctx, unsigned flags)
{
    if (t->n >= HTTP_MAX_ROUTES)
        abort();
    struct route *r = &t->routes[t->n++];
    char *copy = strdup(pattern);
    if (!copy)
        abort();
    r->method = method;
    r->pattern = pattern;
    r->buf = copy;
    r->nsegs = split_path(copy, r->segs, HTTP_MAX_SEGS);
    if (r->nsegs < 0)
        abort();
    r->handler = h;
    r->ctx = ctx;
    r->flags = flags;
}

void routes_free(struct route_table *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->routes[i].buf);
    t->n = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

const char *owned_decode(struct owned_str **owned, const char *src, size_t len, int plus_space)
{
    struct owned_str *o = malloc(sizeof(*o) + len + 1);
    if (!o)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '%' && i + 2 < len && hexval(src[i + 1]) >= 0 && hexval(src[i + 2]) >= 0) {
            o->s[n] = (char)(hexval(src[i + 1]) * 16 + hexval(src[i + 2]));
            if (o->s[n++] == '\0') {
                free(o);
                return NULL;
            }
            i += 2;
        } else {
            o->s[n++] = (plus_space && src[i] == '+') ? ' ' : src[i];
        }
    }
    o->s[n] = '\0';
    o->next = *owned;
    *owned = o;
    return o->s;
}

void owned_free(struct owned_str **owned)
{
    while (*owned) {
        struct owned_str *next = (*owned)->next;
        free(*owned);
        *owned = next;
    }
}

/* The segments joined with '/', as a string added to *owned (NULL if out of memory). */
static const char *rest_of(struct owned_str **owned, char **segs, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += strlen(segs[i]) + 1;
    struct owned_str *o = malloc(sizeof(*o) + len);
    if (!o)
        return NULL;
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(segs[i]);
        if (i)
            o->s[at++] = '/';
        memcpy(o->s + at, segs[i], l);
        at += l;
    }
    o->s[at] = '\0';
    o->next = *owned;
    *owned = o;
    return o->s;
}

/* Match the raw path's segments against a route; parameters are decoded after splitting,
 * so an encoded '/' stays inside its segment. */
static int route_match(const struct route *rt, char **segs, int nsegs,
                       const char *params[HTTP_MAX_SEGS], struct owned_str **owned)
{
    int rest = rt->nsegs > 0 && rt->segs[rt->nsegs - 1][0] == '*';
    int fixed = rest ? rt->nsegs - 1 : rt->nsegs;
    if (rest ? nsegs <= fixed : nsegs != fixed)
        return 0;
    for (int i = 0; i < fixed; i++)
        if (rt->segs[i][0] != ':' && strcmp(rt->segs[i], segs[i]) != 0)
            return 0;
    for (int i = 0; i < fixed; i++) {
        params[i] = NULL;
        if (rt->segs[i][0] != ':')
            continue;
        params[i] = owned_decode(owned, segs[i], strlen(segs[i]), 0);
        if (!params[i])
            return 0; /* undecodable: this route does not match */
    }
    if (rest) /* the remaining segments, raw, joined by '/' again */
        params[fixed] = rest_of(owned, segs + fixed, nsegs - fixed);
    return !rest || params[fixed];
}

const struct route *routes_find(const struct route_table *t, const char *method, const char *path,
                                const char *params[HTTP_MAX_SEGS], struct owned_str **owned,
                                char *allow, size_t allowsize)
{
    char *copy = strdup(path);
    char *segs[HTTP_MAX_SEGS + 1];
    const struct route *found = NULL;
    allow[0] = '\0';
    if (!copy)
        return NULL;
    int nsegs = split_path(copy, segs, HTTP_MAX_SEGS + 1);
    for (int i = 0; nsegs >= 0 && i < t->n; i++) {
        const struct route *rt = &t->routes[i];
        if (!route_match(rt, segs, nsegs, params, owned))
            continue;
        if (strcmp(rt->method, method) == 0) {
            found = rt;
            break;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, allowsize - used, "%s%s", used ? ", " : "", rt->method);
    }
    free(copy);
    return found;
}

const char *routes_param(const struct route *rt, const char *const params[HTTP_MAX_SEGS],
                         const char *name)
{
    for (int i = 0; i < rt->nsegs; i++)
        if ((rt->segs[i][0] == ':' || rt->segs[i][0] == '*') && strcmp(rt->segs[i] + 1, name) == 0)
            return params[i];
    return NULL;
}
