/* SPDX-License-Identifier: Apache-2.0 */
/* The Debian package of make deb, installed for real on this machine with dpkg -i (as
 * root; skipped, with the reason, otherwise): every program runs --version and
 * --check-config from /usr/bin, the system users exist, the units are installed and not
 * enabled, the example settings are conffiles, the man pages are there; dpkg --purge then
 * leaves none of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_ops_util.h"

#define NDAEMONS 4
static const char *const DAEMONS[NDAEMONS] = {"ratelimitd", "auditd", "idemd", "tokend"};
static const char *const NEEDS[NDAEMONS] = {
    NULL, "AUDIT_PRIVATE_KEY_V1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", NULL,
    "TOKEN_HASH_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="};

static char deb[1024], tmp[256];

static int run_ok(const char *bin, const char *const *argv, const char *const *env, char **out)
{
    char *err = NULL;
    int st = th_run(bin, argv, env, out, &err, 120000);
    if (st != 0)
        print_message("%s: exit %d\n%s", argv[0], st, err ? err : "");
    free(err);
    return st;
}

/* The .deb of this version: in $WARDEN_BUILD, else in the checkout's build/. */
static int find_deb(void)
{
    char *h = ops_read(ops_src("libshared/include/shared/version.h")), version[32] = "",
         *arch = NULL;
    const char *p = h ? strstr(h, "#define WARDEN_VERSION \"") : NULL;
    if (p)
        sscanf(p, "#define WARDEN_VERSION \"%31[^\"]", version);
    free(h);
    const char *argv[] = {"dpkg", "--print-architecture", NULL};
    if (!ops_which("dpkg") || th_run(ops_which("dpkg"), argv, NULL, &arch, NULL, 5000) != 0)
        return -1;
    arch[strcspn(arch, "\n")] = '\0';
    snprintf(deb, sizeof(deb), "%s/warden_%s_%s.deb", th_bin("."), version, arch);
    if (access(deb, R_OK) != 0) {
        char rel[128];
        snprintf(rel, sizeof(rel), "build/warden_%s_%s.deb", version, arch);
        snprintf(deb, sizeof(deb), "%s", ops_src(rel));
    }
    free(arch);
    return access(deb, R_OK) == 0 ? 0 : -1;
}

static void test_install_run_purge(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("not root: dpkg -i needs root: SKIPPED\n");
        skip();
    }
    if (find_deb() != 0) {
        print_message("no package built (make deb puts build/warden_<version>_<arch>.deb): "
                      "SKIPPED\n");
        skip();
    }
    char dpkg[1024], *out = NULL;
    snprintf(dpkg, sizeof(dpkg), "%s", ops_which("dpkg"));
    const char *query[] = {"dpkg-query", "-W", "-f=${Status}", "warden", NULL};
    int installed = th_run(ops_which("dpkg-query"), query, NULL, &out, NULL, 10000) == 0 && out &&
                    strstr(out, "installed") && !strstr(out, "not-installed");
    free(out);
    out = NULL;
    if (installed) {
        print_message("the warden package is installed on this machine already; the test would "
                      "remove it: SKIPPED\n");
        skip();
    }
    assert_int_equal(th_tmpdir(tmp, sizeof(tmp)), 0);

    const char *install[] = {"dpkg", "-i", deb, NULL};
    assert_int_equal(run_ok(dpkg, install, NULL, NULL), 0);
    for (int d = 0; d < NDAEMONS; d++) {
        char bin[128], want[128], unit[128], wants[160], user[64];
        snprintf(bin, sizeof(bin), "/usr/bin/warden-%s", DAEMONS[d]);
        const char *ver[] = {bin + 9, "--version", NULL};
        assert_int_equal(run_ok(bin, ver, NULL, &out), 0);
        snprintf(want, sizeof(want), "warden-%s ", DAEMONS[d]);
        assert_int_equal(strncmp(out, want, strlen(want)), 0);
        free(out);
        const char *check[] = {bin + 9, "--check-config", NULL}, *env[] = {NEEDS[d], NULL};
        assert_int_equal(run_ok(bin, check, env, NULL), 0);
        snprintf(unit, sizeof(unit), "/lib/systemd/system/warden-%s.service", DAEMONS[d]);
        assert_int_equal(access(unit, R_OK), 0);
        snprintf(wants, sizeof(wants),
                 "/etc/systemd/system/multi-user.target.wants/warden-%s.service", DAEMONS[d]);
        assert_int_not_equal(access(wants, F_OK), 0); /* installed disabled */
        snprintf(user, sizeof(user), "warden-%s", DAEMONS[d]);
        const char *getent[] = {"getent", "passwd", user, NULL};
        assert_int_equal(run_ok(ops_which("getent"), getent, NULL, NULL), 0);
        snprintf(unit, sizeof(unit), "/usr/share/man/man8/warden-%s.8.gz", DAEMONS[d]);
        assert_int_equal(access(unit, R_OK), 0);
    }
    /* the tools: --version, and --check-config on a keyring the installed auditd makes */
    char keyring[300], *keys = NULL;
    const char *pub[] = {"warden-auditd", "pubkeys", NULL}, *penv[] = {NEEDS[1], NULL};
    assert_int_equal(run_ok("/usr/bin/warden-auditd", pub, penv, &keys), 0);
    snprintf(keyring, sizeof(keyring), "%s/keyring.json", tmp);
    assert_int_equal(th_write_file(keyring, keys), 0);
    free(keys);
    const char *vv[] = {"warden-audit-verify", "--version", NULL};
    const char *vc[] = {
        "warden-audit-verify", "--check-config", "--keys", keyring, "--file", "/dev/null", NULL};
    const char *ev[] = {"warden-audit-export", "--version", NULL};
    const char *ec[] = {"warden-audit-export", "--check-config", "--redis",
                        "redis://127.0.0.1:6379/0", NULL};
    assert_int_equal(run_ok("/usr/bin/warden-audit-verify", vv, NULL, NULL), 0);
    assert_int_equal(run_ok("/usr/bin/warden-audit-verify", vc, NULL, NULL), 0);
    assert_int_equal(run_ok("/usr/bin/warden-audit-export", ev, NULL, NULL), 0);
    assert_int_equal(run_ok("/usr/bin/warden-audit-export", ec, NULL, NULL), 0);
    /* the example settings are conffiles: an operator's edits survive upgrades */
    const char *conf[] = {"dpkg-query", "-W", "-f=${Conffiles}", "warden", NULL};
    assert_int_equal(run_ok(ops_which("dpkg-query"), conf, NULL, &out), 0);
    assert_non_null(strstr(out, "/etc/warden/idemd.env "));
    free(out);

    const char *purge[] = {"dpkg", "--purge", "warden", NULL};
    assert_int_equal(run_ok(dpkg, purge, NULL, NULL), 0);
    assert_int_not_equal(access("/usr/bin/warden-idemd", F_OK), 0);
    assert_int_not_equal(access("/etc/warden/idemd.env", F_OK), 0);
    assert_int_not_equal(access("/lib/systemd/system/warden-idemd.service", F_OK), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_install_run_purge)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
