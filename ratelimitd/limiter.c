/* SPDX-License-Identifier: Apache-2.0 */
/* limiter: deny cache -> breaker -> Redis (EVALSHA, pipelined for a batch) -> fallback,
 * then shadow mode and metrics (see limiter.h). */
#include "limiter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lru.h"
#include "shared/log.h"
#include "store.h"

struct rl_limiter {
    struct rl_config conf;
    struct rpool *pool;
    struct rl_brk *breaker;
    /* rule\x1fkey -> {retry deadline us, cost, reset deadline us, remaining} */
    struct rl_lru *deny_cache;
    struct rl_lru *local; /* rule\x1fkey -> {tat us} of the local fallback GCRA */
    struct metric *m_decisions, *m_transitions, *m_fallbacks, *m_rejected_probes;
    struct metric_series *s_state, *s_cache_entries;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *rl_source_name(enum rl_source s)
{
    static const char *const names[] = {"redis", "cache", "fallback_local", "fallback_open",
                                        "fallback_closed"};
    return (unsigned)s < 5 ? names[s] : "unknown";
}

/* The in-memory key of a rule and key: a unit separator cannot occur in either. */
static size_t local_key(const struct rl_check *c, char *buf, size_t size)
{
    size_t nl = strlen(c->rule->name);
    if (nl + 1 + c->key_len > size)
        return 0;
    memcpy(buf, c->rule->name, nl);
    buf[nl] = '\x1f';
    memcpy(buf + nl + 1, c->key, c->key_len);
    return nl + 1 + c->key_len;
}

/* ---- breaker hooks ---------------------------------------------------------------- */

static void on_transition(void *arg, enum rl_brk_state from, enum rl_brk_state to)
{
    struct rl_limiter *l = arg;
    log_warn(NULL, "breaker transition", LF_S("from", rl_brk_state_name(from)),
             LF_S("to", rl_brk_state_name(to)));
    metric_inc(metric_with(l->m_transitions, rl_brk_state_name(from), rl_brk_state_name(to)));
    metric_set(l->s_state, (double)to);
}

static void on_rejected_probe(void *arg)
{
    struct rl_limiter *l = arg;
    metric_inc(metric_series(l->m_rejected_probes, NULL));
}

static void refresh_gauges(void *arg)
{
    struct rl_limiter *l = arg;
    metric_set(l->s_cache_entries, (double)rl_lru_count(l->deny_cache));
}

static void register_metrics(struct rl_limiter *l, struct metrics *m)
{
    l->m_decisions =
        metrics_counter(m, "decisions_total", "Rate-limit decisions.", "rule,decision,source");
    l->m_transitions = metrics_counter(m, "breaker_transitions_total",
                                       "Circuit breaker state transitions.", "from,to");
    l->m_fallbacks = metrics_counter(m, "fallback_decisions_total",
                                     "Decisions made by a rule's fallback.", "mode");
    l->m_rejected_probes =
        metrics_counter(m, "breaker_rejected_probes_total",
                        "Half-open requests answered by fallback as the probes were taken.", NULL);
    l->s_state = metric_series(metrics_gauge(m, "breaker_state",
                                             "0 closed, 1 open, 2 half_open, 3 forced_open, "
                                             "4 disabled.",
                                             NULL),
                               NULL);
    l->s_cache_entries = metric_series(
        metrics_gauge(m, "deny_cache_entries", "Denials remembered in memory.", NULL), NULL);
    metric_series(l->m_rejected_probes, NULL);
    /* every fallback mode at 0 from the start, so rate() sees the first one */
    metric_with(l->m_fallbacks, rl_failure_mode_name(RL_FALLBACK_LOCAL));
    metric_with(l->m_fallbacks, rl_failure_mode_name(RL_FALLBACK_OPEN));
    metric_with(l->m_fallbacks, rl_failure_mode_name(RL_FALLBACK_CLOSED));
    metrics_on_render(m, refresh_gauges, l);
}

struct rl_limiter *rl_limiter_create(const struct rl_config *conf, struct rpool *pool,
                                     struct metrics *metrics, char *err, size_t errsize)
{
    struct rl_limiter *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    l->conf = *conf;
    l->pool = pool;
    register_metrics(l, metrics);
    struct rl_brk_hooks hooks = {
        .on_transition = on_transition, .on_rejected_probe = on_rejected_probe, .arg = l};
    l->breaker = rl_brk_create(&conf->breaker, &hooks);
    l->deny_cache = rl_lru_create(conf->local_max_keys);
    l->local = rl_lru_create(conf->local_max_keys);
    if (!l->breaker || !l->deny_cache || !l->local) {
        snprintf(err, errsize, "cannot create the breaker or the local maps");
        rl_limiter_free(l);
        return NULL;
    }
    return l;
}

void rl_limiter_free(struct rl_limiter *l)
{
    if (!l)
        return;
    rl_brk_free(l->breaker);
    rl_lru_free(l->deny_cache);
    rl_lru_free(l->local);
    free(l);
}

struct rl_brk *rl_limiter_breaker(struct rl_limiter *l)
{
    return l->breaker;
}

const char *rl_limiter_region(const struct rl_limiter *l)
{
    return l->conf.region;
}

void rl_limiter_rules_changed(struct rl_limiter *l)
{
    rl_lru_clear(l->deny_cache);
}

/* ---- deny cache ------------------------------------------------------------------- */

struct cache_probe {
    const struct rl_check *check;
    int64_t now_us;
    struct rl_decision *d;
    int hit;  /* the entry answered */
    int seen; /* a live entry for a larger cost exists (it did not answer this check) */
};

static int64_t rule_interval_us(const struct rl_rule *r)
{
    return r->period_ms * 1000 / r->limit;
}

/* A cached denial of cost C answers a check of cost >= C until its deadline: other
 * traffic can only push the key's allowance further away, so Redis would deny it too. */
static enum rl_lru_action cache_lookup_fn(int64_t v[RL_LRU_VALUES], int found, void *ctx)
{
    struct cache_probe *p = ctx;
    if (!found)
        return RL_LRU_KEEP;
    if (v[0] <= p->now_us)
        return RL_LRU_DELETE;
    if (p->check->cost < v[1]) {
        p->seen = 1;
        return RL_LRU_KEEP;
    }
    const struct rl_rule *r = p->check->rule;
    int64_t retry = v[0] - p->now_us, reset = v[2] - p->now_us;
    p->d->allowed = 0;
    p->d->remaining = v[3]; /* sliding window: what Redis said then, a lower bound now */
    p->d->reset_after_us = reset > 0 ? reset : 0;
    p->d->retry_after_us = retry;
    if (r->algorithm == RL_GCRA) {
        /* A larger cost needs (cost - C) more emission intervals. */
        int64_t interval = rule_interval_us(r);
        p->d->retry_after_us += interval * (p->check->cost - v[1]);
        long long rem = (r->burst * interval - p->d->reset_after_us) / (interval ? interval : 1);
        p->d->remaining = rem > 0 ? rem : 0;
    }
    p->hit = 1;
    return RL_LRU_KEEP;
}

/* Returns 1 when the cache answered (d filled), else 0 with *seen set when an entry for a
 * larger cost exists. */
static int cache_lookup(struct rl_limiter *l, const struct rl_check *c, int64_t now_us,
                        struct rl_decision *d, int *seen)
{
    char k[RL_RULE_NAME_MAX + RL_KEY_MAX + 2];
    size_t kl = local_key(c, k, sizeof(k));
    struct cache_probe p = {.check = c, .now_us = now_us, .d = d};
    if (kl)
        rl_lru_update(l->deny_cache, k, kl, cache_lookup_fn, &p);
    *seen = p.seen;
    return p.hit;
}

/* After Redis decided a check sent at sent_us: remember a denial; after an allowed check
 * forget an entry seen for the key, whose times no longer count that consumption (it would
 * still never deny what Redis allows, but it would tell the caller to retry too early). */
static void cache_update(struct rl_limiter *l, const struct rl_check *c, int64_t sent_us,
                         const struct rl_decision *d, int seen)
{
    char k[RL_RULE_NAME_MAX + RL_KEY_MAX + 2];
    size_t kl = local_key(c, k, sizeof(k));
    int64_t v[RL_LRU_VALUES] = {sent_us + d->retry_after_us, c->cost, sent_us + d->reset_after_us,
                                d->remaining};
    if (!kl)
        return;
    if (!d->allowed && d->retry_after_us > 0)
        rl_lru_put(l->deny_cache, k, kl, v);
    else if (d->allowed && seen)
        rl_lru_delete(l->deny_cache, k, kl);
}

/* ---- fallbacks ----------------------------------------------------------------------- */

struct local_ctx {
    const struct rl_check *check;
    int64_t now_us;
    long long limit, burst;
    int consume;
    struct rl_decision *d;
};

static enum rl_lru_action local_fn(int64_t v[RL_LRU_VALUES], int found, void *ctx)
{
    struct local_ctx *x = ctx;
    int64_t tat = found ? v[0] : 0;
    rl_gcra_decide(&tat, x->now_us, x->check->rule->period_ms * 1000, x->limit, x->burst,
                   x->check->cost, x->consume, x->d);
    if (!x->consume || !x->d->allowed)
        return RL_LRU_KEEP;
    v[0] = tat;
    return RL_LRU_STORE;
}

/* In-memory GCRA at limit / instances (rounded up, at least 1), burst scaled alike. */
static void fallback_local(struct rl_limiter *l, const struct rl_check *c, int consume,
                           struct rl_decision *d)
{
    const struct rl_rule *r = c->rule;
    long long inst = l->conf.instances;
    long long limit = (r->limit + inst - 1) / inst;
    long long burst = (long long)ceil((double)r->burst * (double)limit / (double)r->limit);
    struct local_ctx x = {.check = c,
                          .now_us = mono_us(),
                          .limit = limit,
                          .burst = burst < 1 ? 1 : burst,
                          .consume = consume,
                          .d = d};
    char k[RL_RULE_NAME_MAX + RL_KEY_MAX + 2];
    size_t kl = local_key(c, k, sizeof(k));
    if (kl)
        rl_lru_update(l->local, k, kl, local_fn, &x);
}

static void fallback(struct rl_limiter *l, const struct rl_check *c, int consume,
                     struct rl_result *res)
{
    const struct rl_rule *r = c->rule;
    memset(&res->d, 0, sizeof(res->d));
    switch (r->on_failure) {
    case RL_FALLBACK_LOCAL:
        res->source = RL_SRC_LOCAL;
        fallback_local(l, c, consume, &res->d);
        break;
    case RL_FALLBACK_OPEN:
        res->source = RL_SRC_OPEN;
        res->d.allowed = 1;
        res->d.remaining = rl_rule_max_cost(r);
        break;
    case RL_FALLBACK_CLOSED:
        res->source = RL_SRC_CLOSED;
        res->d.retry_after_us = RL_CLOSED_RETRY_US;
        res->d.reset_after_us = RL_CLOSED_RETRY_US;
        break;
    }
    metric_inc(metric_with(l->m_fallbacks, rl_failure_mode_name(r->on_failure)));
}

/* ---- Redis ------------------------------------------------------------------------- */

/* Through the breaker to Redis, else each check's fallback. sent_us is taken before the
 * request goes out: Redis decided at or after it, so a cached denial measured from it
 * lapses no later than Redis's own retry time (never denies what Redis would allow). */
static void decide_remote(struct rl_limiter *l, const struct rl_check *checks, const size_t *idx,
                          size_t m, int consume, int64_t sent_us, const int *seen,
                          struct rl_result *out)
{
    const struct rl_check *pending[RL_BATCH_MAX];
    struct rl_decision d[RL_BATCH_MAX];
    enum rl_brk_ticket t = rl_brk_acquire(l->breaker);
    int ok = 0;
    for (size_t j = 0; j < m; j++)
        pending[j] = &checks[idx[j]];
    if (t != RL_BRK_REJECT) {
        ok = rl_store_decide(l->pool, l->conf.region, pending, m, consume, d) == RREPLY_OK;
        rl_brk_release(l->breaker, t, ok);
    }
    if (ok) {
        for (size_t j = 0; j < m; j++) {
            out[idx[j]].d = d[j];
            out[idx[j]].source = RL_SRC_REDIS;
            if (consume)
                cache_update(l, &checks[idx[j]], sent_us, &d[j], seen[idx[j]]);
        }
        return;
    }
    for (size_t j = 0; j < m; j++)
        fallback(l, &checks[idx[j]], consume, &out[idx[j]]);
}

static void finish(struct rl_limiter *l, const struct rl_check *c, struct rl_result *res)
{
    res->shadow = l->conf.shadow || c->rule->shadow;
    res->allowed = res->shadow ? 1 : res->d.allowed;
    metric_inc(metric_with(l->m_decisions, c->rule->name, res->d.allowed ? "allowed" : "denied",
                           rl_source_name(res->source)));
}

void rl_limiter_check(struct rl_limiter *l, const struct rl_check *checks, size_t n, int consume,
                      struct rl_result *out)
{
    size_t idx[RL_BATCH_MAX], m = 0;
    int seen[RL_BATCH_MAX] = {0};
    int64_t now = mono_us();
    if (n > RL_BATCH_MAX)
        n = RL_BATCH_MAX;
    for (size_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        if (consume && cache_lookup(l, &checks[i], now, &out[i].d, &seen[i]))
            out[i].source = RL_SRC_CACHE;
        else
            idx[m++] = i;
    }
    if (m > 0)
        decide_remote(l, checks, idx, m, consume, now, seen, out);
    for (size_t i = 0; i < n; i++)
        finish(l, &checks[i], &out[i]);
}

enum rreply_class rl_limiter_reset(struct rl_limiter *l, const struct rl_rule *rule,
                                   const char *key, size_t key_len)
{
    struct rl_check c = {.rule = rule, .key = key, .key_len = key_len, .cost = 1};
    char k[RL_RULE_NAME_MAX + RL_KEY_MAX + 2];
    size_t kl = local_key(&c, k, sizeof(k));
    if (kl) {
        rl_lru_delete(l->deny_cache, k, kl);
        rl_lru_delete(l->local, k, kl);
    }
    enum rl_brk_ticket t = rl_brk_acquire(l->breaker);
    if (t == RL_BRK_REJECT)
        return RREPLY_UNAVAILABLE;
    enum rreply_class cls = rl_store_reset(l->pool, l->conf.region, rule, key, key_len);
    rl_brk_release(l->breaker, t, cls == RREPLY_OK);
    return cls;
}
