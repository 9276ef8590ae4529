/* SPDX-License-Identifier: Apache-2.0 */
/* tokend's Lua scripts run directly against a real redis-server with EVALSHA: issue,
 * refresh (rotation, grace, reuse, fingerprint policy, TTLs, key rotation), revoke and
 * the per-user index. */
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

static struct th_redis redis;
static redisContext *rc;
static int family_seq;

static int setup(void **state)
{
    (void)state;
    if (th_redis_start(&redis, NULL) != 0)
        return -1;
    rc = redisConnect("127.0.0.1", redis.port);
    return rc && !rc->err ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    redisFree(rc);
    th_redis_stop(&redis);
    return 0;
}

/* EVALSHA script with nkeys keys then args (argv NULL-terminated); loads it first. */
static redisReply *run(const struct script *s, int nkeys, const char *const *args)
{
    const char *argv[40];
    char nk[8];
    int n = 0;
    redisReply *load = redisCommand(rc, "SCRIPT LOAD %s", s->source);
    assert_non_null(load);
    assert_int_equal(load->type, REDIS_REPLY_STRING);
    assert_string_equal(load->str, s->sha1);
    freeReplyObject(load);
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[n++] = "EVALSHA";
    argv[n++] = s->sha1;
    argv[n++] = nk;
    for (int i = 0; args[i]; i++)
        argv[n++] = args[i];
    redisReply *r = redisCommandArgv(rc, n, argv, NULL);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("script %s failed: %s", s->name, r->str);
    return r;
}

static const char *el(const redisReply *r, size_t i)
{
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_true(i < r->elements);
    return r->element[i]->str ? r->element[i]->str : "";
}

struct fam {
    char id[32], f[64], used[64];
};

/* Issue a family for device d-1, Chrome 120 (ua hash "uah120"), tls "ja4-a", hash "h0". */
static void issue(struct fam *fm, const char *idle_ms, const char *abs_ms)
{
    snprintf(fm->id, sizeof(fm->id), "fam%d", ++family_seq);
    snprintf(fm->f, sizeof(fm->f), "tok:{%s}:f", fm->id);
    snprintf(fm->used, sizeof(fm->used), "tok:{%s}:used", fm->id);
    const char *args[] = {fm->f, "u-1",   "web", "openid", "d-1",   "uah120", "Chrome",
                          "120", "ja4-a", "fp0", "h0",     idle_ms, abs_ms,   NULL};
    redisReply *r = run(&script_token_issue, 1, args);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_true(r->element[0]->integer > 0);
    assert_int_equal(r->element[1]->integer,
                     atoll(idle_ms) < atoll(abs_ms) ? atoll(idle_ms) : atoll(abs_ms));
    freeReplyObject(r);
}

/* A presentation; fields default to the issued client and policy upgrade/soft/reject. */
struct pres {
    const char *hash, *prev, *device, *uah, *product, *major, *tls;
    const char *ua_policy, *tls_policy, *on_mismatch, *succ, *sealed, *grace, *idle;
};

static redisReply *refresh(const struct fam *fm, struct pres p)
{
#define D(x, v) ((x) ? (x) : (v))
    const char *args[] = {fm->f,
                          fm->used,
                          D(p.hash, "h0"),
                          D(p.prev, ""),
                          D(p.device, "d-1"),
                          D(p.uah, "uah120"),
                          D(p.product, "Chrome"),
                          D(p.major, "120"),
                          D(p.tls, "ja4-a"),
                          "fpX",
                          D(p.ua_policy, "upgrade"),
                          D(p.tls_policy, "soft"),
                          D(p.on_mismatch, "reject"),
                          D(p.succ, "h1"),
                          D(p.sealed, "sealed-h1"),
                          D(p.grace, "10000"),
                          D(p.idle, "60000"),
                          NULL};
#undef D
    return run(&script_token_refresh, 2, args);
}

static void expect_kind(redisReply *r, const char *kind)
{
    assert_string_equal(el(r, 0), kind);
    freeReplyObject(r);
}

