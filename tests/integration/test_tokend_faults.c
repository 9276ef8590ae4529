/* SPDX-License-Identifier: Apache-2.0 */
/* tokend under bad input and a failing Redis: every malformed request gets its documented
 * 4xx and leaves Redis untouched (no command reaches it, nothing changes); a frozen or
 * dead Redis gives 503 backend_unavailable on every endpoint, within the timeout, and
 * tokend serves again once Redis is back; a request waiting on Redis holds up no other;
 * a bad configuration stops it with one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "../lib/harness.h"
#include "test_tokend_util.h"

static struct th_redis redis;
static struct th_proc tokend;

static int setup(void **state)
{
    (void)state;
    if (th_redis_start(&redis, NULL) != 0)
        return -1;
    /* A long grace window: the retry after a 503 must land inside it on a loaded machine. */
    static const char *const extra[] = {"TOKEN_REUSE_GRACE=5s", NULL};
    return tt_start(&tokend, redis.url, extra);
}

static int teardown(void **state)
{
    (void)state;
    th_proc_stop(&tokend, SIGTERM, 5000);
    th_redis_stop(&redis);
    return 0;
}

/* Commands Redis ran, except the connection housekeeping of the pool and this test
 * (PING, INFO, SCRIPT, SELECT, AUTH, HELLO, CLIENT, COMMAND). */
static long long data_commands(void)
{
    static const char *const ignored[] = {"ping", "info",  "script", "select",
                                          "auth", "hello", "client", "command"};
    long long total = 0;
    redisReply *r = th_redis_cmd(&redis, "INFO commandstats");
    assert_non_null(r);
    for (const char *p = strstr(r->str, "cmdstat_"); p; p = strstr(p + 1, "cmdstat_")) {
        const char *name = p + strlen("cmdstat_");
        size_t len = strcspn(name, "|:");
        int skip = 0;
        for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
            skip |= strlen(ignored[i]) == len && memcmp(name, ignored[i], len) == 0;
        const char *calls = strstr(name, "calls=");
        if (!skip && calls)
            total += atoll(calls + strlen("calls="));
    }
    freeReplyObject(r);
    return total;
}

/* Writes since startup (Redis's dirty counter): any change to the dataset moves it. */
static long long changes(void)
{
    redisReply *r = th_redis_cmd(&redis, "INFO persistence");
    assert_non_null(r);
    const char *p = strstr(r->str, "rdb_changes_since_last_save:");
    assert_non_null(p);
    long long n = atoll(p + strlen("rdb_changes_since_last_save:"));
    freeReplyObject(r);
    return n;
}

#define CLIENT "\"device_id\":\"d\",\"user_agent\":\"a\""
#define FAM "AAAAAAAAAAAAAAAAAAAAAA"                          /* 22 characters */
#define SECRET_SHORT "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" /* 38 */
#define SECRET SECRET_SHORT "AAAAA"                           /* 43 */
#define VALID_TOKEN "rt1." FAM "." SECRET
/* A refresh with a malformed token: 401 invalid_grant, like an unknown one. */
#define MALFORMED(token)                                                                           \
    {                                                                                              \
        "/v1/tokens/refresh", "{\"refresh_token\":\"" token "\"," CLIENT "}", 401,                 \
            "invalid_grant", NULL                                                                  \
    }

