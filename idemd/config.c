/* SPDX-License-Identifier: Apache-2.0 */
/* config: reads IDEM_TTL, IDEM_LEASE_*, IDEM_ON_LEASE_EXPIRY, IDEM_MAX_RESPONSE_BYTES,
 * IDEM_REPLAY_HEADERS and IDEM_WAIT_* from the environment. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "shared/jsonv.h"

#define IDEM_DEFAULT_HEADERS "Location,ETag,Link,Content-Type,Content-Location,Last-Modified"

int idem_config_parse_headers(struct idem_config *conf, const char *list, char *err, size_t errsize)
{
    const char *p = list;
    conf->n_replay_headers = 0;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= IDEM_HEADER_NAME_MAX || !jv_token_ok(p, n, "-_")) {
            snprintf(err, errsize,
                     "each item must be a header name of 1..%d letters, digits, "
                     "'-' or '_'",
                     IDEM_HEADER_NAME_MAX - 1);
            return -1;
        }
        if (n == strlen("Set-Cookie") && strncasecmp(p, "Set-Cookie", n) == 0) {
            snprintf(err, errsize, "Set-Cookie is never stored or replayed");
            return -1;
        }
        if (conf->n_replay_headers == IDEM_MAX_REPLAY_HEADERS) {
            snprintf(err, errsize, "at most %d headers", IDEM_MAX_REPLAY_HEADERS);
            return -1;
        }
        memcpy(conf->replay_headers[conf->n_replay_headers], p, n);
        conf->replay_headers[conf->n_replay_headers++][n] = '\0';
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

const char *idem_config_replay_header(const struct idem_config *conf, const char *name)
{
    for (size_t i = 0; i < conf->n_replay_headers; i++)
        if (strcasecmp(conf->replay_headers[i], name) == 0)
            return conf->replay_headers[i];
    return NULL;
}

static int headers_valid(const char *value)
{
    struct idem_config tmp;
    char err[128];
    return idem_config_parse_headers(&tmp, value, err, sizeof(err)) == 0;
}

void idem_config_load(struct idem_config *conf, struct cfg *c)
{
    static const char *const modes[] = {"takeover", "block", NULL};
    char err[128];

    memset(conf, 0, sizeof(*conf));
    conf->ttl_ms = cfg_duration_ms(c, "IDEM_TTL", "24h", 1000, 365LL * 86400000);
    conf->lease_default_ms = cfg_duration_ms(c, "IDEM_LEASE_TTL", "30s", 1000, 86400000);
    conf->lease_max_ms = cfg_duration_ms(c, "IDEM_LEASE_MAX", "10m", 1000, 86400000);
    conf->takeover = cfg_enum(c, "IDEM_ON_LEASE_EXPIRY", "takeover", modes) == 0;
    conf->max_response = cfg_size(c, "IDEM_MAX_RESPONSE_BYTES", "1MiB", 0, 64ULL << 20);
    conf->wait_replicas = (int)cfg_int(c, "IDEM_WAIT_REPLICAS", 0, 0, 64);
    conf->wait_timeout_ms = cfg_duration_ms(c, "IDEM_WAIT_TIMEOUT", "500ms", 0, 60000);
    const char *headers = cfg_str(c, "IDEM_REPLAY_HEADERS", IDEM_DEFAULT_HEADERS, headers_valid,
                                  "a comma-separated list of header names, without Set-Cookie");
    if (idem_config_parse_headers(conf, headers, err, sizeof(err)) != 0)
        idem_config_parse_headers(conf, IDEM_DEFAULT_HEADERS, err, sizeof(err));
    if (conf->lease_default_ms > conf->lease_max_ms)
        cfg_fail(c, "IDEM_LEASE_TTL=%lldms: must not exceed IDEM_LEASE_MAX (%lldms)",
                 (long long)conf->lease_default_ms, (long long)conf->lease_max_ms);
}
