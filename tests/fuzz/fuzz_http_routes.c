/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the HTTP layer's route matching and percent-decoding
 * (libshared/src/http_routes.c): the first byte picks the method, the rest is the raw
 * path. A found route has that method, as many segments as the path and its literal
 * segments in place; a decoded value is never longer than its source and holds no NUL;
 * Allow names only methods of the table; everything decoded is freed with the request. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../libshared/src/http_routes.h"
#include "fuzz.h"

static void nop(struct http_req *r, void *ctx)
{
    (void)r, (void)ctx;
}

/* The path's non-empty '/'-separated segments (as the router splits), at most max. */
static int segments(const char *path, const char *seg[], size_t len[], int max)
{
    int n = 0;
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (n < max) {
            seg[n] = p;
            len[n] = l;
        }
        n++;
        p += l;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "POST", "DELETE", "PUT"};
    static struct route_table t;
    if (t.n == 0) {
        routes_add(&t, "POST", "/v1/claim", nop, NULL, 0);
        routes_add(&t, "GET", "/v1/record", nop, NULL, 0);
        routes_add(&t, "GET", "/v1/sessions/:user", nop, NULL, 0);
        routes_add(&t, "DELETE", "/v1/sessions/:user/:family", nop, NULL, 0);
        routes_add(&t, "GET", "/v1/events/:seq", nop, NULL, 0);
        routes_add(&t, "POST", "/v1/events", nop, NULL, 0);
    }
    if (size == 0)
        return 0;
    const char *method = methods[data[0] % 4];
    char *path = fuzz_cstr(data + 1, size - 1);
    if (!path)
        return 0;
    size_t plen = strlen(path);
    struct owned_str *owned = NULL;
    const char *params[HTTP_MAX_SEGS];
    char allow[64];

    const struct route *r = routes_find(&t, method, path, params, &owned, allow, sizeof(allow));
    if (r) {
        const char *seg[HTTP_MAX_SEGS] = {0};
        size_t len[HTTP_MAX_SEGS] = {0};
        if (strcmp(r->method, method) != 0 || allow[0] != '\0' ||
            segments(path, seg, len, HTTP_MAX_SEGS) != r->nsegs)
            abort();
        for (int i = 0; i < r->nsegs; i++) {
            if (r->segs[i][0] == ':') {
                if (!params[i] || strlen(params[i]) > len[i] ||
                    routes_param(r, params, r->segs[i] + 1) != params[i])
                    abort();
            } else if (!seg[i] || strlen(r->segs[i]) != len[i] ||
                       memcmp(r->segs[i], seg[i], len[i]) != 0) {
                abort();
            }
        }
    }
    for (const char *a = allow; *a;) {
        size_t l = strcspn(a, ",");
        int known = 0;
        for (int i = 0; i < t.n; i++)
            known |= strlen(t.routes[i].method) == l && memcmp(t.routes[i].method, a, l) == 0;
        if (!known)
            abort();
        a += l;
        a += strspn(a, ", ");
    }

    /* A query value: '+' is a space; nothing longer than its source, and no NUL inside
     * (a decoded NUL refuses the value). */
    const char *q = owned_decode(&owned, path, plen, 1);
    if (q && strlen(q) > plen)
        abort();
    if (!q && !strstr(path, "%00"))
        abort(); /* only a decoded NUL (or no memory) refuses */
    owned_free(&owned);
    if (owned)
        abort();
    free(path);
    return 0;
}