static const struct bad_case {
    const char *path, *body;
    int status;
    const char *code, *field; /* field: the "field" member expected, or NULL */
} BAD[] = {
    /* issue: missing, mistyped, out of range, braces, control characters, bad JSON */
    {"/v1/tokens", "{\"user_id\":\"u\",\"device_id\":\"d\"}", 400, "invalid_request", "user_agent"},
    {"/v1/tokens", "{\"device_id\":\"d\",\"user_agent\":\"a\"}", 400, "invalid_request", "user_id"},
    {"/v1/tokens", "{\"user_id\":\"u\",\"user_agent\":\"a\"}", 400, "invalid_request", "device_id"},
    {"/v1/tokens", "{\"user_id\":\"u{x}\"," CLIENT "}", 400, "invalid_request", "user_id"},
    {"/v1/tokens", "{\"user_id\":\"u}\"," CLIENT "}", 400, "invalid_request", "user_id"},
    {"/v1/tokens", "{\"user_id\":\"\"," CLIENT "}", 400, "invalid_request", "user_id"},
    {"/v1/tokens", "{\"user_id\":7," CLIENT "}", 400, "invalid_request", "user_id"},
    {"/v1/tokens", "{\"user_id\":1e999," CLIENT "}", 400, "invalid_json", NULL},
    {"/v1/tokens", "{\"user_id\":[\"u\"]," CLIENT "}", 400, "invalid_request", "user_id"},
    {"/v1/tokens", "{\"user_id\":\"u\",\"device_id\":\"d\\n\",\"user_agent\":\"a\"}", 400,
     "invalid_request", "device_id"},
    {"/v1/tokens", "{\"user_id\":\"u\\u0000\"," CLIENT "}", 400, "invalid_json", NULL},
    {"/v1/tokens", "{\"user_id\":\"u\",\"client_id\":\"{c}\"," CLIENT "}", 400, "invalid_request",
     "client_id"},
    {"/v1/tokens", "{\"user_id\":\"u\",\"scope\":5," CLIENT "}", 400, "invalid_request", "scope"},
    {"/v1/tokens", "{\"user_id\":\"u\",\"scope\":\"a\\tb\"," CLIENT "}", 400, "invalid_request",
     "scope"},
    {"/v1/tokens", "{\"user_id\":\"u\",\"device_id\":\"d\",\"user_agent\":\"\"}", 400,
     "invalid_request", "user_agent"},
    {"/v1/tokens", "{\"user_id\":\"u\",\"tls_fingerprint\":false," CLIENT "}", 400,
     "invalid_request", "tls_fingerprint"},
    {"/v1/tokens", "{\"user_id\":\"u\",", 400, "invalid_json", NULL},
    {"/v1/tokens", "[1,2]", 400, "invalid_json", NULL},
    {"/v1/tokens", "\"u\"", 400, "invalid_json", NULL},
    {"/v1/tokens",
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
     400, "invalid_json", NULL},
    /* refresh: missing fields are 400; a malformed token is 401 invalid_grant */
    {"/v1/tokens/refresh", "{" CLIENT "}", 400, "invalid_request", "refresh_token"},
    {"/v1/tokens/refresh", "{\"refresh_token\":\"rt1.x\",\"user_agent\":\"a\"}", 400,
     "invalid_request", "device_id"},
    {"/v1/tokens/refresh", "{\"refresh_token\":\"rt1.x\",\"device_id\":\"d\"}", 400,
     "invalid_request", "user_agent"},
    {"/v1/tokens/refresh", "{\"refresh_token\":42," CLIENT "}", 400, "invalid_request",
     "refresh_token"},
    {"/v1/tokens/refresh", "{\"refresh_token\":\"" VALID_TOKEN "\",\"device_id\":\"{d}\"}", 400,
     "invalid_request", "device_id"},
    MALFORMED("rt2." FAM "." SECRET),                /* wrong prefix */
    MALFORMED("RT1." FAM "." SECRET),                /* wrong prefix */
    MALFORMED("rt1." FAM ".AAAA." SECRET_SHORT),     /* extra dot */
    MALFORMED("rt1." FAM "." SECRET "."),            /* trailing dot */
    MALFORMED("rt1.AAAAAAAAAAAAAAAAAAAAA!." SECRET), /* bad base64url */
    MALFORMED("rt1." FAM "." SECRET_SHORT "AAAA+"),  /* standard base64 */
    MALFORMED("rt1." FAM "." SECRET_SHORT "AAAAB"),  /* non-canonical: unused bits set */
    MALFORMED("rt1." FAM ".AAAA"),                   /* short secret */
    MALFORMED("rt1." FAM "A." SECRET_SHORT "AAA"),   /* long family, short secret */
    {"/v1/tokens/refresh", "{\"refresh_token\":\"\"," CLIENT "}", 400, "invalid_request",
     "refresh_token"},
    {"/v1/tokens/refresh", "{\"refresh_token\":\"rt1.", 400, "invalid_json", NULL},
    /* revoke: exactly one selector; family ids are checked */
    {"/v1/tokens/revoke", "{}", 400, "invalid_request", "token"},
    {"/v1/tokens/revoke", "{\"token\":\"a\",\"user_id\":\"u\"}", 400, "invalid_request", NULL},
    {"/v1/tokens/revoke", "{\"family_id\":\"not-a-family\"}", 400, "invalid_request", "family_id"},
    {"/v1/tokens/revoke", "{\"family_id\":\"AAAAAAAAAAAAAAAAAAAAAB\"}", 400, "invalid_request",
     "family_id"},
    {"/v1/tokens/revoke", "{\"family_id\":7}", 400, "invalid_request", "family_id"},
    {"/v1/tokens/revoke", "{\"user_id\":\"{u}\"}", 400, "invalid_request", "user_id"},
    {"/v1/tokens/revoke", "{\"token\":null}", 400, "invalid_request", "token"},
    {"/v1/tokens/revoke", "nope", 400, "invalid_json", NULL},
    /* introspect */
    {"/v1/tokens/introspect", "{\"token\":5}", 400, "invalid_request", "token"},
    {"/v1/tokens/introspect", "{}", 400, "invalid_request", "token"},
    {"/v1/tokens/introspect", "{\"token\":\"" VALID_TOKEN "\",\"device_id\":\"a}\"}", 400,
     "invalid_request", "device_id"},
    {"/v1/tokens/introspect", "nope", 400, "invalid_json", NULL},
};

