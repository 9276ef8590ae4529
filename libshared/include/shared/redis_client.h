/* SPDX-License-Identifier: Apache-2.0 */
/* redis_client: the non-blocking Redis client of one event loop (loop.h).
 *
 * A caller names a command, or an embedded script with its keys and arguments, and a
 * function to call with the outcome; it never sees a connection. On the loop's thread:
 *   - every command issued during one turn of the loop leaves in one write at the end of
 *     the turn (automatic pipelining); replies are matched in order;
 *   - RESP is encoded with hiredis's redisFormatCommandArgv and decoded with its
 *     redisReader; sockets and timers are the loop's; plain TCP, unix sockets and TLS
 *     (rediss://, OpenSSL, certificate and host name always verified);
 *   - each command has a deadline (REDIS_COMMAND_TIMEOUT): past it the command fails as a
 *     timeout, and every other command on its connection with it, without waiting for the
 *     socket; the connection is closed and opened again;
 *   - scripts run by EVALSHA; on NOSCRIPT the script is loaded and run again, once;
 *   - connections are opened as load needs them: a second one only when the first carries
 *     RCL_MAX_IN_FLIGHT commands, up to its share of REDIS_POOL_SIZE; with every connection
 *     full, a command waits up to REDIS_POOL_TIMEOUT for room, then fails as pool_timeout
 *     (logged at `critical`, at most once a second); REDIS_MIN_IDLE_CONNS stay open,
 *     connections older than REDIS_MAX_CONN_AGE are retired once their commands are
 *     answered;
 *   - a connection that fails is reopened with backoff (10 ms doubling to 1 s); ACL AUTH
 *     and SELECT are sent ahead of the first command on every connection.
 * Not thread-safe: one client per loop, used on the loop's thread only. */
#ifndef WARDEN_REDIS_CLIENT_H
#define WARDEN_REDIS_CLIENT_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/config.h"
#include "shared/loop.h"
#include "shared/metrics.h"
#include "shared/script.h"

/* Commands one connection carries at once before a second one is opened. */
#define RCL_MAX_IN_FLIGHT 1024

struct rclient;

struct rcl_tls {
    const char *ca_file;     /* REDIS_TLS_CA_FILE; NULL: the system's trust store */
    const char *cert_file;   /* REDIS_TLS_CERT_FILE: a client certificate, with key_file */
    const char *key_file;    /* REDIS_TLS_KEY_FILE */
    const char *server_name; /* REDIS_TLS_SERVER_NAME; NULL: the URL's host */
};

/* What the clients of a process count, in one registry: commands and the writes that
 * carried them (their ratio is the pipelining), how commands found room, failures by kind,
 * and the connections. Registered once with rcl_metrics_init(); any client may count. */
struct rcl_metrics {
    struct metric_series *commands, *writes;
    struct metric_series *hits;   /* commands sent at once on an open connection */
    struct metric_series *misses; /* commands that waited for a connection or for room */
    struct metric_series *pool_timeouts, *stale;
    struct metric_series *total, *idle; /* gauges: open connections, those carrying nothing */
    struct metric_series *errors[5];    /* by enum rcl_status (none for RCL_OK) */
    struct metric_series *duration;     /* histogram: issue to reply */
};
void rcl_metrics_init(struct rcl_metrics *m, struct metrics *reg);

struct rcl_config {
    const char *url; /* redis://, rediss://, unix:// (redis_url.h) */
    int pool_size;   /* the most connections, shared by every loop of the process */
    int loops;       /* how many loops share pool_size (each gets its part, at least 1) */
    int min_idle;
    int64_t max_conn_age_ms;
    int64_t pool_timeout_ms;
    int64_t connect_timeout_ms;
    int64_t command_timeout_ms;
    struct rcl_tls tls;
    int max_in_flight;                 /* commands one connection carries (0: RCL_MAX_IN_FLIGHT) */
    const struct rcl_metrics *metrics; /* NULL: not counted */
    /* REDIS_IDLE_TIMEOUT and REDIS_IDLE_CHECK_FREQ: read and checked, kept for their
     * names; the client closes no connection for idleness. */
    int64_t idle_timeout_ms, idle_check_freq_ms;
};

