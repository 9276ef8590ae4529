/* SPDX-License-Identifier: Apache-2.0 */
/* METRICS_ADDR and what a Prometheus scraper expects: a second listener serves /metrics,
 * /health and /ready (and nothing of the API) while the API listener keeps answering all
 * three; every daemon's exposition passes `promtool check metrics`; the standard process_*
 * metrics are there with sane values; every counter is a counter named *_total (the pool's
 * closed connections as redis_pool_stale_connections_total); labelled counters show their
 * known label values at 0 before anything happened. The Grafana dashboard's queries parse
 * (promtool check rules) and name only metrics the daemons export. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <time.h>

#include "test_ops_util.h"

#define NDAEMONS 4
static const char *const DAEMONS[NDAEMONS] = {"ratelimitd", "auditd", "idemd", "tokend"};

static struct th_redis redis;
static struct th_proc daemons[NDAEMONS];
static int mports[NDAEMONS];
static char tmp[256];

static int setup(void **state)
{
    (void)state;
    if (th_tmpdir(tmp, sizeof(tmp)) != 0 || th_redis_start(&redis, NULL) != 0)
        return -1;
    for (int d = 0; d < NDAEMONS; d++) {
        char bin[64], maddr[64];
        mports[d] = th_free_port();
        snprintf(bin, sizeof(bin), "bin/%s", DAEMONS[d]);
        snprintf(maddr, sizeof(maddr), "METRICS_ADDR=127.0.0.1:%d", mports[d]);
        const char *env[] = {maddr,
                             "AUDIT_PRIVATE_KEY_V1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
                             "TOKEN_HASH_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", NULL};
        if (th_daemon_start(&daemons[d], bin, redis.url, env) != 0)
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
    return 0;
}

static int get_status(int port, const char *path)
{
    struct th_resp r = {0};
    if (th_http(port, "GET", path, NULL, NULL, 0, &r) != 0)
        return -1;
    int st = r.status;
    th_resp_free(&r);
    return st;
}

/* GET /metrics on port: the body (caller frees). */
static char *scrape(int port)
{
    struct th_resp r = {0};
    char ctype[128];
    assert_int_equal(th_http(port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(th_header(&r, "Content-Type", ctype, sizeof(ctype)));
    assert_non_null(strstr(ctype, "text/plain; version=0.0.4"));
    char *body = strdup(r.body);
    th_resp_free(&r);
    return body;
}

/* The value of the sample line starting with series ("name" or "name{...}"), or -1e300. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1e300;
}

static void test_metrics_addr_serves_scrapes_and_probes_only(void **state)
{
    (void)state;
    for (int d = 0; d < NDAEMONS; d++) {
        char want[96];
        char *text = scrape(mports[d]);
        snprintf(want, sizeof(want), "%s_build_info{version=\"", DAEMONS[d]);
        assert_non_null(strstr(text, want));
        free(text);
        assert_int_equal(get_status(mports[d], "/health"), 200);
        assert_int_equal(get_status(mports[d], "/ready"), 200);
        /* nothing of the API there */
        assert_int_equal(get_status(mports[d], "/v1/keys"), 404);
        assert_int_equal(get_status(mports[d], "/v1/rules"), 404);
        /* and the API listener still answers all three */
        assert_int_equal(get_status(daemons[d].port, "/health"), 200);
        assert_int_equal(get_status(daemons[d].port, "/ready"), 200);
        assert_int_equal(get_status(daemons[d].port, "/metrics"), 200);
    }
}

static void test_promtool_checks_every_daemon(void **state)
{
    (void)state;
    const char *tool = ops_which("promtool");
    if (!tool) {
        print_message("promtool is not installed (apt-get install prometheus; CI has it): "
                      "SKIPPED\n");
        skip();
    }
    char cmd[2100], path[400];
    for (int d = 0; d < NDAEMONS; d++) {
        char *text = scrape(mports[d]), *out = NULL, *err = NULL;
        snprintf(path, sizeof(path), "%s/%s.metrics", tmp, DAEMONS[d]);
        assert_int_equal(th_write_file(path, text), 0);
        snprintf(cmd, sizeof(cmd), "'%s' check metrics < '%s'", tool, path);
        const char *argv[] = {"sh", "-c", cmd, NULL};
        int st = th_run("/bin/sh", argv, NULL, &out, &err, 30000);
        if (st != 0 || (out && *out) || (err && *err))
            fail_msg("promtool check metrics on %s: exit %d\n%s%s", DAEMONS[d], st, out ? out : "",
                     err ? err : "");
        free(out);
        free(err);
        free(text);
    }
}

