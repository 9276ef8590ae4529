/* SPDX-License-Identifier: Apache-2.0 */
/* limiter: deny cache -> breaker -> Redis (EVALSHA, a batch sent in one loop turn) ->
 * fallback, then shadow mode and metrics (see limiter.h). */
#include "limiter.h"

#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lru.h"
#include "shared/log.h"
#include "store.h"

struct rl_limiter {
    struct rl_config conf;
    struct rl_brk *breaker;
    struct rl_lru *local;  /* rule\x1fkey -> {tat us} of the local fallback GCRA; shared */
    size_t cache_capacity; /* of each worker's deny cache */
    /* The workers, as they start: a slot is written once, then read by any thread (a reset
     * or a reload reaching every worker, the gauge). */
    size_t nworkers;
    _Atomic size_t started;
    _Atomic(struct rl_worker *) *workers;
    struct metric *m_decisions, *m_transitions, *m_fallbacks, *m_rejected_probes;
    struct metric_series *s_state, *s_cache_entries;
};

struct rl_worker {
    struct rl_limiter *limiter;
    struct loop *loop;
    /* rule\x1fkey -> {retry deadline us, cost, reset deadline us, remaining}; this
     * worker's thread only */
    struct rl_lru *deny_cache;
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

static struct rl_worker *worker_at(struct rl_limiter *l, size_t i)
{
    return atomic_load_explicit(&l->workers[i], memory_order_acquire);
}

/* The entries of every worker's deny cache (each count is read without a lock). */
static void refresh_gauges(void *arg)
{
    struct rl_limiter *l = arg;
    size_t entries = 0;
    for (size_t i = 0; i < l->nworkers; i++) {
        struct rl_worker *w = worker_at(l, i);
        if (w)
            entries += rl_lru_count(w->deny_cache);
    }
    metric_set(l->s_cache_entries, (double)entries);
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

struct rl_limiter *rl_limiter_create(const struct rl_config *conf, int workers,
                                     struct metrics *metrics, char *err, size_t errsize)
{
    struct rl_limiter *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    l->conf = *conf;
    l->nworkers = workers > 0 ? (size_t)workers : 1;
    /* The bound is on the whole instance: each worker's cache gets its share. */
    l->cache_capacity = conf->local_max_keys / l->nworkers;
    if (l->cache_capacity < 1)
        l->cache_capacity = 1;
    register_metrics(l, metrics);
    struct rl_brk_hooks hooks = {
        .on_transition = on_transition, .on_rejected_probe = on_rejected_probe, .arg = l};
    l->breaker = rl_brk_create(&conf->breaker, &hooks);
    l->local = rl_lru_create(conf->local_max_keys, RL_LRU_SHARED);
    l->workers = calloc(l->nworkers, sizeof(*l->workers));
    if (!l->breaker || !l->local || !l->workers) {
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
    for (size_t i = 0; l->workers && i < l->nworkers; i++) {
        struct rl_worker *w = worker_at(l, i);
        if (w)
            rl_lru_free(w->deny_cache);
        free(w);
    }
    free(l->workers);
    rl_brk_free(l->breaker);
    rl_lru_free(l->local);
    free(l);
}

struct rl_worker *rl_worker_start(struct rl_limiter *l, struct loop *loop)
{
    struct rl_worker *w = calloc(1, sizeof(*w));
    if (w)
        w->deny_cache = rl_lru_create(l->cache_capacity, RL_LRU_ONE_THREAD);
    if (!w || !w->deny_cache) {
        free(w);
        return NULL;
    }
    w->limiter = l;
    w->loop = loop;
    size_t i = atomic_fetch_add(&l->started, 1);
    assert(i < l->nworkers); /* the app said how many workers it runs */
    atomic_store_explicit(&l->workers[i], w, memory_order_release);
    return w;
}

struct rl_brk *rl_limiter_breaker(struct rl_limiter *l)
{
    return l->breaker;
}

const char *rl_limiter_region(const struct rl_limiter *l)
{
    return l->conf.region;
}

/* On the worker's loop: the only thread that touches its cache. */
static void clear_cache(void *arg)
{
    struct rl_worker *w = arg;
    rl_lru_clear(w->deny_cache);
}

void rl_limiter_rules_changed(struct rl_limiter *l)
{
    for (size_t i = 0; i < l->nworkers; i++) {
        struct rl_worker *w = worker_at(l, i);
        if (w && loop_post(w->loop, clear_cache, w) != 0)
            log_error(NULL, "rules reload: a worker's deny cache could not be cleared");
    }
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
static int cache_lookup(struct rl_worker *w, const struct rl_check *c, int64_t now_us,
                        struct rl_decision *d, int *seen)
{
    char k[RL_RULE_NAME_MAX + RL_KEY_MAX + 2];
    size_t kl = local_key(c, k, sizeof(k));
    struct cache_probe p = {.check = c, .now_us = now_us, .d = d};
    if (kl)
        rl_lru_update(w->deny_cache, k, kl, cache_lookup_fn, &p);
    *seen = p.seen;
    return p.hit;
}

/* After Redis decided a check sent at sent_us: remember a denial; after an allowed check
 * forget an entry seen for the key, whose times no longer count that consumption (it would
 * still never deny what Redis allows, but it would tell the caller to retry too early). */
static void cache_update(struct rl_worker *w, const struct rl_check *c, int64_t sent_us,
                         const struct rl_decision *d, int seen)
{
    char k[RL_RULE_NAME_MAX + RL_KEY_MAX + 2];
    size_t kl = local_key(c, k, sizeof(k));
    int64_t v[RL_LRU_VALUES] = {sent_us + d->retry_after_us, c->cost, sent_us + d->reset_after_us,
                                d->remaining};
    if (!kl)
        return;
    if (!d->allowed && d->retry_after_us > 0)
        rl_lru_put(w->deny_cache, k, kl, v);
    else if (d->allowed && seen)
        rl_lru_delete(w->deny_cache, k, kl);
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

/* ---- decisions ---------------------------------------------------------------------- */

static void finish(struct rl_limiter *l, const struct rl_check *c, struct rl_result *res)
{
    res->shadow = l->conf.shadow || c->rule->shadow;
    res->allowed = res->shadow ? 1 : res->d.allowed;
    metric_inc(metric_with(l->m_decisions, c->rule->name, res->d.allowed ? "allowed" : "denied",
                           rl_source_name(res->source)));
}

static void finish_all(struct rl_limiter *l, const struct rl_check *checks, size_t n,
                       struct rl_result *out)
{
    for (size_t i = 0; i < n; i++)
        finish(l, &checks[i], &out[i]);
}

/* Redis has answered every check sent (or failed): report to the breaker, then keep the
 * decisions (and the denials in the deny cache), or let each check's fallback decide. */
static void settle(struct rl_pending *p)
{
    struct rl_worker *w = p->worker;
    struct rl_limiter *l = w->limiter;
    int ok = p->worst == RREPLY_OK;
    if (p->ticket != RL_BRK_REJECT)
        rl_brk_release(l->breaker, p->ticket, ok);
    for (size_t j = 0; j < p->sent; j++) {
        size_t i = p->slot[j].index;
        if (!ok) {
            fallback(l, &p->checks[i], p->consume, &p->out[i]);
            continue;
        }
        p->out[i].source = RL_SRC_REDIS;
        if (p->consume)
            cache_update(w, &p->checks[i], p->sent_us, &p->out[i].d, p->seen[i]);
    }
    finish_all(l, p->checks, p->n, p->out);
}

/* One script reply, on the worker's loop. The worst outcome of the batch decides. */
static void on_decided(void *arg, enum rcl_status st, redisReply *reply)
{
    struct rl_pending_slot *slot = arg;
    struct rl_pending *p = slot->pending;
    enum rreply_class cls = rl_store_read_decision(st, reply, &p->out[slot->index].d);
    if (cls == RREPLY_UNAVAILABLE || (cls == RREPLY_INTERNAL && p->worst == RREPLY_OK))
        p->worst = cls;
    if (--p->waiting > 0)
        return;
    settle(p);
    p->done(p->arg);
}

/* Send every check the cache did not answer, through the breaker. sent_us is taken before
 * the request goes out: Redis decided at or after it, so a cached denial measured from it
 * lapses no later than Redis's own retry time (never denies what Redis would allow).
 * Returns 1 when nothing is left waiting (all settled here), else 0. */
static int send_remote(struct rl_pending *p, struct rclient *c)
{
    struct rl_limiter *l = p->worker->limiter;
    p->ticket = rl_brk_acquire(l->breaker);
    if (p->ticket == RL_BRK_REJECT) {
        p->worst = RREPLY_UNAVAILABLE;
        settle(p);
        return 1;
    }
    p->waiting = p->sent;
    for (size_t j = 0; j < p->sent; j++) {
        p->slot[j].pending = p;
        if (rl_store_decide(c, l->conf.region, &p->checks[p->slot[j].index], p->consume, on_decided,
                            &p->slot[j]) != 0) {
            p->worst = RREPLY_UNAVAILABLE; /* out of memory: the fallback decides */
            p->waiting--;
        }
    }
    if (p->waiting > 0)
        return 0;
    settle(p);
    return 1;
}

int rl_limiter_check(struct rl_worker *w, struct rclient *c, struct rl_pending *p,
                     const struct rl_check *checks, size_t n, int consume, struct rl_result *out,
                     rl_decided_fn done, void *arg)
{
    int64_t now = mono_us();
    if (n > RL_BATCH_MAX)
        n = RL_BATCH_MAX;
    *p = (struct rl_pending){.worker = w,
                             .checks = checks,
                             .out = out,
                             .n = n,
                             .consume = consume,
                             .sent_us = now,
                             .worst = RREPLY_OK,
                             .done = done,
                             .arg = arg};
    for (size_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        if (consume && cache_lookup(w, &checks[i], now, &out[i].d, &p->seen[i]))
            out[i].source = RL_SRC_CACHE;
        else
            p->slot[p->sent++].index = i;
    }
    if (p->sent == 0) {
        finish_all(w->limiter, checks, n, out);
        return 1;
    }
    return send_remote(p, c);
}

/* ---- reset ------------------------------------------------------------------------------ */

/* A reset in flight: the DEL at Redis, and the other workers forgetting the key. Whoever
 * brings `waiting` to zero completes it; on the origin's loop when it can. */
struct reset_op {
    struct rl_worker *origin;
    _Atomic size_t waiting;
    enum rl_brk_ticket ticket;
    enum rreply_class cls; /* written by the DEL's reply, before its decrement */
    rl_reset_fn done;
    void *arg;
    char key[RL_RULE_NAME_MAX + RL_KEY_MAX + 2]; /* rule\x1fkey */
    size_t key_len;
    size_t nforget;
    struct reset_forget {
        struct reset_op *op;
        struct rl_worker *worker;
    } forget[];
};

static void reset_complete(void *arg)
{
    struct reset_op *op = arg;
    op->done(op->arg, op->cls);
    free(op);
}

/* One part done. The last one on another worker's loop hands the completion back to the
 * origin's loop (or, with no memory for that, completes where it is). */
static void reset_part_done(struct reset_op *op, int on_origin)
{
    if (atomic_fetch_sub(&op->waiting, 1) != 1)
        return;
    if (on_origin || loop_post(op->origin->loop, reset_complete, op) != 0)
        reset_complete(op);
}

/* On another worker's loop, the only thread that touches its deny cache. */
static void reset_forget(void *arg)
{
    struct reset_forget *f = arg;
    rl_lru_delete(f->worker->deny_cache, f->op->key, f->op->key_len);
    reset_part_done(f->op, 0);
}

static void on_deleted(void *arg, enum rcl_status st, redisReply *reply)
{
    struct reset_op *op = arg;
    op->cls = rl_store_read_reset(st, reply);
    rl_brk_release(op->origin->limiter->breaker, op->ticket, op->cls == RREPLY_OK);
    reset_part_done(op, 1);
}

/* The other workers, each to forget the key on its own loop. */
static void post_forgets(struct reset_op *op)
{
    struct rl_limiter *l = op->origin->limiter;
    for (size_t i = 0; i < l->nworkers; i++) {
        struct rl_worker *w = worker_at(l, i);
        if (w && w != op->origin)
            op->forget[op->nforget++] = (struct reset_forget){.op = op, .worker = w};
    }
    /* Counted before the first post: a forget may finish before the next is posted. */
    atomic_fetch_add(&op->waiting, op->nforget);
    for (size_t i = 0; i < op->nforget; i++)
        if (loop_post(op->forget[i].worker->loop, reset_forget, &op->forget[i]) != 0)
            atomic_fetch_sub(&op->waiting, 1); /* the DEL is still out: never the last */
}

int rl_limiter_reset(struct rl_worker *w, struct rclient *c, const struct rl_rule *rule,
                     const char *key, size_t key_len, rl_reset_fn done, void *arg,
                     enum rreply_class *now)
{
    struct rl_limiter *l = w->limiter;
    struct rl_check check = {.rule = rule, .key = key, .key_len = key_len, .cost = 1};
    struct reset_op *op = calloc(1, sizeof(*op) + l->nworkers * sizeof(op->forget[0]));
    *now = RREPLY_UNAVAILABLE;
    if (!op)
        return 1;
    op->key_len = local_key(&check, op->key, sizeof(op->key));
    if (op->key_len) {
        rl_lru_delete(w->deny_cache, op->key, op->key_len);
        rl_lru_delete(l->local, op->key, op->key_len);
    }
    op->origin = w;
    op->done = done;
    op->arg = arg;
    op->ticket = rl_brk_acquire(l->breaker);
    if (op->ticket == RL_BRK_REJECT) {
        free(op);
        return 1;
    }
    atomic_init(&op->waiting, 1); /* the DEL */
    if (rl_store_reset(c, l->conf.region, rule, key, key_len, on_deleted, op) != 0) {
        rl_brk_release(l->breaker, op->ticket, 0);
        free(op);
        return 1;
    }
    if (op->key_len)
        post_forgets(op);
    return 0;
}
