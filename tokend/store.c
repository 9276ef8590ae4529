/* SPDX-License-Identifier: Apache-2.0 */
/* store: tokend's keys, its script calls and the reading of their replies (see store.h),
 * on the Redis client of the caller's loop. */
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
 * logged. */
static int fail_status(enum rcl_status st, const redisReply *reply, const char *what)
{
    if (rreply_classify(st, reply) != RREPLY_INTERNAL)
        return TOK_BACKEND;
    log_error(NULL, "redis refused a tokend command", LF_S("op", what),
              LF_S("error", reply && reply->str ? reply->str : ""));
    return TOK_INTERNAL;
}

/* Element i of an array reply, a string, copied into out and cut to fit ("" when nil or
 * not a string). */
static void copy_str(const redisReply *r, size_t i, char *out, size_t outsize)
{
    size_t len = 0;
    const char *s = rreply_str(r, i, &len);
    if (!s)
        len = 0;
    if (len > outsize - 1)
        len = outsize - 1;
    if (len)
        memcpy(out, s, len);
    out[len] = '\0';
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

/* ---- one command --------------------------------------------------------------------- */

/* Whom to tell of an outcome. */
union outcome_fn {
    tok_issued_fn issued;
    tok_count_fn count;
    tok_refreshed_fn refreshed;
    tok_ids_fn ids;
    tok_family_fn family;
    tok_done_fn done;
};

/* A command on its way. */
struct pending {
    struct rclient *c;
    union outcome_fn fn;
    void *arg;
};

static struct pending *pending_new(struct rclient *c, union outcome_fn fn, void *arg)
{
    struct pending *p = malloc(sizeof(*p));
    if (p)
        *p = (struct pending){c, fn, arg};
    return p;
}

/* Send a script run (s not NULL) or a command for p. Returns 0, or -1 when out of memory
 * (p is freed; the caller reports the failure itself). */
static int pending_send(struct pending *p, const struct script *s, int nkeys, int argc,
                        const char *const *argv, rcl_done_fn replied)
{
    int rc = s ? rcl_eval(p->c, s, nkeys, argc, argv, NULL, 0, replied, p)
               : rcl_command(p->c, argc, argv, NULL, 0, replied, p);
    if (rc != 0)
        free(p);
    return rc;
}

static void issue_replied(void *arg, enum rcl_status st, redisReply *reply)
{
    struct pending *p = arg;
    tok_issued_fn fn = p->fn.issued;
    void *fn_arg = p->arg;
    long long created = 0, ttl = 0;
    free(p);
    if (st != RCL_OK) {
        fn(fn_arg, fail_status(st, reply, "issue"), 0, 0);
        return;
    }
    int shaped = rreply_int(reply, 0, &created) == 0 && rreply_int(reply, 1, &ttl) == 0;
    fn(fn_arg, shaped ? TOK_OK : TOK_INTERNAL, created, ttl);
}

void tok_store_issue(struct rclient *c, const struct tok_new_family *f, tok_issued_fn fn, void *arg)
{
    char fkey[KEY_MAX], used[KEY_MAX], major[24], idle[24], abs[24];
    family_keys(f->family, fkey, used);
    i64_text(f->ua_major, major);
    i64_text(f->idle_ttl_ms, idle);
    i64_text(f->absolute_ttl_ms, abs);
    const char *argv[] = {fkey,       f->user_id,    f->client_id, f->scope, f->device_id,
                          f->ua_hash, f->ua_product, major,        f->tls,   f->fingerprint,
                          f->hash,    idle,          abs};
    struct pending *p = pending_new(c, (union outcome_fn){.issued = fn}, arg);
    if (!p || pending_send(p, &script_token_issue, 1, 13, argv, issue_replied) != 0)
        fn(arg, TOK_INTERNAL, 0, 0);
}

static void index_replied(void *arg, enum rcl_status st, redisReply *reply)
{
    struct pending *p = arg;
    tok_count_fn fn = p->fn.count;
    void *fn_arg = p->arg;
    free(p);
    if (st != RCL_OK)
        fn(fn_arg, fail_status(st, reply, "user_add"), 0);
    else
        fn(fn_arg, TOK_OK, reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0);
}

void tok_store_index(struct rclient *c, const char *user_id, const char *family, int64_t created_ms,
                     int64_t ttl_ms, tok_count_fn fn, void *arg)
{
    char key[KEY_MAX], created[24], ttl[24];
    user_key(user_id, key);
    i64_text(created_ms, created);
    i64_text(ttl_ms, ttl);
    const char *argv[] = {key, family, created, ttl};
    struct pending *p = pending_new(c, (union outcome_fn){.count = fn}, arg);
    if (!p || pending_send(p, &script_token_user_add, 1, 4, argv, index_replied) != 0)
        fn(arg, TOK_INTERNAL, 0);
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

static void refresh_replied(void *arg, enum rcl_status st, redisReply *reply)
{
    struct pending *p = arg;
    tok_refreshed_fn fn = p->fn.refreshed;
    void *fn_arg = p->arg;
    struct tok_refreshed r;
    free(p);
    if (st != RCL_OK) {
        fn(fn_arg, fail_status(st, reply, "refresh"), NULL);
        return;
    }
    memset(&r, 0, sizeof(r));
    int rc = read_refreshed(reply, &r);
    fn(fn_arg, rc, rc == TOK_OK ? &r : NULL);
}

void tok_store_refresh(struct rclient *c, const struct tok_refresh_args *a, tok_refreshed_fn fn,
                       void *arg)
{
    char fkey[KEY_MAX], used[KEY_MAX], major[24], grace[24], idle[24];
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
    struct pending *p = pending_new(c, (union outcome_fn){.refreshed = fn}, arg);
    if (!p || pending_send(p, &script_token_refresh, 2, 17, argv, refresh_replied) != 0)
        fn(arg, TOK_INTERNAL, NULL);
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

static void revoke_replied(void *arg, enum rcl_status st, redisReply *reply)
{
    struct pending *p = arg;
    tok_count_fn fn = p->fn.count;
    void *fn_arg = p->arg;
    free(p);
    if (st != RCL_OK)
        fn(fn_arg, fail_status(st, reply, "revoke"), 0);
    else
        fn(fn_arg, TOK_OK, reply->type == REDIS_REPLY_INTEGER && reply->integer == 1);
}

void tok_store_revoke(struct rclient *c, const char *family, const char *hash,
                      const char *prev_hash, const char *user_id, const char *reason,
                      tok_count_fn fn, void *arg)
{
    char fkey[KEY_MAX], used[KEY_MAX];
    const char *argv[7] = {fkey, used};
    family_keys(family, fkey, used);
    revoke_args(argv + 2, hash, prev_hash, user_id, reason);
    struct pending *p = pending_new(c, (union outcome_fn){.count = fn}, arg);
    if (!p || pending_send(p, &script_token_revoke, 2, 7, argv, revoke_replied) != 0)
        fn(arg, TOK_INTERNAL, 0);
}

static void families_listed(void *arg, enum rcl_status st, redisReply *reply)
{
    struct pending *p = arg;
    tok_ids_fn fn = p->fn.ids;
    void *fn_arg = p->arg;
    struct rclient *c = p->c;
    struct tok_ids *ids = NULL;
    free(p);
    if (st != RCL_OK) {
        fn(fn_arg, fail_status(st, reply, "zrange"), NULL);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY)
        ids = calloc(1, sizeof(*ids));
    if (ids)
        ids->id = calloc(reply->elements + 1, sizeof(*ids->id));
    if (!ids || !ids->id) {
        free(ids);
        fn(fn_arg, TOK_INTERNAL, NULL);
        return;
    }
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i]->type == REDIS_REPLY_STRING)
            ids->id[ids->count++] = reply->element[i]->str;
    ids->owner = rcl_steal(c); /* the strings live as long as the list */
    fn(fn_arg, TOK_OK, ids);
}

void tok_store_user_families(struct rclient *c, const char *user_id, tok_ids_fn fn, void *arg)
{
    char key[KEY_MAX];
    user_key(user_id, key);
    const char *argv[] = {"ZRANGE", key, "0", "-1"};
    struct pending *p = pending_new(c, (union outcome_fn){.ids = fn}, arg);
    if (!p || pending_send(p, NULL, 0, 4, argv, families_listed) != 0)
        fn(arg, TOK_INTERNAL, NULL);
}

void tok_ids_free(struct tok_ids *ids)
{
    if (!ids)
        return;
    freeReplyObject(ids->owner);
    free(ids->id);
    free(ids);
}

static void unindexed(void *arg, enum rcl_status st, redisReply *reply)
{
    struct pending *p = arg;
    tok_done_fn fn = p->fn.done;
    void *fn_arg = p->arg;
    (void)st; /* best effort */
    (void)reply;
    free(p);
    fn(fn_arg, TOK_OK);
}

void tok_store_unindex(struct rclient *c, const char *user_id, const char *const *families,
                       size_t count, tok_done_fn fn, void *arg)
{
    char key[KEY_MAX];
    const char **argv = count ? malloc((count + 2) * sizeof(*argv)) : NULL;
    struct pending *p = argv ? pending_new(c, (union outcome_fn){.done = fn}, arg) : NULL;
    if (p) {
        user_key(user_id, key);
        argv[0] = "ZREM";
        argv[1] = key;
        memcpy(argv + 2, families, count * sizeof(*families));
    }
    int sent = p && pending_send(p, NULL, 0, (int)(count + 2), argv, unindexed) == 0;
    free(argv);
    if (!sent)
        fn(arg, TOK_OK);
}

static const char *const FAMILY_FIELDS[] = {"state",   "current",    "user_id",    "client_id",
                                            "scope",   "created_ms", "expires_ms", "device_id",
                                            "ua_hash", "ua_product", "ua_major",   "tls"};
#define FAMILY_NFIELDS (sizeof(FAMILY_FIELDS) / sizeof(FAMILY_FIELDS[0]))

static void family_read(void *arg, enum rcl_status st, redisReply *r)
{
    struct pending *p = arg;
    tok_family_fn fn = p->fn.family;
    void *fn_arg = p->arg;
    struct tok_family f;
    free(p);
    if (st != RCL_OK) {
        fn(fn_arg, fail_status(st, r, "introspect"), NULL);
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
    fn(fn_arg, TOK_OK, &f);
}

void tok_store_family(struct rclient *c, const char *family, tok_family_fn fn, void *arg)
{
    char fkey[KEY_MAX], used[KEY_MAX];
    const char *argv[2 + FAMILY_NFIELDS] = {"HMGET", fkey};
    family_keys(family, fkey, used);
    memcpy(argv + 2, FAMILY_FIELDS, sizeof(FAMILY_FIELDS));
    struct pending *p = pending_new(c, (union outcome_fn){.family = fn}, arg);
    if (!p || pending_send(p, NULL, 0, 2 + FAMILY_NFIELDS, argv, family_read) != 0)
        fn(arg, TOK_INTERNAL, NULL);
}

/* ---- pipelines ----------------------------------------------------------------------- */

/* Commands sent together, answered one by one; the caller is told once the last is in. */
struct batch {
    union {
        tok_count_fn count;
        tok_families_fn families;
    } fn;
    void *arg;
    size_t pending; /* replies still to come, + 1 while commands are being sent */
    int rc;         /* the first failure, or TOK_OK */
    long long revoked;
    struct tok_family *f; /* families: one per command */
    struct batch_slot {
        struct batch *b;
        size_t i;
    } * slots;
};

static struct batch *batch_new(size_t count, int families)
{
    struct batch *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->slots = calloc(count + 1, sizeof(*b->slots));
    b->f = families ? calloc(count + 1, sizeof(*b->f)) : NULL;
    if (!b->slots || (families && !b->f)) {
        free(b->slots);
        free(b->f);
        free(b);
        return NULL;
    }
    b->pending = 1;
    return b;
}

/* One reply (or the end of sending) is in; the last one tells the caller. */
static void batch_step(struct batch *b, void (*finish)(struct batch *b))
{
    if (--b->pending > 0)
        return;
    finish(b);
    free(b->slots);
    free(b->f);
    free(b);
}

static void revoke_many_finish(struct batch *b)
{
    b->fn.count(b->arg, b->rc, b->revoked);
}

/* An error reply (OOM, a script error) leaves that family alive: the whole call fails, so
 * "log out everywhere" is never answered 200 while a family survived. */
static void revoke_many_replied(void *arg, enum rcl_status st, redisReply *reply)
{
    struct batch *b = ((struct batch_slot *)arg)->b;
    if (st == RCL_OK && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
        b->revoked++;
    if (st != RCL_OK && b->rc == TOK_OK)
        b->rc = fail_status(st, reply, "revoke_many");
    batch_step(b, revoke_many_finish);
}

void tok_store_revoke_many(struct rclient *c, const char *const *families, size_t count,
                           const char *user_id, const char *reason, tok_count_fn fn, void *arg)
{
    struct batch *b = batch_new(count, 0);
    if (!b) {
        fn(arg, TOK_INTERNAL, 0);
        return;
    }
    b->fn.count = fn;
    b->arg = arg;
    for (size_t i = 0; i < count; i++) {
        char fkey[KEY_MAX], used[KEY_MAX];
        const char *argv[7] = {fkey, used};
        if (!tok_family_valid(families[i], strlen(families[i])))
            continue;
        family_keys(families[i], fkey, used);
        revoke_args(argv + 2, NULL, NULL, user_id, reason);
        b->slots[i] = (struct batch_slot){b, i};
        if (rcl_eval(c, &script_token_revoke, 2, 7, argv, NULL, 0, revoke_many_replied,
                     &b->slots[i]) != 0) {
            b->rc = TOK_INTERNAL;
            break;
        }
        b->pending++;
    }
    batch_step(b, revoke_many_finish);
}

static const char *const SESSION_FIELDS[] = {"state",   "user_id",    "client_id",    "device_id",
                                             "ua_hash", "created_ms", "last_used_ms", "expires_ms"};
#define SESSION_NFIELDS (sizeof(SESSION_FIELDS) / sizeof(SESSION_FIELDS[0]))

static void families_finish(struct batch *b)
{
    b->fn.families(b->arg, b->rc, b->rc == TOK_OK ? b->f : NULL);
}

/* One family of a session listing from its HMGET reply; an error reply reads as absent. */
static void session_read(void *arg, enum rcl_status st, redisReply *r)
{
    struct batch_slot *slot = arg;
    struct batch *b = slot->b;
    struct tok_family *f = &b->f[slot->i];
    if (st != RCL_OK && st != RCL_REPLY_ERROR && b->rc == TOK_OK)
        b->rc = fail_status(st, r, "sessions");
    copy_str(r, 0, f->state, sizeof(f->state));
    copy_str(r, 1, f->user_id, sizeof(f->user_id));
    copy_str(r, 2, f->client_id, sizeof(f->client_id));
    copy_str(r, 3, f->device_id, sizeof(f->device_id));
    copy_str(r, 4, f->ua_hash, sizeof(f->ua_hash));
    f->created_ms = str_i64(r, 5);
    f->last_used_ms = str_i64(r, 6);
    f->expires_ms = str_i64(r, 7);
    batch_step(b, families_finish);
}

void tok_store_families(struct rclient *c, const char *const *families, size_t count,
                        tok_families_fn fn, void *arg)
{
    struct batch *b = batch_new(count, 1);
    if (!b) {
        fn(arg, TOK_INTERNAL, NULL);
        return;
    }
    b->fn.families = fn;
    b->arg = arg;
    for (size_t i = 0; i < count; i++) {
        char fkey[KEY_MAX], used[KEY_MAX];
        const char *argv[2 + SESSION_NFIELDS] = {"HMGET", fkey};
        family_keys(families[i], fkey, used);
        memcpy(argv + 2, SESSION_FIELDS, sizeof(SESSION_FIELDS));
        b->slots[i] = (struct batch_slot){b, i};
        if (rcl_command(c, 2 + SESSION_NFIELDS, argv, NULL, 0, session_read, &b->slots[i]) != 0) {
            b->rc = TOK_INTERNAL;
            break;
        }
        b->pending++;
    }
    batch_step(b, families_finish);
}
