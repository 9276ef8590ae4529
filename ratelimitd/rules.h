/* SPDX-License-Identifier: Apache-2.0 */
/* rules: the rate-limit rules (from RATELIMIT_RULES_FILE or the built-in default), parsed
 * and validated into an immutable, reference-counted set that a SIGHUP reload swaps
 * atomically under running requests. */
#ifndef RATELIMITD_RULES_H
#define RATELIMITD_RULES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define RL_RULE_NAME_MAX 64
#define RL_MAX_RULES 1024

enum rl_algorithm { RL_GCRA = 0, RL_SLIDING = 1 };
enum rl_failure_mode { RL_FALLBACK_LOCAL = 0, RL_FALLBACK_OPEN = 1, RL_FALLBACK_CLOSED = 2 };

struct rl_rule {
    char name[RL_RULE_NAME_MAX + 1];
    enum rl_algorithm algorithm;
    long long limit;
    int64_t period_ms;
    long long burst; /* gcra: bucket capacity; sliding_window: = limit */
    enum rl_failure_mode on_failure;
    int shadow;
    char period_text[32]; /* as written in the file, for GET /v1/rules */
};

struct rl_ruleset {
    _Atomic long refs;
    size_t count;
    struct rl_rule *rules; /* sorted by name */
};

/* Parse a rules file's text. Returns a set with one reference, or NULL with the reason
 * (naming the rule and field) in err. */
struct rl_ruleset *rl_rules_parse(const char *text, size_t len, char *err, size_t errsize);
/* The built-in set used when no file is configured: `default`, 100 per 1s, gcra. */
struct rl_ruleset *rl_rules_default(void);
/* Read and parse a file. Returns NULL with the reason in err. */
struct rl_ruleset *rl_rules_load_file(const char *path, char *err, size_t errsize);

void rl_ruleset_ref(struct rl_ruleset *s);
void rl_ruleset_unref(struct rl_ruleset *s); /* frees on the last reference; NULL ok */

/* The rule named name (binary search), or NULL. */
const struct rl_rule *rl_ruleset_find(const struct rl_ruleset *s, const char *name);

/* The largest cost a check of this rule may ask for (burst for gcra, limit otherwise). */
long long rl_rule_max_cost(const struct rl_rule *r);

/* The rule as GET /v1/rules shows it, with defaults filled in (new reference). */
json_t *rl_rule_to_json(const struct rl_rule *r);

const char *rl_algorithm_name(enum rl_algorithm a);
const char *rl_failure_mode_name(enum rl_failure_mode m);

/* A holder of the current set: readers take a reference, a reload swaps it. */
struct rl_rules_holder;
struct rl_rules_holder *rl_rules_holder_create(struct rl_ruleset *initial); /* steals */
void rl_rules_holder_free(struct rl_rules_holder *h);
/* The current set with a new reference (release with rl_ruleset_unref). Thread-safe. */
struct rl_ruleset *rl_rules_current(struct rl_rules_holder *h);
/* Install next (stolen); the old set is freed once its last reader lets go. */
void rl_rules_swap(struct rl_rules_holder *h, struct rl_ruleset *next);

#endif
