/* SPDX-License-Identifier: Apache-2.0 */
/* make install gives a working system: every program as warden-<name> that runs from
 * where it lands, a man page for each (section 8 for daemons, 1 for tools) that mandoc
 * lints clean, systemd units whose paths (program, environment file, docs) exist in the
 * installed tree, an example environment file per daemon that the daemon accepts, the
 * Redis files, the backup and restore scripts, and docs whose links resolve where they are
 * installed. (The restore drill from this installed tree is test_ops_restore.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_ops_util.h"

#define NDAEMONS 4
static const char *const DAEMONS[NDAEMONS] = {"ratelimitd", "auditd", "idemd", "tokend"};
static const char *const TOOLS[] = {"audit-verify", "audit-export", NULL};
/* What each daemon needs set, besides its example file, for --check-config to pass. */
static const char *const NEEDS[NDAEMONS] = {
    NULL, "AUDIT_PRIVATE_KEY_V1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", NULL,
    "TOKEN_HASH_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="};

static char root[300];

static int setup(void **state)
{
    (void)state;
    char tmp[256];
    if (access(ops_src("deploy/redis/redis.conf"), R_OK) != 0) {
        fprintf(stderr, "the source tree is not in the current directory (WARDEN_SRC)\n");
        return -1;
    }
    if (th_tmpdir(tmp, sizeof(tmp)) != 0)
        return -1;
    snprintf(root, sizeof(root), "%s/root", tmp);
    return ops_install(root) == 0 ? 0 : -1;
}

/* root + rel, in a thread-local buffer. */
static const char *in_root(const char *rel)
{
    static __thread char buf[1024];
    snprintf(buf, sizeof(buf), "%s%s", root, rel);
    return buf;
}

static void must_exist(const char *rel, int mode)
{
    if (access(in_root(rel), mode) != 0)
        fail_msg("make install did not install %s", rel);
}

static void test_programs_are_warden_names_and_run(void **state)
{
    (void)state;
    const char *const *lists[2] = {DAEMONS, TOOLS};
    int counts[2] = {NDAEMONS, 2};
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < counts[l]; i++) {
            char rel[128], *out = NULL, want[128];
            snprintf(rel, sizeof(rel), "/usr/bin/warden-%s", lists[l][i]);
            must_exist(rel, X_OK);
            const char *argv[] = {rel + 9, "--version", NULL};
            assert_int_equal(th_run(in_root(rel), argv, NULL, &out, NULL, 5000), 0);
            snprintf(want, sizeof(want), "warden-%s ", lists[l][i]);
            assert_non_null(out);
            assert_int_equal(strncmp(out, want, strlen(want)), 0);
            free(out);
            /* the short name, which Debian's audit daemon (auditd) owns, is not installed */
            snprintf(rel, sizeof(rel), "/usr/bin/%s", lists[l][i]);
            assert_int_not_equal(access(in_root(rel), F_OK), 0);
        }
}

/* mandoc's terminal output without its overstrike ("x\bx" for bold, "_\bx" for italics). */
static void strip_overstrike(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] != '\b' && p[1] == '\b' && p[2])
            continue; /* drop the character before the backspace, keep the one after */
        if (p[0] == '\b')
            continue;
        *o++ = *p;
    }
    *o = '\0';
}

static void test_man_pages_lint_clean(void **state)
{
    (void)state;
    const char *mandoc = ops_which("mandoc");
    if (!mandoc)
        fail_msg("mandoc is not installed (make deps)");
    char tool[1024];
    snprintf(tool, sizeof(tool), "%s", mandoc);
    for (int k = 0; k < NDAEMONS + 2; k++) {
        int daemon = k < NDAEMONS;
        const char *name = daemon ? DAEMONS[k] : TOOLS[k - NDAEMONS];
        char rel[160], page[1100], *out = NULL, *err = NULL, want[128];
        snprintf(rel, sizeof(rel), "/usr/share/man/man%d/warden-%s.%d", daemon ? 8 : 1, name,
                 daemon ? 8 : 1);
        must_exist(rel, R_OK);
        snprintf(page, sizeof(page), "%s", in_root(rel));
        const char *lint[] = {"mandoc", "-T", "lint", page, NULL};
        int st = th_run(tool, lint, NULL, &out, &err, 10000);
        if (st != 0 || (out && *out) || (err && *err))
            fail_msg("mandoc -T lint %s: exit %d\n%s%s", rel, st, out ? out : "", err ? err : "");
        free(out);
        free(err);
        out = NULL;
        const char *render[] = {"mandoc", "-T", "ascii", page, NULL};
        assert_int_equal(th_run(tool, render, NULL, &out, NULL, 10000), 0);
        assert_non_null(out);
        strip_overstrike(out);
        snprintf(want, sizeof(want), "warden-%s - ", name);
        if (!strstr(out, want))
            fail_msg("%s has no NAME line \"%s\"", rel, want);
        if (!strstr(out, "--version") || !strstr(out, daemon ? "ENVIRONMENT" : "EXIT STATUS"))
            fail_msg("%s lacks its options or its %s section", rel,
                     daemon ? "ENVIRONMENT" : "EXIT STATUS");
        free(out);
    }
}

