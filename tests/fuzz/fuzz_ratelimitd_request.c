/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for ratelimitd's request parsers: any bytes, parsed as the HTTP layer
 * does, are the body of POST /v1/check (single and batch: rl_parse_check_body), of
 * /v1/peek and /v1/reset (rl_parse_check without cost) and of POST /v1/breaker
 * (rl_parse_breaker). Every check accepted is within the documented bounds and names a
 * rule of the set; every refusal is a 400 or 404 naming a field in a renderable answer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../ratelimitd/request.h"
#include "fuzz.h"

static struct rl_ruleset *rules;

static void load_rules(void)
{
    static const char text[] =
        "{\"rules\":[{\"name\":\"login\",\"limit\":5,\"period\":\"1m\",\"burst\":3},"
        "{\"name\":\"api\",\"algorithm\":\"sliding_window\",\"limit\":100,\"period\":\"1m\"}]}";
    char err[128];
    rules = rl_rules_parse(text, sizeof(text) - 1, err, sizeof(err));
    if (!rules)
        abort();
}

static void check_accepted(const struct rl_check *c, int with_cost)
{
    if (!c->rule || rl_ruleset_find(rules, c->rule->name) != c->rule || c->key_len < 1 ||
        c->key_len > RL_KEY_MAX || strlen(c->key) != c->key_len)
        abort();
    if (c->cost < 1 || c->cost > rl_rule_max_cost(c->rule) || (!with_cost && c->cost != 1))
        abort();
    for (size_t k = 0; k < c->key_len; k++)
        if ((unsigned char)c->key[k] < 0x20 || c->key[k] == 0x7f)
            abort();
}

/* What reply_parse_error renders: status 400/404, a code, a field (may be empty), a
 * detail, all valid in a JSON answer. */
static void check_refused(const struct rl_parse_error *err)
{
    if ((err->status != 400 && err->status != 404) || !err->code || !err->detail[0])
        abort();
    json_t *j =
        json_pack("{s:s, s:s, s:s}", "code", err->code, "field", err->field, "detail", err->detail);
    if (!j)
        abort();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rules)
        load_rules();
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!body || !json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    struct rl_check checks[RL_BATCH_MAX];
    struct rl_parse_error err;
    struct jv_error e = {0};
    int batch = 0;
    int n = rl_parse_check_body(body, rules, checks, &batch, &err);
    if (n < 0)
        check_refused(&err);
    if (n > RL_BATCH_MAX || (n > 1 && !batch) || n == 0)
        abort();
    for (int i = 0; i < n; i++)
        check_accepted(&checks[i], 1);
    /* /v1/peek and /v1/reset: one check, no cost. */
    if (rl_parse_check(body, rules, 0, &checks[0], &err) == 0)
        check_accepted(&checks[0], 0);
    else
        check_refused(&err);
    int action = rl_parse_breaker(body, &e);
    if (action < 0)
        fuzz_check_refusal(&e);
    else if (action > RL_BREAKER_DISABLE)
        abort();
    json_decref(body);
    return 0;
}
