/* SPDX-License-Identifier: Apache-2.0 */
/* breaker: the circuit breaker state machine (see breaker.h). State, counters and the
 * deadline are atomics so the hot path takes no lock; transitions take the mutex. */
#include "breaker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct rl_brk {
    struct rl_brk_config conf;
    struct rl_brk_hooks hooks;
    pthread_mutex_t lock; /* serialises transitions and the fields below it */
    _Atomic int state;
    _Atomic int failures;
    _Atomic int64_t open_until_ms;
    /* Probes out at Redis now. Incremented before the probe is granted and undone if that
     * went past the limit, so concurrent callers can never all see "one slot left" (no
     * check-then-act). Never reset on a transition: it always counts real probes. */
    _Atomic int in_flight;
    int probe_successes;     /* consecutive successes in this half-open period */
    int64_t current_open_ms; /* period of the next re-open before doubling */
    uint64_t rng;            /* xorshift state for the default jitter */
};

static int64_t default_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(struct rl_brk *b)
{
    return b->hooks.now_ms ? b->hooks.now_ms(b->hooks.arg) : default_now_ms();
}

/* Under the lock. */
static double random01(struct rl_brk *b)
{
    if (b->hooks.random01)
        return b->hooks.random01(b->hooks.arg);
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return (double)(b->rng >> 11) / 9007199254740992.0;
}

const char *rl_brk_state_name(enum rl_brk_state s)
{
    static const char *const names[] = {"closed", "open", "half_open", "forced_open", "disabled"};
    return (unsigned)s < 5 ? names[s] : "unknown";
}

/* Under the lock. */
static void set_state(struct rl_brk *b, enum rl_brk_state to)
{
    enum rl_brk_state from = (enum rl_brk_state)atomic_load(&b->state);
    if (from == to)
        return;
    atomic_store(&b->state, (int)to);
    if (b->hooks.on_transition)
        b->hooks.on_transition(b->hooks.arg, from, to);
}

/* Under the lock: open for the current period with ±10% jitter. */
static void open_now(struct rl_brk *b)
{
    double jitter = 0.9 + 0.2 * random01(b);
    int64_t period = (int64_t)((double)b->current_open_ms * jitter);
    if (period < 1)
        period = 1;
    atomic_store(&b->open_until_ms, now_ms(b) + period);
    set_state(b, RL_BRK_OPEN);
}

struct rl_brk *rl_brk_create(const struct rl_brk_config *conf, const struct rl_brk_hooks *hooks)
{
    if (conf->failure_threshold < 1 || conf->open_ms < 1 || conf->open_max_ms < conf->open_ms ||
        conf->half_open_max_probes < 1)
        return NULL;
    struct rl_brk *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->conf = *conf;
    if (hooks)
        b->hooks = *hooks;
    pthread_mutex_init(&b->lock, NULL);
    atomic_init(&b->state, RL_BRK_CLOSED);
    atomic_init(&b->failures, 0);
    atomic_init(&b->open_until_ms, 0);
    atomic_init(&b->in_flight, 0);
    b->current_open_ms = conf->open_ms;
    b->rng = (uint64_t)default_now_ms() * 2654435761u | 1;
    return b;
}

