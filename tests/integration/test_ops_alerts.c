/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of deploy/prometheus/alerts.yml: promtool accepts the rules and their
 * unit tests pass (when promtool is installed: skipped, and said so, when not); every alert
 * the operations issue asks for is there with a comment saying what to do; and every
 * metric, label and value the rules use is one the running daemons really export. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>

#include "test_ops_util.h"

#define NDAEMONS 4
static const char *const DAEMONS[NDAEMONS] = {"ratelimitd", "auditd", "idemd", "tokend"};

static struct th_redis redis;
static struct th_proc daemons[NDAEMONS];
static char *rules;

static int setup(void **state)
{
    (void)state;
    rules = ops_read(ops_src("deploy/prometheus/alerts.yml"));
    if (!rules) {
        fprintf(stderr, "no deploy/prometheus/alerts.yml: run from the checkout (WARDEN_SRC)\n");
        return -1;
    }
    if (th_redis_start(&redis, NULL) != 0)
        return -1;
    const char *env[NDAEMONS][3] = {
        {NULL},
        {"AUDIT_PRIVATE_KEY_V1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", NULL},
        {NULL},
        {"TOKEN_HASH_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "TOKEN_REUSE_GRACE=0",
         NULL},
    };
    for (int d = 0; d < NDAEMONS; d++) {
        char bin[64];
        snprintf(bin, sizeof(bin), "bin/%s", DAEMONS[d]);
        if (th_daemon_start(&daemons[d], bin, redis.url, env[d]) != 0)
            return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int d = 0; d < NDAEMONS; d++)
        th_proc_stop(&daemons[d], SIGTERM, 5000);
    th_redis_stop(&redis);
    free(rules);
    return 0;
}

static void test_promtool_checks_and_tests_the_rules(void **state)
{
    (void)state;
    const char *tool = ops_which("promtool");
    if (!tool) {
        print_message("promtool is not installed (Debian package prometheus): SKIPPED\n");
        skip();
    }
    char promtool[1024], alerts[1024], tests[1024], *out = NULL, *err = NULL;
    snprintf(promtool, sizeof(promtool), "%s", tool);
    snprintf(alerts, sizeof(alerts), "%s", ops_src("deploy/prometheus/alerts.yml"));
    snprintf(tests, sizeof(tests), "%s", ops_src("deploy/prometheus/alerts.test.yml"));
    const char *check[] = {"promtool", "check", "rules", alerts, NULL};
    int st = th_run(promtool, check, NULL, &out, &err, 30000);
    if (st != 0 || !strstr(out, "SUCCESS"))
        fail_msg("promtool check rules: exit %d\n%s%s", st, out ? out : "", err ? err : "");
    free(out);
    free(err);
    out = err = NULL;
    const char *test[] = {"promtool", "test", "rules", tests, NULL};
    st = th_run(promtool, test, NULL, &out, &err, 30000);
    if (st != 0)
        fail_msg("promtool test rules: exit %d\n%s%s", st, out ? out : "", err ? err : "");
    free(out);
    free(err);
}

/* Each "- alert:" block: its text up to the next one, into buf. Returns the next block. */
static const char *alert_block(const char *p, char *buf, size_t size)
{
    const char *next = strstr(p + 1, "- alert: ");
    size_t n = next ? (size_t)(next - p) : strlen(p);
    snprintf(buf, size, "%.*s", (int)n, p);
    return next;
}

static void test_every_asked_alert_is_there_with_what_to_do(void **state)
{
    (void)state;
    /* the list: breaker open, pool exhaustion, /ready failing, audit CAS conflicts,
     * audit append errors, token reuse, idempotency lease_lost */
    static const char *const ASKED[] = {"ratelimitd_breaker_state",
                                        "_redis_pool_timeouts_total",
                                        "probe_success{job=\"warden-ready\"}",
                                        "auditd_cas_conflicts_total",
                                        "auditd_http_requests_total{route=~\"/v1/events",
                                        "tokend_refresh_total{outcome=\"reused\"}",
                                        "outcome=\"lease_lost\"",
                                        NULL};
    for (int i = 0; ASKED[i]; i++)
        if (!strstr(rules, ASKED[i]))
            fail_msg("no alert on %s", ASKED[i]);
    int n = 0;
    char block[4096];
    for (const char *p = strstr(rules, "- alert: "); p; n++) {
        const char *next = alert_block(p, block, sizeof(block));
        int comments = 0;
        for (const char *c = strstr(block, "\n        # "); c; c = strstr(c + 1, "\n        # "))
            comments++;
        if (comments < 2 || !strstr(block, "summary:") || !strstr(block, "severity:"))
            fail_msg("this alert needs a comment saying what to do, a severity and a summary:\n%s",
                     block);
        p = next;
    }
    assert_true(n >= 7);
}

