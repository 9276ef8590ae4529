/* SPDX-License-Identifier: Apache-2.0 */
/* store: tokend's keys, its script calls and the reading of their replies (see store.h). */
#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scripts.h"
#include "shared/log.h"
#include "shared/redis_reply.h"

#define KEY_MAX 320

const struct script *const TOK_STORE_SCRIPTS[] = {
    &script_token_issue, &script_token_refresh, &script_token_revoke, &script_token_user_add, NULL};

/* The family's keys share the {<family_id>} hash tag, so one script reads and rotates them
 * atomically; the user's index lives in its own slot. */
static void family_keys(const char *family, char f[KEY_MAX], char used[KEY_MAX])
{
    snprintf(f, KEY_MAX, "tok:{%s}:f", family);
    snprintf(used, KEY_MAX, "tok:{%s}:used", family);
}

static void user_key(const char *user_id, char out[KEY_MAX])
{
    snprintf(out, KEY_MAX, "tok:user:{%s}", user_id);
}

/* The status of a failed call, as every daemon reads it (redis_reply.h); a refusal is
 * logged. Frees reply. */
static int fail_status(int st, redisReply *reply, const char *what)
{
    int rc = TOK_BACKEND;
    if (rreply_classify(st, reply) == RREPLY_INTERNAL) {
        log_error(NULL, "redis refused a tokend command", LF_S("op", what),
                  LF_S("error", reply && reply->str ? reply->str : ""));
        rc = TOK_INTERNAL;
    }
    freeReplyObject(reply);
    return rc;
}

/* Element i of an array reply, a string, copied into out ("" when nil or not a string). */
static void copy_str(const redisReply *r, size_t i, char *out, size_t outsize)
{
    size_t len = 0;
    const char *s = rreply_str(r, i, &len);
    if (s)
        snprintf(out, outsize, "%.*s", (int)len, s);
    else
        out[0] = '\0';
}

/* Element i of an array reply, a decimal string, as a number (0 when absent). */
static int64_t str_i64(const redisReply *r, size_t i)
{
    char buf[32];
    copy_str(r, i, buf, sizeof(buf));
    return strtoll(buf, NULL, 10);
}

static void i64_text(int64_t v, char out[24])
{
    snprintf(out, 24, "%" PRId64, v);
}

void tok_store_issue(struct rpool *p, const struct tok_new_family *f, tok_issued_fn fn, void *arg)
{
    char fkey[KEY_MAX], used[KEY_MAX], major[24], idle[24], abs[24];
    redisReply *reply = NULL;
    long long created = 0, ttl = 0;

    family_keys(f->family, fkey, used);
    i64_text(f->ua_major, major);
    i64_text(f->idle_ttl_ms, idle);
    i64_text(f->absolute_ttl_ms, abs);
    const char *argv[] = {fkey,       f->user_id,    f->client_id, f->scope, f->device_id,
                          f->ua_hash, f->ua_product, major,        f->tls,   f->fingerprint,
                          f->hash,    idle,          abs};
    enum rpool_status st = rpool_eval(p, &script_token_issue, 1, 13, argv, NULL, 0, &reply);
    if (st != RPOOL_OK) {
        fn(arg, fail_status(st, reply, "issue"), 0, 0);
        return;
    }
    int shaped = rreply_int(reply, 0, &created) == 0 && rreply_int(reply, 1, &ttl) == 0;
    freeReplyObject(reply);
    fn(arg, shaped ? TOK_OK : TOK_INTERNAL, created, ttl);
}

void tok_store_index(struct rpool *p, const char *user_id, const char *family, int64_t created_ms,
                     int64_t ttl_ms, tok_count_fn fn, void *arg)
{
    char key[KEY_MAX], created[24], ttl[24];
    redisReply *reply = NULL;
    user_key(user_id, key);
    i64_text(created_ms, created);
    i64_text(ttl_ms, ttl);
    const char *argv[] = {key, family, created, ttl};
    enum rpool_status st = rpool_eval(p, &script_token_user_add, 1, 4, argv, NULL, 0, &reply);
    if (st != RPOOL_OK) {
        fn(arg, fail_status(st, reply, "user_add"), 0);
        return;
    }
    long long indexed = reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
    freeReplyObject(reply);
    fn(arg, TOK_OK, indexed);
}

static const char *const UA_POLICY[] = {"strict", "upgrade"};
static const char *const TLS_POLICY[] = {"ignore", "soft", "strict"};

