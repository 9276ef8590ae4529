/* SPDX-License-Identifier: Apache-2.0 */
/* admin_client: the smallest HTTP/1.1 client audit-trim needs to ask auditd for an admin
 * action: one POST of a JSON body with a bearer token, on a connection of its own, the
 * answer read up to the close. auditd's base URL is http://host:port (IPv4, IPv6 in
 * brackets, a name) or unix:/path, as LISTEN_ADDR says where it listens. */
#ifndef AUDIT_ADMIN_CLIENT_H
#define AUDIT_ADMIN_CLIENT_H

#include <stddef.h>

/* POST json to base + path with "Authorization: Bearer token" (token may be NULL), within
 * timeout_ms. Returns 0 with *status and *body (NUL-terminated, malloc'd: caller frees),
 * or -1 with the reason in err (which never holds the token). */
int audit_admin_post(const char *base, const char *path, const char *token, const char *json,
                     int timeout_ms, int *status, char **body, char *err, size_t errsize);

#endif
