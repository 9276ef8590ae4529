/* SPDX-License-Identifier: Apache-2.0 */
/* audit_append.lua and audit_checkpoint.lua run directly with EVALSHA against a real
 * Redis: compare-and-set, conflict without writes, key activation, event-id dedup,
 * head/log mismatch, the caller's floor (a chain rolled back, emptied or replaced is
 * refused without writes, and so is a tree smaller than the floor or with another root at
 * its size), the tree's tiles growing by APPEND only where their length fits, a chain from
 * before the tree catching up, one checkpoint per interval. The tree's hashes are the
 * caller's (the script has no SHA-256): here they are placeholders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
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

/* The arguments of the tree after the floor's hash: floor root, n, no tile appends, the
 * tree size expected (the head's: it is in step) and after, placeholder frontier and root. */
#define TREE0 " %s %d 0 %lld F R %lld"

/* One append of a single entry; returns the reply (caller frees). */
static redisReply *append1(const char *seq, const char *hash, const char *activation,
                           const char *id, const char *new_hash)
{
    return th_redis_cmd(&redis,
                        "EVALSHA %s " KEYS " %s %s 86400000 v1 %s 0 " ZERO TREE0 " %s body %s sig",
                        script_audit_append.sha1, seq, hash, activation, "", 1, atoll(seq),
                        atoll(seq) + 1, id, new_hash);
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
    assert_int_equal(r->elements, 6); /* seq, hash and the tree: size, root, frontier */
    assert_string_equal(r->element[1]->str, "1");
    assert_string_equal(r->element[2]->str, H1);
    assert_string_equal(r->element[3]->str, "1");
    assert_string_equal(r->element[4]->str, "R");
    assert_string_equal(r->element[5]->str, "F");
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
    redisReply *r = th_redis_cmd(&redis,
                                 "EVALSHA %s " KEYS_B " 0 %s 86400000 v1 1 0 " ZERO TREE0
                                 " a b1 %s s1 %s b2 %s s2 c b3 %s s3",
                                 script_audit_append.sha1, ZERO, "", 3, 0LL, 3LL, H1, "", H2, H1);
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
    r = th_redis_cmd(&redis, "EVALSHA %s " KEYS_B " 3 %s 10 v1 0 0 " ZERO TREE0 " a b4 %s s4",
                     script_audit_append.sha1, H1, "", 1, 3LL, 4LL, H2);
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
    return th_redis_cmd(&redis,
                        "EVALSHA %s " KEYS_F " %s %s 86400000 v1 %s %s %s" TREE0 " %s b %s s",
                        script_audit_append.sha1, seq, hash, strcmp(seq, "0") == 0 ? "1" : "0",
                        floor_seq, floor_hash, "", 1, atoll(seq), atoll(seq) + 1, "", new_hash);
}

static void assert_refused(redisReply *r, const char *word, long long head_seq, long long xlen)
{
    assert_word(r, word);
    assert_int_equal(r->element[1]->integer, head_seq);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{f}:head seq"), head_seq ? head_seq : -1);
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

#define KEYS_T(tile)                                                                               \
    "6 audit:{t}:head audit:{t}:log audit:{t}:ids audit:{t}:idseq audit:{t}:keys "                 \
    "audit:{t}:tile:0:" tile

/* One entry on chain {t} with one tile append: expected tree sizes from and to, the length
 * the tile must have, and the bytes appended. */
static redisReply *append_tile(long long seq, const char *hash, const char *floor_root,
                               long long from, long long to, const char *tile_len,
                               const char *bytes, size_t nbytes, const char *new_hash)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", seq);
    return th_redis_cmd(&redis,
                        "EVALSHA %s " KEYS_T("0") " %s %s 86400000 v1 %s %s %s %s 1 1 %lld F R "
                                                  "%lld %s b %s s %s %b",
                        script_audit_append.sha1, s, hash, seq == 0 ? "1" : "0",
                        floor_root[0] ? s : "0", floor_root[0] ? hash : ZERO, floor_root, from, to,
                        "", new_hash, tile_len, bytes, nbytes);
}

/* Tile appends go in with the entries, only onto a tile of the length the caller computed
 * them for; the tree size after a batch is the chain's; with the floor's root, a tree
 * smaller than the floor or with another root at the floor's size is refused. */
