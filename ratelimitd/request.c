/* SPDX-License-Identifier: Apache-2.0 */
/* request: the body parsers of ratelimitd's API (see request.h). */
#include "request.h"

#include <stdio.h>
#include <string.h>

static int perr(struct rl_parse_error *err, int status, const char *code, const char *field,
                const char *detail)
{
    err->status = status;
    err->code = code;
    field = field ? field : "";
    /* Cut at a character boundary: the field goes into a JSON answer. */
    snprintf(err->field, sizeof(err->field), "%.*s",
             (int)jv_utf8_prefix(field, sizeof(err->field) - 1), field);
    snprintf(err->detail, sizeof(err->detail), "%s", detail);
    return -1;
}

static int key_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return 0;
    }
    return 1;
}

int rl_parse_check(const json_t *obj, const struct rl_ruleset *set, int allow_cost,
                   struct rl_check *out, struct rl_parse_error *err)
{
    static const char *const with_cost[] = {"rule", "key", "cost", NULL};
    static const char *const without_cost[] = {"rule", "key", NULL};
    struct jv_error e = {0};
    const char *name;
    long long cost = 1;
    if (!obj)
        return perr(err, 400, "invalid_json", NULL, "the body must be a JSON object");
    if (!json_is_object(obj))
        return perr(err, 400, "invalid_request", "checks", "each check must be an object");
    if (jv_only(obj, allow_cost ? with_cost : without_cost, &e) < 0 ||
        jv_string(obj, "rule", JV_REQUIRED, 1, RL_RULE_NAME_MAX, &name, NULL, &e) < 0 ||
        jv_string(obj, "key", JV_REQUIRED, 1, RL_KEY_MAX, &out->key, &out->key_len, &e) < 0)
        return perr(err, 400, "invalid_request", e.field, e.detail);
    if (!key_ok(out->key, out->key_len))
        return perr(err, 400, "invalid_request", "key", "must not contain control characters");
    out->rule = rl_ruleset_find(set, name);
    if (!out->rule)
        return perr(err, 404, "unknown_rule", "rule", "no rule by that name");
    long long max = rl_rule_max_cost(out->rule);
    if (allow_cost && jv_int(obj, "cost", JV_OPTIONAL, 1, max, &cost, &e) < 0)
        return perr(err, 400, "invalid_request", "cost", e.detail);
    out->cost = cost;
    return 0;
}

int rl_parse_check_body(const json_t *body, const struct rl_ruleset *set, struct rl_check *out,
                        int *batch, struct rl_parse_error *err)
{
    static const char *const batch_fields[] = {"checks", NULL};
    struct jv_error e = {0};
    json_t *arr;
    *batch = body && json_object_get(body, "checks") != NULL;
    if (!*batch)
        return rl_parse_check(body, set, 1, out, err) == 0 ? 1 : -1;
    if (jv_only(body, batch_fields, &e) < 0 ||
        jv_array(body, "checks", JV_REQUIRED, 1, RL_BATCH_MAX, &arr, &e) < 0)
        return perr(err, 400, "invalid_request", e.field, e.detail);
    size_t n = json_array_size(arr);
    for (size_t i = 0; i < n; i++) {
        if (rl_parse_check(json_array_get(arr, i), set, 1, &out[i], err) < 0) {
            char field[sizeof(err->field)];
            memcpy(field, err->field, sizeof(field));
            /* Known member names are short ("rule", "key", "cost"); an unknown one is cut,
             * at a character boundary so the answer stays valid JSON. */
            snprintf(err->field, sizeof(err->field), "checks[%zu].%.*s", i,
                     (int)jv_utf8_prefix(field, 16), field);
            return -1;
        }
    }
    return (int)n;
}

int rl_parse_breaker(const json_t *body, struct jv_error *e)
{
    static const char *const fields[] = {"action", NULL};
    static const char *const actions[] = {"reset", "force_open", "disable"};
    const char *action;
    if (jv_only(body, fields, e) < 0 ||
        jv_string(body, "action", JV_REQUIRED, 1, 32, &action, NULL, e) < 0)
        return -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(action, actions[i]) == 0)
            return i;
    return jv_fail(e, "action", "must be reset, force_open or disable");
}
