/* SPDX-License-Identifier: Apache-2.0 */
/* The project files an operator and a contributor look for: the Apache-2.0 LICENSE, an
 * SPDX line at the top of every source file, CHANGELOG.md, SECURITY.md, CONTRIBUTING.md;
 * one version, the same in version.h, CHANGELOG.md, debian/changelog and every program's
 * --version; and docs that never send the reader outside the repository. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>

#include "test_ops_util.h"

#define SPDX "SPDX-License-Identifier: Apache-2.0"

/* Folders that hold no source of ours: VCS data, build output, run data, fuzz inputs, and
 * what the Debian tools leave under debian/ while building. */
static int skipped_dir(const char *rel)
{
    static const char *const SKIP[] = {
        ".git",       "build",         ".run", "backups", "tests/fuzz/corpus", "debian/.debhelper",
        "debian/tmp", "debian/warden", NULL};
    for (int i = 0; SKIP[i]; i++)
        if (strcmp(rel, SKIP[i]) == 0)
            return 1;
    return 0;
}

/* Is this file source that must carry the SPDX line? */
static int is_source(const char *rel)
{
    static const char *const EXT[] = {".c",       ".h",    ".sh",  ".lua", ".yml", ".yaml",
                                      ".service", ".conf", ".env", ".1",   ".8",   NULL};
    static const char *const NAMES[] = {"Makefile", "Dockerfile", ".ci/run", "debian/rules", NULL};
    const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
    for (int i = 0; NAMES[i]; i++)
        if (strcmp(base, NAMES[i]) == 0 || strcmp(rel, NAMES[i]) == 0)
            return 1;
    size_t n = strlen(base);
    for (int i = 0; EXT[i]; i++) {
        size_t e = strlen(EXT[i]);
        if (n > e && strcmp(base + n - e, EXT[i]) == 0)
            return 1;
    }
    return 0;
}

static struct {
    size_t root_len;
    int checked;
    char missing[4096];
    struct ops_set docs; /* every .md, relative to the root */
} walk;

/* The SPDX line is on line 1, or line 2 after a #! line. */
static int has_spdx(const char *text)
{
    const char *line2 = strchr(text, '\n');
    size_t first = line2 ? (size_t)(line2 - text) : strlen(text);
    if (memmem(text, first, SPDX, strlen(SPDX)))
        return 1;
    if (strncmp(text, "#!", 2) != 0 || !line2)
        return 0;
    const char *end = strchr(line2 + 1, '\n');
    size_t second = end ? (size_t)(end - line2 - 1) : strlen(line2 + 1);
    return memmem(line2 + 1, second, SPDX, strlen(SPDX)) != NULL;
}

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    const char *rel = path + walk.root_len;
    rel += *rel == '/';
    if (type == FTW_D && skipped_dir(rel))
        return FTW_SKIP_SUBTREE;
    if (type != FTW_F)
        return FTW_CONTINUE;
    size_t n = strlen(rel);
    if (n > 3 && strcmp(rel + n - 3, ".md") == 0)
        ops_set_add(&walk.docs, rel, n, 0);
    if (!is_source(rel))
        return FTW_CONTINUE;
    char *text = ops_read(path);
    walk.checked++;
    if (!text || !has_spdx(text)) {
        size_t used = strlen(walk.missing);
        snprintf(walk.missing + used, sizeof(walk.missing) - used, "\n  %s", rel);
    }
    free(text);
    return FTW_CONTINUE;
}