/* Read a token_refresh reply (its contract is at the top of the script). Returns TOK_OK,
 * or TOK_INTERNAL for an answer it does not know. */
static int read_refreshed(const redisReply *reply, struct tok_refreshed *r)
{
    char kind[16], flag[4];
    copy_str(reply, 0, kind, sizeof(kind));
    if (strcmp(kind, "ok") == 0 || strcmp(kind, "grace") == 0) {
        r->outcome = kind[0] == 'o' ? TOK_R_OK : TOK_R_GRACE;
        copy_str(reply, 1, r->user_id, sizeof(r->user_id));
        copy_str(reply, 2, r->client_id, sizeof(r->client_id));
        copy_str(reply, 3, r->scope, sizeof(r->scope));
        r->ttl_ms = str_i64(reply, 4);
        if (r->outcome == TOK_R_GRACE) {
            copy_str(reply, 5, r->sealed, sizeof(r->sealed));
        } else {
            copy_str(reply, 5, flag, sizeof(flag));
            r->rebound = strcmp(flag, "1") == 0;
        }
        copy_str(reply, 6, r->drift, sizeof(r->drift));
    } else if (strcmp(kind, "mismatch") == 0) {
        r->outcome = TOK_R_MISMATCH;
        copy_str(reply, 1, r->refused, sizeof(r->refused));
        copy_str(reply, 2, flag, sizeof(flag));
        r->revoked = strcmp(flag, "1") == 0;
        copy_str(reply, 3, r->drift, sizeof(r->drift));
    } else if (strcmp(kind, "reused") == 0) {
        r->outcome = TOK_R_REUSED;
    } else if (strcmp(kind, "invalid") == 0) {
        r->outcome = TOK_R_INVALID;
    } else {
        return TOK_INTERNAL;
    }
    return TOK_OK;
}

void tok_store_refresh(struct rpool *p, const struct tok_refresh_args *a, tok_refreshed_fn fn,
                       void *arg)
{
    char fkey[KEY_MAX], used[KEY_MAX], major[24], grace[24], idle[24];
    redisReply *reply = NULL;
    struct tok_refreshed r;

    family_keys(a->family, fkey, used);
    i64_text(a->ua_major, major);
    i64_text(a->grace_ms, grace);
    i64_text(a->idle_ttl_ms, idle);
    const char *argv[] = {fkey,
                          used,
                          a->hash,
                          a->prev_hash,
                          a->device_id,
                          a->ua_hash,
                          a->ua_product,
                          major,
                          a->tls,
                          a->fingerprint,
                          UA_POLICY[a->ua_policy],
                          TLS_POLICY[a->tls_policy],
                          a->revoke_on_mismatch ? "revoke" : "reject",
                          a->successor_hash,
                          a->successor_sealed,
                          grace,
                          idle};
    enum rpool_status st = rpool_eval(p, &script_token_refresh, 2, 17, argv, NULL, 0, &reply);
    if (st != RPOOL_OK) {
        fn(arg, fail_status(st, reply, "refresh"), NULL);
        return;
    }
    memset(&r, 0, sizeof(r));
    int rc = read_refreshed(reply, &r);
    freeReplyObject(reply);
    fn(arg, rc, rc == TOK_OK ? &r : NULL);
}

/* token_revoke's arguments after its two keys: mode, hashes, owner, reason. */
static void revoke_args(const char **a, const char *hash, const char *prev_hash,
                        const char *user_id, const char *reason)
{
    a[0] = hash ? "token" : "family";
    a[1] = hash ? hash : "";
    a[2] = hash ? prev_hash : "";
    a[3] = user_id ? user_id : "";
    a[4] = reason;
}

void tok_store_revoke(struct rpool *p, const char *family, const char *hash, const char *prev_hash,
                      const char *user_id, const char *reason, tok_count_fn fn, void *arg)
{
    char fkey[KEY_MAX], used[KEY_MAX];
    const char *argv[7] = {fkey, used};
    redisReply *reply = NULL;
    family_keys(family, fkey, used);
    revoke_args(argv + 2, hash, prev_hash, user_id, reason);
    enum rpool_status st = rpool_eval(p, &script_token_revoke, 2, 7, argv, NULL, 0, &reply);
    if (st != RPOOL_OK) {
        fn(arg, fail_status(st, reply, "revoke"), 0);
        return;
    }
    int revoked = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    freeReplyObject(reply);
    fn(arg, TOK_OK, revoked);
}

