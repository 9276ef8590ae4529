/* SPDX-License-Identifier: Apache-2.0 */
/* redis_pool: the only way warden talks to Redis.
 *
 * A bounded pool of blocking hiredis connections. Callers hand it a command (or an
 * embedded script, or a pipeline of them) with a timeout and get back a reply or a
 * classified failure; they never see a connection. The pool
 *   - waits at most REDIS_POOL_TIMEOUT for a free connection, then fails fast (counted
 *     as a timeout and logged at `critical`, at most once a second); opening a new
 *     connection spends that same budget (capped by REDIS_CONNECT_TIMEOUT), so a call
 *     never waits longer than REDIS_POOL_TIMEOUT + its command timeout;
 *   - never hands out a connection that saw an error: it is closed (counted as stale)
 *     and the next checkout opens a fresh one, so the pool heals after a Redis restart;
 *     an idle connection the server has closed is noticed at checkout and replaced;
 *   - runs scripts with EVALSHA and, on NOSCRIPT (SCRIPT FLUSH, failover), loads the
 *     script once and runs it again;
 *   - keeps REDIS_MIN_IDLE_CONNS warm, closes connections idle past REDIS_IDLE_TIMEOUT
 *     (checked every REDIS_IDLE_CHECK_FREQ) or older than REDIS_MAX_CONN_AGE.
 * Thread-safe. */
#ifndef WARDEN_REDIS_POOL_H
#define WARDEN_REDIS_POOL_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/config.h"
#include "shared/metrics.h"
#include "shared/redis_url.h"
#include "shared/script.h"

struct rpool;

struct rpool_config {
    const char *url; /* redis://[user[:pass]@]host:port[/db] or unix:///path[?db=N] */
    int size;
    int min_idle;
    int64_t max_conn_age_ms;
    int64_t pool_timeout_ms;
    int64_t idle_timeout_ms;
    int64_t idle_check_freq_ms;
    int64_t connect_timeout_ms;
    int64_t command_timeout_ms;
};

/* The documented defaults (REDIS_COMMAND_TIMEOUT 1s, REDIS_POOL_SIZE 100, ...). */
void rpool_config_defaults(struct rpool_config *rc);
/* Read the REDIS_* variables over the values already in rc (its defaults). */
void rpool_config_load(struct rpool_config *rc, struct cfg *c);

enum rpool_status {
    RPOOL_OK = 0,
    RPOOL_POOL_TIMEOUT, /* no free connection within the pool timeout */
    RPOOL_CONN,         /* could not connect, or the connection broke mid-call */
    RPOOL_TIMEOUT,      /* no answer within the command timeout */
    RPOOL_REPLY_ERROR,  /* Redis answered with an error reply (script error, NOPERM, ...) */
};
/* Short stable name of a status ("ok", "pool_timeout", "connect", "timeout", "reply"). */
const char *rpool_status_name(enum rpool_status st);

/* One command of a call. With script set, the pool sends
 * EVALSHA <sha> <nkeys> argv[0..argc) and argv starts with the nkeys keys. */
struct rpool_cmd {
    const struct script *script;
    int nkeys;
    int argc;
    const char *const *argv;
    const size_t *argvlen; /* NULL: every argv[i] is NUL-terminated */
};

/* metrics may be NULL. Connects nothing yet besides warming min_idle in the background;
 * a Redis that is down at startup is not an error. Returns NULL on bad config with the
 * reason in err. */
struct rpool *rpool_create(const struct rpool_config *conf, struct metrics *metrics, char *err,
                           size_t errsize);
/* Closes every connection and stops the maintenance thread. NULL does nothing. */
void rpool_free(struct rpool *p);

/* Scripts that rpool_ready() loads and checks (NULL-terminated list). Call before use. */
void rpool_set_scripts(struct rpool *p, const struct script *const *scripts);

/* Run ncmds commands in one round trip (pipelined) on one connection, within timeout_ms
 * (<= 0: the configured command timeout) for the whole exchange. On RPOOL_OK every
 * replies[i] is set (an error reply is a reply: check its type) and the caller frees each
 * with freeReplyObject(); on any other status no reply is set. A script that got NOSCRIPT
 * is loaded and run again after the whole pipeline has run, so a command placed after it
 * (e.g. WAIT) does not cover that second run. */
enum rpool_status rpool_exec(struct rpool *p, const struct rpool_cmd *cmds, size_t ncmds,
                             redisReply **replies, int64_t timeout_ms);

/* One plain command. On RPOOL_OK or RPOOL_REPLY_ERROR *reply is set (caller frees). */
enum rpool_status rpool_command(struct rpool *p, int argc, const char *const *argv,
                                const size_t *argvlen, int64_t timeout_ms, redisReply **reply);

/* One script run. On RPOOL_OK or RPOOL_REPLY_ERROR *reply is set (caller frees). */
enum rpool_status rpool_eval(struct rpool *p, const struct script *s, int nkeys, int argc,
                             const char *const *argv, const size_t *argvlen, int64_t timeout_ms,
                             redisReply **reply);

/* PING, and SCRIPT LOAD any script not known loaded. Returns 0 when Redis answers and
 * every script is loaded; else -1 with a short reason ("connect", "timeout",
 * "scripts_not_loaded", ...) in reason. */
int rpool_ready(struct rpool *p, char *reason, size_t reasonsize);

struct rpool_stats {
    uint64_t hits;     /* checkouts served by an idle connection */
    uint64_t misses;   /* checkouts that had to open a connection */
    uint64_t timeouts; /* checkouts that gave up after the pool timeout */
    uint32_t total;    /* open connections (idle + in use) */
    uint32_t idle;
    uint64_t stale; /* connections closed for error, age or idleness */
};
void rpool_stats(struct rpool *p, struct rpool_stats *out);

/* The effective command timeout. */
int64_t rpool_command_timeout_ms(const struct rpool *p);

#endif
