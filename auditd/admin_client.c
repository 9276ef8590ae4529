/* SPDX-License-Identifier: Apache-2.0 */
/* admin_client: one POST to auditd's admin API, Connection: close. */
#include "admin_client.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define ANSWER_MAX (1 << 20)

/* A connected socket to base ("http://host:port" or "unix:/path"), or -1. */
static int dial(const char *base, char *host_hdr, size_t host_size)
{
    char host[256], port[16];
    if (strncmp(base, "unix:", 5) == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        snprintf(host_hdr, host_size, "localhost");
        if (fd < 0 || strlen(base + 5) >= sizeof(sa.sun_path)) {
            if (fd >= 0)
                close(fd);
            return -1;
        }
        memcpy(sa.sun_path, base + 5, strlen(base + 5) + 1);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            close(fd);
            return -1;
        }
        return fd;
    }
    const char *hp = strncmp(base, "http://", 7) == 0 ? base + 7 : NULL;
    const char *colon = hp ? strrchr(hp, ':') : NULL;
    if (!colon || (size_t)(colon - hp) >= sizeof(host) || strlen(colon + 1) >= sizeof(port) ||
        strchr(colon + 1, '/'))
        return -1;
    snprintf(host_hdr, host_size, "%s", hp);
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    snprintf(port, sizeof(port), "%s", colon + 1);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [v6] */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Send all of buf; read the whole answer until the peer closes. */
static int exchange(int fd, const char *req, size_t len, int timeout_ms, char **answer,
                    size_t *alen)
{
    struct pollfd p = {.fd = fd};
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf && len > 0) {
        ssize_t w = send(fd, req, len, MSG_NOSIGNAL);
        if (w <= 0)
            goto fail;
        req += w;
        len -= (size_t)w;
    }
    for (p.events = POLLIN; buf;) {
        if (poll(&p, 1, timeout_ms) <= 0)
            goto fail;
        if (n + 1 >= cap) {
            char *more = cap < ANSWER_MAX ? realloc(buf, cap * 2) : NULL;
            if (!more)
                goto fail;
            buf = more;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto fail;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (!buf)
        return -1;
    buf[n] = '\0';
    *answer = buf;
    *alen = n;
    return 0;
fail:
    free(buf);
    return -1;
}

int audit_admin_post(const char *base, const char *path, const char *token, const char *json,
                     int timeout_ms, int *status, char **body, char *err, size_t errsize)
{
    char host[300], *req = NULL, *answer = NULL;
    size_t alen = 0, rlen = strlen(json) + strlen(path) + 512 + (token ? strlen(token) : 0);
    int fd = dial(base, host, sizeof(host)), rc = -1;
    *body = NULL;
    if (fd < 0) {
        snprintf(err, errsize, "cannot connect to %s", base);
        return -1;
    }
    if (!(req = malloc(rlen)))
        goto done;
    int n = snprintf(req, rlen,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n%s%s%s\r\n%s",
                     path, host, strlen(json), token ? "Authorization: Bearer " : "",
                     token ? token : "", token ? "\r\n" : "", json);
    const char *sep;
    if (n < 0 || (size_t)n >= rlen ||
        exchange(fd, req, (size_t)n, timeout_ms, &answer, &alen) != 0 ||
        sscanf(answer, "HTTP/1.%*d %d", status) != 1 || !(sep = strstr(answer, "\r\n\r\n"))) {
        snprintf(err, errsize, "no HTTP answer from %s", base);
        goto done;
    }
    *body = strdup(sep + 4);
    rc = *body ? 0 : -1;
done:
    if (req) /* the request held the token */
        memset(req, 0, rlen);
    free(req);
    free(answer);
    close(fd);
    return rc;
}