/* Requests with answers that need no Redis: malformed tokens (RFC 7009/7662 shapes). */
static const struct {
    const char *path, *body, *answer;
} HARMLESS[] = {
    {"/v1/tokens/revoke", "{\"token\":\"garbage\"}", "\"revoked\""},
    {"/v1/tokens/revoke", "{\"token\":\"rt1.AAAAAAAAAAAAAAAAAAAAAA.AAAA\"}", "\"revoked\""},
    {"/v1/tokens/introspect", "{\"token\":\"rt1.nope\"}", "\"active\""},
};

static void check_case(const struct bad_case *c)
{
    int st;
    json_t *j = post(tokend.port, c->path, &st, "%s", c->body);
    if (st != c->status || strcmp(jstr(j, "code"), c->code) != 0 ||
        (c->field && strcmp(jstr(j, "field"), c->field) != 0))
        fail_msg("%s %s: got %d %s field %s", c->path, c->body, st, jstr(j, "code"),
                 jstr(j, "field"));
    /* RFC 9457 shape; the detail never echoes the (possibly secret) input. */
    assert_int_equal(json_integer_value(json_object_get(j, "status")), c->status);
    assert_non_null(json_object_get(j, "request_id"));
    assert_null(strstr(jstr(j, "detail"), "AAAAAAAAAAAAAAAAAAAA"));
    json_decref(j);
}