static void test_process_metrics(void **state)
{
    (void)state;
    double now = (double)time(NULL);
    for (int d = 0; d < NDAEMONS; d++) {
        char *text = scrape(daemons[d].port);
        assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
        double cpu = sample(text, "process_cpu_seconds_total");
        double rss = sample(text, "process_resident_memory_bytes");
        double fds = sample(text, "process_open_fds");
        double max = sample(text, "process_max_fds");
        double start = sample(text, "process_start_time_seconds");
        assert_true(cpu >= 0 && cpu < 3600);
        assert_true(rss > 1e6 && rss < 1e10); /* a daemon is more than 1 MB resident */
        assert_true(fds >= 4 && fds <= max);  /* stdio, listeners, Redis connections */
        assert_true(start > now - 600 && start <= now + 1);
        assert_true(sample(text, "process_virtual_memory_bytes") >= rss);
        free(text);
    }
}

static void test_counters_are_counters(void **state)
{
    (void)state;
    for (int d = 0; d < NDAEMONS; d++) {
        char *text = scrape(daemons[d].port), want[128];
        for (const char *p = strstr(text, "# TYPE "); p; p = strstr(p + 1, "# TYPE ")) {
            char name[128], type[32];
            assert_int_equal(sscanf(p, "# TYPE %127s %31s", name, type), 2);
            size_t n = strlen(name);
            int total = n > 6 && strcmp(name + n - 6, "_total") == 0;
            if (strcmp(type, "counter") == 0 && !total)
                fail_msg("%s: counter %s is not named *_total", DAEMONS[d], name);
            if (strcmp(type, "counter") != 0 && total)
                fail_msg("%s: %s is named *_total but is a %s", DAEMONS[d], name, type);
        }
        snprintf(want, sizeof(want), "# TYPE %s_redis_pool_stale_connections_total counter\n",
                 DAEMONS[d]);
        assert_non_null(strstr(text, want));
        free(text);
    }
}

static void test_known_label_values_start_at_zero(void **state)
{
    (void)state;
    static const struct {
        int daemon;
        const char *series;
    } ZERO[] = {
        {2, "idemd_claims_total{outcome=\"claimed\"}"},
        {2, "idemd_claims_total{outcome=\"mismatch\"}"},
        {2, "idemd_completions_total{outcome=\"lease_lost\"}"},
        {3, "tokend_refresh_total{outcome=\"reused\"}"},
        {3, "tokend_revoked_total{reason=\"reuse\"}"},
        {3, "tokend_fingerprint_drift_total{component=\"device_id\"}"},
        {0, "ratelimitd_fallback_decisions_total{mode=\"open\"}"},
        {1, "auditd_redis_errors_total{kind=\"timeout\"}"},
        {2, "idemd_redis_errors_total{kind=\"pool_timeout\"}"},
    };
    for (size_t i = 0; i < sizeof(ZERO) / sizeof(ZERO[0]); i++) {
        char *text = scrape(daemons[ZERO[i].daemon].port);
        if (sample(text, ZERO[i].series) != 0)
            fail_msg("%s is not at 0 from the start", ZERO[i].series);
        free(text);
    }
}

static void test_bad_metrics_addr_is_refused(void **state)
{
    (void)state;
    char *err = NULL;
    const char *argv[] = {"idemd", "--check-config", NULL};
    const char *env[] = {"METRICS_ADDR=9090", NULL};
    assert_int_equal(th_run(th_bin("bin/idemd"), argv, env, NULL, &err, 5000), 2);
    assert_non_null(err);
    assert_non_null(strstr(err, "METRICS_ADDR=9090"));
    free(err);
}