static char *hget(const struct fam *fm, const char *field)
{
    redisReply *r = redisCommand(rc, "HGET %s %s", fm->f, field);
    char *s = strdup(r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return s;
}

static void expect_state(const struct fam *fm, const char *state, const char *reason)
{
    char *s = hget(fm, "state"), *why = hget(fm, "revoked_reason");
    assert_string_equal(s, state);
    if (reason)
        assert_string_equal(why, reason);
    free(s);
    free(why);
}

static void test_rotation_grace_then_reuse(void **state)
{
    struct fam fm = {0};
    (void)state;
    issue(&fm, "60000", "120000");
    redisReply *r = refresh(&fm, (struct pres){.grace = "300"});
    assert_string_equal(el(r, 0), "ok");
    assert_string_equal(el(r, 1), "u-1");
    assert_string_equal(el(r, 2), "web");
    assert_string_equal(el(r, 3), "openid");
    assert_true(atoll(el(r, 4)) > 59000 && atoll(el(r, 4)) <= 60000);
    assert_string_equal(el(r, 5), "0");
    assert_string_equal(el(r, 6), "");
    freeReplyObject(r);
    char *cur = hget(&fm, "current"), *par = hget(&fm, "parent");
    assert_string_equal(cur, "h1");
    assert_string_equal(par, "h0");
    free(cur);
    free(par);
    assert_int_equal(th_redis_int(&redis, "SISMEMBER %s h0", fm.used), 1);
    assert_true(th_redis_int(&redis, "PTTL %s", fm.used) > 0);
    /* The old token again inside the window: the same sealed successor, no new rotation. */
    r = refresh(&fm, (struct pres){.succ = "h-other", .sealed = "sealed-other"});
    assert_string_equal(el(r, 0), "grace");
    assert_string_equal(el(r, 5), "sealed-h1");
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "HGET %s rotations", fm.f), 1);
    /* A second "tab" on another device does not get the successor. */
    r = refresh(&fm, (struct pres){.device = "d-2"});
    assert_string_equal(el(r, 0), "mismatch");
    assert_string_equal(el(r, 1), "device_id");
    freeReplyObject(r);
    expect_state(&fm, "active", NULL);
    usleep(350 * 1000);
    expect_kind(refresh(&fm, (struct pres){0}), "reused");
    expect_state(&fm, "revoked", "reuse");
    /* The family is dead: even the live successor is refused now. */
    expect_kind(refresh(&fm, (struct pres){.hash = "h1", .succ = "h2"}), "invalid");
}

static void test_older_token_is_reuse(void **state)
{
    struct fam fm = {0};
    (void)state;
    issue(&fm, "60000", "120000");
    expect_kind(refresh(&fm, (struct pres){.succ = "h1"}), "ok");
    expect_kind(refresh(&fm, (struct pres){.hash = "h1", .succ = "h2"}), "ok");
    /* h0 is neither current nor parent: found in `used`, revoked even inside the window. */
    expect_kind(refresh(&fm, (struct pres){.hash = "h0", .succ = "h3"}), "reused");
    expect_state(&fm, "revoked", "reuse");
}

static void test_unknown_and_no_grace(void **state)
{
    struct fam fm = {0};
    (void)state;
    struct fam none = {.id = "nope", .f = "tok:{nope}:f", .used = "tok:{nope}:used"};
    expect_kind(refresh(&none, (struct pres){0}), "invalid");
    assert_int_equal(th_redis_int(&redis, "EXISTS tok:{nope}:f tok:{nope}:used"), 0);
    issue(&fm, "60000", "120000");
    expect_kind(refresh(&fm, (struct pres){.hash = "never"}), "invalid");
    expect_state(&fm, "active", NULL);
    /* Grace 0: the parent is reuse at once. */
    expect_kind(refresh(&fm, (struct pres){.grace = "0"}), "ok");
    char *sealed = hget(&fm, "grace_successor");
    assert_string_equal(sealed, "");
    free(sealed);
    expect_kind(refresh(&fm, (struct pres){0}), "reused");
}

