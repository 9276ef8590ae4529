/* SPDX-License-Identifier: Apache-2.0 */
/* rules: parsing and validation of the rules file, the immutable rule sets and the holder
 * that swaps them on reload (see rules.h). */
#include "rules.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"
#include "shared/jsonv.h"

#define RL_LIMIT_MAX 1000000000LL
#define RL_PERIOD_MAX_MS (30LL * 24 * 3600 * 1000)
#define RL_FILE_MAX (4 * 1024 * 1024)

const char *rl_algorithm_name(enum rl_algorithm a)
{
    return a == RL_SLIDING ? "sliding_window" : "gcra";
}

const char *rl_failure_mode_name(enum rl_failure_mode m)
{
    return m == RL_FALLBACK_OPEN ? "open" : m == RL_FALLBACK_CLOSED ? "closed" : "local";
}

static int word_index(const char *s, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (strcmp(s, words[i]) == 0)
            return i;
    return -1;
}

/* Optional enum-like string member: returns the index, the default when absent, -1 bad. */
static int parse_word(const json_t *o, const char *name, const char *const *words, int def,
                      struct jv_error *e)
{
    const char *s;
    int rc = jv_string(o, name, JV_OPTIONAL, 1, 32, &s, NULL, e);
    if (rc <= 0)
        return rc < 0 ? -1 : def;
    int i = word_index(s, words);
    if (i < 0)
        jv_fail(e, name, "unknown value \"%s\"", s);
    return i;
}

static int parse_period(const json_t *o, struct rl_rule *r, struct jv_error *e)
{
    const char *s;
    size_t len;
    if (jv_string(o, "period", JV_REQUIRED, 1, sizeof(r->period_text) - 1, &s, &len, e) < 0)
        return -1;
    if (cfg_parse_duration_ms(s, &r->period_ms) != 0 || r->period_ms < 1 ||
        r->period_ms > RL_PERIOD_MAX_MS)
        return jv_fail(e, "period", "must be a duration like 1s or 1m, from 1ms to 30d");
    if (r->algorithm == RL_SLIDING && r->period_ms < 1000)
        return jv_fail(e, "period", "must be at least 1s for sliding_window");
    memcpy(r->period_text, s, len + 1);
    return 0;
}

static int parse_rule(const json_t *o, struct rl_rule *r, struct jv_error *e)
{
    static const char *const fields[] = {"name",  "algorithm",        "limit",  "period",
                                         "burst", "on_redis_failure", "shadow", NULL};
    static const char *const algos[] = {"gcra", "sliding_window", NULL};
    static const char *const modes[] = {"local", "open", "closed", NULL};
    const char *name;
    size_t len;
    int v;
    if (!json_is_object(o))
        return jv_fail(e, "rules", "each rule must be an object");
    if (jv_only(o, fields, e) < 0 ||
        jv_string(o, "name", JV_REQUIRED, 1, RL_RULE_NAME_MAX, &name, &len, e) < 0)
        return -1;
    if (!jv_token_ok(name, len, "_.-") || strpbrk(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        return jv_fail(e, "name", "must match [a-z0-9_.-]{1,64}");
    memcpy(r->name, name, len + 1);
    if ((v = parse_word(o, "algorithm", algos, RL_GCRA, e)) < 0)
        return -1;
    r->algorithm = (enum rl_algorithm)v;
    if (jv_int(o, "limit", JV_REQUIRED, 1, RL_LIMIT_MAX, &r->limit, e) < 0 ||
        parse_period(o, r, e) < 0)
        return -1;
    r->burst = r->limit;
    if (r->algorithm == RL_SLIDING && json_object_get(o, "burst"))
        return jv_fail(e, "burst", "only gcra rules have a burst");
    if (jv_int(o, "burst", JV_OPTIONAL, 1, RL_LIMIT_MAX, &r->burst, e) < 0)
        return -1;
    if ((v = parse_word(o, "on_redis_failure", modes, RL_FALLBACK_LOCAL, e)) < 0)
        return -1;
    r->on_failure = (enum rl_failure_mode)v;
    r->shadow = 0;
    return jv_bool(o, "shadow", JV_OPTIONAL, &r->shadow, e) < 0 ? -1 : 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct rl_rule *)a)->name, ((const struct rl_rule *)b)->name);
}

static struct rl_ruleset *set_new(size_t count)
{
    struct rl_ruleset *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->rules = calloc(count ? count : 1, sizeof(*s->rules));
    if (!s->rules) {
        free(s);
        return NULL;
    }
    s->count = count;
    atomic_init(&s->refs, 1);
    return s;
}

/* Parse every rule of the array, sort by name and refuse duplicates. */
static struct rl_ruleset *parse_rules(json_t *arr, char *err, size_t errsize)
{
    struct jv_error e = {0};
    struct rl_ruleset *s = set_new(json_array_size(arr));
    if (!s) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < s->count; i++) {
        if (parse_rule(json_array_get(arr, i), &s->rules[i], &e) < 0) {
            snprintf(err, errsize, "rule %zu: %s: %s", i + 1, e.field ? e.field : "rule", e.detail);
            goto fail;
        }
    }
    qsort(s->rules, s->count, sizeof(*s->rules), by_name);
    for (size_t i = 1; i < s->count; i++) {
        if (strcmp(s->rules[i - 1].name, s->rules[i].name) == 0) {
            snprintf(err, errsize, "rule \"%s\" is defined twice", s->rules[i].name);
            goto fail;
        }
    }
    return s;