void tok_store_revoke_many(struct rpool *p, const char *const *families, size_t count,
                           const char *user_id, const char *reason, tok_count_fn fn, void *arg)
{
    size_t n = 0;
    long long revoked = 0;
    char(*keys)[2][KEY_MAX] = calloc(count + 1, sizeof(*keys));
    const char **argv = calloc((count + 1) * 7, sizeof(*argv));
    struct rpool_cmd *cmds = calloc(count + 1, sizeof(*cmds));
    redisReply **replies = calloc(count + 1, sizeof(redisReply *));
    int rc = TOK_INTERNAL;
    if (!keys || !argv || !cmds || !replies)
        goto done;
    for (size_t i = 0; i < count; i++) {
        if (!tok_family_valid(families[i], strlen(families[i])))
            continue;
        const char **a = argv + n * 7;
        family_keys(families[i], keys[n][0], keys[n][1]);
        a[0] = keys[n][0];
        a[1] = keys[n][1];
        revoke_args(a + 2, NULL, NULL, user_id, reason);
        cmds[n] =
            (struct rpool_cmd){.script = &script_token_revoke, .nkeys = 2, .argc = 7, .argv = a};
        n++;
    }
    enum rpool_status st = n ? rpool_exec(p, cmds, n, replies, 0) : RPOOL_OK;
    if (st != RPOOL_OK) {
        rc = fail_status(st, NULL, "revoke_many");
        goto done;
    }
    /* An error reply (OOM, a script error) leaves that family alive: the whole call fails,
     * so "log out everywhere" is never answered 200 while a family survived. */
    redisReply *refused = NULL;
    for (size_t i = 0; i < n; i++) {
        if (replies[i]->type == REDIS_REPLY_INTEGER && replies[i]->integer == 1)
            revoked++;
        if (replies[i]->type == REDIS_REPLY_ERROR && !refused)
            refused = replies[i];
        else
            freeReplyObject(replies[i]);
    }
    rc = refused ? fail_status(RPOOL_REPLY_ERROR, refused, "revoke_many") : TOK_OK;
done:
    free(keys);
    free(argv);
    free(cmds);
    free(replies);
    fn(arg, rc, revoked);
}

void tok_store_user_families(struct rpool *p, const char *user_id, tok_ids_fn fn, void *arg)
{
    char key[KEY_MAX];
    redisReply *reply = NULL;
    struct tok_ids *ids = NULL;
    user_key(user_id, key);
    const char *argv[] = {"ZRANGE", key, "0", "-1"};
    enum rpool_status st = rpool_command(p, 4, argv, NULL, 0, &reply);
    if (st != RPOOL_OK) {
        fn(arg, fail_status(st, reply, "zrange"), NULL);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY)
        ids = calloc(1, sizeof(*ids));
    if (ids)
        ids->id = calloc(reply->elements + 1, sizeof(*ids->id));
    if (!ids || !ids->id) {
        free(ids);
        freeReplyObject(reply);
        fn(arg, TOK_INTERNAL, NULL);
        return;
    }
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i]->type == REDIS_REPLY_STRING)
            ids->id[ids->count++] = reply->element[i]->str;
    ids->owner = reply;
    fn(arg, TOK_OK, ids);
}

void tok_ids_free(struct tok_ids *ids)
{
    if (!ids)
        return;
    freeReplyObject(ids->owner);
    free(ids->id);
    free(ids);
}

void tok_store_unindex(struct rpool *p, const char *user_id, const char *const *families,
                       size_t count, tok_done_fn fn, void *arg)
{
    char key[KEY_MAX];
    redisReply *reply = NULL;
    const char **argv = count ? malloc((count + 2) * sizeof(*argv)) : NULL;
    if (argv) {
        user_key(user_id, key);
        argv[0] = "ZREM";
        argv[1] = key;
        memcpy(argv + 2, families, count * sizeof(*families));
        (void)rpool_command(p, (int)(count + 2), argv, NULL, 0, &reply);
        freeReplyObject(reply);
        free(argv);
    }
    fn(arg, TOK_OK);
}

static const char *const FAMILY_FIELDS[] = {"state",   "current",    "user_id",    "client_id",
                                            "scope",   "created_ms", "expires_ms", "device_id",
                                            "ua_hash", "ua_product", "ua_major",   "tls"};
