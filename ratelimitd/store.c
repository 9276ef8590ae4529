/* SPDX-License-Identifier: Apache-2.0 */
/* store: the keys and script calls of ratelimitd (see store.h). */
#include "store.h"

#include <stdio.h>
#include <string.h>

#include "scripts.h"
#include "shared/log.h"

const struct script *const RL_STORE_SCRIPTS[] = {&script_ratelimit_gcra, &script_ratelimit_sliding,
                                                 NULL};

int rl_store_key(const char *region, const char *rule, const char *key, size_t key_len, char *buf,
                 size_t size)
{
    int n = snprintf(buf, size, "ratelimit:%s:%s:", region, rule);
    if (n < 0 || (size_t)n + key_len + 1 > size)
        return -1;
    memcpy(buf + n, key, key_len);
    buf[n + key_len] = '\0';
    return n + (int)key_len;
}

/* KEYS[1] = the key; ARGV = period in us, limit, [burst (gcra only),] cost, consume. The
 * client formats the command at once, so the arguments live on this stack. */
int rl_store_decide(struct rclient *c, const char *region, const struct rl_check *check,
                    int consume, rcl_done_fn fn, void *arg)
{
    const struct rl_rule *r = check->rule;
    char key[RL_STORE_KEY_MAX], period[24], limit[24], burst[24], cost[24];
    const char *argv[6];
    int n = 0;
    /* The request parser bounds rule and key, so the key always fits. */
    if (rl_store_key(region, r->name, check->key, check->key_len, key, sizeof(key)) < 0)
        return -1;
    snprintf(period, sizeof(period), "%lld", (long long)r->period_ms * 1000);
    snprintf(limit, sizeof(limit), "%lld", r->limit);
    snprintf(burst, sizeof(burst), "%lld", r->burst);
    snprintf(cost, sizeof(cost), "%lld", check->cost);
    argv[n++] = key;
    argv[n++] = period;
    argv[n++] = limit;
    if (r->algorithm == RL_GCRA)
        argv[n++] = burst;
    argv[n++] = cost;
    argv[n++] = consume ? "1" : "0";
    const struct script *s =
        r->algorithm == RL_GCRA ? &script_ratelimit_gcra : &script_ratelimit_sliding;
    return rcl_eval(c, s, 1, n, argv, NULL, 0, fn, arg);
}

/* {allowed, remaining, reset_after_us, retry_after_us}. Returns 0, or -1 if malformed. */
static int parse_decision(const redisReply *rep, struct rl_decision *d)
{
    long long v[4];
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4)
        return -1;
    for (size_t i = 0; i < 4; i++)
        if (rreply_int(rep, i, &v[i]) != 0)
            return -1;
    d->allowed = v[0] == 1;
    d->remaining = v[1];
    d->reset_after_us = v[2];
    d->retry_after_us = v[3];
    return 0;
}

enum rreply_class rl_store_read_decision(enum rcl_status st, const redisReply *reply,
                                         struct rl_decision *d)
{
    enum rreply_class cls = rreply_classify((int)st, reply);
    if (cls == RREPLY_OK && parse_decision(reply, d) != 0)
        cls = RREPLY_INTERNAL;
    if (cls == RREPLY_INTERNAL)
        log_error(
            NULL, "unexpected reply from a rate-limit script",
            LF_S("reply", reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "malformed"));
    return cls;
}

int rl_store_reset(struct rclient *c, const char *region, const struct rl_rule *rule,
                   const char *key, size_t key_len, rcl_done_fn fn, void *arg)
{
    char rkey[RL_STORE_KEY_MAX];
    if (rl_store_key(region, rule->name, key, key_len, rkey, sizeof(rkey)) < 0)
        return -1;
    const char *argv[] = {"DEL", rkey};
    return rcl_command(c, 2, argv, NULL, 0, fn, arg);
}

enum rreply_class rl_store_read_reset(enum rcl_status st, const redisReply *reply)
{
    return rreply_classify((int)st, reply);
}
