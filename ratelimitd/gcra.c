/* SPDX-License-Identifier: Apache-2.0 */
/* gcra and sliding window arithmetic (see gcra.h); mirrors the Lua scripts line by line,
 * including the 1 us of slack for float rounding near 1.7e15 us. */
#include "gcra.h"

#include <math.h>

#define RL_SLACK_US 1.0

void rl_gcra_decide(int64_t *tat_us, int64_t now_us, int64_t period_us, long long limit,
                    long long burst, long long cost, int consume, struct rl_decision *out)
{
    double now = (double)now_us;
    double interval = (double)period_us / (double)limit;
    double tolerance = interval * (double)burst;
    double tat = *tat_us < now_us ? now : (double)*tat_us;
    double new_tat = tat + interval * (double)cost;
    double allow_at = new_tat - tolerance;
    if (cost > burst || allow_at > now + RL_SLACK_US) {
        double rem = floor((now - (tat - tolerance) + RL_SLACK_US) / interval);
        out->allowed = 0;
        out->remaining = rem < 0 ? 0 : (long long)rem;
        out->reset_after_us = (int64_t)ceil(tat - now);
        out->retry_after_us = cost > burst ? period_us : (int64_t)ceil(allow_at - now);
        return;
    }
    if (consume)
        *tat_us = (int64_t)llround(new_tat);
    else
        new_tat = tat;
    out->allowed = 1;
    out->remaining = (long long)floor((now - (new_tat - tolerance) + RL_SLACK_US) / interval);
    out->reset_after_us = (int64_t)ceil(new_tat - now);
    out->retry_after_us = 0;
}

/* Time until estimate + cost <= limit with no other traffic (the request was denied). */
static double sliding_retry(double period, double elapsed, double limit, double cur, double prev,
                            double cost)
{
    if (cur + cost <= limit)
        return (period - elapsed) - (limit - cur - cost) * period / prev;
    double retry = period - elapsed;
    if (cur > limit - cost)
        retry += period - (limit - cost) * period / cur;
    return retry;
}

void rl_sliding_decide(struct rl_window *w, int64_t now_us, int64_t period_us, long long limit,
                       long long cost, int consume, struct rl_decision *out)
{
    int64_t window = now_us / period_us;
    double period = (double)period_us;
    double elapsed = (double)(now_us - window * period_us);
    long long cur = w->cur, prev = w->prev;
    if (w->index != window) {
        prev = w->index == window - 1 ? w->cur : 0;
        cur = 0;
    }
    double estimate = (double)prev * (period - elapsed) / period + (double)cur;
    int allowed = estimate + (double)cost <= (double)limit;
    if (allowed && consume) {
        cur += cost;
        estimate += (double)cost;
        w->index = window;
        w->cur = cur;
        w->prev = prev;
    }
    double rem = floor((double)limit - estimate);
    out->allowed = allowed;
    out->remaining = rem < 0 ? 0 : (long long)rem;
    out->reset_after_us = cur > 0    ? (int64_t)(2 * period - elapsed)
                          : prev > 0 ? (int64_t)(period - elapsed)
                                     : 0;
    out->retry_after_us =
        allowed ? 0
                : (int64_t)ceil(sliding_retry(period, elapsed, (double)limit, (double)cur,
                                              (double)prev, (double)cost));
}