static void test_bad_input_leaves_redis_untouched(void **state)
{
    char big[2200], body[2400];
    struct th_resp r;
    int st;
    (void)state;
    long long before = data_commands(), changed = changes();
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++)
        check_case(&BAD[i]);
    for (size_t i = 0; i < sizeof(HARMLESS) / sizeof(HARMLESS[0]); i++) {
        json_t *j = post(tokend.port, HARMLESS[i].path, &st, "%s", HARMLESS[i].body);
        assert_int_equal(st, 200);
        assert_int_equal(json_object_size(j), 1);
        json_t *v = json_object_get(j, HARMLESS[i].answer[1] == 'r' ? "revoked" : "active");
        assert_true(json_is_false(v) || json_integer_value(v) == 0);
        assert_true(json_is_false(v) || json_is_integer(v));
        json_decref(j);
    }
    /* Oversized user agent (> 1024), scope (> 1024), ids (> 256), tls (> 256). */
    static const char *const fields[] = {"user_agent", "scope", "user_id", "tls_fingerprint"};
    static const size_t sizes[] = {1025, 1025, 257, 257};
    for (int i = 0; i < 4; i++) {
        memset(big, 'A', sizes[i]);
        big[sizes[i]] = '\0';
        json_t *req =
            json_pack("{s:s, s:s, s:s}", "user_id", "u", "device_id", "d", "user_agent", "a");
        json_object_set_new(req, fields[i], json_string(big));
        char *text = json_dumps(req, JSON_COMPACT);
        json_t *j = post(tokend.port, "/v1/tokens", &st, "%s", text);
        assert_string_equal(jstr(j, "field"), fields[i]);
        expect_problem(j, &st, 400, "invalid_request");
        free(text);
        json_decref(req);
    }
    memset(big, 'A', 1025);
    big[1025] = '\0';
    snprintf(body, sizeof(body),
             "{\"refresh_token\":\"%s\",\"device_id\":\"d\",\"user_agent\":\"%s\"}", VALID_TOKEN,
             big);
    json_t *j = post(tokend.port, "/v1/tokens/refresh", &st, "%s", body);
    assert_string_equal(jstr(j, "field"), "user_agent");
    expect_problem(j, &st, 400, "invalid_request");
    /* Paths: braces or a malformed family id; wrong content type; oversized body. */
    static const char *const paths[][2] = {
        {"GET", "/v1/users/a%7Bb/sessions"},
        {"GET", "/v1/users/a%7Db/sessions"},
        {"DELETE", "/v1/users/u/sessions/short"},
        {"DELETE", "/v1/users/u%7B/sessions/AAAAAAAAAAAAAAAAAAAAAA"},
        {"DELETE", "/v1/users/u/sessions/AAAAAAAAAAAAAAAAAAAAA!"}};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(th_http(tokend.port, paths[i][0], paths[i][1], NULL, NULL, 0, &r), 0);
        if (r.status != 400)
            fail_msg("%s %s: got %d", paths[i][0], paths[i][1], r.status);
        th_resp_free(&r);
    }
    const char *text[] = {"Content-Type: text/plain", NULL};
    assert_int_equal(th_http(tokend.port, "POST", "/v1/tokens", text, "{}", 2, &r), 0);
    assert_int_equal(r.status, 415);
    th_resp_free(&r);
    char *huge = malloc(70 * 1024);
    memset(huge, ' ', 70 * 1024);
    huge[0] = '{';
    huge[70 * 1024 - 1] = '}';
    const char *json_ct[] = {"Content-Type: application/json", NULL};
    assert_int_equal(
        th_http(tokend.port, "POST", "/v1/tokens/refresh", json_ct, huge, 70 * 1024, &r), 0);
    assert_int_equal(r.status, 413);
    th_resp_free(&r);
    free(huge);
    assert_int_equal(th_http(tokend.port, "GET", "/v1/tokens", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 405);
    th_resp_free(&r);
    /* Not one command reached Redis, and nothing in it changed. */
    assert_int_equal(data_commands(), before);
    assert_int_equal(changes(), changed);
    /* The counting itself works: a valid request shows up. */
    char t[80];
    issue(tokend.port, "u-count", "d-1", CHROME120, "", t);
    assert_true(data_commands() > before);
    assert_true(changes() > changed);
}

/* A missing or short hash key or a bad policy stops the daemon with one line naming the
 * variable; --check-config masks the key. */
