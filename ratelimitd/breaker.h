/* SPDX-License-Identifier: Apache-2.0 */
/* breaker: the circuit breaker that keeps ratelimitd from waiting on a failing Redis.
 *
 * closed --(threshold consecutive failures)--> open --(open period elapsed)--> half_open
 * half_open --(max_probes consecutive successful probes)--> closed (period back to base)
 * half_open --(any probe failure)--> open, with the period doubled up to open_max, ±10%.
 * Admin states: forced_open (rejects everything) and disabled (never opens).
 *
 * A caller asks brk_acquire() before touching Redis and reports the outcome with
 * brk_release(). The clock and the jitter source are injectable so the state machine is
 * unit-tested without sleeping. Thread-safe. */
#ifndef RATELIMITD_BREAKER_H
#define RATELIMITD_BREAKER_H

#include <stdint.h>

enum brk_state {
    BRK_CLOSED = 0,
    BRK_OPEN = 1,
    BRK_HALF_OPEN = 2,
    BRK_FORCED_OPEN = 3,
    BRK_DISABLED = 4,
};

/* What brk_acquire() allows. */
enum brk_ticket {
    BRK_PASS,   /* go to Redis (closed or disabled); report with brk_release */
    BRK_PROBE,  /* go to Redis as a half-open probe; report with brk_release */
    BRK_REJECT, /* do not touch Redis: answer by fallback; nothing to report */
};

struct brk_config {
    int failure_threshold;    /* >= 1 */
    int64_t open_ms;          /* first open period */
    int64_t open_max_ms;      /* cap of the doubling */
    int half_open_max_probes; /* >= 1 */
};

struct brk_hooks {
    /* Monotonic milliseconds (NULL: CLOCK_MONOTONIC). */
    int64_t (*now_ms)(void *arg);
    /* A uniform random value in [0, 1) for the jitter (NULL: internal generator). */
    double (*random01)(void *arg);
    /* Called on every transition (to log and count it). It runs with the breaker's mutex
     * held, so it must be quick and must not call back into the breaker. May be NULL. */
    void (*on_transition)(void *arg, enum brk_state from, enum brk_state to);
    /* Called when a half-open request is turned away because the probes are taken. */
    void (*on_rejected_probe)(void *arg);
    void *arg;
};

struct brk;

struct brk_snapshot {
    enum brk_state state;
    int consecutive_failures;
    int64_t open_until_ms; /* on the breaker's clock; meaningful in BRK_OPEN only */
    int half_open_in_flight;
    int64_t current_open_ms; /* the period the next (re)open would use before doubling */
};

/* Returns NULL on bad config or out of memory. hooks may be NULL. */
struct brk *brk_create(const struct brk_config *conf, const struct brk_hooks *hooks);
void brk_free(struct brk *b); /* NULL does nothing */

/* May this request touch Redis? Lock-free while closed; never blocks for long. */
enum brk_ticket brk_acquire(struct brk *b);
/* Report the outcome of a BRK_PASS or BRK_PROBE ticket: success is 1 when Redis answered
 * (a denial is a success), 0 on an error or timeout. */
void brk_release(struct brk *b, enum brk_ticket t, int success);

/* Admin actions: back to closed (base period, counters cleared) / forced_open / disabled. */
void brk_reset(struct brk *b);
void brk_force_open(struct brk *b);
void brk_disable(struct brk *b);

void brk_snapshot(struct brk *b, struct brk_snapshot *out);
/* "closed", "open", "half_open", "forced_open", "disabled". */
const char *brk_state_name(enum brk_state s);

#endif