fail:
    rl_ruleset_unref(s);
    return NULL;
}

struct rl_ruleset *rl_rules_parse(const char *text, size_t len, char *err, size_t errsize)
{
    static const char *const top[] = {"rules", NULL};
    json_error_t je;
    struct jv_error e = {0};
    struct rl_ruleset *s = NULL;
    json_t *arr = NULL;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
        snprintf(err, errsize, "not a JSON object (line %d: %s)", je.line, root ? "" : je.text);
        goto out;
    }
    if (jv_only(root, top, &e) < 0 ||
        jv_array(root, "rules", JV_REQUIRED, 1, RL_MAX_RULES, &arr, &e) < 0) {
        snprintf(err, errsize, "%s: %s", e.field ? e.field : "rules", e.detail);
        goto out;
    }
    s = parse_rules(arr, err, errsize);
out:
    json_decref(root);
    return s;
}

struct rl_ruleset *rl_rules_default(void)
{
    static const char text[] =
        "{\"rules\":[{\"name\":\"default\",\"limit\":100,\"period\":\"1s\"}]}";
    char err[64];
    return rl_rules_parse(text, sizeof(text) - 1, err, sizeof(err));
}

struct rl_ruleset *rl_rules_load_file(const char *path, char *err, size_t errsize)
{
    struct rl_ruleset *s = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsize, "cannot open: %s", strerror(errno));
        return NULL;
    }
    buf = malloc(RL_FILE_MAX);
    if (!buf) {
        snprintf(err, errsize, "out of memory");
        goto out;
    }
    len = fread(buf, 1, RL_FILE_MAX, f);
    if (ferror(f) || len == RL_FILE_MAX) {
        snprintf(err, errsize, ferror(f) ? "read error" : "larger than 4 MiB");
        goto out;
    }
    s = rl_rules_parse(buf, len, err, errsize);
out:
    free(buf);
    fclose(f);
    return s;
}

void rl_ruleset_ref(struct rl_ruleset *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void rl_ruleset_unref(struct rl_ruleset *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    free(s->rules);
    free(s);
}

const struct rl_rule *rl_ruleset_find(const struct rl_ruleset *s, const char *name)
{
    struct rl_rule probe = {0};
    if (strlen(name) > RL_RULE_NAME_MAX)
        return NULL;
    snprintf(probe.name, sizeof(probe.name), "%s", name);
    return bsearch(&probe, s->rules, s->count, sizeof(*s->rules), by_name);
}

long long rl_rule_max_cost(const struct rl_rule *r)
{
    return r->algorithm == RL_GCRA ? r->burst : r->limit;
}

json_t *rl_rule_to_json(const struct rl_rule *r)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:I, s:s, s:b}", "name", r->name, "algorithm",
                          rl_algorithm_name(r->algorithm), "limit", (json_int_t)r->limit, "period",
                          r->period_text, "period_ms", (json_int_t)r->period_ms, "on_redis_failure",
                          rl_failure_mode_name(r->on_failure), "shadow", r->shadow);
    if (o && r->algorithm == RL_GCRA)
        json_object_set_new(o, "burst", json_integer(r->burst));
    return o;
}

/* ---- the holder ----------------------------------------------------------------------
 * Why a mutex and not a bare atomic pointer: a reader must load the pointer *and* take
 * its reference before a concurrent swap can drop the last one, or it would reference a
 * freed set. The mutex covers just those two steps (a few nanoseconds, never held across
 * a Redis call); the set itself is immutable, so readers then use it without any lock. */
struct rl_rules_holder {
    pthread_mutex_t lock;
    struct rl_ruleset *current;
};

struct rl_rules_holder *rl_rules_holder_create(struct rl_ruleset *initial)
{
    struct rl_rules_holder *h = calloc(1, sizeof(*h));
    if (!h) {
        rl_ruleset_unref(initial);
        return NULL;
    }
    pthread_mutex_init(&h->lock, NULL);
    h->current = initial;
    return h;
}

void rl_rules_holder_free(struct rl_rules_holder *h)
{
    if (!h)
        return;
    rl_ruleset_unref(h->current);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

struct rl_ruleset *rl_rules_current(struct rl_rules_holder *h)
{
    pthread_mutex_lock(&h->lock);
    struct rl_ruleset *s = h->current;
    rl_ruleset_ref(s);
    pthread_mutex_unlock(&h->lock);
    return s;
}

void rl_rules_swap(struct rl_rules_holder *h, struct rl_ruleset *next)
{
    pthread_mutex_lock(&h->lock);
    struct rl_ruleset *old = h->current;
    h->current = next;
    pthread_mutex_unlock(&h->lock);
    rl_ruleset_unref(old);
}
