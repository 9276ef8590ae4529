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

/* Open a non-blocking, close-on-exec listening socket for addr (port 0 picks a free
 * port). A stale unix socket file is replaced; any other file there is left alone.
 * Returns 0, or -1 with l->errstr set. */
int listener_open(struct listener *l, const char *addr);

/* Close the socket if still open and remove a unix socket's file. Safe to call twice. */
void listener_close(struct listener *l);

#endif
