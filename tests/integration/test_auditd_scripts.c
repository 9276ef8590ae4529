/* SPDX-License-Identifier: Apache-2.0 */
/* audit_append.lua and audit_checkpoint.lua run directly with EVALSHA against a real
 * Redis: compare-and-set, conflict without writes, key activation, event-id dedup,
 * head/log mismatch, the caller's floor (a chain rolled back, emptied or replaced is
 * refused without writes), one checkpoint per interval. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../lib/harness.h"
#include "scripts.h"

#define ZERO "0000000000000000000000000000000000000000000000000000000000000000"
#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"
#define H3 "3333333333333333333333333333333333333333333333333333333333333333"
#define KEYS "5 audit:{s}:head audit:{s}:log audit:{s}:ids audit:{s}:idseq audit:{s}:keys"

static struct th_redis redis;

static int setup(void **state)
{
    (void)state;
    if (th_redis_start(&redis, NULL) != 0)
        return -1;
    redisReply *a = th_redis_cmd(&redis, "SCRIPT LOAD %s", script_audit_append.source);
    redisReply *c = th_redis_cmd(&redis, "SCRIPT LOAD %s", script_audit_checkpoint.source);
    int ok = a && c && strcmp(a->str, script_audit_append.sha1) == 0 &&
             strcmp(c->str, script_audit_checkpoint.sha1) == 0;
    freeReplyObject(a);
    freeReplyObject(c);
    return ok ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    th_redis_stop(&redis);
    return 0;
}

/* One append of a single entry; returns the reply (caller frees). */
static redisReply *append1(const char *seq, const char *hash, const char *activation,
                           const char *id, const char *new_hash)
{
    return th_redis_cmd(&redis,
                        "EVALSHA %s " KEYS " %s %s 86400000 v1 %s 0 " ZERO " 1 %s body %s sig",
                        script_audit_append.sha1, seq, hash, activation, id, new_hash);
}

static void assert_word(redisReply *r, const char *word)
{
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->str, word);
}

static void test_append_cas(void **state)
{
    (void)state;
    redisReply *r = append1("0", ZERO, "0", "", H1);
    assert_word(r, "need_activation"); /* v1 never signed here: its first entry must say so */
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{s}:log"), 0);
    r = append1("0", ZERO, "1", "", H1);
    assert_word(r, "ok");
    assert_int_equal(r->element[1]->integer, 1);
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{s}:keys v1"), 1);
    r = append1("1", H1, "1", "", H2);
    assert_word(r, "activated"); /* another instance already activated v1 */
    freeReplyObject(r);
    /* A stale head: conflict with the current head, nothing written. */
    r = append1("0", ZERO, "0", "", H2);
    assert_word(r, "conflict");
    assert_int_equal(r->element[1]->integer, 1);
    assert_string_equal(r->element[2]->str, H1);
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{s}:log"), 1);
    r = append1("1", H1, "0", "ev-9", H2);
    assert_word(r, "ok");
    freeReplyObject(r);
    redisReply *h = th_redis_cmd(&redis, "HGET audit:{s}:head hash");
    assert_string_equal(h->str, H2);
    freeReplyObject(h);
}

static void test_duplicate_event_id(void **state)
{
    (void)state;
    redisReply *r = append1("2", H2, "0", "ev-9", H1);
    assert_word(r, "duplicate");
    assert_int_equal(r->element[1]->integer, 1); /* batch index */
    assert_int_equal(r->element[2]->integer, 2); /* the seq it was appended at */
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{s}:log"), 2);
}

#define KEYS_B "5 audit:{b}:head audit:{b}:log audit:{b}:ids audit:{b}:idseq audit:{b}:keys"

/* Several entries in one call: contiguous seqs, the head on the last; an event id older
 * than the window is no longer a duplicate (and its seq is updated), and is trimmed. */
static void test_batch_and_window(void **state)
{
    (void)state;
    redisReply *r =
        th_redis_cmd(&redis,
                     "EVALSHA %s " KEYS_B " 0 %s 86400000 v1 1 0 " ZERO " 3 a b1 %s s1 %s b2 %s s2"
                     " c b3 %s s3",
                     script_audit_append.sha1, ZERO, H1, "", H2, H1);
    assert_word(r, "ok");
    assert_int_equal(r->element[1]->integer, 3);
    freeReplyObject(r);
    r = th_redis_cmd(&redis, "XRANGE audit:{b}:log - +");
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[1]->element[0]->str, "2-0");
    assert_string_equal(r->element[1]->element[1]->element[1]->str, "b2");
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{b}:idseq c"), 3);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{b}:head seq"), 3);
    usleep(20000);
    r = th_redis_cmd(&redis, "EVALSHA %s " KEYS_B " 3 %s 10 v1 0 0 " ZERO " 1 a b4 %s s4",
                     script_audit_append.sha1, H1, H2);
    assert_word(r, "ok"); /* "a" was appended more than 10 ms ago */
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{b}:idseq a"), 4);
    assert_int_equal(th_redis_int(&redis, "HEXISTS audit:{b}:idseq c"), 0); /* trimmed */
    assert_int_equal(th_redis_int(&redis, "ZCARD audit:{b}:ids"), 1);
}