static void test_config_errors(void **state)
{
    static const char *const missing[] = {"PATH=/usr/bin:/bin", NULL};
    static const char *const shortkey[] = {"TOKEN_HASH_KEY=c2hvcnQ=", NULL};
    static const char *const badprev[] = {KEY, "TOKEN_HASH_KEY_PREVIOUS=c2hvcnQ=", NULL};
    static const char *const badpolicy[] = {KEY, "TOKEN_FP_UA=loose", NULL};
    static const char *const badtls[] = {KEY, "TOKEN_FP_TLS=maybe", NULL};
    static const char *const badmis[] = {KEY, "TOKEN_ON_FP_MISMATCH=shrug", NULL};
    static const char *const badttl[] = {KEY, "TOKEN_IDLE_TTL=14", NULL};
    static const char *const badcap[] = {KEY, "TOKEN_MAX_FAMILIES_PER_USER=0", NULL};
    const char *const *envs[] = {missing, shortkey, badprev, badpolicy,
                                 badtls,  badmis,   badttl,  badcap};
    const char *names[] = {"TOKEN_HASH_KEY",
                           "TOKEN_HASH_KEY",
                           "TOKEN_HASH_KEY_PREVIOUS",
                           "TOKEN_FP_UA",
                           "TOKEN_FP_TLS",
                           "TOKEN_ON_FP_MISMATCH",
                           "TOKEN_IDLE_TTL",
                           "TOKEN_MAX_FAMILIES_PER_USER"};
    const char *argv[] = {"tokend", "--check-config", NULL};
    (void)state;
    for (int i = 0; i < 8; i++) {
        char *err = NULL;
        assert_int_equal(th_run(th_bin("bin/tokend"), argv, envs[i], NULL, &err, 5000), 2);
        if (!strstr(err, names[i]))
            fail_msg("expected %s in: %s", names[i], err);
        free(err);
    }
    char *out = NULL;
    static const char *const good[] = {KEY, NULL};
    assert_int_equal(th_run(th_bin("bin/tokend"), argv, good, &out, NULL, 5000), 0);
    assert_non_null(strstr(out, "TOKEN_FP_UA=upgrade"));
    assert_null(strstr(out, KEY_B64)); /* masked */
    free(out);
}

static void expect_503(json_t *j, const int *st)
{
    expect_problem(j, st, 503, "backend_unavailable");
}

/* Every endpoint answers 503 backend_unavailable with Retry-After: 1. */
static void all_endpoints_503(const char *token)
{
    static const char *const posts[][2] = {
        {"/v1/tokens", "{\"user_id\":\"u\",\"device_id\":\"d\",\"user_agent\":\"a\"}"},
        {"/v1/tokens/revoke", "{\"user_id\":\"u\"}"},
        {"/v1/tokens/revoke", "{\"family_id\":\"AAAAAAAAAAAAAAAAAAAAAA\"}"},
    };
    static const char *const gets[][2] = {
        {"GET", "/v1/users/u/sessions"}, {"DELETE", "/v1/users/u/sessions/AAAAAAAAAAAAAAAAAAAAAA"}};
    struct th_resp r;
    char retry[8];
    int st;
    expect_503(refresh(tokend.port, token, "d-1", CHROME120, "", &st), &st);
    expect_503(post(tokend.port, "/v1/tokens/introspect", &st, "{\"token\":\"%s\"}", token), &st);
    expect_503(post(tokend.port, "/v1/tokens/revoke", &st, "{\"token\":\"%s\"}", token), &st);
    for (int i = 0; i < 3; i++)
        expect_503(post(tokend.port, posts[i][0], &st, "%s", posts[i][1]), &st);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(th_http(tokend.port, gets[i][0], gets[i][1], NULL, NULL, 0, &r), 0);
        assert_int_equal(r.status, 503);
        assert_non_null(strstr(r.body, "backend_unavailable"));
        assert_string_equal(th_header(&r, "Retry-After", retry, sizeof(retry)), "1");
        th_resp_free(&r);
    }
}

static int ready(void)
{
    struct th_resp r;
    int ok = th_http(tokend.port, "GET", "/ready", NULL, NULL, 0, &r) == 0 && r.status == 200;
    th_resp_free(&r);
    return ok;
}