static int setup(void **state)
{
    (void)state;
    if (access(ops_src("deploy/redis/redis.conf"), R_OK) != 0) {
        fprintf(stderr, "the source tree is not in the current directory (WARDEN_SRC)\n");
        return -1;
    }
    char root[1024];
    snprintf(root, sizeof(root), "%s", ops_src("."));
    root[strlen(root) - 2] = '\0'; /* "<root>/." → "<root>" */
    walk.root_len = strlen(root);
    return nftw(root, visit, 32, FTW_PHYS | FTW_ACTIONRETVAL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ops_set_free(&walk.docs);
    return 0;
}

static void test_license_is_apache_2(void **state)
{
    (void)state;
    char *text = ops_read(ops_src("LICENSE"));
    assert_non_null(text);
    assert_non_null(strstr(text, "Apache License"));
    assert_non_null(strstr(text, "Version 2.0, January 2004"));
    assert_non_null(strstr(text, "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION"));
    assert_non_null(strstr(text, "END OF TERMS AND CONDITIONS"));
    free(text);
}

static void test_every_source_file_has_an_spdx_line(void **state)
{
    (void)state;
    assert_true(walk.checked > 200); /* the walk found the tree */
    if (walk.missing[0])
        fail_msg("no \"%s\" at the top of:%s", SPDX, walk.missing);
}

/* The newest "## [x.y.z]" of CHANGELOG.md. */
static void changelog_version(char *out, size_t size)
{
    char *text = ops_read(ops_src("CHANGELOG.md"));
    assert_non_null(text);
    const char *p = strstr(text, "\n## [");
    while (p && strncmp(p, "\n## [Unreleased]", 16) == 0)
        p = strstr(p + 1, "\n## [");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "\n## [%31[0-9.]]", out), 1);
    (void)size;
    free(text);
}

static void test_one_version_everywhere(void **state)
{
    (void)state;
    char want[32], line[128];
    changelog_version(want, sizeof(want));
    char *h = ops_read(ops_src("libshared/include/shared/version.h"));
    assert_non_null(h);
    snprintf(line, sizeof(line), "#define WARDEN_VERSION \"%s\"\n", want);
    if (!strstr(h, line))
        fail_msg("version.h and CHANGELOG.md (%s) disagree", want);
    free(h);
    char *deb = ops_read(ops_src("debian/changelog"));
    assert_non_null(deb);
    snprintf(line, sizeof(line), "warden (%s) ", want);
    if (strncmp(deb, line, strlen(line)) != 0)
        fail_msg("debian/changelog's newest entry is not %s: %.40s", want, deb);
    free(deb);
    static const char *const PROGRAMS[] = {"ratelimitd",   "auditd",       "idemd", "tokend",
                                           "audit-verify", "audit-export", NULL};
    for (int i = 0; PROGRAMS[i]; i++) {
        char rel[64], *out = NULL, expect[96];
        snprintf(rel, sizeof(rel), "bin/%s", PROGRAMS[i]);
        const char *argv[] = {PROGRAMS[i], "--version", NULL};
        assert_int_equal(th_run(th_bin(rel), argv, NULL, &out, NULL, 5000), 0);
        snprintf(expect, sizeof(expect), "warden-%s %s\n", PROGRAMS[i], want);
        if (!out || strcmp(out, expect) != 0)
            fail_msg("%s --version: \"%s\", want \"%s\"", PROGRAMS[i], out ? out : "", expect);
        free(out);
    }
}

static void test_project_files(void **state)
{
    (void)state;
    static const struct {
        const char *file, *must[4];
    } FILES[] = {
        {"SECURITY.md", {"## Reporting a vulnerability", "## Supported versions", NULL}},
        {"CONTRIBUTING.md", {"## Commits", "## Testing", "-Wmissing-prototypes", NULL}},
        {"CHANGELOG.md", {"## [Unreleased]", NULL}},
        {"README.md", {"make run", "make test", "LICENSE", NULL}},
    };
    for (size_t i = 0; i < sizeof(FILES) / sizeof(FILES[0]); i++) {
        char *text = ops_read(ops_src(FILES[i].file));
        if (!text)
            fail_msg("%s is missing", FILES[i].file);
        for (int k = 0; FILES[i].must[k]; k++)
            if (!strstr(text, FILES[i].must[k]))
                fail_msg("%s lacks %s", FILES[i].file, FILES[i].must[k]);
        free(text);
    }
}