static void test_units_point_at_the_installed_tree(void **state)
{
    (void)state;
    for (int d = 0; d < NDAEMONS; d++) {
        char rel[128], v[512], page[128];
        snprintf(rel, sizeof(rel), "/lib/systemd/system/warden-%s.service", DAEMONS[d]);
        must_exist(rel, R_OK);
        char *text = ops_read(in_root(rel));
        assert_non_null(text);
        assert_non_null(ops_unit_value(text, "ExecStart", v, sizeof(v)));
        must_exist(v, X_OK);
        assert_non_null(strstr(v, "/usr/bin/warden-"));
        assert_non_null(ops_unit_value(text, "EnvironmentFile", v, sizeof(v)));
        must_exist(v[0] == '-' ? v + 1 : v, R_OK);
        assert_non_null(ops_unit_value(text, "Documentation", v, sizeof(v)));
        snprintf(page, sizeof(page), "man:warden-%s(8)", DAEMONS[d]);
        assert_non_null(strstr(v, page));
        const char *file = strstr(v, "file://");
        assert_non_null(file);
        char path[256];
        snprintf(path, sizeof(path), "%.*s", (int)strcspn(file + 7, " "), file + 7);
        must_exist(path, R_OK);
        free(text);
    }
}

/* The NAME=value lines of an example environment file, into env (at most max - 1). */
static int env_lines(char *text, const char **env, int max)
{
    int n = 0;
    for (char *l = strtok(text, "\n"); l && n < max - 1; l = strtok(NULL, "\n"))
        if (l[0] != '#' && strchr(l, '='))
            env[n++] = l;
    env[n] = NULL;
    return n;
}

static void test_example_env_files_are_accepted(void **state)
{
    (void)state;
    for (int d = 0; d < NDAEMONS; d++) {
        char rel[128], *out = NULL, *err = NULL;
        snprintf(rel, sizeof(rel), "/etc/warden/%s.env", DAEMONS[d]);
        must_exist(rel, R_OK);
        char *text = ops_read(in_root(rel));
        const char *env[32];
        int n = env_lines(text, env, 31);
        assert_true(n >= 1); /* at least LISTEN_ADDR */
        if (NEEDS[d])
            env[n++] = NEEDS[d], env[n] = NULL;
        snprintf(rel, sizeof(rel), "/usr/bin/warden-%s", DAEMONS[d]);
        const char *argv[] = {rel + 9, "--check-config", NULL};
        int st = th_run(in_root(rel), argv, env, &out, &err, 5000);
        if (st != 0)
            fail_msg("%s with its example environment: exit %d\n%s", rel, st, err ? err : "");
        free(out);
        free(err);
        free(text);
    }
}

static void test_ops_files_and_docs(void **state)
{
    (void)state;
    static const char *const FILES[] = {"/usr/share/warden/redis/redis.conf",
                                        "/usr/share/warden/redis/gen-acl.sh",
                                        "/usr/share/warden/scripts/backup.sh",
                                        "/usr/share/warden/scripts/restore-test.sh",
                                        "/usr/share/warden/lua-scripts/idem_claim.lua",
                                        "/usr/share/warden/prometheus/alerts.yml",
                                        "/usr/share/doc/warden/README.md",
                                        "/usr/share/doc/warden/operations.md",
                                        "/usr/share/doc/warden/api/idemd.md",
                                        "/usr/share/doc/warden/openapi/idemd.yaml",
                                        "/usr/share/doc/warden/CHANGELOG.md",
                                        NULL};
    for (int i = 0; FILES[i]; i++)
        must_exist(FILES[i], R_OK);
    /* every relative link of the installed docs resolves inside the installed doc dir */
    static const char *const DOCS[] = {
        "README.md",         "operations.md", "api/auditd.md", "api/idemd.md",
        "api/ratelimitd.md", "api/tokend.md", "auditing.md",   NULL};
    regex_t link;
    regmatch_t m[2];
    assert_int_equal(regcomp(&link, "\\]\\(([^)#: ]+)(#[^)]*)?\\)", REG_EXTENDED), 0);
    for (int i = 0; DOCS[i]; i++) {
        char rel[256], dir[256];
        snprintf(rel, sizeof(rel), "/usr/share/doc/warden/%s", DOCS[i]);
        snprintf(dir, sizeof(dir), "%s", rel);
        *strrchr(dir, '/') = '\0';
        char *text = ops_read(in_root(rel));
        assert_non_null(text);
        for (const char *p = text; regexec(&link, p, 2, m, 0) == 0; p += m[0].rm_eo) {
            char target[600];
            snprintf(target, sizeof(target), "%s/%.*s", dir, (int)(m[1].rm_eo - m[1].rm_so),
                     p + m[1].rm_so);
            if (access(in_root(target), R_OK) != 0)
                fail_msg("installed %s links to %s, which is not installed", DOCS[i], target);
        }
        free(text);
    }
    regfree(&link);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_programs_are_warden_names_and_run),
        cmocka_unit_test(test_man_pages_lint_clean),
        cmocka_unit_test(test_units_point_at_the_installed_tree),
        cmocka_unit_test(test_example_env_files_are_accepted),
        cmocka_unit_test(test_ops_files_and_docs),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
