/* libFuzzer harness for ratelimitd's rules-file parser: never crashes, and whatever it
 * accepts satisfies the rules' invariants (sorted unique names, numbers in range). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../ratelimitd/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct rl_ruleset *s = rl_rules_parse((const char *)data, size, err, sizeof(err));
    if (!s)
        return 0;
    for (size_t i = 0; i < s->count; i++) {
        const struct rl_rule *r = &s->rules[i];
        if (r->limit < 1 || r->burst < 1 || r->period_ms < 1 || rl_rule_max_cost(r) < 1)
            abort();
        if (r->algorithm == RL_SLIDING && (r->period_ms < 1000 || r->burst != r->limit))
            abort();
        if (i > 0 && strcmp(s->rules[i - 1].name, r->name) >= 0)
            abort();
        if (rl_ruleset_find(s, r->name) != r)
            abort();
        json_t *j = rl_rule_to_json(r);
        if (!j)
            abort();
        json_decref(j);
    }
    rl_ruleset_unref(s);
    return 0;
}
