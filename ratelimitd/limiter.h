/* SPDX-License-Identifier: Apache-2.0 */
/* limiter: the decision engine of ratelimitd. A check goes to the deny cache, then through
 * the circuit breaker to Redis (one EVALSHA per check; the checks of a batch are sent in
 * the same loop turn, so they leave in one write), and falls back to the rule's
 * on_redis_failure mode when Redis fails or the breaker is open. Shadow mode and the
 * decision metrics are applied here too.
 *
 * Threading: one limiter serves every HTTP worker. Each worker has a struct rl_worker,
 * made on its thread by rl_worker_start, holding its own deny cache: used by that worker's
 * loop only, without a lock. The breaker and the local fallback (one count for the whole
 * instance) are shared and thread-safe. Nothing here blocks: a decision that needs Redis
 * is sent, and its done function runs when the last reply is in. */
#ifndef RATELIMITD_LIMITER_H
#define RATELIMITD_LIMITER_H

#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "config.h"
#include "gcra.h"
#include "rules.h"
#include "shared/loop.h"
#include "shared/metrics.h"
#include "shared/redis_client.h"
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
struct rl_worker;

/* Creates the breaker and the local fallback, and registers the metrics. workers: how many
 * HTTP workers will call rl_worker_start (each gets its share of RATELIMIT_LOCAL_MAX_KEYS
 * for its deny cache). Returns NULL with the reason in err. */
struct rl_limiter *rl_limiter_create(const struct rl_config *conf, int workers,
                                     struct metrics *metrics, char *err, size_t errsize);
/* After the workers have stopped; frees them too. NULL does nothing. */
void rl_limiter_free(struct rl_limiter *l);

/* On a worker's thread, before it serves (app_on_worker): its deny cache. Returns NULL
 * when out of memory. At most `workers` calls. Freed by rl_limiter_free. */
struct rl_worker *rl_worker_start(struct rl_limiter *l, struct loop *loop);

/* What a decision needs while Redis answers. The caller provides it (usually inside its
 * own request state) and keeps it, the checks and the results alive until done runs; its
 * fields are the limiter's. */
typedef void (*rl_decided_fn)(void *arg);
struct rl_pending_slot {
    struct rl_pending *pending;
    size_t index; /* of the check */
};
struct rl_pending {
    struct rl_worker *worker;
    const struct rl_check *checks;
    struct rl_result *out;
    size_t n, sent, waiting;
    int consume;
    int64_t sent_us;
    enum rl_brk_ticket ticket;
    enum rreply_class worst;
    int seen[RL_BATCH_MAX];
    struct rl_pending_slot slot[RL_BATCH_MAX];
    rl_decided_fn done;
    void *arg;
};

/* Decide n (1..RL_BATCH_MAX) checks, already validated, on worker w's thread with its
 * client c. consume = 0 is a peek: nothing is consumed, the deny cache is neither read nor
 * filled. Returns 1 when decided at once (every out[i] filled; done is not called), or 0
 * when the decision went to Redis: done(arg) then runs later on this thread, exactly once,
 * with every out[i] filled. */
int rl_limiter_check(struct rl_worker *w, struct rclient *c, struct rl_pending *p,
                     const struct rl_check *checks, size_t n, int consume, struct rl_result *out,
                     rl_decided_fn done, void *arg);

/* Delete the key in Redis and forget it in memory: the local fallback, and the deny cache
 * of every worker (the others through their loops), so that no worker denies from a
 * denial cached before the reset. Returns 1 when answered at once with *now set
 * (RREPLY_UNAVAILABLE: the breaker is open, or no memory), or 0: done(arg, class) runs
 * later, exactly once, once Redis has answered and every worker has forgotten the key —
 * on this thread or on another worker's (the caller may answer from any thread). */
typedef void (*rl_reset_fn)(void *arg, enum rreply_class cls);
int rl_limiter_reset(struct rl_worker *w, struct rclient *c, const struct rl_rule *rule,
                     const char *key, size_t key_len, rl_reset_fn done, void *arg,
                     enum rreply_class *now);

/* After a rules reload (any thread): cached denials were computed under the old numbers;
 * every worker forgets them on its loop. */
void rl_limiter_rules_changed(struct rl_limiter *l);

struct rl_brk *rl_limiter_breaker(struct rl_limiter *l);
const char *rl_limiter_region(const struct rl_limiter *l);
const char *rl_source_name(enum rl_source s);

#endif