static void test_redis_down_is_503(void **state)
{
    int st;
    char t[80], s[80], key[64];
    (void)state;
    issue(tokend.port, "u-down", "d-1", CHROME120, "", t);
    /* Scripts flushed behind the daemon's back: reloaded transparently. */
    freeReplyObject(th_redis_cmd(&redis, "SCRIPT FLUSH"));
    refresh_ok(tokend.port, t, "d-1", CHROME120, "", t);
    /* A frozen Redis: 503 within the command timeout (1 s), no hang. */
    th_redis_pause(&redis);
    int64_t t0 = th_now_ms();
    expect_503(refresh(tokend.port, t, "d-1", CHROME120, "", &st), &st);
    assert_true(th_now_ms() - t0 < 2500);
    th_redis_resume(&redis);
    /* The refresh that got 503 may have run once Redis woke; retried inside the grace
     * window it is safe either way: 200, and the family rotated exactly once more. */
    family_key(t, key);
    long long rotations = th_redis_int(&redis, "HGET %s rotations", key);
    refresh_ok(tokend.port, t, "d-1", CHROME120, "", s);
    assert_int_equal(th_redis_int(&redis, "HGET %s rotations", key), 2);
    assert_true(rotations == 1 || rotations == 2);
    json_t *j = post(tokend.port, "/v1/tokens/introspect", &st, "{\"token\":\"%s\"}", s);
    assert_true(json_is_true(json_object_get(j, "active")));
    json_decref(j);
    /* A dead Redis: every endpoint 503, and not ready. */
    th_redis_kill(&redis);
    all_endpoints_503(s);
    assert_false(ready());
    /* Back again: ready within a few seconds, and serving. */
    assert_int_equal(th_redis_restart(&redis), 0);
    int64_t deadline = th_now_ms() + 5000;
    while (!ready() && th_now_ms() < deadline)
        usleep(50 * 1000);
    assert_true(ready());
    issue(tokend.port, "u-down", "d-1", CHROME120, "", t);
    refresh_ok(tokend.port, t, "d-1", CHROME120, "", s);
}

/* Redis at maxclients: every connection tokend opens is refused with an error reply
 * ("ERR max number of clients reached"), which is Redis unable to serve, not a bad
 * command: 503 on every endpoint, not 500; served again once a slot is free. */
static void test_redis_at_maxclients_is_503(void **state)
{
    char t[80], s[80];
    struct timeval tv = {.tv_sec = 1};
    (void)state;
    issue(tokend.port, "u-full", "d-1", CHROME120, "", t);
    redisContext *admin = redisConnectWithTimeout("127.0.0.1", redis.port, tv);
    assert_true(admin && !admin->err);
    redisReply *saved = redisCommand(admin, "CONFIG GET maxclients");
    assert_true(saved && saved->type == REDIS_REPLY_ARRAY && saved->elements == 2);
    /* Only this connection fits; tokend's own are closed, so it has to open new ones. */
    freeReplyObject(redisCommand(admin, "CONFIG SET maxclients 1"));
    freeReplyObject(redisCommand(admin, "CLIENT KILL TYPE normal"));
    all_endpoints_503(t);
    freeReplyObject(redisCommand(admin, "CONFIG SET maxclients %s", saved->element[1]->str));
    freeReplyObject(saved);
    redisFree(admin);
    refresh_ok(tokend.port, t, "d-1", CHROME120, "", s);
}

/* "Log out everywhere" while Redis refuses writes (OOM under noeviction): the read of the
 * user's index works, every revoke script is refused. The answer is 503, never 200 with a
 * smaller count, the families stay listed and alive, and a retry once Redis takes writes
 * again revokes them all. */
