/* SPDX-License-Identifier: Apache-2.0 */
/* chaos workload for ratelimitd: every thread checks random keys of one GCRA rule; one
 * thread polls the breaker. Invariants after the run:
 *   - GCRA bound: for every key, any set of decisions allowed with source=redis whose
 *     send..receive spans lie within an interval of length L numbers at most
 *     burst + L / emission_interval (L widened by 1 ms + 500 ppm for clock noise);
 *   - every decision from the fault's start on is answered within REDIS_POOL_TIMEOUT +
 *     REDIS_COMMAND_TIMEOUT + noise (noise: CHAOS_NOISE_MS, or the longest healthy answer of
 *     the cell if that is larger);
 *   - no decision sent and answered while the breaker was seen open (two polls in a row
 *     showing the same open period) came from Redis. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos.h"

#define RL_KEYS 32
#define RL_LIMIT 20
#define RL_BURST 10
#define RL_PERIOD_US 1000000LL
#define RL_POOL_TIMEOUT_MS 20    /* ratelimitd's defaults, left in force */
#define RL_COMMAND_TIMEOUT_MS 50 /* */

enum rl_source { RL_REDIS, RL_CACHE, RL_FALLBACK, RL_NONE };

struct rl_decision {
    int64_t sent_us, done_us;
    int key, allowed;
    enum rl_source source;
};

struct rl_poll {
    int64_t sent_us, done_us;
    int open;
    long long open_until_ms;
};

struct rl_state {
    char rules_env[340];
    struct ch_vec decisions, polls;
};

static int rl_setup(struct ch_cell *c, const char **env)
{
    struct rl_state *s = calloc(1, sizeof(*s));
    char path[300], rules[256];
    if (!s)
        return -1;
    c->state = s;
    ch_vec_init(&s->decisions, sizeof(struct rl_decision));
    ch_vec_init(&s->polls, sizeof(struct rl_poll));
    snprintf(path, sizeof(path), "%s/rules.json", c->dir);
    snprintf(rules, sizeof(rules),
             "{\"rules\":[{\"name\":\"chaos\",\"algorithm\":\"gcra\",\"limit\":%d,"
             "\"period\":\"1s\",\"burst\":%d,\"on_redis_failure\":\"local\"}]}",
             RL_LIMIT, RL_BURST);
    if (th_write_file(path, rules) != 0)
        return -1;
    snprintf(s->rules_env, sizeof(s->rules_env), "RATELIMIT_RULES_FILE=%s", path);
    env[0] = s->rules_env;
    env[1] = "CLOUD_RUN_REGION=chaos";
    env[2] = "LOG_LEVEL=warn";
    return 0;
}

static enum rl_source source_of(const char *name)
{
    if (strcmp(name, "redis") == 0)
        return RL_REDIS;
    if (strcmp(name, "cache") == 0)
        return RL_CACHE;
    return strncmp(name, "fallback_", 9) == 0 ? RL_FALLBACK : RL_NONE;
}

static void rl_step(struct ch_cell *c, unsigned *seed, int thread)
{
    struct rl_state *s = c->state;
    struct ch_call call;
    char body[96], kind[CH_KIND_LEN];
    int key = (int)(rand_r(seed) % RL_KEYS);
    (void)thread;
    snprintf(body, sizeof(body), "{\"rule\":\"chaos\",\"key\":\"k%d\"}", key);
    ch_request(c, "/v1/check", body, &call);
    struct rl_decision d = {
        .sent_us = call.sent_us, .done_us = call.done_us, .key = key, .source = RL_NONE};
    if (call.status == 200 || call.status == 429) {
        d.allowed = call.status == 200;
        d.source = source_of(ch_jstr(&call, "source"));
    }
    if (d.source == RL_REDIS || d.source == RL_CACHE)
        ch_record(c, &call, NULL);
    else if (d.source == RL_FALLBACK)
        ch_record(c, &call, ch_jstr(&call, "source"));
    else
        ch_record(c, &call, ch_fail_kind(&call, kind, sizeof(kind)));
    ch_vec_push(&s->decisions, &d);
    ch_call_free(&call);
}

static void rl_monitor(struct ch_cell *c)
{
    struct rl_state *s = c->state;
    struct ch_call call;
    if (ch_request(c, "/v1/breaker", NULL, &call) == 200) {
        struct rl_poll p = {.sent_us = call.sent_us,
                            .done_us = call.done_us,
                            .open = strcmp(ch_jstr(&call, "state"), "open") == 0,
                            .open_until_ms = ch_jint(&call, "open_until_ms")};
        ch_vec_push(&s->polls, &p);
    }
    ch_call_free(&call);
}

/* ---- the checks ------------------------------------------------------------------------ */

static int by_sent(const void *a, const void *b)
{
    const struct rl_decision *x = a, *y = b;
    return (x->sent_us > y->sent_us) - (x->sent_us < y->sent_us);
}