/* "dir/../x/./y" → "x/y" (relative to the root); -1 if it climbs above the root. */
static int normalize_path(char *path)
{
    char *parts[64], buf[1024];
    int n = 0;
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *t = strtok(buf, "/"); t; t = strtok(NULL, "/")) {
        if (strcmp(t, ".") == 0)
            continue;
        if (strcmp(t, "..") == 0) {
            if (n == 0)
                return -1;
            n--;
        } else if (n < 64) {
            parts[n++] = t;
        }
    }
    char out[1024] = "";
    for (int i = 0; i < n; i++)
        snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", i ? "/" : "", parts[i]);
    size_t len = strlen(out);
    if (len >= 512) /* the callers' buffers hold 512 */
        return -1;
    memcpy(path, out, len + 1);
    return 0;
}

/* Every relative link of every .md file stays inside the repository and names a file that
 * exists; no page points at the design folder the project was written from. */
static void test_docs_stay_inside_the_repository(void **state)
{
    (void)state;
    regex_t link;
    regmatch_t m[2];
    char bad[4096] = "";
    assert_int_equal(regcomp(&link, "\\]\\(([^)#: ]+)(#[^)]*)?\\)", REG_EXTENDED), 0);
    assert_true(walk.docs.n >= 15);
    for (int i = 0; i < walk.docs.n; i++) {
        const char *doc = walk.docs.items[i];
        char *text = ops_read(ops_src(doc));
        assert_non_null(text);
        if (strstr(text, "shared/design") || strstr(text, "../shared/"))
            snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), "\n  %s: shared/design", doc);
        for (const char *p = text; regexec(&link, p, 2, m, 0) == 0; p += m[0].rm_eo) {
            char target[512];
            const char *slash = strrchr(doc, '/');
            snprintf(target, sizeof(target), "%.*s%s%.*s", slash ? (int)(slash - doc) : 0, doc,
                     slash ? "/" : "", (int)(m[1].rm_eo - m[1].rm_so), p + m[1].rm_so);
            if (normalize_path(target) != 0 || access(ops_src(target), R_OK) != 0)
                snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), "\n  %s: %.*s", doc,
                         (int)(m[1].rm_eo - m[1].rm_so), p + m[1].rm_so);
        }
        free(text);
    }
    regfree(&link);
    if (bad[0])
        fail_msg("links that leave the repository or lead nowhere:%s", bad);
}

/* A NAME.md that a source file, the Makefile or a config names is in the repository. */
static void test_cited_documents_exist(void **state)
{
    (void)state;
    static const char *const FILES[] = {"Makefile",      ".clang-format", ".clang-tidy", ".ci/run",
                                        "tools/lint.sh", "tools/deps.sh", NULL};
    struct ops_set cited = {0}, have = {0};
    for (int i = 0; i < walk.docs.n; i++) {
        const char *base = strrchr(walk.docs.items[i], '/');
        base = base ? base + 1 : walk.docs.items[i];
        ops_set_add(&have, base, strlen(base), 0);
    }
    for (int i = 0; FILES[i]; i++) {
        char *text = ops_read(ops_src(FILES[i]));
        if (text)
            ops_set_scan(&cited, text, "([A-Za-z][A-Za-z0-9_-]{2,}\\.md)", 0);
        free(text);
    }
    static const char *const DIRS[] = {"libshared/src",
                                       "libshared/include/shared",
                                       "ratelimitd",
                                       "auditd",
                                       "idemd",
                                       "tokend",
                                       NULL};
    for (int i = 0; DIRS[i]; i++) {
        ops_set_scan_dir(&cited, ops_src(DIRS[i]), ".c", "([A-Za-z][A-Za-z0-9_-]{2,}\\.md)", 0);
        ops_set_scan_dir(&cited, ops_src(DIRS[i]), ".h", "([A-Za-z][A-Za-z0-9_-]{2,}\\.md)", 0);
    }
    char diff[1024];
    assert_true(cited.n >= 3);
    if (ops_set_minus(&cited, &have, diff, sizeof(diff)) > 0)
        fail_msg("documents cited but not in the repository:%s", diff);
    ops_set_free(&cited);
    ops_set_free(&have);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_license_is_apache_2),
        cmocka_unit_test(test_every_source_file_has_an_spdx_line),
        cmocka_unit_test(test_one_version_everywhere),
        cmocka_unit_test(test_project_files),
        cmocka_unit_test(test_docs_stay_inside_the_repository),
        cmocka_unit_test(test_cited_documents_exist),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
