/* SPDX-License-Identifier: Apache-2.0 */
/* service: tokend's operations (issue, refresh, revoke, introspect, sessions) and their
 * metrics, each a chain of store calls continued in the functions they call back. */
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/crypto.h"
#include "shared/log.h"

void tok_service_init(struct tok_service *s, const struct tok_config *conf, struct metrics *m)
{
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

/* The derived parts of a presented client. */
struct presented {
    char ua_hash[TOK_UA_HASH_LEN + 1];
    struct tok_ua ua;
    char fingerprint[TOK_FP_HEX_LEN + 1];
};

static void present(const struct tok_client *c, struct presented *p)
{
    tok_ua_hash(c->user_agent, c->ua_len, p->ua_hash);
    tok_ua_parse(c->user_agent, c->ua_len, &p->ua);
    tok_fingerprint(c->device_id, p->ua_hash, c->tls, p->fingerprint);
}

static void count_drift(struct tok_service *s, unsigned bits)
{
    for (unsigned b = TOK_FP_DEVICE; b <= TOK_FP_TLS; b <<= 1)
        if (bits & b)
            metric_inc(metric_with(s->drift, tok_fp_name(b)));
}

/* ---- sessions ------------------------------------------------------------------------ */

struct sessions_op {
    struct tok_service *s;
    struct rclient *rc;
    const char *user_id;
    struct tok_session **out;
    size_t *count;
    tok_done_fn done;
    void *arg;
    struct tok_ids *ids;
    struct tok_session *sessions;
    const char **pruned;
};

static void sessions_end(struct sessions_op *op, int rc)
{
    tok_done_fn done = op->done;
    void *arg = op->arg;
    if (rc == TOK_OK && *op->count > 0) {
        *op->out = op->sessions;
        op->sessions = NULL;
    } else {
        *op->count = 0;
    }
    free(op->sessions);
    free(op->pruned);
    tok_ids_free(op->ids);
    free(op);
    done(arg, rc);
}

static void sessions_pruned(void *arg, int rc)
{
    (void)rc; /* best effort */
    sessions_end(arg, TOK_OK);
}

/* Keep the live families of the user; prune the index of the others. */
static void sessions_read(void *arg, int rc, const struct tok_family *f)
{
    struct sessions_op *op = arg;
    size_t kept = 0, npruned = 0;
    if (rc != TOK_OK) {
        sessions_end(op, rc);
        return;
    }
    for (size_t i = 0; i < op->ids->count; i++) {
        if (strcmp(f[i].state, "active") != 0 || strcmp(f[i].user_id, op->user_id) != 0) {
            op->pruned[npruned++] = op->ids->id[i];
            continue;
        }
        struct tok_session *out = &op->sessions[kept++];
        snprintf(out->family, sizeof(out->family), "%s", op->ids->id[i]);
        memcpy(out->client_id, f[i].client_id, sizeof(out->client_id));
        memcpy(out->device_id, f[i].device_id, sizeof(out->device_id));
        memcpy(out->ua_hash, f[i].ua_hash, sizeof(out->ua_hash));
        out->created_ms = f[i].created_ms;
        out->last_used_ms = f[i].last_used_ms;
        out->expires_ms = f[i].expires_ms;
    }
    *op->count = kept;
    tok_store_unindex(op->rc, op->user_id, op->pruned, npruned, sessions_pruned, op);
}

static void sessions_listed(void *arg, int rc, struct tok_ids *ids)
{
    struct sessions_op *op = arg;
    op->ids = ids;
    if (rc != TOK_OK || ids->count == 0) {
        sessions_end(op, rc);
        return;
    }
    op->sessions = calloc(ids->count, sizeof(*op->sessions));
    op->pruned = calloc(ids->count, sizeof(*op->pruned));
    if (!op->sessions || !op->pruned) {
        sessions_end(op, TOK_INTERNAL);
        return;
    }
    tok_store_families(op->rc, ids->id, ids->count, sessions_read, op);
}

void tok_sessions(struct tok_service *s, struct rclient *rc, const char *user_id,
                  struct tok_session **out, size_t *count, tok_done_fn done, void *arg)
{
    *out = NULL;
    *count = 0;
    struct sessions_op *op = calloc(1, sizeof(*op));
    if (!op) {
        done(arg, TOK_INTERNAL);
        return;
    }
    *op = (struct sessions_op){s, rc, user_id, out, count, done, arg, NULL, NULL, NULL};
    tok_store_user_families(rc, user_id, sessions_listed, op);
}

/* ---- issue --------------------------------------------------------------------------- */

struct issue_op {
    struct tok_service *s;
    struct rclient *rc;
    const char *rid;
    const struct tok_issue_req *req;
    struct tok_issue_res *res;
    tok_done_fn done;
    void *arg;
    struct tok_session *live; /* the cap: the user's live families */
    size_t nlive;
    const char **evict;
    size_t nevict;
    long long evicted;
};

static void issue_end(struct issue_op *op, int rc)
{
    tok_done_fn done = op->done;
    void *arg = op->arg;
    if (rc == TOK_OK) {
        metric_inc(metric_with(op->s->issued, NULL));
        op->res->absolute_expires_in_s = op->s->conf->absolute_ttl_ms / 1000;
    }
    free(op->live);
    free(op->evict);
    free(op);
    done(arg, rc);
}

static void cap_unindexed(void *arg, int rc)
{
    struct issue_op *op = arg;
    (void)rc; /* best effort */
    if (op->evicted > 0)
        log_info(op->rid, "families revoked by the per-user cap", LF_I("revoked", op->evicted));
    issue_end(op, TOK_OK);
}

static void cap_revoked(void *arg, int rc, long long n)
{
    struct issue_op *op = arg;
    metric_add(metric_with(op->s->revoked, "cap"), (uint64_t)n);
    op->evicted = n;
    if (rc != TOK_OK) {
        issue_end(op, TOK_OK);
        return;
    }
    tok_store_unindex(op->rc, op->req->user_id, op->evict, op->nevict, cap_unindexed, op);
}

/* The user has more indexed families than the cap. The index also holds families that
 * were revoked or expired (their state lives in other slots), so read which are live
 * (tok_sessions prunes the rest) and revoke the oldest live ones beyond the cap — never
 * the one just issued. Best effort: a failure only leaves the cap briefly exceeded. */
static void cap_listed(void *arg, int rc)
{
    struct issue_op *op = arg;
    size_t max = (size_t)op->s->conf->max_families;
    if (rc != TOK_OK || op->nlive <= max) {
        issue_end(op, TOK_OK);
        return;
    }
    op->evict = calloc(op->nlive, sizeof(*op->evict));
    if (!op->evict) {
        issue_end(op, TOK_OK);
        return;
    }
    for (size_t i = 0; i < op->nlive && op->nlive - op->nevict > max; i++)
        if (strcmp(op->live[i].family, op->res->token.family) != 0)
            op->evict[op->nevict++] = op->live[i].family;
    tok_store_revoke_many(op->rc, op->evict, op->nevict, op->req->user_id, "cap", cap_revoked, op);
}

static void issue_indexed(void *arg, int rc, long long indexed)
{
    struct issue_op *op = arg;
    if (rc != TOK_OK || indexed <= op->s->conf->max_families) {
        issue_end(op, rc);
        return;
    }
    tok_sessions(op->s, op->rc, op->req->user_id, &op->live, &op->nlive, cap_listed, op);
}

static void issue_stored(void *arg, int rc, int64_t created_ms, int64_t ttl_ms)
{
    struct issue_op *op = arg;
    if (rc == TOK_OK && created_ms <= 0)
        rc = TOK_INTERNAL;
    if (rc != TOK_OK) {
        issue_end(op, rc);
        return;
    }
    op->res->expires_in_s = ttl_ms / 1000;
    tok_store_index(op->rc, op->req->user_id, op->res->token.family, created_ms,
                    op->s->conf->absolute_ttl_ms, issue_indexed, op);
}

void tok_issue(struct tok_service *s, struct rclient *rc, const char *rid,
               const struct tok_issue_req *req, struct tok_issue_res *res, tok_done_fn done,
               void *arg)
{
    char hash[TOK_HASH_HEX_LEN + 1];
    struct presented p;
    struct issue_op *op = calloc(1, sizeof(*op));
    if (!op) {
        done(arg, TOK_INTERNAL);
        return;
    }
    *op = (struct issue_op){
        .s = s, .rc = rc, .rid = rid, .req = req, .res = res, .done = done, .arg = arg};
    present(&req->client, &p);
    tok_mint(&res->token, NULL);
    tok_hash(&s->conf->keys, 0, &res->token, hash);
    memcpy(res->fingerprint, p.fingerprint, sizeof(res->fingerprint));
    const struct tok_new_family f = {.family = res->token.family,
                                     .user_id = req->user_id,
                                     .client_id = req->client_id,
                                     .scope = req->scope,
                                     .device_id = req->client.device_id,
                                     .ua_hash = p.ua_hash,
                                     .ua_product = p.ua.product,
                                     .ua_major = p.ua.major,
                                     .tls = req->client.tls,
                                     .fingerprint = p.fingerprint,
                                     .hash = hash,
                                     .idle_ttl_ms = s->conf->idle_ttl_ms,
                                     .absolute_ttl_ms = s->conf->absolute_ttl_ms};
    tok_store_issue(rc, &f, issue_stored, op);
}

/* ---- refresh ------------------------------------------------------------------------- */

struct refresh_op {
    struct tok_service *s;
    struct rclient *rc;
    const char *rid;
    const struct tok_token *presented;
    struct tok_refresh_res *res;
    tok_done_fn done;
    void *arg;
};

/* Fill res from an accepted refresh. Returns TOK_OK or TOK_INTERNAL. */
static int accepted(struct refresh_op *op, const struct tok_refreshed *r)
{
    struct tok_refresh_res *res = op->res;
    memcpy(res->user_id, r->user_id, sizeof(res->user_id));
    memcpy(res->client_id, r->client_id, sizeof(res->client_id));
    memcpy(res->scope, r->scope, sizeof(res->scope));
    res->expires_in_s = r->ttl_ms / 1000;
    count_drift(op->s, tok_fp_parse_list(r->drift));
    res->rebound = r->rebound;
    /* The same successor the first refresh got: decrypt what it stored. */
    if (r->outcome == TOK_R_GRACE &&
        tok_unseal(&op->s->conf->keys, op->presented->family, r->sealed, &res->token) != 0)
        return TOK_INTERNAL;
    return TOK_OK;
}

/* Count and log a refusal (mismatch, reused, invalid). */
static void refused(struct refresh_op *op, const struct tok_refreshed *r)
{
    struct tok_service *s = op->s;
    const char *family = op->presented->family;
    if (r->outcome == TOK_R_MISMATCH) {
        count_drift(s, tok_fp_parse_list(r->drift));
        op->res->refused = tok_fp_parse_list(r->refused);
        op->res->revoked = r->revoked;
        if (r->revoked)
            metric_inc(metric_with(s->revoked, "mismatch"));
        log_warn(op->rid, "refresh refused: fingerprint mismatch", LF_S("family_id", family),
                 LF_S("mismatch", r->refused), LF_B("revoked", r->revoked));
    } else if (r->outcome == TOK_R_REUSED) {
        metric_inc(metric_with(s->revoked, "reuse"));
        log_warn(op->rid, "rotated-out token presented again: family revoked",
                 LF_S("family_id", family));
    }
}

static void refreshed(void *arg, int rc, const struct tok_refreshed *r)
{
    static const char *const OUTCOME[] = {"ok", "grace", "mismatch", "reused", "invalid"};
    struct refresh_op *op = arg;
    struct tok_refresh_res *res = op->res;
    tok_done_fn done = op->done;
    void *done_arg = op->arg;
    if (rc == TOK_OK) {
        res->outcome = r->outcome;
        if (r->outcome == TOK_R_OK || r->outcome == TOK_R_GRACE)
            rc = accepted(op, r);
        else
            refused(op, r);
    }
    if (rc == TOK_OK)
        metric_inc(metric_with(op->s->refresh, OUTCOME[res->outcome]));
    if (rc != TOK_OK || (res->outcome != TOK_R_OK && res->outcome != TOK_R_GRACE))
        crypto_wipe(&res->token, sizeof(res->token));
    free(op);
    done(done_arg, rc);
}

void tok_refresh(struct tok_service *s, struct rclient *rc, const char *rid,
                 const struct tok_token *presented, const struct tok_client *client,
                 struct tok_refresh_res *res, tok_done_fn done, void *arg)
{
    char hash[TOK_HASH_HEX_LEN + 1], prev[TOK_HASH_HEX_LEN + 1], succ_hash[TOK_HASH_HEX_LEN + 1];
    char sealed[TOK_SEALED_MAX];
    struct presented p;
    const struct tok_config *conf = s->conf;

    memset(res, 0, sizeof(*res));
    struct refresh_op *op = malloc(sizeof(*op));
    tok_mint(&res->token, presented->family);
    if (!op || tok_seal(&conf->keys, &res->token, sealed, sizeof(sealed)) != 0) {
        free(op);
        crypto_wipe(&res->token, sizeof(res->token));
        done(arg, TOK_INTERNAL);
        return;
    }
    *op = (struct refresh_op){s, rc, rid, presented, res, done, arg};
    present(client, &p);
    tok_hash(&conf->keys, 0, presented, hash);
    tok_hash(&conf->keys, 1, presented, prev);
    tok_hash(&conf->keys, 0, &res->token, succ_hash);
    const struct tok_refresh_args a = {.family = presented->family,
                                       .hash = hash,
                                       .prev_hash = prev,
                                       .device_id = client->device_id,
                                       .ua_hash = p.ua_hash,
                                       .ua_product = p.ua.product,
                                       .ua_major = p.ua.major,
                                       .tls = client->tls,
                                       .fingerprint = p.fingerprint,
                                       .ua_policy = conf->ua_policy,
                                       .tls_policy = conf->tls_policy,
                                       .revoke_on_mismatch = conf->revoke_on_mismatch,
                                       .successor_hash = succ_hash,
                                       .successor_sealed = sealed,
                                       .grace_ms = conf->grace_ms,
                                       .idle_ttl_ms = conf->idle_ttl_ms};
    tok_store_refresh(rc, &a, refreshed, op);
}

/* ---- revoke -------------------------------------------------------------------------- */

struct revoke_op {
    struct tok_service *s;
    struct rclient *rc;
    const char *reason;
    const char *user_id; /* end_session: drop the family from this user's index */
    const char *family;
    int *revoked;
    long *count; /* revoke_user */
    struct tok_ids *ids;
    tok_done_fn done;
    void *arg;
};

static void revoke_end(struct revoke_op *op, int rc)
{
    tok_done_fn done = op->done;
    void *arg = op->arg;
    tok_ids_free(op->ids);
    free(op);
    done(arg, rc);
}

static void revoke_unindexed(void *arg, int rc)
{
    (void)rc; /* best effort */
    revoke_end(arg, TOK_OK);
}

static void revoked_one(void *arg, int rc, long long n)
{
    struct revoke_op *op = arg;
    *op->revoked = rc == TOK_OK && n == 1;
    if (*op->revoked)
        metric_inc(metric_with(op->s->revoked, op->reason));
    if (*op->revoked && op->user_id) {
        tok_store_unindex(op->rc, op->user_id, &op->family, 1, revoke_unindexed, op);
        return;
    }
    revoke_end(op, rc);
}

/* The state of a revocation, or NULL when out of memory (done has then been called). */
static struct revoke_op *revoke_op(struct tok_service *s, struct rclient *rc, const char *reason,
                                   tok_done_fn done, void *arg)
{
    struct revoke_op *op = calloc(1, sizeof(*op));
    if (op)
        *op = (struct revoke_op){.s = s, .rc = rc, .reason = reason, .done = done, .arg = arg};
    else
        done(arg, TOK_INTERNAL);
    return op;
}

void tok_revoke_token(struct tok_service *s, struct rclient *rc, const struct tok_token *t,
                      int *revoked, tok_done_fn done, void *arg)
{
    char hash[TOK_HASH_HEX_LEN + 1], prev[TOK_HASH_HEX_LEN + 1];
    *revoked = 0;
    struct revoke_op *op = revoke_op(s, rc, "token", done, arg);
    if (!op)
        return;
    op->revoked = revoked;
    tok_hash(&s->conf->keys, 0, t, hash);
    tok_hash(&s->conf->keys, 1, t, prev);
    tok_store_revoke(rc, t->family, hash, prev, NULL, "token", revoked_one, op);
}

void tok_revoke_family(struct tok_service *s, struct rclient *rc, const char *family,
                       const char *user_id, const char *reason, int *revoked, tok_done_fn done,
                       void *arg)
{
    *revoked = 0;
    struct revoke_op *op = revoke_op(s, rc, reason, done, arg);
    if (!op)
        return;
    op->revoked = revoked;
    tok_store_revoke(rc, family, NULL, NULL, user_id, reason, revoked_one, op);
}

void tok_end_session(struct tok_service *s, struct rclient *rc, const char *user_id,
                     const char *family, int *revoked, tok_done_fn done, void *arg)
{
    *revoked = 0;
    struct revoke_op *op = revoke_op(s, rc, "family", done, arg);
    if (!op)
        return;
    op->revoked = revoked;
    op->user_id = user_id;
    op->family = family;
    tok_store_revoke(rc, family, NULL, NULL, user_id, "family", revoked_one, op);
}

static void user_revoked(void *arg, int rc, long long n)
{
    struct revoke_op *op = arg;
    metric_add(metric_with(op->s->revoked, "user"), (uint64_t)n);
    *op->count = (long)n;
    if (rc != TOK_OK) {
        revoke_end(op, rc);
        return;
    }
    /* Drop exactly the ids seen: a family indexed meanwhile stays listed (and alive). */
    tok_store_unindex(op->rc, op->user_id, op->ids->id, op->ids->count, revoke_unindexed, op);
}

static void user_listed(void *arg, int rc, struct tok_ids *ids)
{
    struct revoke_op *op = arg;
    op->ids = ids;
    if (rc != TOK_OK) {
        revoke_end(op, rc);
        return;
    }
    /* The owner check inside the script keeps a forged index entry harmless. */
    tok_store_revoke_many(op->rc, ids->id, ids->count, op->user_id, "user", user_revoked, op);
}

void tok_revoke_user(struct tok_service *s, struct rclient *rc, const char *user_id, long *revoked,
                     tok_done_fn done, void *arg)
{
    *revoked = 0;
    struct revoke_op *op = revoke_op(s, rc, "user", done, arg);
    if (!op)
        return;
    op->count = revoked;
    op->user_id = user_id;
    tok_store_user_families(rc, user_id, user_listed, op);
}

/* ---- introspect ---------------------------------------------------------------------- */

struct introspect_op {
    struct tok_service *s;
    struct rclient *rc;
    const struct tok_token *t;
    const struct tok_client *client;
    struct tok_introspection *out;
    tok_done_fn done;
    void *arg;
};

/* Compare the presented client with the stored components (no rotation, no re-bind). */
static int fp_matches(const struct tok_service *s, const struct tok_family *f,
                      const struct tok_client *c)
{
    struct presented p;
    struct tok_fp_result res;
    present(c, &p);
    struct tok_fp stored = {f->device_id, f->ua_hash, f->ua_product, f->ua_major, f->tls};
    struct tok_fp given = {c->device_id, p.ua_hash, p.ua.product, p.ua.major, c->tls};
    tok_fp_check(&stored, &given, s->conf->ua_policy, s->conf->tls_policy, &res);
    return res.refused == 0;
}

static void introspected(void *arg, int rc, const struct tok_family *f)
{
    struct introspect_op *op = arg;
    struct tok_introspection *out = op->out;
    char hash[TOK_HASH_HEX_LEN + 1], prev[TOK_HASH_HEX_LEN + 1];
    tok_done_fn done = op->done;
    void *done_arg = op->arg;
    if (rc == TOK_OK) {
        tok_hash(&op->s->conf->keys, 0, op->t, hash);
        tok_hash(&op->s->conf->keys, 1, op->t, prev);
        /* Only the live token is active; rotated-out ones are not (compared in constant
         * time). */
        int live = strlen(f->current) == TOK_HASH_HEX_LEN &&
                   (crypto_equal(f->current, hash, TOK_HASH_HEX_LEN) ||
                    (prev[0] && crypto_equal(f->current, prev, TOK_HASH_HEX_LEN)));
        if (strcmp(f->state, "active") == 0 && live) {
            out->active = 1;
            memcpy(out->user_id, f->user_id, sizeof(out->user_id));
            memcpy(out->client_id, f->client_id, sizeof(out->client_id));
            memcpy(out->scope, f->scope, sizeof(out->scope));
            out->iat = f->created_ms / 1000;
            out->exp = f->expires_ms / 1000;
            if (op->client) {
                out->fp_checked = 1;
                out->fp_match = fp_matches(op->s, f, op->client);
            }
        }
    }
    free(op);
    done(done_arg, rc);
}

void tok_introspect(struct tok_service *s, struct rclient *rc, const struct tok_token *t,
                    const struct tok_client *client, struct tok_introspection *out,
                    tok_done_fn done, void *arg)
{
    memset(out, 0, sizeof(*out));
    struct introspect_op *op = malloc(sizeof(*op));
    if (!op) {
        done(arg, TOK_INTERNAL);
        return;
    }
    *op = (struct introspect_op){s, rc, t, client, out, done, arg};
    tok_store_family(rc, t->family, introspected, op);
}
