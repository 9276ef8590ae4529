/* SPDX-License-Identifier: Apache-2.0 */
/* conn_guard: the HTTP layer's connection slots, and a deadline on every request still
 * being received.
 *
 * A slot is taken when a connection is accepted — refused at once when all are taken —
 * and given back when the connection closes. While a connection is receiving a request
 * (from its accept, or from the end of its previous answer, until the whole request is
 * in) it has a deadline; a watchdog thread shuts down the socket of a connection past its
 * deadline. An idle timeout alone never catches a client that trickles its headers or its
 * body a byte at a time: this is what frees those slots.
 *
 * The watchdog only calls shutdown(2) on the socket; the server's own thread sees the end
 * of the stream and closes it. A socket is guarded from guard_open() until guard_close(),
 * which the server calls before it closes the descriptor, so the watchdog never touches a
 * descriptor number that has been reused. Everything is thread-safe. */
#ifndef WARDEN_CONN_GUARD_H
#define WARDEN_CONN_GUARD_H

#include <stdint.h>

#include "shared/metrics.h"

struct conn_guard;
struct guard_conn;

/* Counters the guard keeps up to date; any may be NULL. */
struct guard_metrics {
    struct metric_series *open;      /* gauge: connections holding a slot */
    struct metric_series *refused;   /* counter: connections refused, every slot taken */
    struct metric_series *timed_out; /* counter: requests cut off at their deadline */
};

/* Register the families http_connections, http_connections_refused_total and
 * http_request_timeouts_total in m (at startup) and point gm at their series. */
void guard_metrics_init(struct guard_metrics *gm, struct metrics *m);

/* limit slots; a request must be received within timeout_ms. Starts the watchdog.
 * Returns the guard, or NULL if out of memory or no thread could be started. */
struct conn_guard *guard_create(int limit, int64_t timeout_ms, const struct guard_metrics *m);

/* Stop the watchdog and free the guard. Call after every guarded connection is closed.
 * NULL does nothing. */
void guard_free(struct conn_guard *g);

/* Take a slot for a connection being accepted: 1, or 0 when all are taken (counted as
 * refused). A slot taken here is given back by guard_close(). */
int guard_admit(struct conn_guard *g);

/* Start guarding the accepted socket fd, with its deadline armed. Returns the handle for
 * the calls below, or NULL when out of memory (the connection then goes unguarded). */
struct guard_conn *guard_open(struct conn_guard *g, int fd);

/* The connection starts waiting for a request: deadline = now + timeout. NULL is ignored. */
void guard_arm(struct guard_conn *c);

/* The whole request is in: no deadline until the next guard_arm(). NULL is ignored. */
void guard_disarm(struct guard_conn *c);

/* The connection is closing (its socket not yet closed): stop guarding it, free c (may be
 * NULL) and give back the slot guard_admit() took. */
void guard_close(struct conn_guard *g, struct guard_conn *c);

/* Connections holding a slot now. */
int guard_open_count(struct conn_guard *g);

#endif
