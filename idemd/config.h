/* SPDX-License-Identifier: Apache-2.0 */
/* config: idemd's own settings (IDEM_*), read and validated at startup. */
#ifndef IDEMD_CONFIG_H
#define IDEMD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "shared/config.h"

#define IDEM_MAX_REPLAY_HEADERS 32
#define IDEM_HEADER_NAME_MAX 64

/* The variables, for --help. */
#define IDEM_CONFIG_HELP                                                                           \
    "  IDEM_TTL                 record lifetime from creation (24h)\n"                             \
    "  IDEM_LEASE_TTL           default lease of a claim (30s)\n"                                  \
    "  IDEM_LEASE_MAX           longest lease a claim or extend may ask for (10m)\n"               \
    "  IDEM_ON_LEASE_EXPIRY     takeover | block (takeover)\n"                                     \
    "  IDEM_MAX_RESPONSE_BYTES  largest stored body (1MiB)\n"                                      \
    "  IDEM_REPLAY_HEADERS      response headers stored and replayed\n"                            \
    "  IDEM_WAIT_REPLICAS       replicas every write waits for (0)\n"                              \
    "  IDEM_WAIT_TIMEOUT        how long it waits for them (500ms)\n"

struct idem_config {
    int64_t ttl_ms;           /* IDEM_TTL: record lifetime from creation */
    int64_t lease_default_ms; /* IDEM_LEASE_TTL */
    int64_t lease_max_ms;     /* IDEM_LEASE_MAX */
    int takeover;             /* IDEM_ON_LEASE_EXPIRY: 1 takeover, 0 block */
    uint64_t max_response;    /* IDEM_MAX_RESPONSE_BYTES */
    int wait_replicas;        /* IDEM_WAIT_REPLICAS (0: no WAIT) */
    int64_t wait_timeout_ms;  /* IDEM_WAIT_TIMEOUT */
    /* IDEM_REPLAY_HEADERS, in the configured spelling. */
    char replay_headers[IDEM_MAX_REPLAY_HEADERS][IDEM_HEADER_NAME_MAX];
    size_t n_replay_headers;
};

/* Read every IDEM_* variable from c; a bad value is recorded in c (cfg_failed) and the
 * defaults are kept. */
void idem_config_load(struct idem_config *conf, struct cfg *c);

/* Parse a comma-separated header list into conf->replay_headers. Returns 0, or -1 with a
 * reason in err (a bad header name, too many, or Set-Cookie, which is never replayed). */
int idem_config_parse_headers(struct idem_config *conf, const char *list, char *err,
                              size_t errsize);

/* The configured spelling of name if it is a replay header (case-insensitive), else NULL. */
const char *idem_config_replay_header(const struct idem_config *conf, const char *name);

#endif