void rl_brk_free(struct rl_brk *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* Open -> half_open once the period is over (the first caller after it does it). */
static void maybe_half_open(struct rl_brk *b)
{
    pthread_mutex_lock(&b->lock);
    if (atomic_load(&b->state) == RL_BRK_OPEN && now_ms(b) >= atomic_load(&b->open_until_ms)) {
        b->probe_successes = 0;
        set_state(b, RL_BRK_HALF_OPEN);
    }
    pthread_mutex_unlock(&b->lock);
}

enum rl_brk_ticket rl_brk_acquire(struct rl_brk *b)
{
    int st = atomic_load(&b->state);
    if (st == RL_BRK_CLOSED || st == RL_BRK_DISABLED)
        return RL_BRK_PASS;
    if (st == RL_BRK_FORCED_OPEN)
        return RL_BRK_REJECT;
    if (st == RL_BRK_OPEN) {
        if (now_ms(b) < atomic_load(&b->open_until_ms))
            return RL_BRK_REJECT;
        maybe_half_open(b);
        st = atomic_load(&b->state);
        if (st != RL_BRK_HALF_OPEN)
            return st == RL_BRK_CLOSED || st == RL_BRK_DISABLED ? RL_BRK_PASS : RL_BRK_REJECT;
    }
    /* Half-open: take a probe slot atomically, or give it back and fall back. The state is
     * read again once the slot is ours: a probe that failed between the first read and the
     * increment has re-opened the breaker, and then this request must not reach Redis. */
    if (atomic_fetch_add(&b->in_flight, 1) < b->conf.half_open_max_probes) {
        st = atomic_load(&b->state);
        if (st == RL_BRK_HALF_OPEN)
            return RL_BRK_PROBE;
        atomic_fetch_sub(&b->in_flight, 1);
        return st == RL_BRK_CLOSED || st == RL_BRK_DISABLED ? RL_BRK_PASS : RL_BRK_REJECT;
    }
    atomic_fetch_sub(&b->in_flight, 1);
    if (b->hooks.on_rejected_probe)
        b->hooks.on_rejected_probe(b->hooks.arg);
    return RL_BRK_REJECT;
}

static void release_probe(struct rl_brk *b, int success)
{
    pthread_mutex_lock(&b->lock);
    atomic_fetch_sub(&b->in_flight, 1);
    if (atomic_load(&b->state) == RL_BRK_HALF_OPEN) {
        if (success && ++b->probe_successes >= b->conf.half_open_max_probes) {
            atomic_store(&b->failures, 0);
            b->current_open_ms = b->conf.open_ms;
            set_state(b, RL_BRK_CLOSED);
        } else if (!success) {
            b->current_open_ms *= 2;
            if (b->current_open_ms > b->conf.open_max_ms)
                b->current_open_ms = b->conf.open_max_ms;
            open_now(b);
        }
    }
    pthread_mutex_unlock(&b->lock);
}

void rl_brk_release(struct rl_brk *b, enum rl_brk_ticket t, int success)
{
    if (t == RL_BRK_PROBE) {
        release_probe(b, success);
        return;
    }
    if (t != RL_BRK_PASS)
        return;
    if (success) {
        if (atomic_load_explicit(&b->failures, memory_order_relaxed) != 0)
            atomic_store(&b->failures, 0);
        return;
    }
    if (atomic_fetch_add(&b->failures, 1) + 1 < b->conf.failure_threshold)
        return;
    pthread_mutex_lock(&b->lock);
    if (atomic_load(&b->state) == RL_BRK_CLOSED &&
        atomic_load(&b->failures) >= b->conf.failure_threshold)
        open_now(b);
    pthread_mutex_unlock(&b->lock);
}

void rl_brk_reset(struct rl_brk *b)
{
    pthread_mutex_lock(&b->lock);
    atomic_store(&b->failures, 0);
    b->current_open_ms = b->conf.open_ms;
    b->probe_successes = 0;
    set_state(b, RL_BRK_CLOSED);
    pthread_mutex_unlock(&b->lock);
}

void rl_brk_force_open(struct rl_brk *b)
{
    pthread_mutex_lock(&b->lock);
    set_state(b, RL_BRK_FORCED_OPEN);
    pthread_mutex_unlock(&b->lock);
}

void rl_brk_disable(struct rl_brk *b)
{
    pthread_mutex_lock(&b->lock);
    atomic_store(&b->failures, 0);
    set_state(b, RL_BRK_DISABLED);
    pthread_mutex_unlock(&b->lock);
}

void rl_brk_snapshot(struct rl_brk *b, struct rl_brk_snapshot *out)
{
    pthread_mutex_lock(&b->lock);
    out->state = (enum rl_brk_state)atomic_load(&b->state);
    out->consecutive_failures = atomic_load(&b->failures);
    out->open_until_ms = atomic_load(&b->open_until_ms);
    out->half_open_in_flight = atomic_load(&b->in_flight);
    out->current_open_ms = b->current_open_ms;
    pthread_mutex_unlock(&b->lock);
}
