/* SPDX-License-Identifier: Apache-2.0 */
/* docs/operations.md cannot drift from the code: its variable tables list exactly what
 * libshared and each daemon read (from the cfg_* calls in the sources and from each
 * daemon's --check-config), every secret also as NAME_FILE, and every default as the
 * daemon applies it; its alert table names every rule of alerts.yml; its Makefile targets
 * exist; and it covers what the operations issue asks of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_ops_util.h"

#define NDAEMONS 4
static const char *const DAEMONS[NDAEMONS] = {"ratelimitd", "auditd", "idemd", "tokend"};
/* What each needs set for --check-config to pass (excluded from the default check). */
static const char *const NEEDS[NDAEMONS] = {
    NULL, "AUDIT_PRIVATE_KEY_V1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", NULL,
    "TOKEN_HASH_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="};

/* A getter call's variable name: cfg_int(c, "NAME", ...) and the like, across lines. */
#define CFG_CALL "cfg_[a-z_]+\\([^\";]*\"([A-Z][A-Z0-9_]*)\""
#define FAMILY "\"([A-Z][A-Z0-9_]*_V)%d\""

struct row {
    char names[4][96]; /* the backticked names of the first cell */
    int nnames;
    char def[256], meaning[512];
};
struct table {
    struct row rows[64];
    int n;
};
static struct table common, per[NDAEMONS];
static char *doc, *check[NDAEMONS];

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n'))
        s[--n] = '\0';
    size_t lead = strspn(s, " ");
    memmove(s, s + lead, strlen(s + lead) + 1);
}

/* One "| `NAME` / `NAME_FILE` | default | meaning |" line into r. Returns 0 or -1. */
static int parse_row(const char *line, struct row *r)
{
    char buf[1024], *cell[3] = {0};
    snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(line, "\n"), line);
    char *p = buf + 1;
    for (int i = 0; i < 3; i++) {
        char *bar = strchr(p, '|');
        if (!bar)
            return -1;
        *bar = '\0';
        cell[i] = p;
        p = bar + 1;
    }
    memset(r, 0, sizeof(*r));
    for (char *t = strchr(cell[0], '`'); t && r->nnames < 4; t = strchr(t + 1, '`')) {
        char *end = strchr(t + 1, '`');
        if (!end)
            break;
        snprintf(r->names[r->nnames++], sizeof(r->names[0]), "%.*s", (int)(end - t - 1), t + 1);
        t = end;
    }
    snprintf(r->def, sizeof(r->def), "%s", cell[1]);
    snprintf(r->meaning, sizeof(r->meaning), "%s", cell[2]);
    trim(r->def);
    trim(r->meaning);
    return r->nnames ? 0 : -1;
}

/* The tables under "## Environment variables": "### Every daemon" and one per daemon. */
static void parse_tables(void)
{
    const char *sec = strstr(doc, "\n## Environment variables\n");
    assert_non_null(sec);
    const char *end = strstr(sec + 1, "\n## ");
    struct table *t = NULL;
    for (const char *l = sec; l && (!end || l < end); l = strchr(l + 1, '\n')) {
        if (strncmp(l, "\n### ", 5) == 0) {
            t = strncmp(l + 5, "Every daemon\n", 13) == 0 ? &common : NULL;
            for (int d = 0; d < NDAEMONS; d++)
                if (strncmp(l + 5, DAEMONS[d], strlen(DAEMONS[d])) == 0 &&
                    l[5 + strlen(DAEMONS[d])] == '\n')
                    t = &per[d];
        } else if (t && strncmp(l, "\n| `", 4) == 0 && t->n < 64) {
            if (parse_row(l + 1, &t->rows[t->n]) != 0)
                fail_msg("cannot read this row: %.80s", l + 1);
            t->n++;
        }
    }
}

static int setup(void **state)
{
    (void)state;
    doc = ops_read(ops_src("docs/operations.md"));
    if (!doc) {
        fprintf(stderr, "no docs/operations.md: run from the checkout (WARDEN_SRC)\n");
        return -1;
    }
    for (int d = 0; d < NDAEMONS; d++) {
        char bin[64];
        const char *argv[] = {DAEMONS[d], "--check-config", NULL}, *env[] = {NEEDS[d], NULL};
        snprintf(bin, sizeof(bin), "bin/%s", DAEMONS[d]);
        if (th_run(th_bin(bin), argv, env, &check[d], NULL, 5000) != 0) {
            fprintf(stderr, "%s --check-config failed\n", DAEMONS[d]);
            return -1;
        }
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(doc);
    for (int d = 0; d < NDAEMONS; d++)
        free(check[d]);
    return 0;
}

static int is_file_variant(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, "_FILE") == 0;
}

