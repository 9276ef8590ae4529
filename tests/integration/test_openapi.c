/* SPDX-License-Identifier: Apache-2.0 */
/* docs/openapi/<daemon>.yaml and the daemon's route table name the same routes: every
 * app_route(a, "METHOD", "/path", ...) of the daemon's sources, plus the routes libshared's
 * app.c gives every daemon (/health, /ready, /metrics), is an operation of the YAML, and the
 * YAML has no other. A path parameter ":name" (and a rest-of-path "*name") of the code is
 * "{name}" in OpenAPI. tools/openapi-routes.py reads the YAML with PyYAML, checks that it
 * holds together (OpenAPI 3.1, $refs, path parameters, 2xx answers) and lists it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_ops_util.h"

static const char *const daemons[] = {"ratelimitd", "auditd", "idemd", "tokend"};
#define NDAEMONS (sizeof(daemons) / sizeof(daemons[0]))

/* Add "METHOD /path" for every call of text matching pattern (group 1 the method, group 2
 * the path), with :name and *name segments written {name}. Returns how many calls. */
static int scan_routes(struct ops_set *s, const char *text, const char *pattern)
{
    regex_t re;
    regmatch_t m[3];
    int n = 0;
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED), 0);
    for (const char *p = text; regexec(&re, p, 3, m, 0) == 0; p += m[0].rm_eo) {
        char route[300];
        int off =
            snprintf(route, sizeof(route), "%.*s ", (int)(m[1].rm_eo - m[1].rm_so), p + m[1].rm_so);
        for (const char *c = p + m[2].rm_so; c < p + m[2].rm_eo && off < 290; c++) {
            int param = (*c == ':' || *c == '*') && c[-1] == '/';
            if (param) {
                size_t len = strcspn(c + 1, "/\"");
                off +=
                    snprintf(route + off, sizeof(route) - (size_t)off, "{%.*s}", (int)len, c + 1);
                c += len;
            } else {
                route[off++] = *c;
            }
        }
        route[off] = '\0';
        ops_set_add(s, route, strlen(route), 0);
        n++;
    }
    regfree(&re);
    return n;
}

/* How many times needle occurs in text. */
static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The routes of a daemon's sources (every .c file of its folder) and of libshared's app.c. */
static void code_routes(struct ops_set *s, const char *daemon)
{
    char dir[1100];
    snprintf(dir, sizeof(dir), "%s", ops_src(daemon));
    DIR *d = opendir(dir);
    struct dirent *e;
    int calls = 0, found = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 3 || strcmp(e->d_name + len - 2, ".c") != 0)
            continue;
        char path[1400];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        char *text = ops_read(path);
        assert_non_null(text);
        calls += count_of(text, "app_route(");
        found += scan_routes(s, text,
                             "app_route\\([^,]+,[[:space:]]*\"([A-Z]+)\",[[:space:]]*\"([^\"]+)\"");
        free(text);
    }
    closedir(d);
    /* a call this test cannot read (a path from a variable, a macro) must not go unseen */
    if (calls != found)
        fail_msg("%s: %d app_route( calls, %d of them read as (\"METHOD\", \"/path\")", daemon,
                 calls, found);
    assert_true(found >= 3);
    char *app = ops_read(ops_src("libshared/src/app.c"));
    assert_non_null(app);
    assert_int_equal(
        scan_routes(s, app,
                    "http_route\\(a->http,[[:space:]]*\"([A-Z]+)\",[[:space:]]*\"([^\"]+)\""),
        3);
    free(app);
}

/* The operations docs/openapi/<daemon>.yaml lists (failing with the checker's complaints). */
static void yaml_routes(struct ops_set *s, const char *daemon)
{
    char script[1100], yaml[1100], *out = NULL, *err = NULL;
    snprintf(script, sizeof(script), "%s", ops_src("tools/openapi-routes.py"));
    char rel[64];
    snprintf(rel, sizeof(rel), "docs/openapi/%s.yaml", daemon);
    snprintf(yaml, sizeof(yaml), "%s", ops_src(rel));
    const char *argv[] = {"python3", script, yaml, daemon, NULL};
    char python[1024];
    snprintf(python, sizeof(python), "%s", ops_which("python3"));
    int st = th_run(python, argv, NULL, &out, &err, th_ms(30000));
    if (st != 0)
        fail_msg("%s: exit %d\n%s", rel, st, err ? err : "");
    for (const char *line = out; line && *line;) {
        size_t len = strcspn(line, "\n");
        if (len > 0)
            ops_set_add(s, line, len, 0);
        line += len + (line[len] == '\n');
    }
    free(out);
    free(err);
}

static void test_openapi_matches_routes(void **state)
{
    const char *daemon = *state;
    OPS_NEED_SOURCE();
    const char *check[] = {"python3", "-c", "import yaml", NULL};
    if (!ops_which("python3") ||
        th_run(ops_which("python3"), check, NULL, NULL, NULL, 30000) != 0) {
        print_message("python3 with PyYAML is not installed (make deps: python3-yaml): SKIPPED\n");
        skip();
    }
    struct ops_set code = {0}, doc = {0};
    char missing[2048], extra[2048];
    code_routes(&code, daemon);
    yaml_routes(&doc, daemon);
    int nm = ops_set_minus(&code, &doc, missing, sizeof(missing));
    int ne = ops_set_minus(&doc, &code, extra, sizeof(extra));
    if (nm || ne)
        fail_msg("docs/openapi/%s.yaml and %s's routes differ:\n  routes the YAML lacks:%s\n"
                 "  operations %s does not have:%s",
                 daemon, daemon, nm ? missing : " none", daemon, ne ? extra : " none");
    assert_int_equal(code.n, doc.n);
    ops_set_free(&code);
    ops_set_free(&doc);
}

/* Every file of docs/openapi describes one of the daemons above. */
static void test_every_description_is_checked(void **state)
{
    (void)state;
    OPS_NEED_SOURCE();
    struct ops_set files = {0}, want = {0};
    char extra[1024], missing[1024];
    DIR *d = opendir(ops_src("docs/openapi"));
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            ops_set_add(&files, e->d_name, strlen(e->d_name), 0);
    closedir(d);
    for (size_t i = 0; i < NDAEMONS; i++) {
        char name[64];
        int len = snprintf(name, sizeof(name), "%s.yaml", daemons[i]);
        ops_set_add(&want, name, (size_t)len, 0);
    }
    if (ops_set_minus(&files, &want, extra, sizeof(extra)) ||
        ops_set_minus(&want, &files, missing, sizeof(missing)))
        fail_msg("docs/openapi: files no test checks:%s; files missing:%s", extra, missing);
    ops_set_free(&files);
    ops_set_free(&want);
}

int main(void)
{
    /* one test per daemon, named after it, with the daemon's name as its state */
    struct CMUnitTest tests[1 + NDAEMONS] = {cmocka_unit_test(test_every_description_is_checked)};
    static char names[NDAEMONS][48];
    for (size_t i = 0; i < NDAEMONS; i++) {
        snprintf(names[i], sizeof(names[i]), "test_%s_openapi_matches_routes", daemons[i]);
        tests[1 + i] = (struct CMUnitTest){.name = names[i],
                                           .test_func = test_openapi_matches_routes,
                                           .initial_state = (void *)daemons[i]};
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
