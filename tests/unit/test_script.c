/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the embedded Lua scripts: each carries the SHA-1 Redis will name it by,
 * and opens with its KEYS / ARGV / reply contract comment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "scripts.h"
#include "test_scripts.h"

static void check_set(const struct script *const *set, size_t count)
{
    size_t n = 0;
    for (; set[n]; n++) {
        const struct script *s = set[n];
        unsigned char md[SHA_DIGEST_LENGTH];
        char hex[2 * SHA_DIGEST_LENGTH + 1];
        SHA1((const unsigned char *)s->source, strlen(s->source), md);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        assert_string_equal(s->sha1, hex);
        /* The contract comment: the first lines say KEYS, ARGV and the reply. */
        const char *body = strstr(s->source, "\n\n");
        size_t head = body ? (size_t)(body - s->source) : strlen(s->source);
        char header[2048];
        snprintf(header, sizeof(header), "%.*s", (int)(head < 2047 ? head : 2047), s->source);
        if (strncmp(header, "--", 2) != 0 || !strstr(header, "KEYS") || !strstr(header, "ARGV") ||
            !strstr(header, "Reply"))
            fail_msg("%s.lua lacks its KEYS/ARGV/Reply contract comment", s->name);
    }
    assert_int_equal(n, count);
}

static void test_production_scripts(void **state)
{
    (void)state;
    check_set(scripts_all, scripts_count);
}

static void test_test_scripts(void **state)
{
    (void)state;
    assert_true(test_scripts_count >= 1);
    check_set(test_scripts_all, test_scripts_count);
    assert_string_equal(script_test_incr.name, "test_incr");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_production_scripts),
        cmocka_unit_test(test_test_scripts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
