/* SPDX-License-Identifier: Apache-2.0 */
/* The DR drill of make restore-test inside make test, from an installed system: make
 * install into a temp root, then tests/ops/restore-drill.sh --installed starts a Redis from
 * the installed share/warden/redis/redis.conf with the generated ACL users and the four
 * installed daemons, puts real data in, backs it up with the installed backup.sh, and runs
 * the installed restore-test.sh on that backup (must pass) and on damaged copies (each
 * must fail, naming the check that caught it), all from a directory outside the checkout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_ops_util.h"

static void test_restore_drill(void **state)
{
    (void)state;
    OPS_NEED_SOURCE();
    char root[300], prefix[320], tmpdir[256], env_tmp[300], *out = NULL;
    const char *missing = NULL;
    static const char *const TOOLS[] = {"redis-server", "redis-cli", "jq", "curl", NULL};
    for (int i = 0; TOOLS[i]; i++)
        if (!ops_which(TOOLS[i]))
            missing = TOOLS[i];
    if (missing)
        fail_msg("%s is not installed (make deps)", missing); /* a dependency, not optional */
    assert_int_equal(th_tmpdir(tmpdir, sizeof(tmpdir)), 0);
    snprintf(root, sizeof(root), "%s/root", tmpdir);
    assert_int_equal(ops_install(root), 0);
    snprintf(prefix, sizeof(prefix), "%s/usr", root);
    snprintf(env_tmp, sizeof(env_tmp), "TMPDIR=%s", tmpdir); /* the runner cleans up there */
    const char *argv[] = {"sh", ops_src("tests/ops/restore-drill.sh"), "--installed", prefix, NULL};
    const char *env[] = {env_tmp, NULL};
    int st = th_run("/bin/sh", argv, env, &out, NULL, 240000);
    fputs(out ? out : "", stdout); /* the drill's own report */
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, " assertions held\n"));
    assert_null(strstr(out, "  FAIL  "));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_restore_drill)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
