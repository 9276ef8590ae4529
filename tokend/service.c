/* SPDX-License-Identifier: Apache-2.0 */
/* service: tokend's Redis operations (issue, refresh, revoke, introspect, sessions) and
 * their metrics. Every write decision is one EVALSHA of a script in lua-scripts/token_*. */
#include "service.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scripts.h"
#include "shared/crypto.h"
#include "shared/jsonv.h"
#include "shared/log.h"
#include "shared/redis_reply.h"

#define KEY_MAX 320

void tok_service_init(struct tok_service *s, struct rpool *pool, const struct tok_conf *conf,
                      struct metrics *m)
{
    s->pool = pool;
    s->conf = conf;
    s->issued = metrics_counter(m, "issued_total", "Token families issued.", NULL);
    s->refresh = metrics_counter(m, "refresh_total", "Refresh attempts by outcome.", "outcome");
    s->revoked = metrics_counter(m, "revoked_total", "Families revoked by reason.", "reason");
    s->drift = metrics_counter(m, "fingerprint_drift_total",
                               "Presented fingerprint components that differed.", "component");
    /* every known label value at 0 from the start, so rate() sees the first one */
    static const char *const OUTCOMES[] = {"ok", "grace", "mismatch", "reused", "invalid", NULL};
    static const char *const REASONS[] = {"reuse", "user",     "family", "token",
                                          "cap",   "mismatch", NULL};
    for (int i = 0; OUTCOMES[i]; i++)
        metric_with(s->refresh, OUTCOMES[i]);
    for (int i = 0; REASONS[i]; i++)
        metric_with(s->revoked, REASONS[i]);
    for (unsigned b = TOK_FP_DEVICE; b <= TOK_FP_TLS; b <<= 1)
        metric_with(s->drift, tok_fp_name(b));
}

int tok_id_ok(const char *s, size_t len)
{
    if (len < 1 || len > TOK_ID_MAX || !jv_printable_ok(s, len))
        return 0;
    return memchr(s, '{', len) == NULL && memchr(s, '}', len) == NULL;
}

static void family_keys(const char *family, char f[KEY_MAX], char used[KEY_MAX])
{
    snprintf(f, KEY_MAX, "tok:{%s}:f", family);
    snprintf(used, KEY_MAX, "tok:{%s}:used", family);
}

static void user_key(const char *user_id, char out[KEY_MAX])
{
    snprintf(out, KEY_MAX, "tok:user:{%s}", user_id);
}

/* Map a failed call to a status: 503 when Redis cannot serve now, 500 for anything else
 * (logged), as every daemon does (redis_reply.h). */
static int fail_status(enum rpool_status st, redisReply *reply, const char *what)
{
    if (rreply_classify(st, reply) == RREPLY_INTERNAL) {
        log_error(NULL, "redis refused a tokend command", LF_S("op", what),
                  LF_S("error", reply && reply->str ? reply->str : ""));
        freeReplyObject(reply);
        return TOK_INTERNAL;
    }
    freeReplyObject(reply);
    return TOK_BACKEND;
}

/* Element i of an array reply as a string ("" when nil or missing), copied into out. */
static void reply_str(const redisReply *r, size_t i, char *out, size_t outsize)
{
    const redisReply *e =
        r && r->type == REDIS_REPLY_ARRAY && i < r->elements ? r->element[i] : NULL;
    if (e && (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS))
        snprintf(out, outsize, "%.*s", (int)e->len, e->str);
    else if (e && e->type == REDIS_REPLY_INTEGER)
        snprintf(out, outsize, "%lld", e->integer);
    else
        out[0] = '\0';
}

static int64_t reply_i64(const redisReply *r, size_t i)
{
    char buf[32];
    reply_str(r, i, buf, sizeof(buf));
    return strtoll(buf, NULL, 10);
}

/* The derived parts of a presented client. */
struct presented {
    char ua_hash[TOK_UA_HASH_LEN + 1];
    struct tok_ua ua;
    char major[24];
    char fingerprint[TOK_FP_HEX_LEN + 1];
};