static void test_revoke_user_refused_is_503(void **state)
{
    char t1[80], t2[80];
    int st;
    (void)state;
    issue(tokend.port, "u-oom", "d-1", CHROME120, "", t1);
    issue(tokend.port, "u-oom", "d-2", CHROME120, "", t2);
    freeReplyObject(th_redis_cmd(&redis, "CONFIG SET maxmemory 1"));
    json_t *j = post(tokend.port, "/v1/tokens/revoke", &st, "{\"user_id\":\"u-oom\"}");
    freeReplyObject(th_redis_cmd(&redis, "CONFIG SET maxmemory 0"));
    expect_problem(j, &st, 503, "backend_unavailable");
    char *state1 = family_field(&redis, t1, "state"), *state2 = family_field(&redis, t2, "state");
    assert_string_equal(state1, "active");
    assert_string_equal(state2, "active");
    free(state1);
    free(state2);
    assert_int_equal(th_redis_int(&redis, "ZCARD tok:user:{u-oom}"), 2);
    j = post(tokend.port, "/v1/tokens/revoke", &st, "{\"user_id\":\"u-oom\"}");
    assert_int_equal(st, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "revoked")), 2);
    json_decref(j);
}

/* A Redis loading its dataset after a restart answers every command with a LOADING error
 * (here about a second: 5000 keys, 200 us each). tokend answers 503 meanwhile, never 500. */
struct loading_probe {
    struct th_redis *redis;
    struct th_proc *tokend;
    const char *token;
    atomic_int stop;
    int loading_seen, n503, n500, other;
};

static void *probe_loading(void *arg)
{
    struct loading_probe *p = arg;
    while (!atomic_load(&p->stop)) {
        struct th_resp r;
        char body[256];
        redisReply *rr = th_redis_cmd_ms(p->redis, 200, "GET nothing");
        p->loading_seen +=
            rr && rr->type == REDIS_REPLY_ERROR && strncmp(rr->str, "LOADING", 7) == 0;
        freeReplyObject(rr);
        snprintf(body, sizeof(body),
                 "{\"refresh_token\":\"%s\",\"device_id\":\"d-1\","
                 "\"user_agent\":\"%s\"}",
                 p->token, CHROME120);
        if (th_post_json(p->tokend->port, "/v1/tokens/refresh", body, &r) == 0) {
            p->n503 += r.status == 503;
            p->n500 += r.status == 500;
            p->other += r.status != 503 && r.status != 500;
            th_resp_free(&r);
        }
        usleep(5 * 1000);
    }
    return NULL;
}

static void test_redis_loading_is_503(void **state)
{
    static const char *const slow_load[] = {
        "--key-load-delay", "200", "--loading-process-events-interval-bytes", "1024", NULL};
    static const char *const extra[] = {"TOKEN_REUSE_GRACE=5s", NULL};
    struct th_redis lr;
    struct th_proc td;
    char t[80], s[80];
    pthread_t probe;
    (void)state;
    assert_int_equal(th_redis_start(&lr, slow_load), 0);
    assert_int_equal(tt_start(&td, lr.url, extra), 0);
    issue(td.port, "u-load", "d-1", CHROME120, "", t);
    freeReplyObject(th_redis_cmd_ms(&lr, 5000, "EVAL %s 0",
                                    "for i = 1, 5000 do redis.call('SET', 'pad:' .. i, 'x') end"));
    freeReplyObject(th_redis_cmd_ms(&lr, 5000, "SAVE"));
    struct loading_probe p = {.redis = &lr, .tokend = &td, .token = t};
    th_redis_kill(&lr);
    assert_int_equal(pthread_create(&probe, NULL, probe_loading, &p), 0);
    assert_int_equal(th_redis_restart(&lr), 0); /* returns once PING answers: loaded */
    atomic_store(&p.stop, 1);
    pthread_join(probe, NULL);
    assert_true(p.loading_seen > 0); /* the refreshes did meet a loading Redis */
    if (p.n500 != 0 || p.n503 == 0)
        fail_msg("while Redis loaded: %d answers 503, %d answers 500", p.n503, p.n500);
    refresh_ok(td.port, t, "d-1", CHROME120, "", s);
    th_proc_stop(&td, SIGTERM, 5000);
    th_redis_stop(&lr);
}

