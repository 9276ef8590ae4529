/* SPDX-License-Identifier: Apache-2.0 */
/* gcra and sliding window: the decision arithmetic, the same as lua-scripts/ratelimit_gcra.lua
 * and ratelimit_sliding.lua compute inside Redis. The daemon runs the GCRA in memory for the
 * `local` fallback; the unit tests use both as the reference model for the scripts. Pure
 * functions, thread-safe. */
#ifndef RATELIMITD_GCRA_H
#define RATELIMITD_GCRA_H

#include <stdint.h>

struct rl_decision {
    int allowed;
    long long remaining;    /* requests of cost 1 still allowed now */
    int64_t reset_after_us; /* until back to full capacity */
    int64_t retry_after_us; /* 0 when allowed */
};

/* GCRA with capacity burst refilling limit per period. *tat_us is the key's theoretical
 * arrival time (0 for a fresh key); with consume set and the request allowed it is moved
 * on. A cost above burst can never pass: denied with retry_after = the full period. */
void rl_gcra_decide(int64_t *tat_us, int64_t now_us, int64_t period_us, long long limit,
                    long long burst, long long cost, int consume, struct rl_decision *out);

/* The two windows of a sliding-window key. */
struct rl_window {
    int64_t index; /* now / period of the window `cur` counts; -1 for a fresh key */
    long long cur, prev;
};

/* Cloudflare's estimate prev * (period - elapsed) / period + cur; allowed when estimate +
 * cost <= limit. With consume set and allowed, *w is updated. */
void rl_sliding_decide(struct rl_window *w, int64_t now_us, int64_t period_us, long long limit,
                       long long cost, int consume, struct rl_decision *out);

#endif
