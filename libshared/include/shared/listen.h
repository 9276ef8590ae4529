/* SPDX-License-Identifier: Apache-2.0 */
/* listen: the listening socket named by a LISTEN_ADDR value — host:port, [v6]:port or
 * unix:/path. */
#ifndef WARDEN_LISTEN_H
#define WARDEN_LISTEN_H

#include <stddef.h>

struct listener {
    int fd;              /* -1 when closed */
    char desc[300];      /* "127.0.0.1:8083", "[::1]:8083" or "unix:/path"; the real port */
    char unix_path[108]; /* a unix socket's file, removed by listener_close() */
    char errstr[160];
};

/* The parts of a LISTEN_ADDR value. */
struct listen_addr {
    int is_unix;
    char host[256]; /* a [v6] host without its brackets */
    char port[8];   /* decimal, 0..65535 */
    char path[108]; /* unix socket path */
};

/* Split addr by its syntax alone (nothing is resolved or opened): host:port or [v6]:port
 * with a decimal port of 0..65535, or unix:<path> with a path of 1..107 bytes. Returns 0,
 * or -1 if addr is none of these. */
int listen_addr_parse(const char *addr, struct listen_addr *out);
/* 1 if listen_addr_parse accepts addr, else 0 (a cfg_str validator). */
int listen_addr_ok(const char *addr);

/* Open a non-blocking, close-on-exec listening socket for addr (port 0 picks a free
 * port). A stale unix socket file is replaced; any other file there is left alone.
 * Returns 0, or -1 with l->errstr set. */
int listener_open(struct listener *l, const char *addr);

/* Close the socket if still open and remove a unix socket's file. Safe to call twice. */
void listener_close(struct listener *l);

#endif
