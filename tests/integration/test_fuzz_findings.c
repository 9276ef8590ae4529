/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests, through the real programs, of the bugs found while putting the
 * parsers under libFuzzer (tests/fuzz/): a LISTEN_ADDR whose port or host could only be
 * guessed at; a 400 answer that lost its field when an unknown member had a long non-ASCII
 * name; audit-verify reading a directory as an empty, verified chain, taking a non-hex
 * --expect-head, and loading a keyring with two keys for one version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/harness.h"

#define PK1 "zswVB9wd3XKVlRwpCIjwla25BE0bc9aW5t8GXWg71Pw="
#define PK2 "a3nFfmoJUjkoLASBjpYRLz8DpAAbqXpWTCOFKj8epfw="
#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* glibc reads a numeric port modulo 65536: 127.0.0.1:70000 listened on port 4464. */
static void test_listen_addr_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"LISTEN_ADDR=127.0.0.1:70000", "LISTEN_ADDR=127.0.0.1:65536",
                                      "LISTEN_ADDR=::1:8080",
                                      "LISTEN_ADDR=127.0.0.1:", "LISTEN_ADDR=unix:"};
    const char *argv[] = {"idemd", "--check-config", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *env[] = {bad[i], NULL};
        char *err = NULL, want[64];
        int rc = th_run(th_bin("bin/idemd"), argv, env, NULL, &err, 10000);
        snprintf(want, sizeof(want), "%s: invalid value", bad[i]);
        if (rc != 2 || !err || !strstr(err, want))
            fail_msg("%s: exit %d, stderr: %s", bad[i], rc, err ? err : "");
        free(err);
    }
    const char *good[] = {"LISTEN_ADDR=[::1]:65535", NULL};
    assert_int_equal(th_run(th_bin("bin/idemd"), argv, good, NULL, NULL, 10000), 0);
}

/* The answer names the unknown member, cut at a character boundary: still valid JSON. */
static void assert_field_prefix(const struct th_resp *r, const char *prefix, const char *name)
{
    json_t *body = json_loads(r->body, 0, NULL);
    const char *field = json_string_value(json_object_get(body, "field"));
    if (r->status != 400 || !field) {
        fail_msg("status %d, body: %s", r->status, r->body);
        return; /* not reached: fail_msg ends the test */
    }
    size_t plen = strlen(prefix);
    assert_int_equal(strncmp(field, prefix, plen), 0);
    assert_true(strlen(field) > plen + 2);
    assert_int_equal(strncmp(field + plen, name, strlen(field) - plen), 0);
    json_decref(body);
}

static void test_long_utf8_member_named(void **state)
{
    (void)state;
    struct th_redis redis;
    struct th_proc idemd, rl;
    struct th_resp r;
    char name[2 * 40 + 2] = "x", body[512];
    for (int i = 0; i < 40; i++) /* x and 40 é: any cut at an even length splits one */
        snprintf(name + 1 + 2 * i, sizeof(name) - 1 - 2 * i, "%s", "\xc3\xa9");
    assert_int_equal(th_redis_start(&redis, NULL), 0);
    assert_int_equal(th_daemon_start(&idemd, "bin/idemd", redis.url, NULL), 0);
    assert_int_equal(th_daemon_start(&rl, "bin/ratelimitd", redis.url, NULL), 0);

    snprintf(body, sizeof(body), "{\"scope\":\"s\",\"key\":\"k\",\"fingerprint\":\"f\",\"%s\":1}",
             name);
    assert_int_equal(th_post_json(idemd.port, "/v1/claim", body, &r), 0);
    assert_field_prefix(&r, "", name);
    th_resp_free(&r);
    snprintf(body, sizeof(body), "{\"rule\":\"default\",\"key\":\"k\",\"%s\":1}", name + 1);
    assert_int_equal(th_post_json(rl.port, "/v1/check", body, &r), 0);
    assert_field_prefix(&r, "", name + 1);
    th_resp_free(&r);
    snprintf(body, sizeof(body), "{\"checks\":[{\"rule\":\"default\",\"key\":\"k\",\"%s\":1}]}",
             name);
    assert_int_equal(th_post_json(rl.port, "/v1/check", body, &r), 0);
    assert_field_prefix(&r, "checks[0].", name);
    th_resp_free(&r);

    th_proc_stop(&rl, SIGTERM, 5000);
    th_proc_stop(&idemd, SIGTERM, 5000);
    th_redis_stop(&redis);
}

/* audit-verify --file <f> --keys <keys> [extra]: the exit status, stdout and stderr. */
static int audit_verify(const char *file, const char *keys, const char *opt, const char *arg,
                        char **out, char **err)
{
    const char *argv[] = {"audit-verify", "--file", file, "--keys", keys, opt, arg, NULL};
    return th_run(th_bin("bin/audit-verify"), argv, NULL, out, err, 10000);
}

static void test_audit_verify_inputs(void **state)
{
    (void)state;
    char dir[256], keys[300], twice[300], empty[300], *out = NULL, *err = NULL;
    assert_int_equal(th_tmpdir(dir, sizeof(dir)), 0);
    snprintf(keys, sizeof(keys), "%s/keys.json", dir);
    snprintf(twice, sizeof(twice), "%s/twice.json", dir);
    snprintf(empty, sizeof(empty), "%s/export.jsonl", dir);
    assert_int_equal(
        th_write_file(keys, "{\"keys\":[{\"version\":\"v1\",\"public_key\":\"" PK1 "\"}]}"), 0);
    assert_int_equal(th_write_file(twice, "{\"keys\":[{\"version\":\"v1\",\"public_key\":\"" PK1
                                          "\"},{\"version\":\"v1\",\"public_key\":\"" PK2 "\"}]}"),
                     0);
    assert_int_equal(th_write_file(empty, ""), 0);

    /* A directory is not an empty chain: it cannot be read (exit 3), never "OK". */
    assert_int_equal(audit_verify(dir, keys, NULL, NULL, &out, &err), 3);
    assert_null(strstr(out, "OK"));
    assert_non_null(strstr(err, "cannot read"));
    free(out), free(err);
    assert_int_equal(audit_verify(empty, keys, NULL, NULL, &out, &err), 0);
    assert_non_null(strstr(out, "OK: 0 entries"));
    free(out), free(err);

    /* A hash that is not hex is a usage error, not a tampered chain. */
    assert_int_equal(
        audit_verify(empty, keys, "--expect-head",
                     "1:zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", &out,
                     &err),
        3);
    assert_non_null(strstr(err, "bad --expect / --expect-head"));
    free(out), free(err);
    assert_int_equal(audit_verify(empty, keys, "--expect-head", "+1:" HEX64, &out, &err), 3);
    free(out), free(err);

    /* Two keys for v1: refused, naming the version. */
    assert_int_equal(audit_verify(empty, twice, NULL, NULL, &out, &err), 3);
    assert_non_null(strstr(err, "version v1 is given twice"));
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_addr_refused),
        cmocka_unit_test(test_long_utf8_member_named),
        cmocka_unit_test(test_audit_verify_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