/* Is names[k] of r the NAME_FILE form of another name of the same row? */
static int file_form_in_row(const struct row *r, int k)
{
    const char *n = r->names[k];
    size_t len = strlen(n);
    for (int j = 0; j < r->nnames; j++)
        if (j != k && len == strlen(r->names[j]) + 5 && strncmp(n, r->names[j], len - 5) == 0 &&
            strcmp(n + len - 5, "_FILE") == 0)
            return 1;
    return 0;
}

/* The documented names of t; the NAME_FILE of a "`NAME` / `NAME_FILE`" row only with_files. */
static void doc_names(const struct table *t, struct ops_set *out, int with_files)
{
    for (int i = 0; i < t->n; i++)
        for (int k = 0; k < t->rows[i].nnames; k++)
            if (with_files || !file_form_in_row(&t->rows[i], k))
                ops_set_add(out, t->rows[i].names[k], strlen(t->rows[i].names[k]), 0);
}

/* A variable family member (AUDIT_PRIVATE_KEY_V1) as its family (AUDIT_PRIVATE_KEY_V<n>);
 * name has room for size bytes. */
static void normalize(char *name, size_t size, const struct ops_set *families)
{
    char *v = strrchr(name, 'V');
    if (!v || v == name || v[-1] != '_' || !v[1] || strspn(v + 1, "0123456789") != strlen(v + 1))
        return;
    char fam[128];
    snprintf(fam, sizeof(fam), "%.*s<n>", (int)(v + 1 - name), name);
    if (ops_set_has(families, fam))
        snprintf(name, size, "%s", fam);
}

static void add_unshared(struct ops_set *out, const struct ops_set *shared, const char *name)
{
    if (!ops_set_has(shared, name))
        ops_set_add(out, name, strlen(name), 0);
}

/* What daemon d reads: its sources' getter calls and families, and the names its
 * --check-config prints, less what libshared reads. */
static void code_names(int d, const struct ops_set *shared, struct ops_set *out)
{
    struct ops_set calls = {0}, prefixes = {0}, fam = {0};
    ops_set_scan_dir(&calls, ops_src(DAEMONS[d]), ".c", CFG_CALL, 0);
    ops_set_scan_dir(&prefixes, ops_src(DAEMONS[d]), ".c", FAMILY, 0);
    for (int i = 0; i < calls.n; i++)
        add_unshared(out, shared, calls.items[i]);
    for (int i = 0; i < prefixes.n; i++) {
        char name[128];
        snprintf(name, sizeof(name), "%s<n>", prefixes.items[i]);
        ops_set_add(&fam, name, strlen(name), 0);
        add_unshared(out, shared, name);
    }
    for (const char *l = check[d]; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        char name[128];
        if (sscanf(l, "%127[A-Z0-9_]=", name) != 1)
            continue;
        normalize(name, sizeof(name), &fam);
        add_unshared(out, shared, name);
    }
    ops_set_free(&calls);
    ops_set_free(&prefixes);
    ops_set_free(&fam);
}

static void shared_names(struct ops_set *out)
{
    ops_set_scan_dir(out, ops_src("libshared/src"), ".c", CFG_CALL, 0);
}

static void test_common_table_is_what_libshared_reads(void **state)
{
    (void)state;
    struct ops_set code = {0}, documented = {0};
    char diff[1024];
    parse_tables();
    shared_names(&code);
    doc_names(&common, &documented, 0);
    assert_true(code.n >= 15);
    if (ops_set_minus(&code, &documented, diff, sizeof(diff)) > 0)
        fail_msg("libshared reads variables \"Every daemon\" lacks:%s", diff);
    if (ops_set_minus(&documented, &code, diff, sizeof(diff)) > 0)
        fail_msg("\"Every daemon\" documents variables libshared does not read:%s", diff);
    for (int i = 0; i < common.n; i++)
        if (!common.rows[i].meaning[0])
            fail_msg("%s: no meaning", common.rows[i].names[0]);
    ops_set_free(&code);
    ops_set_free(&documented);
}

