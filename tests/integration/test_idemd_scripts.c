/* SPDX-License-Identifier: Apache-2.0 */
/* idemd's Lua scripts run directly with EVALSHA against a real redis-server (no daemon):
 * each reply shape, TTL set once, leases from Redis time, takeover vs block, and stale
 * tokens that never change the hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scripts.h"
#define IDEM_TEST_REDIS
#include "test_idemd_util.h"

static const struct script *const all[] = {
    &script_idem_claim,  &script_idem_complete,   &script_idem_release,
    &script_idem_extend, &script_idem_checkpoint, &script_idem_record,
};

static int setup(void **state)
{
    (void)state;
    if (th_redis_start(&redis, NULL) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        redisReply *r = th_redis_cmd(&redis, "SCRIPT LOAD %s", all[i]->source);
        if (!r || r->type != REDIS_REPLY_STRING || strcmp(r->str, all[i]->sha1) != 0)
            return -1;
        freeReplyObject(r);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_redis_stop(&redis);
    return 0;
}

/* EVALSHA idem_claim on key: fp, token, lease_ms, ttl_ms, mode, attempt. */
static redisReply *claim(const char *key, const char *fp, const char *token, const char *lease,
                         const char *mode, const char *attempt)
{
    return th_redis_cmd(&redis, "EVALSHA %s 1 %s %s %s %s %s %s %s", script_idem_claim.sha1, key,
                        fp, token, lease, "86400000", mode, attempt);
}

static const char *str_at(const redisReply *r, size_t i)
{
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_true(i < r->elements);
    assert_int_equal(r->element[i]->type, REDIS_REPLY_STRING);
    return r->element[i]->str;
}

static long long int_at(const redisReply *r, size_t i)
{
    assert_true(i < r->elements);
    assert_int_equal(r->element[i]->type, REDIS_REPLY_INTEGER);
    return r->element[i]->integer;
}

/* Run script s on key with up to 5 args, expecting a reply whose first element is want. */
static void expect(const struct script *s, const char *key, int nargs, const char *const *args,
                   const char *want)
{
    redisReply *r;
    switch (nargs) {
    case 0: r = th_redis_cmd(&redis, "EVALSHA %s 1 %s", s->sha1, key); break;
    case 1: r = th_redis_cmd(&redis, "EVALSHA %s 1 %s %s", s->sha1, key, args[0]); break;
    case 2:
        r = th_redis_cmd(&redis, "EVALSHA %s 1 %s %s %s", s->sha1, key, args[0], args[1]);
        break;
    default:
        r = th_redis_cmd(&redis, "EVALSHA %s 1 %s %s %s %s %s %s", s->sha1, key, args[0], args[1],
                         args[2], args[3], args[4]);
        break;
    }
    assert_string_equal(str_at(r, 0), want);
    freeReplyObject(r);
}

static void test_claim_fresh_then_in_progress_then_mismatch(void **state)
{
    (void)state;
    redisReply *r = claim("idem:s:k", "fp1", "tok1", "30000", "takeover", "");
    assert_string_equal(str_at(r, 0), "claimed");
    assert_string_equal(str_at(r, 1), "tok1");
    assert_int_equal(int_at(r, 2), 30000);
    assert_int_equal(int_at(r, 3), 86400000);
    assert_int_equal(int_at(r, 4), 0); /* not recovered */
    assert_int_equal(int_at(r, 5), 0); /* no checkpoint */
    freeReplyObject(r);
    long long pttl = th_redis_int(&redis, "PTTL idem:s:k");
    assert_true(pttl > 86390000 && pttl <= 86400000);
    assert_int_equal(th_redis_int(&redis, "HGET idem:s:k claims"), 1);

    r = claim("idem:s:k", "fp1", "tok2", "30000", "takeover", "");
    assert_string_equal(str_at(r, 0), "in_progress");
    assert_true(int_at(r, 1) > 29000 && int_at(r, 1) <= 30000);
    freeReplyObject(r);
    r = claim("idem:s:k", "fp2", "tok3", "30000", "takeover", "");
    assert_string_equal(str_at(r, 0), "mismatch");
    assert_int_equal(r->elements, 1);
    freeReplyObject(r);
    r = th_redis_cmd(&redis, "HGET idem:s:k lease_token");
    assert_string_equal(r->str, "tok1");
    freeReplyObject(r);
}

