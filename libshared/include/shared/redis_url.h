/* SPDX-License-Identifier: Apache-2.0 */
/* redis_url: parsing REDIS_URL — redis://[user:pass@]host:port[/db], redis://:pass@host,
 * [v6] hosts, rediss://... for TLS, unix:///path[?db=N]; percent-encoded credentials.
 * Thread-safe. */
#ifndef WARDEN_REDIS_URL_H
#define WARDEN_REDIS_URL_H

#include <stddef.h>

struct redis_url {
    char host[256]; /* empty for a unix socket */
    int port;
    char path[256]; /* unix socket path, else empty */
    char user[128]; /* empty: no AUTH user (AUTH pass alone when pass is set) */
    char pass[256];
    int db;
    int tls; /* rediss:// */
};
/* Parse a REDIS_URL. Returns 0, or -1 with the reason in err (without the password). */
int redis_url_parse(const char *url, struct redis_url *out, char *err, size_t errsize);

#endif