static void test_fingerprint_policy(void **state)
{
    struct fam fm = {0};
    (void)state;
    issue(&fm, "60000", "120000");
    redisReply *r = refresh(&fm, (struct pres){.device = "d-2"});
    assert_string_equal(el(r, 0), "mismatch");
    assert_string_equal(el(r, 1), "device_id");
    assert_string_equal(el(r, 2), "0");
    freeReplyObject(r);
    expect_state(&fm, "active", NULL);
    /* Downgrade and browser switch refused under both policies. */
    const char *pol[] = {"upgrade", "strict"};
    for (int i = 0; i < 2; i++) {
        r = refresh(&fm, (struct pres){.uah = "uah119", .major = "119", .ua_policy = pol[i]});
        assert_string_equal(el(r, 1), "user_agent");
        freeReplyObject(r);
        r = refresh(&fm,
                    (struct pres){
                        .uah = "uahff", .product = "Firefox", .major = "130", .ua_policy = pol[i]});
        assert_string_equal(el(r, 1), "user_agent");
        freeReplyObject(r);
    }
    /* Upgrade refused under strict, accepted and re-bound under upgrade. */
    r = refresh(&fm, (struct pres){.uah = "uah121", .major = "121", .ua_policy = "strict"});
    assert_string_equal(el(r, 0), "mismatch");
    freeReplyObject(r);
    r = refresh(&fm, (struct pres){.uah = "uah121", .major = "121", .tls = "ja4-b"});
    assert_string_equal(el(r, 0), "ok");
    assert_string_equal(el(r, 5), "1");
    assert_string_equal(el(r, 6), "user_agent,tls"); /* tls drift under soft: accepted */
    freeReplyObject(r);
    char *uah = hget(&fm, "ua_hash"), *major = hget(&fm, "ua_major");
    assert_string_equal(uah, "uah121");
    assert_string_equal(major, "121");
    free(uah);
    free(major);
    /* Re-bound: Chrome 120 is now a downgrade. */
    r = refresh(&fm, (struct pres){.hash = "h1", .succ = "h2"});
    assert_string_equal(el(r, 1), "user_agent");
    freeReplyObject(r);
    /* TLS strict refuses a change; revoke-on-mismatch revokes. */
    r = refresh(&fm, (struct pres){.hash = "h1",
                                   .uah = "uah121",
                                   .major = "121",
                                   .tls = "ja4-c",
                                   .tls_policy = "strict",
                                   .on_mismatch = "revoke"});
    assert_string_equal(el(r, 0), "mismatch");
    assert_string_equal(el(r, 1), "tls");
    assert_string_equal(el(r, 2), "1");
    freeReplyObject(r);
    expect_state(&fm, "revoked", "mismatch");
}

static void test_ttls_and_absolute_expiry(void **state)
{
    struct fam fm = {0};
    (void)state;
    issue(&fm, "60000", "400");
    /* TTL is min(idle, absolute) and a refresh never extends past the absolute expiry. */
    assert_true(th_redis_int(&redis, "PTTL %s", fm.f) <= 400);
    redisReply *r = refresh(&fm, (struct pres){0});
    assert_string_equal(el(r, 0), "ok");
    assert_true(atoll(el(r, 4)) <= 400);
    freeReplyObject(r);
    assert_true(th_redis_int(&redis, "PTTL %s", fm.used) <= 400);
    usleep(450 * 1000);
    assert_int_equal(th_redis_int(&redis, "EXISTS %s", fm.f), 0);
    expect_kind(refresh(&fm, (struct pres){.hash = "h1"}), "invalid");
    /* Idle: renewed by each refresh. */
    issue(&fm, "300", "60000");
    usleep(200 * 1000);
    expect_kind(refresh(&fm, (struct pres){.idle = "300"}), "ok");
    usleep(200 * 1000);
    assert_int_equal(th_redis_int(&redis, "EXISTS %s", fm.f), 1);
    usleep(200 * 1000);
    assert_int_equal(th_redis_int(&redis, "EXISTS %s", fm.f), 0);
}

static void test_previous_key_hash(void **state)
{
    struct fam fm = {0};
    (void)state;
    issue(&fm, "60000", "120000");
    /* Hash under the new key unknown; under the previous key it is the current one. */
    expect_kind(refresh(&fm, (struct pres){.hash = "h0-new", .prev = "h0"}), "ok");
    expect_kind(refresh(&fm, (struct pres){.hash = "h1", .succ = "h2"}), "ok");
    expect_kind(refresh(&fm, (struct pres){.hash = "x", .prev = "h0"}), "reused");
}