/* The most decisions allowed within an interval of length span_us, by the model. */
static long gcra_bound(int64_t span_us)
{
    int64_t interval_us = RL_PERIOD_US / RL_LIMIT;
    int64_t widened = span_us + 1000 + span_us / 2000; /* + 1 ms + 500 ppm */
    return RL_BURST + (long)(widened / interval_us);
}

/* Allowed Redis decisions of one key (sorted by send time): the largest excess over the
 * bound of any run i..k of them, which all lie within [sent_i, max done]. */
static long worst_excess(const struct rl_decision *a, size_t n)
{
    long worst = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t last_done = 0;
        for (size_t k = i; k < n; k++) {
            if (a[k].done_us > last_done)
                last_done = a[k].done_us;
            long excess = (long)(k - i + 1) - gcra_bound(last_done - a[i].sent_us);
            if (excess > worst)
                worst = excess;
        }
    }
    return worst;
}

/* The decisions of key allowed by Redis, sorted by send time (caller frees), or NULL. */
static struct rl_decision *pick(const struct rl_state *s, int key, size_t *n)
{
    const struct rl_decision *all = s->decisions.items;
    struct rl_decision *out = malloc((s->decisions.n + 1) * sizeof(*out));
    *n = 0;
    for (size_t i = 0; out && i < s->decisions.n; i++)
        if (all[i].source == RL_REDIS && all[i].key == key && all[i].allowed)
            out[(*n)++] = all[i];
    if (out)
        qsort(out, *n, sizeof(*out), by_sent);
    return out;
}

static long check_gcra(const struct rl_state *s, long *allowed)
{
    long worst = 0;
    *allowed = 0;
    for (int key = 0; key < RL_KEYS; key++) {
        size_t n;
        struct rl_decision *a = pick(s, key, &n);
        if (!a)
            return -1;
        long e = worst_excess(a, n);
        worst = e > worst ? e : worst;
        *allowed += (long)n;
        free(a);
    }
    return worst;
}

/* Decisions from the fault's start on slower than bound_us; the longest in *longest_us. */
static long count_slow(struct ch_cell *c, const struct rl_state *s, int64_t bound_us,
                       int64_t *longest_us)
{
    const struct rl_decision *d = s->decisions.items;
    long slow = 0;
    *longest_us = 0;
    for (size_t i = 0; i < s->decisions.n; i++) {
        int64_t took = d[i].done_us - d[i].sent_us;
        if (d[i].done_us < c->fault_start_us)
            continue;
        slow += took > bound_us;
        *longest_us = took > *longest_us ? took : *longest_us;
    }
    return slow;
}

/* Redis decisions made while two consecutive polls showed the same open period; the number
 * of decisions checked that way in *inside. */
static long redis_while_open(const struct rl_state *s, long *inside)
{
    const struct rl_poll *p = s->polls.items;
    const struct rl_decision *all = s->decisions.items;
    long bad = 0;
    *inside = 0;
    for (size_t k = 0; k + 1 < s->polls.n; k++) {
        long long gap = p[k].open_until_ms - p[k + 1].open_until_ms;
        if (!p[k].open || !p[k + 1].open || gap > 100 || gap < -100)
            continue;
        for (size_t i = 0; i < s->decisions.n; i++) {
            if (all[i].sent_us < p[k].done_us || all[i].done_us > p[k + 1].sent_us)
                continue;
            (*inside)++;
            bad += all[i].source == RL_REDIS;
        }
    }
    return bad;
}

static int rl_check(struct ch_cell *c, char *verdict, size_t size)
{
    struct rl_state *s = c->state;
    long allowed, inside;
    int64_t healthy = ch_healthy_max_us(c), longest;
    int64_t noise = (int64_t)ch_set.noise_ms * 1000 > healthy ? ch_set.noise_ms * 1000LL : healthy;
    int64_t bound = (RL_POOL_TIMEOUT_MS + RL_COMMAND_TIMEOUT_MS) * 1000LL + noise;
    long excess = check_gcra(s, &allowed);
    long slow = count_slow(c, s, bound, &longest);
    long open_redis = redis_while_open(s, &inside);
    int breached = excess != 0 || slow != 0 || open_redis != 0;
    snprintf(verdict, size,
             "%s: GCRA bound %s over %ld Redis-allowed decisions (largest excess %ld); %ld answers "
             "past %lld ms (longest %lld ms); %ld decisions while seen open, %ld from Redis",
             breached ? "BREACH" : "hold", excess ? "exceeded" : "kept", allowed, excess, slow,
             (long long)bound / 1000, (long long)longest / 1000, inside, open_redis);
    return excess < 0 ? -1 : breached;
}

static void rl_finish(struct ch_cell *c)
{
    struct rl_state *s = c->state;
    if (!s)
        return;
    ch_vec_free(&s->decisions);
    ch_vec_free(&s->polls);
    free(s);
    c->state = NULL;
}

const struct ch_workload ch_wl_ratelimitd = {
    .name = "ratelimitd",
    .bin = "bin/ratelimitd",
    .setup = rl_setup,
    .step = rl_step,
    .monitor = rl_monitor,
    .check = rl_check,
    .finish = rl_finish,
};
