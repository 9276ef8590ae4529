/* SPDX-License-Identifier: Apache-2.0 */
/* make run tells the truth: with a port taken it fails with one line naming the daemon,
 * the address and the reason, and never claims that daemon listens; PORT_BASE moves the
 * ports; Ctrl-C (through a terminal, as a person presses it) stops everything and make
 * exits 0, without make's "Error 130". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_ops_util.h"

static char tmp[256];

static int setup(void **state)
{
    (void)state;
    if (access(ops_src("deploy/scripts/run-local.sh"), R_OK) != 0 || !ops_which("make")) {
        fprintf(stderr, "no source tree (WARDEN_SRC) or no make\n");
        return -1;
    }
    return th_tmpdir(tmp, sizeof(tmp));
}

/* A PORT_BASE whose four ports are free now. */
static int free_base(void)
{
    int base = ops_free_base();
    if (base < 0)
        fail_msg("no four free ports in a row");
    return base;
}

/* The shell command running make run with this base in its own RUN_DIR. */
static void make_run_cmd(char *out, size_t size, int base, const char *rundir)
{
    char src[1024];
    snprintf(src, sizeof(src), "%s", ops_src("."));
    snprintf(out, size, "RUN_DIR='%s' make -s -C '%s' -o all run PORT_BASE=%d BUILD='%s'", rundir,
             src, base, th_bin("."));
}

static void test_port_taken_fails_with_one_clear_line(void **state)
{
    (void)state;
    char cmd[2400], rundir[300], line[160], *out = NULL, *err = NULL;
    int base = free_base();
    int fd = ops_occupy(base + 3); /* idemd's */
    assert_true(fd >= 0);
    snprintf(rundir, sizeof(rundir), "%s/run-taken", tmp);
    make_run_cmd(cmd, sizeof(cmd), base, rundir);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    int st = th_run("/bin/sh", argv, NULL, &out, &err, 60000);
    close(fd);
    assert_int_not_equal(st, 0);
    assert_non_null(err);
    snprintf(line, sizeof(line),
             "run: idemd: cannot listen on 127.0.0.1:%d: Address already in use", base + 3);
    if (!strstr(err, line))
        fail_msg("no \"%s\" in:\n%s%s", line, out ? out : "", err);
    /* the daemons before it did start on the moved ports; idemd is never said to listen */
    snprintf(line, sizeof(line), "ratelimitd   http://127.0.0.1:%d ", base + 1);
    assert_non_null(strstr(out, line));
    assert_null(strstr(out, "idemd        http://"));
    assert_non_null(strstr(out, "stopped."));
    free(out);
    free(err);
}

static void test_ctrl_c_stops_everything_and_exits_0(void **state)
{
    (void)state;
    if (!ops_which("script")) {
        print_message("script(1) is not installed (bsdutils): SKIPPED\n");
        skip();
    }
    char cmd[2400], shell[3200], rundir[300], *out = NULL;
    int base = free_base();
    snprintf(rundir, sizeof(rundir), "%s/run-ctrl-c", tmp);
    make_run_cmd(cmd, sizeof(cmd), base, rundir);
    /* a terminal (script's pty) that gets ^C once tokend answers; script exits with make's
     * status */
    snprintf(shell, sizeof(shell),
             "{ for i in $(seq 150); do curl -fs http://127.0.0.1:%d/health >/dev/null && "
             "break; sleep 0.2; done; sleep 0.5; printf '\\003'; sleep 3; } | "
             "script -qefc \"%s\" /dev/null",
             base + 4, cmd);
    const char *argv[] = {"sh", "-c", shell, NULL};
    int st = th_run("/bin/sh", argv, NULL, &out, NULL, 90000);
    assert_non_null(out);
    if (st != 0 || !strstr(out, "stopped.") || strstr(out, "Error") || strstr(out, "Interrupt"))
        fail_msg("make run after Ctrl-C: exit %d\n%s", st, out);
    char line[96];
    snprintf(line, sizeof(line), "tokend       http://127.0.0.1:%d ", base + 4);
    assert_non_null(strstr(out, line));
    /* nothing is left listening */
    int fd = ops_occupy(base + 3);
    assert_true(fd >= 0);
    close(fd);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_port_taken_fails_with_one_clear_line),
        cmocka_unit_test(test_ctrl_c_stops_everything_and_exits_0),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
