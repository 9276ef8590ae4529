/* SPDX-License-Identifier: Apache-2.0 */
/* tool: what audit-verify and audit-export share — a Redis client for a URL, the
 * keyring file, and numeric option parsing. */
#ifndef AUDIT_TOOL_H
#define AUDIT_TOOL_H

#include <stddef.h>

#include "entry.h"
#include "keyring.h"
#include "query.h"

/* Initialise crypto and quiet logging for a command-line tool. Returns 0 or -1. */
int audit_tool_init(const char *name);

/* A client of url for blocking calls from this thread (10 s command timeout). NULL with a
 * reason in err. */
struct audit_db *audit_tool_db(const char *url, char *err, size_t errsize);
/* Close and free it (NULL does nothing). */
void audit_tool_db_close(struct audit_db *db);

/* Read a keyring document (GET /v1/keys) from path. NULL with a reason in err. */
struct audit_keyring *audit_tool_keyring(const char *path, char *err, size_t errsize);

/* Read n keyring documents and merge them into one keyring (audit-verify --keys given
 * more than once: a keyring per era, or the auditors' and an operator's). A version given
 * by two of them with the same public key counts once; with different keys it is refused,
 * as within one document. NULL with a reason in err. */
struct audit_keyring *audit_tool_keyrings(const char *const *paths, int n, char *err,
                                          size_t errsize);

/* A whole file into a malloc'd NUL-terminated buffer (caller frees); NULL on error. */
char *audit_tool_read_file(const char *path, size_t *len);

/* The Redis URL a tool uses: the --redis value, else REDIS_URL from the environment (so a
 * password need not be on the command line), else NULL. */
const char *audit_tool_redis_url(const char *opt);

/* Print url for --check-config with any password replaced by <secret>. */
void audit_tool_print_url(const char *name, const char *url);

/* Parse a decimal in [min, max]; returns 0 or -1. */
int audit_tool_num(const char *s, long long min, long long max, long long *out);
/* Parse an --expect-head value SEQ:HASH (seq >= 1, 64 hex digits, either case) into seq
 * and the lowercase hash. Returns 0 or -1. */
int audit_tool_expect_head(const char *s, long long *seq, char hash[AUDIT_HASH_HEX_LEN + 1]);

#endif