static void present(const struct tok_client *c, struct presented *p)
{
    tok_ua_hash(c->user_agent, c->ua_len, p->ua_hash);
    tok_ua_parse(c->user_agent, c->ua_len, &p->ua);
    snprintf(p->major, sizeof(p->major), "%ld", p->ua.major);
    tok_fingerprint(c->device_id, p->ua_hash, c->tls, p->fingerprint);
}

static void count_drift(struct tok_service *s, unsigned bits)
{
    for (unsigned b = TOK_FP_DEVICE; b <= TOK_FP_TLS; b <<= 1)
        if (bits & b)
            metric_inc(metric_with(s->drift, tok_fp_name(b)));
}

/* Revoke the listed families in one pipeline of token_revoke runs, each in its own slot;
 * user_id (may be NULL) must own them. Ids that are not family ids are skipped. Adds the
 * number revoked to *count. */
static int revoke_many(struct tok_service *s, const char *const *ids, size_t total,
                       const char *user_id, const char *reason, long *count)
{
    size_t n = 0;
    char(*keys)[2][KEY_MAX] = calloc(total + 1, sizeof(*keys));
    const char **argv = calloc((total + 1) * 7, sizeof(*argv));
    struct rpool_cmd *cmds = calloc(total + 1, sizeof(*cmds));
    redisReply **replies = calloc(total + 1, sizeof(redisReply *));
    int rc = TOK_INTERNAL;
    if (!keys || !argv || !cmds || !replies)
        goto done;
    for (size_t i = 0; i < total; i++) {
        if (!tok_family_valid(ids[i], strlen(ids[i])))
            continue;
        const char **a = argv + n * 7;
        family_keys(ids[i], keys[n][0], keys[n][1]);
        a[0] = keys[n][0];
        a[1] = keys[n][1];
        a[2] = "family";
        a[3] = a[4] = "";
        a[5] = user_id ? user_id : "";
        a[6] = reason;
        cmds[n] =
            (struct rpool_cmd){.script = &script_token_revoke, .nkeys = 2, .argc = 7, .argv = a};
        n++;
    }
    enum rpool_status st = n ? rpool_exec(s->pool, cmds, n, replies, 0) : RPOOL_OK;
    if (st != RPOOL_OK) {
        rc = fail_status(st, NULL, "revoke_many");
        goto done;
    }
    /* An error reply (OOM, a script error) leaves that family alive: the whole call fails,
     * so "log out everywhere" is never answered 200 while a family survived. */
    redisReply *refused = NULL;
    for (size_t i = 0; i < n; i++) {
        if (replies[i]->type == REDIS_REPLY_INTEGER && replies[i]->integer == 1) {
            metric_inc(metric_with(s->revoked, reason));
            (*count)++;
        }
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
    return rc;
}

/* ZREM the given family ids from the user's index (best effort: a stale entry is only
 * pruned again later). */
static void unindex(struct tok_service *s, const char *user_id, const char *const *ids, size_t n)
{
    char key[KEY_MAX];
    redisReply *reply = NULL;
    if (n == 0)
        return;
    const char **argv = malloc((n + 2) * sizeof(*argv));
    if (!argv)
        return;
    user_key(user_id, key);
    argv[0] = "ZREM";
    argv[1] = key;
    memcpy(argv + 2, ids, n * sizeof(*ids));
    (void)rpool_command(s->pool, (int)(n + 2), argv, NULL, 0, &reply);
    freeReplyObject(reply);
    free(argv);
}

/* The user has more indexed families than the cap. The index also holds families that
 * were revoked or expired (their state lives in other slots), so read which are live
 * (tok_sessions prunes the rest) and revoke the oldest live ones beyond the cap — never
 * the one just issued. Best effort: a failure only leaves the cap briefly exceeded. */
static void enforce_cap(struct tok_service *s, const char *rid, const char *user_id,
                        const char *family)
{
    struct tok_session *live = NULL;
    size_t n = 0, nevict = 0;
    long evicted = 0;
    if (tok_sessions(s, user_id, &live, &n) != TOK_OK || n <= (size_t)s->conf->max_families)
        goto done;
    const char **ids = calloc(n, sizeof(*ids));
    if (!ids)
        goto done;
    for (size_t i = 0; i < n && n - nevict > (size_t)s->conf->max_families; i++)
        if (strcmp(live[i].family, family) != 0)
            ids[nevict++] = live[i].family;
    if (revoke_many(s, ids, nevict, user_id, "cap", &evicted) == TOK_OK) {
        unindex(s, user_id, ids, nevict);
        if (evicted > 0)
            log_info(rid, "families revoked by the per-user cap", LF_I("revoked", evicted));
    }
    free(ids);
done:
    free(live);
}

/* Add the family to its user's index; enforce the cap when the index is above it. */
static int index_family(struct tok_service *s, const char *rid, const char *user_id,
                        const char *family, int64_t created_ms)
{
    char key[KEY_MAX], created[24], ttl[24];
    redisReply *reply = NULL;
    user_key(user_id, key);
    snprintf(created, sizeof(created), "%" PRId64, created_ms);
    snprintf(ttl, sizeof(ttl), "%" PRId64, s->conf->absolute_ttl_ms);
    const char *argv[] = {key, family, created, ttl};
    enum rpool_status st = rpool_eval(s->pool, &script_token_user_add, 1, 4, argv, NULL, 0, &reply);
    if (st != RPOOL_OK)
        return fail_status(st, reply, "user_add");
    long long indexed = reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
    freeReplyObject(reply);
    if (indexed > s->conf->max_families)
        enforce_cap(s, rid, user_id, family);
    return TOK_OK;
}

int tok_issue(struct tok_service *s, const char *rid, const struct tok_issue_req *req,
              struct tok_issue_res *res)
{
    char fkey[KEY_MAX], ukey[KEY_MAX], hash[TOK_HASH_HEX_LEN + 1], idle[24], abs[24];
    struct presented p;
    redisReply *reply = NULL;

    present(&req->client, &p);
    tok_mint(&res->token, NULL);
    tok_hash(&s->conf->keys, 0, &res->token, hash);
    family_keys(res->token.family, fkey, ukey);
    snprintf(idle, sizeof(idle), "%" PRId64, s->conf->idle_ttl_ms);
    snprintf(abs, sizeof(abs), "%" PRId64, s->conf->absolute_ttl_ms);
    const char *argv[] = {fkey,
                          req->user_id,
                          req->client_id,
                          req->scope,
                          req->client.device_id,
                          p.ua_hash,
                          p.ua.product,
                          p.major,
                          req->client.tls,
                          p.fingerprint,
                          hash,
                          idle,
                          abs};
    enum rpool_status st = rpool_eval(s->pool, &script_token_issue, 1, 13, argv, NULL, 0, &reply);
    if (st != RPOOL_OK)
        return fail_status(st, reply, "issue");
    int64_t created = reply_i64(reply, 0), ttl = reply_i64(reply, 1);
    freeReplyObject(reply);
    if (created <= 0)
        return TOK_INTERNAL;
    int rc = index_family(s, rid, req->user_id, res->token.family, created);
    if (rc != TOK_OK)
        return rc;
    metric_inc(metric_with(s->issued, NULL));
    res->expires_in_s = ttl / 1000;
    res->absolute_expires_in_s = s->conf->absolute_ttl_ms / 1000;
    memcpy(res->fingerprint, p.fingerprint, sizeof(res->fingerprint));
    return TOK_OK;
}

static const char *const UA_POLICY[] = {"strict", "upgrade"};
static const char *const TLS_POLICY[] = {"ignore", "soft", "strict"};

/* Run token_refresh with a freshly minted successor. */
static enum rpool_status run_refresh(struct tok_service *s, const struct tok_token *presented,
                                     const struct tok_client *c, const struct tok_token *succ,
                                     redisReply **reply)
{
    char fkey[KEY_MAX], ukey[KEY_MAX], hash[TOK_HASH_HEX_LEN + 1], prev[TOK_HASH_HEX_LEN + 1];
    char succ_hash[TOK_HASH_HEX_LEN + 1], sealed[TOK_SEALED_MAX], grace[24], idle[24];
    struct presented p;
    const struct tok_conf *conf = s->conf;

    present(c, &p);
    family_keys(presented->family, fkey, ukey);
    tok_hash(&conf->keys, 0, presented, hash);
    tok_hash(&conf->keys, 1, presented, prev);
    tok_hash(&conf->keys, 0, succ, succ_hash);
    if (tok_seal(&conf->keys, succ, sealed, sizeof(sealed)) != 0)
        return RPOOL_REPLY_ERROR;
    snprintf(grace, sizeof(grace), "%" PRId64, conf->grace_ms);
    snprintf(idle, sizeof(idle), "%" PRId64, conf->idle_ttl_ms);
    const char *argv[] = {fkey,
                          ukey,
                          hash,
                          prev,
                          c->device_id,
                          p.ua_hash,
                          p.ua.product,
                          p.major,
                          c->tls,
                          p.fingerprint,
                          UA_POLICY[conf->ua_policy],
                          TLS_POLICY[conf->tls_policy],
                          conf->revoke_on_mismatch ? "revoke" : "reject",
                          succ_hash,
                          sealed,
                          grace,
                          idle};
    return rpool_eval(s->pool, &script_token_refresh, 2, 17, argv, NULL, 0, reply);
}

/* Fill res from an "ok" or "grace" reply. Returns TOK_OK or TOK_INTERNAL. */
static int accept_reply(struct tok_service *s, const redisReply *r, int grace,
                        const struct tok_token *presented, struct tok_refresh_res *res)
{
    char drift[64], sealed[TOK_SEALED_MAX], flag[4];
    reply_str(r, 1, res->user_id, sizeof(res->user_id));
    reply_str(r, 2, res->client_id, sizeof(res->client_id));
    reply_str(r, 3, res->scope, sizeof(res->scope));
    res->expires_in_s = reply_i64(r, 4) / 1000;
    reply_str(r, 6, drift, sizeof(drift));
    count_drift(s, tok_fp_parse_list(drift));
    if (grace) {
        /* The same successor the first refresh got: decrypt what it stored. */
        reply_str(r, 5, sealed, sizeof(sealed));
        if (tok_unseal(&s->conf->keys, presented->family, sealed, &res->token) != 0)
            return TOK_INTERNAL;
        res->outcome = TOK_R_GRACE;
    } else {
        reply_str(r, 5, flag, sizeof(flag));
        res->rebound = strcmp(flag, "1") == 0;
        res->outcome = TOK_R_OK;
    }
    return TOK_OK;
}

/* Interpret a refusal reply (mismatch, reused, invalid). */
static int refuse_reply(struct tok_service *s, const char *rid, const redisReply *r,
                        const char *kind, const char *family, struct tok_refresh_res *res)
{
    char list[64], flag[4], drift[64];
    if (strcmp(kind, "mismatch") == 0) {
        reply_str(r, 1, list, sizeof(list));
        reply_str(r, 2, flag, sizeof(flag));
        reply_str(r, 3, drift, sizeof(drift));
        count_drift(s, tok_fp_parse_list(drift));
        res->refused = tok_fp_parse_list(list);
        res->revoked = strcmp(flag, "1") == 0;
        res->outcome = TOK_R_MISMATCH;
        if (res->revoked)
            metric_inc(metric_with(s->revoked, "mismatch"));
        log_warn(rid, "refresh refused: fingerprint mismatch", LF_S("family_id", family),
                 LF_S("mismatch", list), LF_B("revoked", res->revoked));
    } else if (strcmp(kind, "reused") == 0) {
        res->outcome = TOK_R_REUSED;
        metric_inc(metric_with(s->revoked, "reuse"));
        log_warn(rid, "rotated-out token presented again: family revoked",
                 LF_S("family_id", family));
    } else if (strcmp(kind, "invalid") == 0) {
        res->outcome = TOK_R_INVALID;
    } else {
        return TOK_INTERNAL;
    }
    return TOK_OK;
}

int tok_refresh(struct tok_service *s, const char *rid, const struct tok_token *presented,
                const struct tok_client *client, struct tok_refresh_res *res)
{
    static const char *const OUTCOME[] = {"ok", "grace", "mismatch", "reused", "invalid"};
    char kind[16];
    redisReply *reply = NULL;
    int rc;

    memset(res, 0, sizeof(*res));
    tok_mint(&res->token, presented->family);
    enum rpool_status st = run_refresh(s, presented, client, &res->token, &reply);
    if (st != RPOOL_OK) {
        rc = fail_status(st, reply, "refresh");
        goto done;
    }
    reply_str(reply, 0, kind, sizeof(kind));
    if (strcmp(kind, "ok") == 0 || strcmp(kind, "grace") == 0)
        rc = accept_reply(s, reply, kind[0] == 'g', presented, res);
    else
        rc = refuse_reply(s, rid, reply, kind, presented->family, res);
    freeReplyObject(reply);
    if (rc == TOK_OK)
        metric_inc(metric_with(s->refresh, OUTCOME[res->outcome]));
done:
    if (rc != TOK_OK || (res->outcome != TOK_R_OK && res->outcome != TOK_R_GRACE))
        crypto_wipe(&res->token, sizeof(res->token));
    return rc;
}

/* One token_revoke run. mode "token" needs the hashes; "family" passes "". */
static int run_revoke(struct tok_service *s, const char *family, const char *mode, const char *hash,
                      const char *prev, const char *user_id, const char *reason, int *revoked)
{
    char fkey[KEY_MAX], ukey[KEY_MAX];
    redisReply *reply = NULL;
    family_keys(family, fkey, ukey);
    const char *argv[] = {fkey, ukey, mode, hash, prev, user_id ? user_id : "", reason};
    enum rpool_status st = rpool_eval(s->pool, &script_token_revoke, 2, 7, argv, NULL, 0, &reply);
    if (st != RPOOL_OK)
        return fail_status(st, reply, "revoke");
    *revoked = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    freeReplyObject(reply);
    if (*revoked)
        metric_inc(metric_with(s->revoked, reason));
    return TOK_OK;
}

int tok_revoke_token(struct tok_service *s, const struct tok_token *t, int *revoked)
{
    char hash[TOK_HASH_HEX_LEN + 1], prev[TOK_HASH_HEX_LEN + 1];
    tok_hash(&s->conf->keys, 0, t, hash);
    tok_hash(&s->conf->keys, 1, t, prev);
    return run_revoke(s, t->family, "token", hash, prev, NULL, "token", revoked);
}

int tok_revoke_family(struct tok_service *s, const char *family, const char *user_id,
                      const char *reason, int *revoked)
{
    return run_revoke(s, family, "family", "", "", user_id, reason, revoked);
}

/* ZRANGE of a user's index. *ids set on TOK_OK (caller frees). */
static int user_families(struct tok_service *s, const char *user_id, redisReply **ids)
{
    char key[KEY_MAX];
    user_key(user_id, key);
    const char *argv[] = {"ZRANGE", key, "0", "-1"};
    enum rpool_status st = rpool_command(s->pool, 4, argv, NULL, 0, ids);
    if (st != RPOOL_OK)
        return fail_status(st, *ids, "zrange");
    if ((*ids)->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(*ids);
        return TOK_INTERNAL;
    }
    return TOK_OK;
}

int tok_revoke_user(struct tok_service *s, const char *user_id, long *revoked)
{
    redisReply *ids = NULL;
    const char **listed = NULL;
    *revoked = 0;
    int rc = user_families(s, user_id, &ids);
    if (rc != TOK_OK)
        return rc;
    listed = calloc(ids->elements + 1, sizeof(*listed));
    if (!listed) {
        rc = TOK_INTERNAL;
        goto done;
    }
    size_t n = 0;
    for (size_t i = 0; i < ids->elements; i++)
        if (ids->element[i]->type == REDIS_REPLY_STRING)
            listed[n++] = ids->element[i]->str;
    /* The owner check inside the script keeps a forged index entry harmless. */
    rc = revoke_many(s, listed, n, user_id, "user", revoked);
    if (rc != TOK_OK)
        goto done;
    /* Drop exactly the ids seen: a family indexed meanwhile stays listed (and alive). */
    unindex(s, user_id, listed, n);
done:
    free(listed);
    freeReplyObject(ids);
    return rc;
}

static const char *const INTRO_FIELDS[] = {"state",   "current",    "user_id",    "client_id",
                                           "scope",   "created_ms", "expires_ms", "device_id",
                                           "ua_hash", "ua_product", "ua_major",   "tls"};
#define INTRO_NFIELDS (sizeof(INTRO_FIELDS) / sizeof(INTRO_FIELDS[0]))

/* Compare the presented client with the stored components (no rotation, no re-bind). */
static int intro_fp(const struct tok_service *s, const redisReply *r, const struct tok_client *c)
{
    char device[TOK_ID_MAX + 1], uah[TOK_UA_HASH_LEN + 1], prod[TOK_PRODUCT_MAX],
        tls[TOK_TLS_MAX + 1];
    struct presented p;
    struct tok_fp_result res;
    reply_str(r, 7, device, sizeof(device));
    reply_str(r, 8, uah, sizeof(uah));
    reply_str(r, 9, prod, sizeof(prod));
    reply_str(r, 11, tls, sizeof(tls));
    present(c, &p);
    struct tok_fp stored = {device, uah, prod, (long)reply_i64(r, 10), tls};
    struct tok_fp given = {c->device_id, p.ua_hash, p.ua.product, p.ua.major, c->tls};
    tok_fp_check(&stored, &given, s->conf->ua_policy, s->conf->tls_policy, &res);
    return res.refused == 0;
}

int tok_introspect(struct tok_service *s, const struct tok_token *t,
                   const struct tok_client *client, struct tok_introspection *out)
{
    char fkey[KEY_MAX], ukey[KEY_MAX], hash[TOK_HASH_HEX_LEN + 1], prev[TOK_HASH_HEX_LEN + 1];
    char state[16], current[TOK_HASH_HEX_LEN + 1];
    const char *argv[2 + INTRO_NFIELDS];
    redisReply *r = NULL;

    memset(out, 0, sizeof(*out));
    family_keys(t->family, fkey, ukey);
    argv[0] = "HMGET";
    argv[1] = fkey;
    memcpy(argv + 2, INTRO_FIELDS, sizeof(INTRO_FIELDS));
    enum rpool_status st = rpool_command(s->pool, 2 + INTRO_NFIELDS, argv, NULL, 0, &r);
    if (st != RPOOL_OK)
        return fail_status(st, r, "introspect");
    reply_str(r, 0, state, sizeof(state));
    reply_str(r, 1, current, sizeof(current));
    tok_hash(&s->conf->keys, 0, t, hash);
    tok_hash(&s->conf->keys, 1, t, prev);
    /* Only the live token is active; rotated-out ones are not (comparison in constant time). */
    int live = strlen(current) == TOK_HASH_HEX_LEN &&
               (crypto_equal(current, hash, TOK_HASH_HEX_LEN) ||
                (prev[0] && crypto_equal(current, prev, TOK_HASH_HEX_LEN)));
    if (strcmp(state, "active") == 0 && live) {
        out->active = 1;
        reply_str(r, 2, out->user_id, sizeof(out->user_id));
        reply_str(r, 3, out->client_id, sizeof(out->client_id));
        reply_str(r, 4, out->scope, sizeof(out->scope));
        out->iat = reply_i64(r, 5) / 1000;
        out->exp = reply_i64(r, 6) / 1000;
        if (client) {
            out->fp_checked = 1;
            out->fp_match = intro_fp(s, r, client);
        }
    }
    freeReplyObject(r);
    return TOK_OK;
}

static const char *const SESSION_FIELDS[] = {"state",   "user_id",    "client_id",    "device_id",
                                             "ua_hash", "created_ms", "last_used_ms", "expires_ms"};
#define SESSION_NFIELDS (sizeof(SESSION_FIELDS) / sizeof(SESSION_FIELDS[0]))

/* Fill one session from its HMGET reply; returns 1 if it is a live family of user_id. */
static int session_from(const redisReply *r, const char *user_id, const char *family,
                        struct tok_session *out)
{
    char state[16], owner[TOK_ID_MAX + 1];
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return 0;
    reply_str(r, 0, state, sizeof(state));
    reply_str(r, 1, owner, sizeof(owner));
    if (strcmp(state, "active") != 0 || strcmp(owner, user_id) != 0)
        return 0;
    snprintf(out->family, sizeof(out->family), "%s", family);
    reply_str(r, 2, out->client_id, sizeof(out->client_id));
    reply_str(r, 3, out->device_id, sizeof(out->device_id));
    reply_str(r, 4, out->ua_hash, sizeof(out->ua_hash));
    out->created_ms = reply_i64(r, 5);
    out->last_used_ms = reply_i64(r, 6);
    out->expires_ms = reply_i64(r, 7);
    return 1;
}

/* One pipeline of HMGET for every listed family; keeps the live ones, prunes the rest. */
static int read_sessions(struct tok_service *s, const char *user_id, const redisReply *ids,
                         struct tok_session *sessions, size_t *count)
{
    size_t n = ids->elements, kept = 0, npruned = 0;
    char(*keys)[KEY_MAX] = calloc(n, KEY_MAX);
    const char **argv = calloc(n * (2 + SESSION_NFIELDS), sizeof(*argv));
    const char **pruned = calloc(n, sizeof(*pruned));
    struct rpool_cmd *cmds = calloc(n, sizeof(*cmds));
    redisReply **replies = calloc(n, sizeof(redisReply *));
    int rc = TOK_INTERNAL;
    if (!keys || !argv || !pruned || !cmds || !replies)
        goto done;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = ids->element[i];
        const char **a = argv + i * (2 + SESSION_NFIELDS);
        char unused[KEY_MAX];
        family_keys(e->type == REDIS_REPLY_STRING ? e->str : "", keys[i], unused);
        a[0] = "HMGET";
        a[1] = keys[i];
        memcpy(a + 2, SESSION_FIELDS, sizeof(SESSION_FIELDS));
        cmds[i] = (struct rpool_cmd){.argc = 2 + SESSION_NFIELDS, .argv = a};
    }
    enum rpool_status st = rpool_exec(s->pool, cmds, n, replies, 0);
    if (st != RPOOL_OK) {
        rc = fail_status(st, NULL, "sessions");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = ids->element[i];
        const char *fam = e->type == REDIS_REPLY_STRING ? e->str : "";
        if (session_from(replies[i], user_id, fam, &sessions[kept]))
            kept++;
        else if (e->type == REDIS_REPLY_STRING)
            pruned[npruned++] = e->str;
        freeReplyObject(replies[i]);
    }
    unindex(s, user_id, pruned, npruned);
    *count = kept;
    rc = TOK_OK;
done:
    free(keys);
    free(argv);
    free(pruned);
    free(cmds);
    free(replies);
    return rc;
}

int tok_sessions(struct tok_service *s, const char *user_id, struct tok_session **out,
                 size_t *count)
{
    redisReply *ids = NULL;
    *out = NULL;
    *count = 0;
    int rc = user_families(s, user_id, &ids);
    if (rc != TOK_OK)
        return rc;
    if (ids->elements > 0) {
        struct tok_session *sessions = calloc(ids->elements, sizeof(*sessions));
        rc = sessions ? read_sessions(s, user_id, ids, sessions, count) : TOK_INTERNAL;
        if (rc == TOK_OK && *count > 0)
            *out = sessions;
        else
            free(sessions);
    }
    freeReplyObject(ids);
    return rc;
}

int tok_end_session(struct tok_service *s, const char *user_id, const char *family, int *revoked)
{
    int rc = tok_revoke_family(s, family, user_id, "family", revoked);
    if (rc == TOK_OK && *revoked)
        unindex(s, user_id, &family, 1);
    return rc;
}