static void test_daemon_tables_are_what_each_daemon_reads(void **state)
{
    (void)state;
    struct ops_set shared = {0};
    shared_names(&shared);
    for (int d = 0; d < NDAEMONS; d++) {
        struct ops_set code = {0}, documented = {0}, own = {0};
        char diff[1024];
        code_names(d, &shared, &code);
        doc_names(&per[d], &documented, 0);
        for (int i = 0; i < documented.n; i++) /* rows overriding a common default stay */
            if (!ops_set_has(&shared, documented.items[i]))
                ops_set_add(&own, documented.items[i], strlen(documented.items[i]), 0);
        assert_true(code.n >= 5);
        if (ops_set_minus(&code, &own, diff, sizeof(diff)) > 0)
            fail_msg("%s reads variables its table lacks:%s", DAEMONS[d], diff);
        if (ops_set_minus(&own, &code, diff, sizeof(diff)) > 0)
            fail_msg("%s's table documents variables it does not read:%s", DAEMONS[d], diff);
        for (int i = 0; i < per[d].n; i++)
            if (!per[d].rows[i].meaning[0] && !ops_set_has(&shared, per[d].rows[i].names[0]))
                fail_msg("%s: %s has no meaning", DAEMONS[d], per[d].rows[i].names[0]);
        ops_set_free(&code);
        ops_set_free(&documented);
        ops_set_free(&own);
    }
    ops_set_free(&shared);
}

/* Secrets: every cfg_secret name, and every variable --check-config shows as read from a
 * file, is documented with its NAME_FILE; no NAME_FILE is documented without its NAME. */
static void test_secrets_are_documented_with_their_file(void **state)
{
    (void)state;
    struct ops_set secrets = {0}, all = {0};
    ops_set_scan_dir(&secrets, ops_src("libshared/src"), ".c",
                     "cfg_secret\\([^\";]*\"([A-Z][A-Z0-9_]*)\"", 0);
    for (int d = 0; d < NDAEMONS; d++) {
        ops_set_scan_dir(&secrets, ops_src(DAEMONS[d]), ".c",
                         "cfg_secret\\([^\";]*\"([A-Z][A-Z0-9_]*)\"", 0);
        ops_set_scan(&secrets, check[d], "\n([A-Z][A-Z0-9_]*)=<set, [^>]*, from ", 0);
        doc_names(&per[d], &all, 1);
    }
    doc_names(&common, &all, 1);
    assert_true(secrets.n >= 5);
    for (int i = 0; i < secrets.n; i++) {
        char file[160], fam[128];
        snprintf(fam, sizeof(fam), "%s", secrets.items[i]);
        char *v = strrchr(fam, 'V');
        if (v && v > fam && v[-1] == '_' && v[1] >= '0' && v[1] <= '9')
            /* AUDIT_PRIVATE_KEY_V1 → AUDIT_PRIVATE_KEY_V<n> */
            snprintf(v + 1, sizeof(fam) - (size_t)(v + 1 - fam), "<n>");
        snprintf(file, sizeof(file), "%s_FILE", fam);
        if (!ops_set_has(&all, file))
            fail_msg("%s is a secret but %s is not documented", fam, file);
    }
    struct ops_set paths = {0}; /* settings that are paths themselves: the rules file, TLS files */
    shared_names(&paths);
    for (int d = 0; d < NDAEMONS; d++)
        ops_set_scan_dir(&paths, ops_src(DAEMONS[d]), ".c", CFG_CALL, 0);
    for (int i = 0; i < all.n; i++) {
        char base[128];
        if (!is_file_variant(all.items[i]) || ops_set_has(&paths, all.items[i]))
            continue; /* a path setting, not a secret's file form */
        snprintf(base, sizeof(base), "%.*s", (int)strlen(all.items[i]) - 5, all.items[i]);
        if (!ops_set_has(&all, base))
            fail_msg("%s is documented without %s", all.items[i], base);
    }
    ops_set_free(&secrets);
    ops_set_free(&all);
    ops_set_free(&paths);
}

/* "5m" and "300000ms", "64KiB" and "65536B" are the same value. */
static int same_value(const char *a, const char *b)
{
    static const struct {
        const char *unit;
        double scale;
    } UNITS[] = {{"ms", 1}, {"s", 1e3},    {"m", 6e4},       {"h", 3.6e6},       {"d", 8.64e7},
                 {"B", 1},  {"KiB", 1024}, {"MiB", 1048576}, {"GiB", 1073741824}};
    double v[2];
    const char *s[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        char *end;
        v[i] = strtod(s[i], &end);
        if (end == s[i] || *s[i] == '-')
            return strcmp(a, b) == 0;
        int known = 0;
        for (size_t u = 0; u < sizeof(UNITS) / sizeof(UNITS[0]); u++)
            if (strcmp(end, UNITS[u].unit) == 0) {
                v[i] *= UNITS[u].scale;
                known = 1;
            }
        if (!known && *end)
            return strcmp(a, b) == 0;
    }
    return v[0] == v[1];
}

