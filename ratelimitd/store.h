/* SPDX-License-Identifier: Apache-2.0 */
/* store: ratelimitd's Redis keys and script calls — the only file that names either.
 *
 * One key per decision, ratelimit:<region>:<rule>:<key>, so that every script is
 * single-key (cluster-safe) and two regions never see each other's counts. A gcra rule
 * runs ratelimit_gcra.lua on it, a sliding_window rule ratelimit_sliding.lua. Every outcome
 * is read through redis_reply.h's classification. Thread-safe (no state of its own). */
#ifndef RATELIMITD_STORE_H
#define RATELIMITD_STORE_H

#include <stddef.h>

#include "config.h"
#include "gcra.h"
#include "limiter.h"
#include "rules.h"
#include "shared/redis_pool.h"
#include "shared/redis_reply.h"
#include "shared/script.h"

/* Room for the longest key: region, rule and key at their bounds, prefix and separators. */
#define RL_STORE_KEY_MAX (RL_REGION_MAX + RL_RULE_NAME_MAX + RL_KEY_MAX + 16)

/* The scripts ratelimitd runs, NULL-terminated (app_spec.scripts). */
extern const struct script *const RL_STORE_SCRIPTS[];

/* Build ratelimit:<region>:<rule>:<key> into buf. Returns its length, or -1 if it does not
 * fit. */
int rl_store_key(const char *region, const char *rule, const char *key, size_t key_len, char *buf,
                 size_t size);

/* Decide checks[0..n) (n <= RL_BATCH_MAX) in Redis: one EVALSHA each, pipelined in one
 * round trip; consume = 0 is a peek (nothing stored). Returns RREPLY_OK with every out[i]
 * filled, else the class of the worst outcome (RREPLY_UNAVAILABLE over RREPLY_INTERNAL; a
 * reply of the wrong shape is RREPLY_INTERNAL, logged). */
enum rreply_class rl_store_decide(struct rpool *p, const char *region,
                                  const struct rl_check *const *checks, size_t n, int consume,
                                  struct rl_decision *out);

/* Delete the key of rule and key: the next decision starts afresh. Returns the class of the
 * outcome. */
enum rreply_class rl_store_reset(struct rpool *p, const char *region, const struct rl_rule *rule,
                                 const char *key, size_t key_len);

#endif
