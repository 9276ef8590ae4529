/* SPDX-License-Identifier: Apache-2.0 */
/* redis_url: REDIS_URL parsing for the pool (and anything else that connects). */
#include "shared/redis_url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Percent-decode src[0..len) into dst (so passwords may hold '@' or ':'). */
static int pct_decode(const char *src, size_t len, char *dst, size_t dstsize)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = src[i];
        if (ch == '%') {
            unsigned v;
            if (i + 2 >= len)
                return -1;
            if (sscanf(src + i + 1, "%2x", &v) != 1)
                return -1;
            ch = (char)v;
            i += 2;
        }
        if (o + 1 >= dstsize)
            return -1;
        dst[o++] = ch;
    }
    dst[o] = '\0';
    return 0;
}

static int parse_db(const char *s, int *db)
{
    char *end;
    if (*s == '\0')
        return 0;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end != '\0' || v < 0 || v > 1000000)
        return -1;
    *db = (int)v;
    return 0;
}

static int parse_unix(const char *rest, struct redis_url *out, char *err, size_t errsize)
{
    const char *q = strchr(rest, '?');
    size_t plen = q ? (size_t)(q - rest) : strlen(rest);
    if (plen == 0 || rest[0] != '/' || plen >= sizeof(out->path)) {
        snprintf(err, errsize, "unix URL needs an absolute socket path");
        return -1;
    }
    memcpy(out->path, rest, plen);
    out->path[plen] = '\0';
    if (q && (strncmp(q, "?db=", 4) != 0 || parse_db(q + 4, &out->db) != 0)) {
        snprintf(err, errsize, "unix URL accepts only ?db=N");
        return -1;
    }
    return 0;
}

static int parse_hostport(const char *hp, size_t len, struct redis_url *out, char *err,
                          size_t errsize)
{
    const char *colon;
    const char *host = hp;
    size_t hlen;
    if (len > 0 && hp[0] == '[') {
        const char *rb = memchr(hp, ']', len);
        if (!rb)
            goto bad;
        host = hp + 1;
        hlen = (size_t)(rb - host);
        colon = (rb + 1 < hp + len && rb[1] == ':') ? rb + 1 : NULL;
        if (!colon && rb + 1 != hp + len)
            goto bad;
    } else {
        colon = memchr(hp, ':', len);
        hlen = colon ? (size_t)(colon - hp) : len;
    }
    if (hlen == 0 || hlen >= sizeof(out->host))
        goto bad;
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = 6379;
    if (colon) {
        char port[8] = {0};
        size_t plen = (size_t)(hp + len - colon - 1);
        char *end;
        if (plen == 0 || plen >= sizeof(port))
            goto bad;
        memcpy(port, colon + 1, plen);
        long v = strtol(port, &end, 10);
        if (*end != '\0' || v < 1 || v > 65535)
            goto bad;
        out->port = (int)v;
    }
    return 0;
bad:
    snprintf(err, errsize, "bad host:port");
    return -1;
}

int redis_url_parse(const char *url, struct redis_url *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix(url + 7, out, err, errsize);
    out->tls = strncmp(url, "rediss://", 9) == 0;
    if (!out->tls && strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errsize, "scheme must be redis://, rediss:// or unix://");
        return -1;
    }
    const char *p = url + 8 + out->tls;
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        /* The last '@' before the path separates credentials; a password with '@'
         * must be percent-encoded anyway, but be lenient. */
        for (const char *q = at; q < end; q++)
            if (*q == '@')
                at = q;
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon) {
            snprintf(err, errsize, "credentials must be user:pass@ or :pass@");
            return -1;
        }
        if (pct_decode(p, (size_t)(colon - p), out->user, sizeof(out->user)) != 0 ||
            pct_decode(colon + 1, (size_t)(at - colon - 1), out->pass, sizeof(out->pass)) != 0 ||
            out->pass[0] == '\0') {
            snprintf(err, errsize, "bad credentials");
            return -1;
        }
        p = at + 1;
    }
    if (parse_hostport(p, (size_t)(end - p), out, err, errsize) != 0)
        return -1;
    if (slash && parse_db(slash + 1, &out->db) != 0) {
        snprintf(err, errsize, "database must be a number");
        return -1;
    }
    return 0;
}