/* The number on the line of a /metrics answer that starts with name and a space; -1 when
 * there is none. */
static long long metric_line(int port, const char *name)
{
    struct th_resp r;
    long long value = -1;
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "\n%s ", name);
    if (th_http(port, "GET", "/metrics", NULL, NULL, 0, &r) == 0 && r.status == 200) {
        const char *p = strstr(r.body, prefix);
        if (p)
            value = atoll(p + strlen(prefix));
    }
    th_resp_free(&r);
    return value;
}

/* A refresh waiting on a frozen Redis holds no thread: with one worker loop, requests
 * that need no Redis (GET /health, a malformed token) are answered at once while the
 * refresh stays parked, and the refresh gets its 503 at the command timeout. A handler
 * that blocked would hold the only worker, and these would wait with it. */
static void test_parked_refresh_blocks_nothing(void **state)
{
    struct th_proc one;
    struct th_resp r;
    char t[80], request[1024], head[256], retry[16], timeout_var[64];
    int st;
    (void)state;
    /* Long enough for the requests below on a slow machine (valgrind: th_ms). */
    int timeout_ms = th_ms(3000);
    snprintf(timeout_var, sizeof(timeout_var), "REDIS_COMMAND_TIMEOUT=%dms", timeout_ms);
    const char *const extra[] = {"HTTP_THREADS=1", timeout_var, NULL};
    assert_int_equal(tt_start(&one, redis.url, extra), 0);
    issue(one.port, "u-parked", "d-1", CHROME120, "", t);
    long long sent = metric_line(one.port, "tokend_redis_commands_total");
    assert_true(sent > 0);
    th_redis_pause(&redis);
    int fd = th_connect(one.port);
    assert_true(fd >= 0);
    snprintf(request, sizeof(request),
             "{\"refresh_token\":\"%s\",\"device_id\":\"d-1\",\"user_agent\":\"%s\"}", t,
             CHROME120);
    int n = snprintf(head, sizeof(head),
                     "POST /v1/tokens/refresh HTTP/1.1\r\nHost: t\r\nContent-Type: "
                     "application/json\r\nContent-Length: %zu\r\n\r\n",
                     strlen(request));
    int64_t t0 = th_now_ms();
    assert_int_equal(th_send_all(fd, head, (size_t)n), 0);
    assert_int_equal(th_send_all(fd, request, strlen(request)), 0);
    /* The refresh is parked once its script has gone out to the frozen Redis. */
    int64_t deadline = th_now_ms() + th_ms(2000);
    while (metric_line(one.port, "tokend_redis_commands_total") <= sent && th_now_ms() < deadline)
        usleep(10 * 1000);
    assert_true(metric_line(one.port, "tokend_redis_commands_total") > sent);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(th_http(one.port, "GET", "/health", NULL, NULL, 0, &r), 0);
        assert_int_equal(r.status, 200);
        th_resp_free(&r);
        json_decref(refresh(one.port, "rt1.malformed", "d-1", CHROME120, "", &st));
        assert_int_equal(st, 401);
    }
    /* All of that while the refresh waited: it is answered only at the command timeout. */
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 0), 0);
    assert_true(th_now_ms() - t0 < timeout_ms);
    assert_int_equal(th_read_response(fd, &r, 2 * timeout_ms), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(th_header(&r, "Retry-After", retry, sizeof(retry)));
    assert_true(th_now_ms() - t0 >= timeout_ms - 100);
    th_resp_free(&r);
    close(fd);
    th_redis_resume(&redis);
    th_proc_stop(&one, SIGTERM, 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input_leaves_redis_untouched),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_redis_down_is_503),
        cmocka_unit_test(test_redis_at_maxclients_is_503),
        cmocka_unit_test(test_revoke_user_refused_is_503),
        cmocka_unit_test(test_redis_loading_is_503),
        cmocka_unit_test(test_parked_refresh_blocks_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
