/* SPDX-License-Identifier: Apache-2.0 */
/* store: ratelimitd's Redis keys and script calls — the only file that names either.
 *
 * One key per decision, ratelimit:<region>:<rule>:<key>, so that every script is
 * single-key (cluster-safe) and two regions never see each other's counts. A gcra rule
 * runs ratelimit_gcra.lua on it, a sliding_window rule ratelimit_sliding.lua.
 *
 * Calls go through the worker loop's non-blocking client (redis_client.h): each function
 * sends one command and returns; the done function runs later on that loop and reads the
 * outcome with the matching rl_store_read_* function, which classifies it with
 * redis_reply.h. The commands sent in one turn of the loop leave in one write. No state of
 * its own: callable from any worker, each with its own client. */
#ifndef RATELIMITD_STORE_H
#define RATELIMITD_STORE_H

#include <stddef.h>

#include "config.h"
#include "gcra.h"
#include "limiter.h"
#include "rules.h"
#include "shared/redis_client.h"
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

/* Send the decision of one check: its rule's script on its key; consume = 0 is a peek
 * (nothing stored). Returns 0, or -1 when out of memory (fn will not run). */
int rl_store_decide(struct rclient *c, const char *region, const struct rl_check *check,
                    int consume, rcl_done_fn fn, void *arg);
/* Read a decision's outcome (in fn): RREPLY_OK with d filled, else its class; a reply of the
 * wrong shape is RREPLY_INTERNAL. An RREPLY_INTERNAL is logged. */
enum rreply_class rl_store_read_decision(enum rcl_status st, const redisReply *reply,
                                         struct rl_decision *d);

/* Send the deletion of the key of rule and key: the next decision starts afresh. Returns 0,
 * or -1 when out of memory or the key does not fit (fn will not run). */
int rl_store_reset(struct rclient *c, const char *region, const struct rl_rule *rule,
                   const char *key, size_t key_len, rcl_done_fn fn, void *arg);
/* The class of a deletion's outcome (in fn). */
enum rreply_class rl_store_read_reset(enum rcl_status st, const redisReply *reply);

#endif