/* Lease times come from Redis TIME: lease_expires_ms - created_ms is the lease. */
static void test_lease_from_redis_time(void **state)
{
    (void)state;
    freeReplyObject(claim("idem:s:t", "fp", "tok", "5000", "takeover", ""));
    long long created = th_redis_int(&redis, "HGET idem:s:t created_ms");
    long long lease_end = th_redis_int(&redis, "HGET idem:s:t lease_expires_ms");
    redisReply *t = th_redis_cmd(&redis, "TIME");
    long long now = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000;
    freeReplyObject(t);
    assert_int_equal(lease_end - created, 5000);
    assert_true(now >= created && now - created < 2000);
}

static void test_complete_and_replay(void **state)
{
    (void)state;
    freeReplyObject(claim("idem:s:c", "fp", "tok", "30000", "takeover", ""));
    long long pttl0 = th_redis_int(&redis, "PTTL idem:s:c");
    const char *done[] = {"tok", "201", "{\"Location\":\"/x\"}", "body text", "utf8"};
    sleep_ms(20);
    expect(&script_idem_complete, "idem:s:c", 5, done, "completed");
    expect(&script_idem_complete, "idem:s:c", 5, done, "completed"); /* same again: fine */
    const char *other[] = {"tok", "500", "{}", "", "utf8"};
    expect(&script_idem_complete, "idem:s:c", 5, other, "lease_lost");
    /* The TTL was set at creation and is never extended. */
    assert_true(th_redis_int(&redis, "PTTL idem:s:c") < pttl0);

    redisReply *r = claim("idem:s:c", "fp", "tok9", "30000", "takeover", "");
    assert_string_equal(str_at(r, 0), "replay");
    assert_int_equal(int_at(r, 1), 201);
    assert_string_equal(str_at(r, 2), "{\"Location\":\"/x\"}");
    assert_string_equal(str_at(r, 3), "body text");
    assert_string_equal(str_at(r, 4), "utf8");
    assert_true(int_at(r, 5) > 0);
    freeReplyObject(r);
    const char *rel[] = {"tok"};
    expect(&script_idem_release, "idem:s:c", 1, rel, "lease_lost"); /* completed stays */
    assert_int_equal(th_redis_int(&redis, "EXISTS idem:s:c"), 1);
}

/* Wrong tokens never change the hash, whatever the call. */
static void test_stale_token_changes_nothing(void **state)
{
    (void)state;
    freeReplyObject(claim("idem:s:w", "fp", "right", "30000", "takeover", ""));
    char *before = snapshot(&redis, "idem:s:w");
    const char *done[] = {"wrong", "200", "{}", "", "utf8"};
    const char *tok[] = {"wrong", "5000"};
    const char *cp[] = {"wrong", "cp"};
    expect(&script_idem_complete, "idem:s:w", 5, done, "lease_lost");
    expect(&script_idem_release, "idem:s:w", 1, tok, "lease_lost");
    expect(&script_idem_extend, "idem:s:w", 2, tok, "lease_lost");
    expect(&script_idem_checkpoint, "idem:s:w", 2, cp, "lease_lost");
    char *after = snapshot(&redis, "idem:s:w");
    assert_string_equal(before, after);
    free(before);
    free(after);
    expect(&script_idem_release, "idem:s:none", 1, tok, "not_found");
    expect(&script_idem_extend, "idem:s:none", 2, tok, "not_found");
    expect(&script_idem_checkpoint, "idem:s:none", 2, cp, "not_found");
    expect(&script_idem_complete, "idem:s:none", 5, done, "not_found");
    assert_int_equal(th_redis_int(&redis, "DBSIZE"), 1);
}

/* After a takeover the old holder's token is stale: lease_lost, record unchanged. */
static void test_takeover_hands_checkpoint_and_stales_old_token(void **state)
{
    (void)state;
    freeReplyObject(claim("idem:s:o", "fp", "old", "50", "takeover", ""));
    const char *cp[] = {"old", "charge_created"};
    expect(&script_idem_checkpoint, "idem:s:o", 2, cp, "saved");
    sleep_ms(80);
    redisReply *r = claim("idem:s:o", "fp", "new", "30000", "takeover", "");
    assert_string_equal(str_at(r, 0), "recovered");
    assert_string_equal(str_at(r, 1), "new");
    assert_int_equal(int_at(r, 4), 1);
    assert_int_equal(int_at(r, 5), 1);
    assert_string_equal(str_at(r, 6), "charge_created");
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "HGET idem:s:o claims"), 2);
    char *before = snapshot(&redis, "idem:s:o");
    const char *done[] = {"old", "200", "{}", "", "utf8"};
    expect(&script_idem_complete, "idem:s:o", 5, done, "lease_lost");
    const char *ext[] = {"old", "1000"};
    expect(&script_idem_extend, "idem:s:o", 2, ext, "lease_lost");
    char *after = snapshot(&redis, "idem:s:o");
    assert_string_equal(before, after);
    free(before);
    free(after);
}

