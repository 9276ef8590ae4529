/* SPDX-License-Identifier: Apache-2.0 */
/* redis_conn: one non-blocking connection to one Redis node on an event loop. Private to
 * redis_client.c, which decides which connection a command takes.
 *
 * Formatted commands go into the connection's output buffer, which is written at the end
 * of the loop's turn (loop_defer) — every command of a turn in one write; replies are
 * matched to commands in order with hiredis's redisReader. Connecting (TCP or unix, then
 * TLS when asked, then AUTH and SELECT, sent ahead of the first commands in the same
 * write) never blocks. A command past its deadline fails the connection: every command on
 * it fails (the first ones as timeouts), and the owner hears of it. */
#ifndef WARDEN_REDIS_CONN_H
#define WARDEN_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/loop.h"
#include "shared/redis_client.h"

struct rconn;

/* Where and how to connect; strings are the owner's and outlive the connection. */
struct rconn_target {
    const char *host; /* TCP: a name or address */
    int port;
    const char *path; /* unix socket, when not NULL */
    const char *user; /* ACL user, or NULL */
    const char *pass; /* NULL: no AUTH */
    int db;
    SSL_CTX *tls;            /* NULL: plain */
    const char *server_name; /* checked against the certificate, sent as SNI */
    int64_t connect_timeout_ms;
};

/* What the owner hears. reply() gets each command's outcome (reply NULL unless RCL_OK or
 * RCL_REPLY_ERROR; the reply is freed after it returns unless stolen with
 * rconn_steal_reply). up() comes when the connection takes commands (connected, TLS
 * done, AUTH and SELECT answered). down() comes once, when it failed (was_up: after up()),
 * after which the owner must not use it; the commands still on it are failed afterwards,
 * through reply(). */
struct rconn_owner {
    void (*reply)(void *owner, struct rconn *c, void *arg, enum rcl_status st, redisReply *reply);
    void (*up)(void *owner, struct rconn *c);
    void (*down)(void *owner, struct rconn *c, enum rcl_status why, int was_up);
    struct metric_series *writes; /* counted per write; may be NULL */
    void *owner;
};

/* Start connecting (o is copied). NULL when out of memory or the socket cannot even be
 * created (the owner retries later). */
struct rconn *rconn_open(struct loop *l, const struct rconn_target *t, const struct rconn_owner *o);

/* Queue one formatted command (RESP bytes), answered through owner->reply(arg). Returns 0,
 * or -1 when out of memory. */
int rconn_push(struct rconn *c, const char *cmd, size_t len, int64_t deadline_ms, void *arg);

/* Close now and free: down() is not called; the commands still on it fail with RCL_CONN.
 * Not from inside one of its own callbacks: use rconn_retire there. */
void rconn_close(struct rconn *c);
/* The same, safe anywhere: the memory goes at the end of the loop's turn. */
void rconn_retire(struct rconn *c);

/* Inside owner->reply(): keep the reply (the caller frees it with freeReplyObject). */
redisReply *rconn_steal_reply(struct rconn *c);

size_t rconn_in_flight(const struct rconn *c);
int rconn_is_up(const struct rconn *c);
int64_t rconn_opened_ms(const struct rconn *c);

/* Commands sent and writes that carried them, since it opened. */
void rconn_counters(const struct rconn *c, uint64_t *commands, uint64_t *writes);

#endif