#define FAMILY_NFIELDS (sizeof(FAMILY_FIELDS) / sizeof(FAMILY_FIELDS[0]))

void tok_store_family(struct rpool *p, const char *family, tok_family_fn fn, void *arg)
{
    char fkey[KEY_MAX], used[KEY_MAX];
    const char *argv[2 + FAMILY_NFIELDS] = {"HMGET", fkey};
    redisReply *r = NULL;
    struct tok_family f;
    family_keys(family, fkey, used);
    memcpy(argv + 2, FAMILY_FIELDS, sizeof(FAMILY_FIELDS));
    enum rpool_status st = rpool_command(p, 2 + FAMILY_NFIELDS, argv, NULL, 0, &r);
    if (st != RPOOL_OK) {
        fn(arg, fail_status(st, r, "introspect"), NULL);
        return;
    }
    memset(&f, 0, sizeof(f));
    copy_str(r, 0, f.state, sizeof(f.state));
    copy_str(r, 1, f.current, sizeof(f.current));
    copy_str(r, 2, f.user_id, sizeof(f.user_id));
    copy_str(r, 3, f.client_id, sizeof(f.client_id));
    copy_str(r, 4, f.scope, sizeof(f.scope));
    f.created_ms = str_i64(r, 5);
    f.expires_ms = str_i64(r, 6);
    copy_str(r, 7, f.device_id, sizeof(f.device_id));
    copy_str(r, 8, f.ua_hash, sizeof(f.ua_hash));
    copy_str(r, 9, f.ua_product, sizeof(f.ua_product));
    f.ua_major = (long)str_i64(r, 10);
    copy_str(r, 11, f.tls, sizeof(f.tls));
    freeReplyObject(r);
    fn(arg, TOK_OK, &f);
}

static const char *const SESSION_FIELDS[] = {"state",   "user_id",    "client_id",    "device_id",
                                             "ua_hash", "created_ms", "last_used_ms", "expires_ms"};
#define SESSION_NFIELDS (sizeof(SESSION_FIELDS) / sizeof(SESSION_FIELDS[0]))

/* One family of a session listing from its HMGET reply (an error reply reads as absent). */
static void read_session(const redisReply *r, struct tok_family *f)
{
    memset(f, 0, sizeof(*f));
    copy_str(r, 0, f->state, sizeof(f->state));
    copy_str(r, 1, f->user_id, sizeof(f->user_id));
    copy_str(r, 2, f->client_id, sizeof(f->client_id));
    copy_str(r, 3, f->device_id, sizeof(f->device_id));
    copy_str(r, 4, f->ua_hash, sizeof(f->ua_hash));
    f->created_ms = str_i64(r, 5);
    f->last_used_ms = str_i64(r, 6);
    f->expires_ms = str_i64(r, 7);
}

void tok_store_families(struct rpool *p, const char *const *families, size_t count,
                        tok_families_fn fn, void *arg)
{
    char(*keys)[KEY_MAX] = calloc(count + 1, KEY_MAX);
    const char **argv = calloc((count + 1) * (2 + SESSION_NFIELDS), sizeof(*argv));
    struct rpool_cmd *cmds = calloc(count + 1, sizeof(*cmds));
    redisReply **replies = calloc(count + 1, sizeof(redisReply *));
    struct tok_family *f = calloc(count + 1, sizeof(*f));
    int rc = TOK_INTERNAL;
    if (!keys || !argv || !cmds || !replies || !f)
        goto done;
    for (size_t i = 0; i < count; i++) {
        const char **a = argv + i * (2 + SESSION_NFIELDS);
        char used[KEY_MAX];
        family_keys(families[i], keys[i], used);
        a[0] = "HMGET";
        a[1] = keys[i];
        memcpy(a + 2, SESSION_FIELDS, sizeof(SESSION_FIELDS));
        cmds[i] = (struct rpool_cmd){.argc = 2 + SESSION_NFIELDS, .argv = a};
    }
    enum rpool_status st = count ? rpool_exec(p, cmds, count, replies, 0) : RPOOL_OK;
    if (st != RPOOL_OK) {
        rc = fail_status(st, NULL, "sessions");
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        read_session(replies[i], &f[i]);
        freeReplyObject(replies[i]);
    }
    rc = TOK_OK;
done:
    free(keys);
    free(argv);
    free(cmds);
    free(replies);
    fn(arg, rc, rc == TOK_OK ? f : NULL);
    free(f);
}