/* A holder whose lease ran out may still complete while nobody took the key over. */
static void test_expired_holder_may_complete(void **state)
{
    (void)state;
    freeReplyObject(claim("idem:s:e", "fp", "tok", "30", "takeover", ""));
    sleep_ms(60);
    const char *done[] = {"tok", "200", "{}", "ok", "utf8"};
    expect(&script_idem_complete, "idem:s:e", 5, done, "completed");
}

static void test_block_mode(void **state)
{
    (void)state;
    freeReplyObject(claim("idem:s:b", "fp", "tok", "30", "block", ""));
    sleep_ms(60);
    redisReply *r = claim("idem:s:b", "fp", "tok2", "30000", "block", "");
    assert_string_equal(str_at(r, 0), "blocked");
    freeReplyObject(r);
    r = th_redis_cmd(&redis, "HGET idem:s:b lease_token");
    assert_string_equal(r->str, "tok");
    freeReplyObject(r);
    const char *rel[] = {"tok"};
    expect(&script_idem_release, "idem:s:b", 1, rel, "released");
    assert_int_equal(th_redis_int(&redis, "EXISTS idem:s:b"), 0);
}

/* The same attempt_id gets its own lease back, renewed; another attempt gets in_progress. */
static void test_attempt_id_repeat(void **state)
{
    (void)state;
    freeReplyObject(claim("idem:s:a", "fp", "tok", "30000", "takeover", "att-1"));
    redisReply *r = claim("idem:s:a", "fp", "tok2", "30000", "takeover", "att-1");
    assert_string_equal(str_at(r, 0), "claimed");
    assert_string_equal(str_at(r, 1), "tok");
    freeReplyObject(r);
    r = claim("idem:s:a", "fp", "tok3", "30000", "takeover", "att-2");
    assert_string_equal(str_at(r, 0), "in_progress");
    freeReplyObject(r);
    r = claim("idem:s:a", "fp-other", "tok4", "30000", "takeover", "att-1");
    assert_string_equal(str_at(r, 0), "mismatch"); /* the fingerprint is compared first */
    freeReplyObject(r);
}

/* The lease is capped at the record's own expiry; extend too. */
static void test_lease_capped_at_record_expiry(void **state)
{
    (void)state;
    redisReply *r = th_redis_cmd(&redis, "EVALSHA %s 1 idem:s:cap fp tok 60000 2000 takeover %s",
                                 script_idem_claim.sha1, "");
    assert_string_equal(str_at(r, 0), "claimed");
    assert_int_equal(int_at(r, 2), 2000);
    freeReplyObject(r);
    const char *ext[] = {"tok", "60000"};
    r = th_redis_cmd(&redis, "EVALSHA %s 1 idem:s:cap %s %s", script_idem_extend.sha1, ext[0],
                     ext[1]);
    assert_string_equal(str_at(r, 0), "extended");
    assert_true(int_at(r, 1) <= 2000);
    freeReplyObject(r);
}

/* A completed record is final: no call changes it, whatever the token. */
static void test_completed_record_is_final(void **state)
{
    (void)state;
    freeReplyObject(claim("idem:s:f", "fp", "tok", "30000", "takeover", ""));
    const char *done[] = {"tok", "201", "{}", "ok", "utf8"};
    expect(&script_idem_complete, "idem:s:f", 5, done, "completed");
    char *before = snapshot(&redis, "idem:s:f");
    const char *other[] = {"tok", "201", "{}", "other body", "utf8"};
    const char *stranger[] = {"nope", "201", "{}", "ok", "utf8"};
    const char *tok[] = {"tok", "60000"};
    const char *cp[] = {"tok", "cp"};
    expect(&script_idem_complete, "idem:s:f", 5, other, "lease_lost");
    expect(&script_idem_complete, "idem:s:f", 5, stranger, "lease_lost");
    expect(&script_idem_release, "idem:s:f", 1, tok, "lease_lost");
    expect(&script_idem_extend, "idem:s:f", 2, tok, "lease_lost");
    expect(&script_idem_checkpoint, "idem:s:f", 2, cp, "lease_lost");
    redisReply *r = claim("idem:s:f", "fp", "tok2", "30000", "takeover", "");
    assert_string_equal(str_at(r, 0), "replay");
    freeReplyObject(r);
    char *after = snapshot(&redis, "idem:s:f");
    assert_string_equal(before, after);
    free(before);
    free(after);
}

