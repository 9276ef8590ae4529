/* SPDX-License-Identifier: Apache-2.0 */
/* limiter: the decision engine of ratelimitd. A check goes to the deny cache, then through
 * the circuit breaker to Redis (one EVALSHA per check, a batch pipelined in one round
 * trip), and falls back to the rule's on_redis_failure mode when Redis fails or the
 * breaker is open. Shadow mode and the decision metrics are applied here too. Thread-safe. */
#ifndef RATELIMITD_LIMITER_H
#define RATELIMITD_LIMITER_H

#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "config.h"
#include "gcra.h"
#include "rules.h"
#include "shared/metrics.h"
#include "shared/redis_pool.h"
#include "shared/redis_reply.h"

#define RL_KEY_MAX 512
#define RL_BATCH_MAX 16
/* Retry time a `closed` fallback denial advertises. */
#define RL_CLOSED_RETRY_US 1000000

struct rl_check {
    const struct rl_rule *rule; /* borrowed from a rule set the caller holds */
    const char *key;
    size_t key_len;
    long long cost;
};

enum rl_source { RL_SRC_REDIS, RL_SRC_CACHE, RL_SRC_LOCAL, RL_SRC_OPEN, RL_SRC_CLOSED };

struct rl_result {
    struct rl_decision d; /* the real decision */
    int allowed;          /* what the caller is told (always 1 in shadow mode) */
    int shadow;
    enum rl_source source;
};

struct rl_limiter;

/* Creates the breaker, the deny cache and the local fallback, and registers the metrics.
 * Returns NULL with the reason in err. */
struct rl_limiter *rl_limiter_create(const struct rl_config *conf, struct rpool *pool,
                                     struct metrics *metrics, char *err, size_t errsize);
void rl_limiter_free(struct rl_limiter *l); /* NULL does nothing */

/* Decide n (1..RL_BATCH_MAX) checks, already validated. consume = 0 is a peek: nothing
 * is consumed, the deny cache is neither read nor filled. Always fills every result. */
void rl_limiter_check(struct rl_limiter *l, const struct rl_check *checks, size_t n, int consume,
                      struct rl_result *out);

/* Delete the key in Redis and forget it locally. Returns the class of the outcome: the
 * caller answers 503 for RREPLY_UNAVAILABLE (Redis unreachable, or the breaker open) and
 * 500 for RREPLY_INTERNAL. */
enum rreply_class rl_limiter_reset(struct rl_limiter *l, const struct rl_rule *rule,
                                   const char *key, size_t key_len);

/* After a rules reload: cached denials were computed under the old numbers. */
void rl_limiter_rules_changed(struct rl_limiter *l);

struct rl_brk *rl_limiter_breaker(struct rl_limiter *l);
const char *rl_limiter_region(const struct rl_limiter *l);
const char *rl_source_name(enum rl_source s);

#endif