static void test_revoke_script(void **state)
{
    struct fam fm = {0};
    (void)state;
    issue(&fm, "60000", "120000");
    const char *wrong[] = {fm.f, fm.used, "token", "zz", "", "", "token", NULL};
    redisReply *r = run(&script_token_revoke, 2, wrong);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    const char *other[] = {fm.f, fm.used, "family", "", "", "u-2", "user", NULL};
    r = run(&script_token_revoke, 2, other);
    assert_int_equal(r->integer, 0); /* another user's family */
    freeReplyObject(r);
    expect_state(&fm, "active", NULL);
    const char *byprev[] = {fm.f, fm.used, "token", "zz", "h0", "", "token", NULL};
    r = run(&script_token_revoke, 2, byprev);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    expect_state(&fm, "revoked", "token");
    r = run(&script_token_revoke, 2, byprev);
    assert_int_equal(r->integer, 0); /* already revoked */
    freeReplyObject(r);
    const char *gone[] = {"tok:{gone}:f", "tok:{gone}:used", "family", "", "", "", "family", NULL};
    r = run(&script_token_revoke, 2, gone);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    assert_int_equal(th_redis_int(&redis, "EXISTS tok:{gone}:f"), 0);
}

/* The index counts what it holds and never shortens its TTL; the cap itself is enforced
 * by tokend, which can see which indexed families are alive. */
static void test_user_index(void **state)
{
    (void)state;
    const char *ids[] = {"a", "b", "c", "b"};
    const long long want[] = {1, 2, 3, 3}; /* "b" again: updated, not added */
    const char *ttl[] = {"60000", "60000", "1000", "60000"};
    for (int i = 0; i < 4; i++) {
        char score[16];
        snprintf(score, sizeof(score), "%d", 100 + i);
        const char *args[] = {"tok:user:{u-idx}", ids[i], score, ttl[i], NULL};
        redisReply *r = run(&script_token_user_add, 1, args);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_int_equal(r->integer, want[i]);
        freeReplyObject(r);
        assert_true(th_redis_int(&redis, "PTTL tok:user:{u-idx}") > 59000);
    }
    redisReply *r = redisCommand(rc, "ZRANGE tok:user:{u-idx} 0 -1");
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "a"); /* by creation time */
    assert_string_equal(r->element[2]->str, "b");
    freeReplyObject(r);
}

/* Every key a tokend script touches is one of its KEYS (so the caller's hash tags decide
 * the slot, and a cluster can route it): each redis.call names its key as KEYS[n], and
 * the scripts that take two keys are given them under one tag. TIME takes no key. */
static void test_scripts_touch_only_declared_keys(void **state)
{
    const struct script *const all[] = {&script_token_issue, &script_token_refresh,
                                        &script_token_revoke, &script_token_user_add};
    (void)state;
    for (int i = 0; i < 4; i++) {
        int calls = 0;
        const char *src = all[i]->source;
        assert_non_null(strstr(src, "-- KEYS[1]")); /* the contract comment */
        assert_non_null(strstr(src, "-- ARGV[1]"));
        assert_non_null(strstr(src, "-- Reply"));
        for (const char *p = strstr(src, "redis.call("); p; p = strstr(p + 1, "redis.call(")) {
            const char *cmd = p + strlen("redis.call(");
            const char *comma = strchr(cmd, ',');
            const char *close = strchr(cmd, ')');
            calls++;
            if (strncmp(cmd, "'TIME')", 7) == 0)
                continue;
            if (!comma || (close && close < comma) || strncmp(comma + 1, " KEYS[", 6) != 0)
                fail_msg("%s: a redis.call whose key is not one of KEYS: %.40s", all[i]->name, p);
        }
        assert_true(calls > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rotation_grace_then_reuse),
        cmocka_unit_test(test_older_token_is_reuse),
        cmocka_unit_test(test_unknown_and_no_grace),
        cmocka_unit_test(test_fingerprint_policy),
        cmocka_unit_test(test_ttls_and_absolute_expiry),
        cmocka_unit_test(test_previous_key_hash),
        cmocka_unit_test(test_revoke_script),
        cmocka_unit_test(test_user_index),
        cmocka_unit_test(test_scripts_touch_only_declared_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
