/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for ratelimitd's rules-file parser (rl_rules_parse, what
 * RATELIMIT_RULES_FILE is read with): never crashes; a refusal says why; whatever it
 * accepts satisfies the rules' invariants (sorted unique names, numbers in range) and
 * round-trips: the rules as GET /v1/rules shows them, written back as a rules file, parse
 * to the same rules. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../ratelimitd/rules.h"
#include "fuzz.h"

static void check_rule(const struct rl_ruleset *s, size_t i)
{
    const struct rl_rule *r = &s->rules[i];
    if (r->limit < 1 || r->burst < 1 || r->period_ms < 1 || rl_rule_max_cost(r) < 1)
        abort();
    if (r->algorithm == RL_SLIDING && (r->period_ms < 1000 || r->burst != r->limit))
        abort();
    if (i > 0 && strcmp(s->rules[i - 1].name, r->name) >= 0)
        abort();
    if (rl_ruleset_find(s, r->name) != r)
        abort();
}

/* GET /v1/rules lists period_ms beside period; the file form has period alone. */
static void round_trip(const struct rl_ruleset *s)
{
    char err[256];
    json_t *arr = json_array();
    for (size_t i = 0; i < s->count; i++) {
        json_t *j = rl_rule_to_json(&s->rules[i]);
        if (!j)
            abort();
        json_object_del(j, "period_ms");
        json_array_append_new(arr, j);
    }
    json_t *doc = json_pack("{s:o}", "rules", arr);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    struct rl_ruleset *again = text ? rl_rules_parse(text, strlen(text), err, sizeof(err)) : NULL;
    if (!again || again->count != s->count)
        abort();
    for (size_t i = 0; i < s->count; i++) {
        const struct rl_rule *a = &s->rules[i], *b = &again->rules[i];
        if (strcmp(a->name, b->name) != 0 || a->algorithm != b->algorithm || a->limit != b->limit ||
            a->period_ms != b->period_ms || a->burst != b->burst ||
            a->on_failure != b->on_failure || a->shadow != b->shadow ||
            strcmp(a->period_text, b->period_text) != 0)
            abort();
    }
    rl_ruleset_unref(again);
    free(text);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    err[0] = '\0';
    struct rl_ruleset *s = rl_rules_parse((const char *)data, size, err, sizeof(err));
    if (!s) {
        if (!err[0])
            abort();
        return 0;
    }
    for (size_t i = 0; i < s->count; i++)
        check_rule(s, i);
    round_trip(s);
    rl_ruleset_unref(s);
    return 0;
}
