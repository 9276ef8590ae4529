/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by tokend's integration tests (header-only: each test binary is one
 * source file): starting tokend, posting requests, issuing and refreshing tokens, and
 * remembering every token handed out so the tests can look for it afterwards. */
#ifndef TEST_TOKEND_UTIL_H
#define TEST_TOKEND_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/harness.h"

#define KEY_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* bytes 0..31 */
#define KEY "TOKEN_HASH_KEY=" KEY_B64
#define CHROME120                                                                                  \
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "     \
    "Safari/537.36"
#define CHROME121                                                                                  \
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 "     \
    "Safari/537.36"
#define FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"

#define TT_SEEN_MAX 1024

/* Every token the daemons handed out (issued or as a successor). */
static char tt_seen[TT_SEEN_MAX][80];
static int tt_nseen;
static pthread_mutex_t tt_seen_lock = PTHREAD_MUTEX_INITIALIZER;

static inline void tt_remember(const char *token)
{
    pthread_mutex_lock(&tt_seen_lock);
    if (tt_nseen < TT_SEEN_MAX)
        snprintf(tt_seen[tt_nseen++], sizeof(tt_seen[0]), "%s", token);
    pthread_mutex_unlock(&tt_seen_lock);
}

/* Start tokend against redis_url with the test key and a 1 s grace window; the extras
 * (NULL-terminated) come first: the first of duplicate names is the one a daemon reads. */
static inline int tt_start(struct th_proc *p, const char *redis_url, const char *const *extra)
{
    const char *env[TH_DAEMON_EXTRA_MAX];
    int n = 0;
    for (; extra && extra[n] && n + 4 < TH_DAEMON_EXTRA_MAX; n++)
        env[n] = extra[n];
    env[n++] = KEY;
    env[n++] = "TOKEN_REUSE_GRACE=1s";
    env[n++] = "REDIS_MIN_IDLE_CONNS=2";
    env[n] = NULL;
    return th_daemon_start(p, "bin/tokend", redis_url, env);
}

/* POST json; returns the parsed body (caller decrefs) and the status in *status. */
static inline json_t *post(int port, const char *path, int *status, const char *fmt, ...)
{
    char body[4096];
    struct th_resp r;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    assert_int_equal(th_post_json(port, path, body, &r), 0);
    *status = r.status;
    json_t *j = th_json(&r);
    th_resp_free(&r);
    assert_non_null(j);
    const char *tok = json_string_value(json_object_get(j, "refresh_token"));
    if (tok)
        tt_remember(tok);
    return j;
}

static inline const char *jstr(const json_t *j, const char *name)
{
    const char *s = json_string_value(json_object_get(j, name));
    return s ? s : "";
}

/* status is read through a pointer: the call that fills it is an argument too. */
static inline void expect_problem(json_t *j, const int *st, int want, const char *code)
{
    int status = *st;
    if (status != want || strcmp(jstr(j, "code"), code) != 0)
        fail_msg("expected %d %s, got %d %s", want, code, status, jstr(j, "code"));
    json_decref(j);
}

/* Issue a token for user on port with a device, user agent and tls ("" for none). */
static inline void issue(int port, const char *user, const char *device, const char *ua,
                         const char *tls, char token[80])
{
    int st;
    char tlsf[128] = "";
    if (tls[0])
        snprintf(tlsf, sizeof(tlsf), ",\"tls_fingerprint\":\"%s\"", tls);
    json_t *j = post(port, "/v1/tokens", &st,
                     "{\"user_id\":\"%s\",\"client_id\":\"web\",\"scope\":\"openid offline\","
                     "\"device_id\":\"%s\",\"user_agent\":\"%s\"%s}",
                     user, device, ua, tlsf);
    assert_int_equal(st, 201);
    snprintf(token, 80, "%s", jstr(j, "refresh_token"));
    json_decref(j);
}

static inline json_t *refresh(int port, const char *token, const char *device, const char *ua,
                              const char *tls, int *status)
{
    char tlsf[128] = "";
    if (tls[0])
        snprintf(tlsf, sizeof(tlsf), ",\"tls_fingerprint\":\"%s\"", tls);
    return post(port, "/v1/tokens/refresh", status,
                "{\"refresh_token\":\"%s\",\"device_id\":\"%s\",\"user_agent\":\"%s\"%s}", token,
                device, ua, tlsf);
}

/* Refresh that must succeed: the successor goes into next. */
static inline void refresh_ok(int port, const char *token, const char *device, const char *ua,
                              const char *tls, char next[80])
{
    int st;
    json_t *j = refresh(port, token, device, ua, tls, &st);
    if (st != 200)
        fail_msg("refresh: expected 200, got %d %s", st, jstr(j, "code"));
    snprintf(next, 80, "%s", jstr(j, "refresh_token"));
    json_decref(j);
}

/* The family key of a token: tok:{<family_id>}:f. */
static inline void family_key(const char *token, char key[64])
{
    snprintf(key, 64, "tok:{%.22s}:f", token + 4);
}

/* HGET of a family field ("" when absent), caller frees. */
static inline char *family_field(struct th_redis *redis, const char *token, const char *field)
{
    char key[64];
    family_key(token, key);
    redisReply *r = th_redis_cmd(redis, "HGET %s %s", key, field);
    char *s = strdup(r && r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return s;
}

/* The body of GET /metrics (caller frees). */
static inline char *metrics_text(int port)
{
    struct th_resp m;
    assert_int_equal(th_http(port, "GET", "/metrics", NULL, NULL, 0, &m), 0);
    assert_int_equal(m.status, 200);
    char *s = strdup(m.body);
    th_resp_free(&m);
    return s;
}

#endif