/* The defaults (redis://127.0.0.1:6379/0, 100 connections, 10 kept open, 5 min age, 1 s
 * pool, connect and command timeouts), then REDIS_URL(_FILE), REDIS_POOL_SIZE,
 * REDIS_MIN_IDLE_CONNS, REDIS_MAX_CONN_AGE, REDIS_POOL_TIMEOUT, REDIS_IDLE_TIMEOUT,
 * REDIS_IDLE_CHECK_FREQ, REDIS_CONNECT_TIMEOUT, REDIS_COMMAND_TIMEOUT and REDIS_TLS_*. A
 * daemon may change a default between the two calls. Bad values are cfg errors. */
void rcl_config_defaults(struct rcl_config *rc);
void rcl_config_load(struct rcl_config *rc, struct cfg *c);

enum rcl_status {
    RCL_OK = 0,
    RCL_POOL_TIMEOUT, /* no room on any connection within the pool timeout */
    RCL_CONN,         /* could not connect, or the connection broke before the reply */
    RCL_TIMEOUT,      /* no reply within the command's deadline */
    RCL_REPLY_ERROR,  /* Redis answered with an error reply (script error, NOPERM, ...) */
};
/* "ok", "pool_timeout", "connect", "timeout", "reply". */
const char *rcl_status_name(enum rcl_status st);

/* The outcome of a command: the reply (an error reply with RCL_REPLY_ERROR), or NULL with
 * any other failure. The reply belongs to the client and is freed when fn returns; take
 * it with rcl_steal() to keep it. */
typedef void (*rcl_done_fn)(void *arg, enum rcl_status st, redisReply *reply);

/* A client for loop l. Opens its part of min_idle connections now; a Redis that is down is
 * not an error. Returns NULL with the reason in err (a bad URL, a TLS file that cannot be
 * read). */
struct rclient *rcl_create(struct loop *l, const struct rcl_config *conf, char *err,
                           size_t errsize);
/* Close every connection; commands still waiting fail with RCL_CONN first. NULL is fine.
 * Not from inside a done function. */
void rcl_free(struct rclient *c);

/* Send a command: argv[0..argc) with lengths (argvlen NULL: NUL-terminated strings).
 * timeout_ms <= 0: REDIS_COMMAND_TIMEOUT. fn runs later on the loop, exactly once, never
 * inside this call. Returns 0, or -1 when out of memory (fn will not run). */
int rcl_command(struct rclient *c, int argc, const char *const *argv, const size_t *argvlen,
                int64_t timeout_ms, rcl_done_fn fn, void *arg);

/* Run an embedded script: EVALSHA sha nkeys argv[0..argc) where argv starts with its
 * nkeys keys; NOSCRIPT loads it and runs it again, once. As rcl_command otherwise. */
int rcl_eval(struct rclient *c, const struct script *s, int nkeys, int argc,
             const char *const *argv, const size_t *argvlen, int64_t timeout_ms, rcl_done_fn fn,
             void *arg);

/* Keep the reply passed to the running rcl_done_fn: the caller frees it with
 * freeReplyObject(). Only inside that fn. */
redisReply *rcl_steal(struct rclient *c);

struct rcl_stats {
    uint64_t commands; /* sent */
    uint64_t writes;   /* writes that carried them: commands / writes = pipelining */
    uint64_t timeouts; /* commands failed by their deadline */
    uint64_t pool_timeouts;
    uint64_t reconnects; /* connections opened after the first */
    uint32_t open;       /* connections open or opening */
    uint32_t in_flight;  /* commands sent or waiting, not yet answered */
};
void rcl_stats(const struct rclient *c, struct rcl_stats *out);

#endif
