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

/* The arguments of one EVALSHA; lives on the caller's stack for the round trip. */
struct eval_args {
    char key[RL_STORE_KEY_MAX];
    char period[24], limit[24], burst[24], cost[24];
    const char *argv[6];
};

/* KEYS[1] = the key; ARGV = period in us, limit, [burst (gcra only),] cost, consume. */
static void build_cmd(const char *region, const struct rl_check *c, int consume,
                      struct eval_args *a, struct rpool_cmd *cmd)
{
    const struct rl_rule *r = c->rule;
    int n = 0;
    /* The request parser bounds rule and key, so the key always fits. */
    rl_store_key(region, r->name, c->key, c->key_len, a->key, sizeof(a->key));
    snprintf(a->period, sizeof(a->period), "%lld", (long long)r->period_ms * 1000);
    snprintf(a->limit, sizeof(a->limit), "%lld", r->limit);
    snprintf(a->burst, sizeof(a->burst), "%lld", r->burst);
    snprintf(a->cost, sizeof(a->cost), "%lld", c->cost);
    a->argv[n++] = a->key;
    a->argv[n++] = a->period;
    a->argv[n++] = a->limit;
    if (r->algorithm == RL_GCRA)
        a->argv[n++] = a->burst;
    a->argv[n++] = a->cost;
    a->argv[n++] = consume ? "1" : "0";
    *cmd = (struct rpool_cmd){.script = r->algorithm == RL_GCRA ? &script_ratelimit_gcra
                                                                : &script_ratelimit_sliding,
                              .nkeys = 1,
                              .argc = n,
                              .argv = a->argv};
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

/* The class of one script reply, its decision read into d when it is RREPLY_OK. */
static enum rreply_class read_decision(int status, const redisReply *rep, struct rl_decision *d)
{
    enum rreply_class cls = rreply_classify(status, rep);
    if (cls == RREPLY_OK && parse_decision(rep, d) != 0)
        cls = RREPLY_INTERNAL;
    if (cls == RREPLY_INTERNAL)
        log_error(NULL, "unexpected reply from a rate-limit script",
                  LF_S("reply", rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "malformed"));
    return cls;
}

enum rreply_class rl_store_decide(struct rpool *p, const char *region,
                                  const struct rl_check *const *checks, size_t n, int consume,
                                  struct rl_decision *out)
{
    struct eval_args args[RL_BATCH_MAX];
    struct rpool_cmd cmds[RL_BATCH_MAX] = {0};
    redisReply *replies[RL_BATCH_MAX];
    if (n > RL_BATCH_MAX)
        n = RL_BATCH_MAX;
    for (size_t j = 0; j < n; j++)
        build_cmd(region, checks[j], consume, &args[j], &cmds[j]);
    enum rpool_status st = rpool_exec(p, cmds, n, replies, 0);
    if (st != RPOOL_OK)
        return rreply_classify(st, NULL);
    enum rreply_class worst = RREPLY_OK;
    for (size_t j = 0; j < n; j++) {
        enum rreply_class cls = read_decision(st, replies[j], &out[j]);
        if (cls == RREPLY_UNAVAILABLE || (cls == RREPLY_INTERNAL && worst == RREPLY_OK))
            worst = cls;
        freeReplyObject(replies[j]);
    }
    return worst;
}

enum rreply_class rl_store_reset(struct rpool *p, const char *region, const struct rl_rule *rule,
                                 const char *key, size_t key_len)
{
    char rkey[RL_STORE_KEY_MAX];
    if (rl_store_key(region, rule->name, key, key_len, rkey, sizeof(rkey)) < 0)
        return RREPLY_INTERNAL;
    const char *argv[] = {"DEL", rkey};
    redisReply *reply = NULL;
    enum rpool_status st = rpool_command(p, 2, argv, NULL, 0, &reply);
    enum rreply_class cls = rreply_classify(st, reply);
    freeReplyObject(reply);
    return cls;
}