/* Every "expr" of the dashboard, into exprs (borrowed from doc). */
static int dashboard_exprs(json_t *doc, const char **exprs, int max)
{
    size_t i, k;
    json_t *panel, *target;
    int n = 0;
    json_array_foreach(json_object_get(doc, "panels"), i, panel)
    {
        json_array_foreach(json_object_get(panel, "targets"), k, target)
        {
            const char *e = json_string_value(json_object_get(target, "expr"));
            if (e && n < max)
                exprs[n++] = e;
        }
    }
    return n;
}

static void test_dashboard_queries_use_real_metrics(void **state)
{
    (void)state;
    json_error_t je;
    json_t *doc = json_load_file(ops_src("deploy/grafana/warden.json"), 0, &je);
    if (!doc)
        fail_msg("deploy/grafana/warden.json: %s (line %d)", je.text, je.line);
    const char *exprs[128];
    int n = dashboard_exprs(doc, exprs, 128);
    assert_true(n >= 10);
    /* every metric a query names is exported by a running daemon */
    char *all[NDAEMONS];
    for (int d = 0; d < NDAEMONS; d++)
        all[d] = scrape(daemons[d].port);
    regex_t name;
    regmatch_t m[2];
    assert_int_equal(
        regcomp(&name, "((ratelimitd|auditd|idemd|tokend|process)_[a-z_]+)", REG_EXTENDED), 0);
    for (int i = 0; i < n; i++)
        for (const char *p = exprs[i]; regexec(&name, p, 2, m, 0) == 0; p += m[0].rm_eo) {
            char metric[160], line[170];
            snprintf(metric, sizeof(metric), "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
                     p + m[1].rm_so);
            int found = 0;
            for (int d = 0; d < NDAEMONS && !found; d++) {
                snprintf(line, sizeof(line), "\n%s{", metric);
                found = strstr(all[d], line) != NULL;
                snprintf(line, sizeof(line), "\n%s ", metric);
                found = found || strstr(all[d], line) != NULL;
                /* a family with no series yet, or a histogram's _bucket of a family */
                char base[160];
                snprintf(base, sizeof(base), "%s", metric);
                char *suffix = strrchr(base, '_');
                if (suffix && (!strcmp(suffix, "_bucket") || !strcmp(suffix, "_sum") ||
                               !strcmp(suffix, "_count")))
                    *suffix = '\0';
                snprintf(line, sizeof(line), "# TYPE %s ", base);
                found = found || strstr(all[d], line) != NULL;
            }
            if (!found)
                fail_msg("the dashboard queries %s, which no daemon exports (%s)", metric,
                         exprs[i]);
        }
    regfree(&name);
    for (int d = 0; d < NDAEMONS; d++)
        free(all[d]);
    /* and each parses as PromQL: promtool checks them as recording rules */
    const char *tool = ops_which("promtool");
    if (tool) {
        char path[400], rule[1400], cmd[2100], *out = NULL, *err = NULL;
        snprintf(path, sizeof(path), "%s/dashboard-rules.yml", tmp);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs("groups:\n  - name: dashboard\n    rules:\n", f);
        for (int i = 0; i < n; i++) {
            snprintf(rule, sizeof(rule), "      - record: dashboard:query%d\n        expr: '%s'\n",
                     i, exprs[i]);
            fputs(rule, f);
        }
        fclose(f);
        snprintf(cmd, sizeof(cmd), "'%s' check rules '%s'", tool, path);
        const char *argv[] = {"sh", "-c", cmd, NULL};
        int st = th_run("/bin/sh", argv, NULL, &out, &err, 30000);
        if (st != 0)
            fail_msg("promtool check rules on the dashboard's queries: exit %d\n%s%s", st,
                     out ? out : "", err ? err : "");
        free(out);
        free(err);
    } else {
        print_message("promtool is not installed: the queries' syntax was not checked\n");
    }
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_addr_serves_scrapes_and_probes_only),
        cmocka_unit_test(test_promtool_checks_every_daemon),
        cmocka_unit_test(test_process_metrics),
        cmocka_unit_test(test_counters_are_counters),
        cmocka_unit_test(test_known_label_values_start_at_zero),
        cmocka_unit_test(test_bad_metrics_addr_is_refused),
        cmocka_unit_test(test_dashboard_queries_use_real_metrics),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
