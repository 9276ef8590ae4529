/* libFuzzer harness for ratelimitd's request parser (/v1/check bodies, single and batch):
 * never crashes, and every check it accepts is within the documented bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../ratelimitd/handlers.h"

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
    int batch = 0;
    int n = rl_parse_check_body(body, rules, checks, &batch, &err);
    if (n < 0 && err.status != 400 && err.status != 404)
        abort();
    for (int i = 0; i < n; i++) {
        const struct rl_check *c = &checks[i];
        if (!c->rule || c->key_len < 1 || c->key_len > RL_KEY_MAX)
            abort();
        if (c->cost < 1 || c->cost > rl_rule_max_cost(c->rule))
            abort();
        for (size_t k = 0; k < c->key_len; k++)
            if ((unsigned char)c->key[k] < 0x20 || c->key[k] == 0x7f)
                abort();
    }
    json_decref(body);
    return 0;
}
