/* SPDX-License-Identifier: Apache-2.0 */
/* breaker: the circuit breaker that keeps ratelimitd from waiting on a failing Redis.
 *
 * closed --(threshold consecutive failures)--> open --(open period elapsed)--> half_open
 * half_open --(max_probes consecutive successful probes)--> closed (period back to base)
 * half_open --(any probe failure)--> open, with the period doubled up to open_max, ±10%.
 * Admin states: forced_open (rejects everything) and disabled (never opens).
 *
 * A caller asks rl_brk_acquire() before touching Redis and reports the outcome with
 * rl_brk_release(). The clock and the jitter source are injectable so the state machine is
 * unit-tested without sleeping. Thread-safe. */
#ifndef RATELIMITD_BREAKER_H
#define RATELIMITD_BREAKER_H

#include <stdint.h>

enum rl_brk_state {
    RL_BRK_CLOSED = 0,
    RL_BRK_OPEN = 1,
    RL_BRK_HALF_OPEN = 2,
    RL_BRK_FORCED_OPEN = 3,
    RL_BRK_DISABLED = 4,
};

/* What rl_brk_acquire() allows. */
enum rl_brk_ticket {
    RL_BRK_PASS,   /* go to Redis (closed or disabled); report with rl_brk_release */
    RL_BRK_PROBE,  /* go to Redis as a half-open probe; report with rl_brk_release */
    RL_BRK_REJECT, /* do not touch Redis: answer by fallback; nothing to report */
};

struct rl_brk_config {
    int failure_threshold;    /* >= 1 */
    int64_t open_ms;          /* first open period */
    int64_t open_max_ms;      /* cap of the doubling */
    int half_open_max_probes; /* >= 1 */
};

struct rl_brk_hooks {
    /* Monotonic milliseconds (NULL: CLOCK_MONOTONIC). */
    int64_t (*now_ms)(void *arg);
    /* A uniform random value in [0, 1) for the jitter (NULL: internal generator). */
    double (*random01)(void *arg);
    /* Called on every transition (to log and count it). It runs with the breaker's mutex
     * held, so it must be quick and must not call back into the breaker. May be NULL. */
    void (*on_transition)(void *arg, enum rl_brk_state from, enum rl_brk_state to);
    /* Called when a half-open request is turned away because the probes are taken. */
    void (*on_rejected_probe)(void *arg);
    void *arg;
};

struct rl_brk;

struct rl_brk_snapshot {
    enum rl_brk_state state;
    int consecutive_failures;
    int64_t open_until_ms; /* on the breaker's clock; meaningful in RL_BRK_OPEN only */
    int half_open_in_flight;
    int64_t current_open_ms; /* the period the next (re)open would use before doubling */
};

/* Returns NULL on bad config or out of memory. hooks may be NULL. */
struct rl_brk *rl_brk_create(const struct rl_brk_config *conf, const struct rl_brk_hooks *hooks);
void rl_brk_free(struct rl_brk *b); /* NULL does nothing */

/* May this request touch Redis? Lock-free while closed; never blocks for long. */
enum rl_brk_ticket rl_brk_acquire(struct rl_brk *b);
/* Report the outcome of a RL_BRK_PASS or RL_BRK_PROBE ticket: success is 1 when Redis answered
 * (a denial is a success), 0 on an error or timeout. */
void rl_brk_release(struct rl_brk *b, enum rl_brk_ticket t, int success);

/* Admin actions: back to closed (base period, counters cleared) / forced_open / disabled. */
void rl_brk_reset(struct rl_brk *b);
void rl_brk_force_open(struct rl_brk *b);
void rl_brk_disable(struct rl_brk *b);

void rl_brk_snapshot(struct rl_brk *b, struct rl_brk_snapshot *out);
/* "closed", "open", "half_open", "forced_open", "disabled". */
const char *rl_brk_state_name(enum rl_brk_state s);

#endif