/* The record's TTL is set once, at creation: its absolute expiry (PEXPIRETIME) stays the
 * same through every later script. */
static void test_ttl_never_extended(void **state)
{
    (void)state;
    static const char *const want[] = {"extended",  "saved",     "claimed", "in_progress",
                                       "recovered", "completed", "replay",  "found"};
    const char *cp[] = {"tok", "cp"};
    const char *ext[] = {"tok", "40"};
    const char *done[] = {"tok2", "200", "{}", "", "utf8"};
    freeReplyObject(claim("idem:s:ttl", "fp", "tok", "40", "takeover", "att"));
    long long expiry = th_redis_int(&redis, "PEXPIRETIME idem:s:ttl");
    assert_true(expiry > 0);
    for (int step = 0; step < 8; step++) {
        sleep_ms(step == 4 ? 60 : 3); /* before step 4 the lease runs out */
        redisReply *r = NULL;
        switch (step) {
        case 0: expect(&script_idem_extend, "idem:s:ttl", 2, ext, want[step]); break;
        case 1: expect(&script_idem_checkpoint, "idem:s:ttl", 2, cp, want[step]); break;
        case 2: r = claim("idem:s:ttl", "fp", "tok9", "40", "takeover", "att"); break;
        case 3: r = claim("idem:s:ttl", "fp", "tok9", "40", "takeover", ""); break;
        case 4: r = claim("idem:s:ttl", "fp", "tok2", "30000", "takeover", ""); break;
        case 5: expect(&script_idem_complete, "idem:s:ttl", 5, done, want[step]); break;
        case 6: r = claim("idem:s:ttl", "fp", "tok3", "30000", "takeover", ""); break;
        default: expect(&script_idem_record, "idem:s:ttl", 0, NULL, want[step]); break;
        }
        if (r) {
            assert_string_equal(str_at(r, 0), want[step]);
            freeReplyObject(r);
        }
        long long now = th_redis_int(&redis, "PEXPIRETIME idem:s:ttl");
        if (now != expiry)
            fail_msg("%s moved the expiry from %lld to %lld", want[step], expiry, now);
    }
}

static void test_record_and_release(void **state)
{
    (void)state;
    expect(&script_idem_record, "idem:s:r", 0, NULL, "not_found");
    freeReplyObject(claim("idem:s:r", "fp", "tok", "30000", "takeover", ""));
    redisReply *r = th_redis_cmd(&redis, "EVALSHA %s 1 idem:s:r", script_idem_record.sha1);
    assert_string_equal(str_at(r, 0), "found");
    assert_string_equal(str_at(r, 1), "in_progress");
    assert_string_equal(str_at(r, 2), "fp");
    assert_true(int_at(r, 4) > 29000);
    assert_int_equal(int_at(r, 5), -1);      /* no status yet */
    assert_int_equal(int_at(r, 6), 0);       /* no checkpoint */
    assert_int_equal(int_at(r, 8), 1);       /* claims */
    for (size_t i = 0; i < r->elements; i++) /* never the lease token */
        if (r->element[i]->type == REDIS_REPLY_STRING)
            assert_string_not_equal(r->element[i]->str, "tok");
    freeReplyObject(r);
    const char *rel[] = {"tok"};
    expect(&script_idem_release, "idem:s:r", 1, rel, "released");
    assert_int_equal(th_redis_int(&redis, "DBSIZE"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_claim_fresh_then_in_progress_then_mismatch, reset),
        cmocka_unit_test_setup(test_lease_from_redis_time, reset),
        cmocka_unit_test_setup(test_complete_and_replay, reset),
        cmocka_unit_test_setup(test_stale_token_changes_nothing, reset),
        cmocka_unit_test_setup(test_takeover_hands_checkpoint_and_stales_old_token, reset),
        cmocka_unit_test_setup(test_expired_holder_may_complete, reset),
        cmocka_unit_test_setup(test_block_mode, reset),
        cmocka_unit_test_setup(test_attempt_id_repeat, reset),
        cmocka_unit_test_setup(test_lease_capped_at_record_expiry, reset),
        cmocka_unit_test_setup(test_completed_record_is_final, reset),
        cmocka_unit_test_setup(test_ttl_never_extended, reset),
        cmocka_unit_test_setup(test_record_and_release, reset),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