static void test_tree_tiles(void **state)
{
    (void)state;
    char h64[64];
    memset(h64, 'a', sizeof(h64));
    redisReply *r = append_tile(0, ZERO, "", 0, 1, "0", h64, 32, H1);
    assert_word(r, "ok");
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "STRLEN audit:{t}:tile:0:0"), 32);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{t}:head tsize"), 1);
    r = append_tile(1, H1, "", 1, 2, "0", h64, 32, H2); /* computed for an empty tile */
    assert_word(r, "tree_broken");
    assert_int_equal(r->element[1]->integer, 1);
    assert_int_equal(r->element[2]->integer, 32);
    freeReplyObject(r);
    r = append_tile(1, H1, "", 1, 3, "32", h64, 32, H2); /* a tree larger than the chain */
    assert_word(r, "tree_broken");
    assert_int_equal(r->element[1]->integer, 0);
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{t}:log"), 1);
    assert_int_equal(th_redis_int(&redis, "STRLEN audit:{t}:tile:0:0"), 32);
    r = append_tile(1, H1, "R", 1, 2, "32", h64, 32, H2);
    assert_word(r, "ok");
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "STRLEN audit:{t}:tile:0:0"), 64);
    /* The floor at the head, with another root there: refused. */
    r = append_tile(2, H2, "S", 2, 3, "64", h64, 32, H3);
    assert_word(r, "diverged");
    freeReplyObject(r);
    /* A tree rolled back below the floor (the chain still holds it): refused. */
    freeReplyObject(th_redis_cmd(&redis, "HSET audit:{t}:head tsize 1"));
    r = append_tile(2, H2, "R", 1, 3, "64", h64, 32, H3);
    assert_word(r, "rolled_back");
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{t}:log"), 2);
    assert_int_equal(th_redis_int(&redis, "STRLEN audit:{t}:tile:0:0"), 64);
}

/* A chain from before the tree: n = 0 calls add the leaves of its entries, up to its head
 * and no further, then entries go on with the tree in step. */
static void test_tree_catch_up(void **state)
{
    (void)state;
    char h64[64];
    memset(h64, 'b', sizeof(h64));
    freeReplyObject(th_redis_cmd(&redis, "DEL audit:{t}:head audit:{t}:log audit:{t}:tile:0:0"));
    freeReplyObject(th_redis_cmd(&redis, "XADD audit:{t}:log 1-0 body b hash %s sig s", H1));
    freeReplyObject(th_redis_cmd(&redis, "XADD audit:{t}:log 2-0 body b hash %s sig s", H2));
    freeReplyObject(th_redis_cmd(&redis, "HSET audit:{t}:head seq 2 hash %s", H2));
    const char *fmt = "EVALSHA %s " KEYS_T("0") " 2 %s 86400000 v1 0 0 %s %s 0 1 %s F R %s 0 %b";
    redisReply *r = th_redis_cmd(&redis, fmt, script_audit_append.sha1, H2, ZERO, "", "0", "3", h64,
                                 (size_t)64);
    assert_word(r, "tree_broken"); /* past the head */
    freeReplyObject(r);
    r = th_redis_cmd(&redis, fmt, script_audit_append.sha1, H2, ZERO, "", "1", "2", h64,
                     (size_t)32);
    assert_word(r, "conflict"); /* the tree has 0 leaves, not 1: the caller learns so */
    assert_string_equal(r->element[3]->str, "");
    freeReplyObject(r);
    r = th_redis_cmd(&redis, fmt, script_audit_append.sha1, H2, ZERO, "", "0", "2", h64,
                     (size_t)64);
    assert_word(r, "ok");
    assert_int_equal(r->element[1]->integer, 2);
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{t}:head tsize"), 2);
    assert_int_equal(th_redis_int(&redis, "HGET audit:{t}:head seq"), 2);
    assert_int_equal(th_redis_int(&redis, "STRLEN audit:{t}:tile:0:0"), 64);
    assert_int_equal(th_redis_int(&redis, "XLEN audit:{t}:log"), 2);
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
        cmocka_unit_test(test_tree_tiles),
        cmocka_unit_test(test_tree_catch_up),
        cmocka_unit_test(test_checkpoint_once_per_interval),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