static char *metrics_of(int d)
{
    struct th_resp r;
    assert_int_equal(th_http(daemons[d].port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    char *body = strdup(r.body);
    th_resp_free(&r);
    return body;
}

/* The daemon whose prefix name has, or -1. */
static int daemon_of(const char *name)
{
    for (int d = 0; d < NDAEMONS; d++) {
        size_t n = strlen(DAEMONS[d]);
        if (strncmp(name, DAEMONS[d], n) == 0 && name[n] == '_')
            return d;
    }
    return -1;
}

/* The metric names in a rule text: plain ones, and __name__ patterns of the form
 * "A(x|y)B" expanded into each alternative. */
static void metric_names(const char *text, struct ops_set *out)
{
    struct ops_set pats = {0};
    ops_set_scan(out, text, "[^_a-z]((ratelimitd|auditd|idemd|tokend)_[a-z_]+[a-z])", 0);
    ops_set_scan(&pats, text, "__name__=~\"([^\"]+)\"", 0);
    for (int i = 0; i < pats.n; i++) {
        char *p = pats.items[i], *open = strchr(p, '('), *close = strchr(p, ')');
        assert_non_null(open);
        assert_non_null(close);
        char alts[256];
        snprintf(alts, sizeof(alts), "%.*s", (int)(close - open - 1), open + 1);
        for (char *a = strtok(alts, "|"); a; a = strtok(NULL, "|")) {
            char name[256];
            snprintf(name, sizeof(name), "%.*s%s%s", (int)(open - p), p, a, close + 1);
            ops_set_add(out, name, strlen(name), 0);
        }
    }
    ops_set_free(&pats);
}

static void test_rules_use_what_the_daemons_export(void **state)
{
    (void)state;
    char *tests = ops_read(ops_src("deploy/prometheus/alerts.test.yml"));
    struct ops_set names = {0};
    metric_names(rules, &names);
    if (tests)
        metric_names(tests, &names); /* the unit tests feed the same series */
    char *text[NDAEMONS];
    for (int d = 0; d < NDAEMONS; d++)
        text[d] = metrics_of(d);
    assert_true(names.n >= 8);
    for (int i = 0; i < names.n; i++) {
        int d = daemon_of(names.items[i]);
        char type[256];
        if (d < 0)
            continue; /* partial names such as the idemd_ of a pattern */
        snprintf(type, sizeof(type), "# TYPE %s ", names.items[i]);
        if (!strstr(text[d], type))
            fail_msg("the rules use %s, which %s does not export", names.items[i], DAEMONS[d]);
    }
    for (int d = 0; d < NDAEMONS; d++)
        free(text[d]);
    ops_set_free(&names);
    free(tests);
}

/* POST json to daemon d; the status, and the answer's string field name into out. */
static int post(int d, const char *path, const char *json, const char *name, char *out, size_t size)
{
    struct th_resp r;
    assert_int_equal(th_post_json(daemons[d].port, path, json, &r), 0);
    json_t *j = th_json(&r);
    const char *v = name ? json_string_value(json_object_get(j, name)) : NULL;
    if (out)
        snprintf(out, size, "%s", v ? v : "");
    json_decref(j);
    int st = r.status;
    th_resp_free(&r);
    return st;
}

/* The HTTP layer counts a request once its answer is written, so a scrape sent the moment
 * the answer arrives may come before the count: look again for up to a second. */
static void assert_metric(int d, const char *line)
{
    int64_t end = th_now_ms() + th_ms(1000);
    for (;;) {
        char *m = metrics_of(d);
        int found = strstr(m, line) != NULL;
        free(m);
        if (found)
            return;
        if (th_now_ms() > end)
            fail_msg("%s's /metrics lacks %s", DAEMONS[d], line);
        usleep(20000);
    }
}

/* The label values the rules select on, produced for real: an append, the breaker's admin
 * states, a refresh token presented twice, a completion after the lease was taken over. */
static void test_rules_label_values_are_real(void **state)
{
    (void)state;
    char t1[256], t2[256], body[512], lease[64];
    assert_int_equal(
        post(1, "/v1/events", "{\"actor\":\"u:1\",\"action\":\"ops.alert\"}", NULL, NULL, 0), 201);
    assert_metric(1,
                  "auditd_http_requests_total{route=\"/v1/events\",method=\"POST\",code=\"201\"}");
    static const char *const ACTION[][2] = {{"force_open", "ratelimitd_breaker_state 3"},
                                            {"disable", "ratelimitd_breaker_state 4"},
                                            {"reset", "ratelimitd_breaker_state 0"}};
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof(body), "{\"action\":\"%s\"}", ACTION[i][0]);
        assert_int_equal(post(0, "/v1/breaker", body, NULL, NULL, 0), 200);
        assert_metric(0, ACTION[i][1]);
    }
    const char *fp = "\"device_id\":\"d\",\"user_agent\":\"Mozilla/5.0 Chrome/120.0.0.0\"";
    snprintf(body, sizeof(body), "{\"user_id\":\"u\",\"client_id\":\"c\",%s}", fp);
    assert_int_equal(post(3, "/v1/tokens", body, "refresh_token", t1, sizeof(t1)), 201);
    snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\",%s}", t1, fp);
    assert_int_equal(post(3, "/v1/tokens/refresh", body, "refresh_token", t2, sizeof(t2)), 200);
    assert_int_equal(post(3, "/v1/tokens/refresh", body, NULL, NULL, 0), 401); /* t1 again */
    assert_metric(3, "tokend_refresh_total{outcome=\"reused\"} 1");
    const char *claim = "{\"scope\":\"ops\",\"key\":\"k\",\"fingerprint\":\"f\",\"lease_ms\":1000}";
    assert_int_equal(post(2, "/v1/claim", claim, "lease_token", lease, sizeof(lease)), 201);
    usleep(1200 * 1000);
    assert_int_equal(post(2, "/v1/claim", claim, NULL, NULL, 0), 201); /* taken over */
    snprintf(body, sizeof(body),
             "{\"scope\":\"ops\",\"key\":\"k\",\"lease_token\":\"%s\",\"status\":200}", lease);
    assert_int_equal(post(2, "/v1/complete", body, NULL, NULL, 0), 409);
    assert_metric(2, "idemd_completions_total{outcome=\"lease_lost\"} 1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_promtool_checks_and_tests_the_rules),
        cmocka_unit_test(test_every_asked_alert_is_there_with_what_to_do),
        cmocka_unit_test(test_rules_use_what_the_daemons_export),
        cmocka_unit_test(test_rules_label_values_are_real),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
