/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of what auditd and audit-verify read from outside besides events: the
 * keyring file (--keys), --expect-head, the export reader (--file), numeric options and
 * the query values of GET /v1/events. Each case is a bug found while putting these parsers
 * under the fuzz harnesses (tests/fuzz/fuzz_auditd_*). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../auditd/keyring.h"
#include "../../auditd/request.h"
#include "../../auditd/scan.h"
#include "../../auditd/tool.h"
#include "shared/crypto.h"

#define PK1 "zswVB9wd3XKVlRwpCIjwla25BE0bc9aW5t8GXWg71Pw="
#define PK2 "a3nFfmoJUjkoLASBjpYRLz8DpAAbqXpWTCOFKj8epfw="

static int setup(void **state)
{
    (void)state;
    return crypto_init();
}

static struct audit_keyring *keyring(const char *text, char *err, size_t errsize)
{
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    struct audit_keyring *kr = audit_keyring_from_json(doc, err, errsize);
    json_decref(doc);
    return kr;
}

/* Two keys for one version were taken silently, the last one winning. */
static void test_keyring_version_twice(void **state)
{
    (void)state;
    char err[160];
    struct audit_keyring *kr = keyring("{\"keys\":[{\"version\":\"v1\",\"public_key\":\"" PK1
                                       "\"},{\"version\":\"v2\",\"public_key\":\"" PK2 "\"}]}",
                                       err, sizeof(err));
    assert_non_null(kr);
    assert_int_equal(kr->n, 2);
    audit_keyring_free(kr);
    assert_null(keyring("{\"keys\":[{\"version\":\"v1\",\"public_key\":\"" PK1
                        "\"},{\"version\":\"v1\",\"public_key\":\"" PK2 "\"}]}",
                        err, sizeof(err)));
    assert_string_equal(err, "keyring: version v1 is given twice");
    /* v01 would be the same version spelled another way. */
    assert_null(
        keyring("{\"keys\":[{\"version\":\"v01\",\"public_key\":\"" PK1 "\"}]}", err, sizeof(err)));
    assert_non_null(strstr(err, "lacks a valid version"));
    kr = keyring("{\"keys\":[{\"version\":\"v0\",\"public_key\":\"" PK1 "\"}]}", err, sizeof(err));
    assert_non_null(kr);
    assert_string_equal(kr->keys[0].name, "v0");
    audit_keyring_free(kr);
}

/* strtoll also takes leading whitespace and a sign: "\n5" was seq 5. */
static void test_numbers_are_digits(void **state)
{
    (void)state;
    static const char *const bad[] = {"", " 5", "\n5", "\t5", "+5", "-5", "5 ", "5x", "0x5"};
    long long v, from, limit;
    struct jv_error e;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (audit_req_num(bad[i], 1, 1000) != -1 || audit_tool_num(bad[i], 1, 1000, &v) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(audit_req_num(NULL, 1, 10), -1);
    assert_int_equal(audit_req_num("7", 1, 10), 7);
    assert_int_equal(audit_req_num("11", 1, 10), -1);
    assert_int_equal(audit_tool_num("256", 1, 256, &v), 0);
    assert_int_equal(v, 256);
    assert_int_equal(audit_req_list("\n5", NULL, &from, &limit, &e), -1);
    assert_string_equal(e.field, "from_seq");
    assert_int_equal(audit_req_list(NULL, " 10", &from, &limit, &e), -1);
    assert_string_equal(e.field, "limit");
    assert_int_equal(audit_req_list(NULL, NULL, &from, &limit, &e), 0);
    assert_int_equal(from, 1);
    assert_int_equal(limit, 100);
}

/* A hash that is not hex could only ever mismatch: refuse it as a usage error. */
static void test_expect_head(void **state)
{
    (void)state;
    const char *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF";
    char arg[96], hash[AUDIT_HASH_HEX_LEN + 1];
    long long seq;
    snprintf(arg, sizeof(arg), "42:%s", hex);
    assert_int_equal(audit_tool_expect_head(arg, &seq, hash), 0);
    assert_int_equal(seq, 42);
    assert_string_equal(hash, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    snprintf(arg, sizeof(arg), "42:%.63sg", hex);
    assert_int_equal(audit_tool_expect_head(arg, &seq, hash), -1);
    snprintf(arg, sizeof(arg), "42:%.63s", hex);
    assert_int_equal(audit_tool_expect_head(arg, &seq, hash), -1);
    snprintf(arg, sizeof(arg), "0:%s", hex);
    assert_int_equal(audit_tool_expect_head(arg, &seq, hash), -1);
    snprintf(arg, sizeof(arg), "+4:%s", hex);
    assert_int_equal(audit_tool_expect_head(arg, &seq, hash), -1);
    assert_int_equal(audit_tool_expect_head(hex, &seq, hash), -1);
}

/* A stream that fails to read (a directory given as --file) verified as an empty chain. */
static void test_scan_file_read_error(void **state)
{
    (void)state;
    struct audit_keyring kr = {.n = 0, .active = -1};
    struct audit_scan_opts o = {.from_seq = 1, .to_seq = -1};
    struct audit_vresult res;
    FILE *f = fopen("/", "r");
    assert_non_null(f);
    assert_int_equal(audit_scan_file(f, &kr, &o, &res), -1);
    fclose(f);
    f = fmemopen((char[]){"\n"}, 1, "r");
    assert_int_equal(audit_scan_file(f, &kr, &o, &res), 0);
    assert_true(res.ok);
    assert_int_equal(res.checked, 0);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyring_version_twice),
        cmocka_unit_test(test_numbers_are_digits),
        cmocka_unit_test(test_expect_head),
        cmocka_unit_test(test_scan_file_read_error),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