static void test_head_log_mismatch(void **state)
{
    (void)state;
    freeReplyObject(th_redis_cmd(&redis, "XADD audit:{s}:log 9-0 body x hash y sig z"));
    redisReply *r = append1("2", H2, "0", "", H1);
    assert_word(r, "broken");
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{s}:head seq"), 2);
}

#define KEYS_F "5 audit:{f}:head audit:{f}:log audit:{f}:ids audit:{f}:idseq audit:{f}:keys"

/* One entry (hash new_hash) on the expected head, with the caller's floor; the first one
 * of the chain is v1's activation. */
static redisReply *append_floor(const char *seq, const char *hash, const char *floor_seq,
                                const char *floor_hash, const char *new_hash)
{
    return th_redis_cmd(&redis, "EVALSHA %s " KEYS_F " %s %s 86400000 v1 %s %s %s 1 %s b %s s",
                        script_audit_append.sha1, seq, hash, strcmp(seq, "0") == 0 ? "1" : "0",
                        floor_seq, floor_hash, "", new_hash);
}

static void assert_refused(redisReply *r, const char *word, long long head_seq, long long xlen)
{
    assert_word(r, word);
    assert_int_equal(r->element[1]->integer, head_seq);
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{f}:log"), xlen);
}

/* The floor (the highest entry the caller has seen) must be in the chain: a head past it
 * is fine when the entry at its seq has its hash (others appended meanwhile); a head below
 * it (rolled back, emptied) or another hash there (replaced) is refused, nothing written,
 * before the compare-and-set is even looked at. */
static void test_floor(void **state)
{
    (void)state;
    redisReply *r = append_floor("0", ZERO, "0", ZERO, H1);
    assert_word(r, "ok");
    freeReplyObject(r);
    r = append_floor("1", H1, "1", H1, H2);
    assert_word(r, "ok");
    freeReplyObject(r);
    r = append_floor("2", H2, "1", H1, H3); /* the floor lags the head: others appended */
    assert_word(r, "ok");
    assert_int_equal(r->element[1]->integer, 3);
    freeReplyObject(r);
    assert_refused(append_floor("3", H3, "2", H1, H1), "diverged", 3, 3); /* another hash at 2 */
    assert_refused(append_floor("3", H3, "3", H2, H1), "diverged", 3, 3); /* at the head */
    assert_refused(append_floor("3", H3, "7", H1, H1), "rolled_back", 3, 3);
    r = append_floor("1", H1, "2", H2, H1); /* the floor holds: a plain conflict */
    assert_word(r, "conflict");
    freeReplyObject(r);
    /* emptied (FLUSHALL, a Redis restarted empty): even the empty head it expects is refused */
    freeReplyObject(th_redis_cmd(&redis, "DEL audit:{f}:head audit:{f}:log audit:{f}:keys"));
    assert_refused(append_floor("0", ZERO, "3", H3, H1), "rolled_back", 0, 0);
    assert_int_equal(th_redis_int(&redis, "EXISTS audit:{f}:head"), 0);
    assert_int_equal(th_redis_int(&redis, "EXISTS audit:{f}:keys"), 0);
}

static void test_checkpoint_once_per_interval(void **state)
{
    (void)state;
    const char *k = "audit:{s}:checkpoints";
    redisReply *r = th_redis_cmd(&redis, "EVALSHA %s 1 %s 3600000 2 %s note1",
                                 script_audit_checkpoint.sha1, k, H2);
    assert_word(r, "stored");
    freeReplyObject(r);
    r = th_redis_cmd(&redis, "EVALSHA %s 1 %s 3600000 2 %s note2", script_audit_checkpoint.sha1, k,
                     H2);
    assert_word(r, "exists");
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "XLEN %s", k), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_cas),
        cmocka_unit_test(test_duplicate_event_id),
        cmocka_unit_test(test_batch_and_window),
        cmocka_unit_test(test_head_log_mismatch),
        cmocka_unit_test(test_floor),
        cmocka_unit_test(test_checkpoint_once_per_interval),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