static const struct row *doc_row(int d, const char *name)
{
    const struct table *ts[2] = {&per[d], &common};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < ts[t]->n; i++)
            for (int k = 0; k < ts[t]->rows[i].nnames; k++)
                if (strcmp(ts[t]->rows[i].names[k], name) == 0)
                    return &ts[t]->rows[i];
    return NULL;
}

/* Each value --check-config prints with nothing set is the documented default. */
static void test_documented_defaults_are_the_daemons(void **state)
{
    (void)state;
    int compared = 0;
    for (int d = 0; d < NDAEMONS; d++)
        for (const char *l = check[d]; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
            char name[128], value[512];
            if (sscanf(l, "%127[A-Z0-9_]=%511[^\n]", name, value) != 2 || value[0] == '<')
                continue; /* a secret or unset string: nothing to compare */
            const struct row *r = doc_row(d, name);
            if (!r) {
                fail_msg("%s: %s is not documented", DAEMONS[d], name);
                return; /* not reached: fail_msg ends the test */
            }
            if (strncmp(r->def, "required", 8) == 0)
                continue;
            char want[256];
            if (sscanf(r->def, "`%255[^`]`", want) != 1)
                fail_msg("%s: %s defaults to %s, the table says \"%s\"", DAEMONS[d], name, value,
                         r->def);
            if (strchr(want, '<'))
                continue; /* a template such as 127.0.0.1:<port>: the daemon's row has it */
            if (!same_value(want, value))
                fail_msg("%s: %s defaults to %s, the table says %s", DAEMONS[d], name, value, want);
            compared++;
        }
    assert_true(compared > 60);
}

/* Every alert of alerts.yml in the alert table, every Makefile target of the table real,
 * and the topics the operations issue asks for. */
static void test_doc_covers_alerts_targets_and_topics(void **state)
{
    (void)state;
    char *rules = ops_read(ops_src("deploy/prometheus/alerts.yml"));
    char *mk = ops_read(ops_src("Makefile"));
    struct ops_set alerts = {0}, targets = {0};
    assert_non_null(rules);
    assert_non_null(mk);
    ops_set_scan(&alerts, rules, "- alert: ([A-Za-z]+)", 0);
    assert_true(alerts.n >= 10);
    for (int i = 0; i < alerts.n; i++) {
        char row[128];
        snprintf(row, sizeof(row), "\n| `%s` |", alerts.items[i]);
        if (!strstr(doc, row))
            fail_msg("the alert table lacks %s", alerts.items[i]);
    }
    ops_set_scan(&targets, doc, "\n\\| `make ([a-z-]+)` \\|", 0);
    assert_true(targets.n >= 5);
    for (int i = 0; i < targets.n; i++) {
        char rule[96];
        snprintf(rule, sizeof(rule), "\n%s:", targets.items[i]);
        if (!strstr(mk, rule))
            fail_msg("make %s is documented but the Makefile has no such target", targets.items[i]);
    }
    static const char *const TOPICS[] = {"### systemd",
                                         "### Kubernetes sidecar",
                                         "cannot be built or applied here",
                                         "## Environment variables",
                                         "### Sizing",
                                         "appendfsync always",
                                         "## Backups",
                                         "## The quarterly DR drill",
                                         "make restore-test",
                                         "The **RPO is 5 minutes**",
                                         "**Failover procedure**",
                                         "(key-rotation.md)",
                                         "## Alerts",
                                         NULL};
    for (int i = 0; TOPICS[i]; i++)
        if (!strstr(doc, TOPICS[i]))
            fail_msg("docs/operations.md lacks %s", TOPICS[i]);
    ops_set_free(&alerts);
    ops_set_free(&targets);
    free(rules);
    free(mk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_table_is_what_libshared_reads),
        cmocka_unit_test(test_daemon_tables_are_what_each_daemon_reads),
        cmocka_unit_test(test_secrets_are_documented_with_their_file),
        cmocka_unit_test(test_documented_defaults_are_the_daemons),
        cmocka_unit_test(test_doc_covers_alerts_targets_and_topics),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
