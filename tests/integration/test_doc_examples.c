/* SPDX-License-Identifier: Apache-2.0 */
/* The curl examples of the API pages (docs/api) run as written, in order, against make run: the
 * test starts deploy/scripts/run-local.sh (what make run runs: a private Redis and the four daemons
 * with the demo settings) on four free ports, then runs each page's examples with
 * tools/doc-examples.sh, which checks every answer's status against the one the page
 * declares. The pages name the default ports 127.0.0.1:8081..8084; the script rewrites only
 * those port numbers to the test's (PORT_BASE), nothing else of a command. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>

#include "test_ops_util.h"

static const char *const pages[] = {"ratelimitd", "auditd", "idemd", "tokend"};
#define NPAGES (sizeof(pages) / sizeof(pages[0]))

static struct th_proc run;
static int base;

static int setup(void **state)
{
    (void)state;
    char tmp[256], env_base[32], env_dir[320], script[1100], build[1100];
    if (access(ops_src("deploy/scripts/run-local.sh"), R_OK) != 0) {
        fprintf(stderr, "no source tree (WARDEN_SRC)\n");
        return -1;
    }
    if (!ops_which("curl") || !ops_which("jq") || !ops_which("redis-server"))
        return 0; /* each test skips, saying why */
    base = ops_free_base();
    if (base < 0 || th_tmpdir(tmp, sizeof(tmp)) != 0)
        return -1;
    snprintf(env_base, sizeof(env_base), "PORT_BASE=%d", base);
    snprintf(env_dir, sizeof(env_dir), "RUN_DIR=%s/run", tmp);
    snprintf(script, sizeof(script), "%s", ops_src("deploy/scripts/run-local.sh"));
    snprintf(build, sizeof(build), "%s", th_bin("."));
    const char *argv[] = {"sh", script, build, NULL};
    const char *env[] = {env_base, env_dir, NULL};
    if (th_proc_start(&run, "/bin/sh", argv, env, 0) != 0)
        return -1;
    /* run-local.sh prints this line once every daemon answers /health */
    for (int64_t end = th_now_ms() + th_ms(30000); th_now_ms() < end;) {
        if (th_proc_log_contains(&run, "Ctrl-C stops everything."))
            return 0;
        if (th_proc_log_contains(&run, "run: ")) /* it failed and is stopping */
            break;
        usleep(50 * 1000);
    }
    char *log = th_proc_log(&run);
    fprintf(stderr, "make run did not start:\n%s\n", log ? log : "");
    free(log);
    th_proc_stop(&run, SIGTERM, 10000);
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    /* SIGTERM is make run's Ctrl-C: it stops the daemons and Redis, then exits 0 */
    if (run.pid > 0 && th_proc_stop(&run, SIGTERM, 10000) != 0)
        fprintf(stderr, "make run did not stop cleanly\n");
    return 0;
}

/* Run the examples of docs/api/<name>.md; fail with what they printed unless every status
 * is as declared, and unless the page declares some (a page whose examples were all
 * fenced no-run would prove nothing). */
static void test_page_examples(void **state)
{
    const char *name = *state;
    if (!ops_which("curl") || !ops_which("jq") || !ops_which("redis-server")) {
        print_message("curl, jq or redis-server is not installed (make deps): SKIPPED\n");
        skip();
    }
    char script[1100], page[64], env_base[32], want[160], *out = NULL, *err = NULL;
    snprintf(script, sizeof(script), "%s", ops_src("tools/doc-examples.sh"));
    snprintf(page, sizeof(page), "docs/api/%s.md", name);
    snprintf(env_base, sizeof(env_base), "PORT_BASE=%d", base);
    const char *argv[] = {"sh", script, page, NULL};
    const char *env[] = {env_base, NULL};
    int st = th_run("/bin/sh", argv, env, &out, &err, th_ms(60000));
    if (st != 0)
        fail_msg("the examples of %s: exit %d\n%s%s", page, st, out ? out : "", err ? err : "");
    snprintf(want, sizeof(want), "%s: ", page);
    const char *line = out ? strstr(out, want) : NULL;
    long declared = line ? strtol(line + strlen(want), NULL, 10) : -1;
    if (!line || declared < 5)
        fail_msg("%s declares %ld statuses; its examples are not being checked:\n%s", page,
                 declared, out ? out : "");
    assert_non_null(line ? strstr(line, "every answer as declared") : NULL);
    free(out);
    free(err);
}

/* Every page of docs/api is one of those above, so a new page cannot go unchecked. */
static void test_every_api_page_is_run(void **state)
{
    (void)state;
    DIR *d = opendir(ops_src("docs/api"));
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name), i;
        if (len < 4 || strcmp(e->d_name + len - 3, ".md") != 0)
            continue;
        for (i = 0; i < NPAGES; i++)
            if (strlen(pages[i]) == len - 3 && strncmp(e->d_name, pages[i], len - 3) == 0)
                break;
        if (i == NPAGES)
            fail_msg("docs/api/%s has examples no test runs: add it to test_doc_examples.c",
                     e->d_name);
        n++;
    }
    closedir(d);
    assert_int_equal(n, (int)NPAGES);
}

int main(void)
{
    /* one test per page, named after it, with the page's name as its state */
    struct CMUnitTest tests[1 + NPAGES] = {cmocka_unit_test(test_every_api_page_is_run)};
    static char names[NPAGES][48];
    for (size_t i = 0; i < NPAGES; i++) {
        snprintf(names[i], sizeof(names[i]), "test_%s_examples", pages[i]);
        tests[1 + i] = (struct CMUnitTest){
            .name = names[i], .test_func = test_page_examples, .initial_state = (void *)pages[i]};
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
