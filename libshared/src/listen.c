/* SPDX-License-Identifier: Apache-2.0 */
/* listen: opening and closing the listening socket named by LISTEN_ADDR (TCP over IPv4
 * or IPv6, or a unix socket). */
#include "shared/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int open_unix(struct listener *s, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(s->errstr, sizeof(s->errstr), "unix socket path too long");
        return -1;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    /* A stale socket from a previous run would make bind fail; never remove anything
     * that is not a socket. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 511) != 0) {
        snprintf(s->errstr, sizeof(s->errstr), "cannot listen on unix:%s: %s", path,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    snprintf(s->unix_path, sizeof(s->unix_path), "%s", path);
    snprintf(s->desc, sizeof(s->desc), "unix:%s", path);
    return fd;
}

int listen_addr_parse(const char *addr, struct listen_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(addr, "unix:", 5) == 0) {
        size_t n = strlen(addr + 5);
        if (n == 0 || n >= sizeof(out->path))
            return -1;
        out->is_unix = 1;
        memcpy(out->path, addr + 5, n + 1);
        return 0;
    }
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || colon[1] == '\0')
        return -1;
    const char *h = addr;
    size_t hlen = (size_t)(colon - addr);
    if (addr[0] == '[') {
        if (colon[-1] != ']' || hlen < 2)
            return -1;
        h = addr + 1;
        hlen -= 2;
    } else if (memchr(addr, ':', hlen)) {
        return -1; /* ::1:8080 — an IPv6 host goes in brackets, or the port is a guess */
    }
    size_t plen = strlen(colon + 1);
    if (hlen == 0 || hlen >= sizeof(out->host) || plen >= sizeof(out->port) ||
        strspn(colon + 1, "0123456789") != plen || atol(colon + 1) > 65535)
        return -1;
    memcpy(out->host, h, hlen);
    memcpy(out->port, colon + 1, plen + 1);
    return 0;
}

int listen_addr_ok(const char *addr)
{
    struct listen_addr a;
    return listen_addr_parse(addr, &a) == 0;
}

static int open_tcp(struct listener *s, const char *addr)
{
    struct listen_addr a;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int fd = -1, one = 1;
    if (listen_addr_parse(addr, &a) != 0 || a.is_unix) {
        snprintf(s->errstr, sizeof(s->errstr),
                 "LISTEN_ADDR must be host:port, [v6]:port or unix:/path");
        return -1;
    }
    int rc = getaddrinfo(a.host, a.port, &hints, &ai);
    if (rc != 0) {
        snprintf(s->errstr, sizeof(s->errstr), "cannot resolve %.64s: %s", a.host,
                 gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 511) != 0) {
        snprintf(s->errstr, sizeof(s->errstr), "cannot listen on %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);

    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
    } bound;
    memset(&bound, 0, sizeof(bound));
    socklen_t sl = sizeof(bound);
    char ip[INET6_ADDRSTRLEN] = "?";
    (void)getsockname(fd, &bound.sa, &sl); /* a bound socket: cannot fail */
    if (bound.sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &bound.in6.sin6_addr, ip, sizeof(ip));
        snprintf(s->desc, sizeof(s->desc), "[%s]:%d", ip, ntohs(bound.in6.sin6_port));
    } else {
        inet_ntop(AF_INET, &bound.in4.sin_addr, ip, sizeof(ip));
        snprintf(s->desc, sizeof(s->desc), "%s:%d", ip, ntohs(bound.in4.sin_port));
    }
    return fd;
}

int listener_open(struct listener *l, const char *addr)
{
    memset(l, 0, sizeof(*l));
    l->fd = strncmp(addr, "unix:", 5) == 0 ? open_unix(l, addr + 5) : open_tcp(l, addr);
    return l->fd >= 0 ? 0 : -1;
}

void listener_close(struct listener *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    if (l->unix_path[0])
        unlink(l->unix_path);
    l->unix_path[0] = '\0';
}
