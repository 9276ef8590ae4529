/* SPDX-License-Identifier: Apache-2.0 */
/* store: runs idemd's Lua scripts through the pool and turns their replies into
 * struct idem_result (see store.h for the contract, lua-scripts/idem_*.lua for the
 * reply shapes). */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scripts.h"
#include "shared/crypto.h"
#include "shared/log.h"
#include "shared/redis_reply.h"

struct idem_store {
    const struct idem_config *conf;
    struct rpool *pool;
    char wait_n[16], wait_ms[24]; /* WAIT arguments */
};

/* Largest claim pipeline sent in one round trip. */
#define IDEM_BATCH_MAX 64

static const char *const outcome_names[] = {
    [IDEM_CLAIMED] = "claimed",     [IDEM_RECOVERED] = "recovered",
    [IDEM_REPLAY] = "replay",       [IDEM_IN_PROGRESS] = "in_progress",
    [IDEM_BLOCKED] = "blocked",     [IDEM_MISMATCH] = "mismatch",
    [IDEM_COMPLETED] = "completed", [IDEM_RELEASED] = "released",
    [IDEM_EXTENDED] = "extended",   [IDEM_SAVED] = "saved",
    [IDEM_FOUND] = "found",         [IDEM_LEASE_LOST] = "lease_lost",
    [IDEM_NOT_FOUND] = "not_found",
};

const struct script *const idem_store_scripts[] = {
    &script_idem_claim,
    &script_idem_complete,
    &script_idem_release,
    &script_idem_extend,
    &script_idem_checkpoint,
    &script_idem_record,
    NULL,
};

/* Every record is the single key idem:<scope>:<key>, so every script is cluster-safe. */
int idem_redis_key(const char *scope, const char *key, size_t key_len, char *out, size_t outsize)
{
    int n = snprintf(out, outsize, "idem:%s:", scope);
    if (n < 0 || (size_t)n >= outsize)
        return -1;
    size_t at = (size_t)n;
    for (size_t i = 0; i < key_len; i++) {
        char c = key[i];
        if (c == '{' || c == '}' || c == '%') {
            if (at + 3 >= outsize)
                return -1;
            snprintf(out + at, 4, "%%%02X", (unsigned char)c);
            at += 3;
        } else {
            if (at + 1 >= outsize)
                return -1;
            out[at++] = c;
        }
    }
    out[at] = '\0';
    return 0;
}

const char *idem_outcome_name(enum idem_outcome o)
{
    return outcome_names[o];
}

struct idem_store *idem_store_create(const struct idem_config *conf, struct rpool *pool)
{
    struct idem_store *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->conf = conf;
    st->pool = pool;
    snprintf(st->wait_n, sizeof(st->wait_n), "%d", conf->wait_replicas);
    snprintf(st->wait_ms, sizeof(st->wait_ms), "%lld", (long long)conf->wait_timeout_ms);
    return st;
}

void idem_store_free(struct idem_store *st)
{
    free(st);
}

void idem_new_lease_token(char out[33])
{
    uint8_t raw[24];
    crypto_random(raw, sizeof(raw));
    crypto_b64url(raw, sizeof(raw), out, 33);
}

void idem_result_free(struct idem_result *res)
{
    if (!res)
        return;
    freeReplyObject(res->reply_);
    res->reply_ = NULL;
}

/* ---- reply parsing ---------------------------------------------------------------- */

static int outcome_of(const char *name, enum idem_outcome *o)
{
    for (size_t i = 0; i < sizeof(outcome_names) / sizeof(outcome_names[0]); i++)
        if (strcmp(outcome_names[i], name) == 0) {
            *o = (enum idem_outcome)i;
            return 0;
        }
    return -1;
}

/* {"claimed"|"recovered", token, lease_left, expires_in, recovered, has_cp, cp} */
static int parse_claimed(const redisReply *r, struct idem_result *res)
{
    long long recovered, has_cp;
    res->lease_token = rreply_str(r, 1, NULL);
    if (!res->lease_token || rreply_int(r, 2, &res->lease_left_ms) ||
        rreply_int(r, 3, &res->expires_in_ms) || rreply_int(r, 4, &recovered) ||
        rreply_int(r, 5, &has_cp))
        return -1;
    res->recovered = recovered != 0;
    res->checkpoint = has_cp ? rreply_str(r, 6, &res->checkpoint_len) : NULL;
    return has_cp && !res->checkpoint ? -1 : 0;
}

/* {"replay", status, headers, body, encoding, completed_ms, expires_in} */
static int parse_replay(const redisReply *r, struct idem_result *res)
{
    res->headers_json = rreply_str(r, 2, NULL);
    res->body = rreply_str(r, 3, &res->body_len);
    res->body_encoding = rreply_str(r, 4, NULL);
    if (rreply_int(r, 1, &res->status) || !res->headers_json || !res->body || !res->body_encoding ||
        rreply_int(r, 5, &res->completed_ms) || rreply_int(r, 6, &res->expires_in_ms))
        return -1;
    return 0;
}

/* {"found", state, fp, created, lease_left, status, has_cp, cp, claims, expires_in, done} */
static int parse_found(const redisReply *r, struct idem_result *res)
{
    long long has_cp;
    res->state = rreply_str(r, 1, NULL);
    res->fingerprint = rreply_str(r, 2, NULL);
    if (!res->state || !res->fingerprint || rreply_int(r, 3, &res->created_ms) ||
        rreply_int(r, 4, &res->lease_left_ms) || rreply_int(r, 5, &res->status) ||
        rreply_int(r, 6, &has_cp) || rreply_int(r, 8, &res->claims) ||
        rreply_int(r, 9, &res->expires_in_ms) || rreply_int(r, 10, &res->completed_ms))
        return -1;
    res->checkpoint = has_cp ? rreply_str(r, 7, &res->checkpoint_len) : NULL;
    return 0;
}

/* Fill res from one script reply (which res takes over). Returns its class. */
static enum rreply_class parse_reply(redisReply *r, struct idem_result *res)
{
    const char *name;
    int bad = 0;
    memset(res, 0, sizeof(*res));
    res->replicas_acked = -1;
    res->status = -1;
    res->completed_ms = -1;
    res->reply_ = r;
    if (r->type == REDIS_REPLY_ERROR) {
        /* OOM under noeviction, NOPERM, a script killed: Redis cannot serve the call (503);
         * anything else is a bug (500), as in every daemon (redis_reply.h). */
        log_error(NULL, "redis refused an idemd script", LF_S("error", r->str));
        return rreply_classify(RPOOL_REPLY_ERROR, r);
    }
    if (r->type != REDIS_REPLY_ARRAY || !(name = rreply_str(r, 0, NULL)) ||
        outcome_of(name, &res->outcome) != 0)
        goto internal;
    switch (res->outcome) {
    case IDEM_CLAIMED:
    case IDEM_RECOVERED: bad = parse_claimed(r, res); break;
    case IDEM_REPLAY: bad = parse_replay(r, res); break;
    case IDEM_IN_PROGRESS:
        bad = rreply_int(r, 1, &res->lease_left_ms) || rreply_int(r, 2, &res->expires_in_ms);
        break;
    case IDEM_BLOCKED:
    case IDEM_COMPLETED: bad = rreply_int(r, 1, &res->expires_in_ms); break;
    case IDEM_EXTENDED: bad = rreply_int(r, 1, &res->lease_left_ms); break;
    case IDEM_FOUND: bad = parse_found(r, res); break;
    default: break;
    }
    if (!bad)
        return RREPLY_OK;
internal:
    log_error(NULL, "unexpected reply from an idemd script", LF_I("type", r->type));
    return RREPLY_INTERNAL;
}

/* ---- running scripts --------------------------------------------------------------- */

/* Run ncmds script commands, then (if they may write and replicas are asked for) WAIT, in
 * one round trip. Parses each reply into res[i] with its class in rc[i]. Returns the class of
 * the round trip (RREPLY_OK when every reply came back). */
static enum rreply_class run(struct idem_store *st, struct rpool_cmd *cmds, size_t ncmds,
                             int writes, struct idem_result *res, int *rc)
{
    redisReply *replies[IDEM_BATCH_MAX + 1];
    int wait = writes && st->conf->wait_replicas > 0;
    const char *wargv[] = {"WAIT", st->wait_n, st->wait_ms};
    int64_t timeout = rpool_command_timeout_ms(st->pool);
    long long acked = -1;

    if (wait) {
        cmds[ncmds] = (struct rpool_cmd){.argc = 3, .argv = wargv};
        timeout += st->conf->wait_timeout_ms;
    }
    enum rpool_status status = rpool_exec(st->pool, cmds, ncmds + (size_t)wait, replies, timeout);
    if (status != RPOOL_OK)
        return rreply_classify(status, NULL);
    if (wait) {
        if (replies[ncmds]->type == REDIS_REPLY_INTEGER)
            acked = replies[ncmds]->integer;
        freeReplyObject(replies[ncmds]);
    }
    for (size_t i = 0; i < ncmds; i++) {
        rc[i] = parse_reply(replies[i], &res[i]);
        res[i].replicas_acked = wait ? (int)(acked < 0 ? 0 : acked) : -1;
    }
    return RREPLY_OK;
}

/* One script on one record with the given arguments (after the key). writes: the script
 * may write (so WAIT follows it when replicas are asked for). */
static enum rreply_class run_one(struct idem_store *st, const struct script *s, int writes,
                                 const struct idem_ref *ref, int nargs, const char **args,
                                 const size_t *lens, struct idem_result *res)
{
    const char *argv[8];
    size_t argvlen[8];
    struct rpool_cmd cmds[2];
    int rc = RREPLY_UNAVAILABLE;
    enum rreply_class trip;

    argv[0] = ref->rkey;
    argvlen[0] = strlen(ref->rkey);
    for (int i = 0; i < nargs; i++) {
        argv[i + 1] = args[i];
        argvlen[i + 1] = lens ? lens[i] : strlen(args[i]);
    }
    cmds[0] = (struct rpool_cmd){
        .script = s, .nkeys = 1, .argc = nargs + 1, .argv = argv, .argvlen = argvlen};
    memset(res, 0, sizeof(*res));
    trip = run(st, cmds, 1, writes, res, &rc);
    if (trip != RREPLY_OK)
        return trip;
    if (rc != RREPLY_OK)
        idem_result_free(res);
    return (enum rreply_class)rc;
}

/* Claim arguments: the record key then ARGV of idem_claim.lua, into argv (7 slots). */
static void claim_args(const struct idem_store *st, const struct idem_claim_in *in,
                       const char *token, char num[2][24], const char **argv)
{
    snprintf(num[0], 24, "%lld", (long long)in->lease_ms);
    snprintf(num[1], 24, "%lld", (long long)st->conf->ttl_ms);
    argv[0] = in->ref.rkey;
    argv[1] = in->fingerprint;
    argv[2] = token;
    argv[3] = num[0];
    argv[4] = num[1];
    argv[5] = st->conf->takeover ? "takeover" : "block";
    argv[6] = in->attempt_id;
}

enum rreply_class idem_store_claim_many(struct idem_store *st,
                                        const struct idem_claim_in *const *in,
                                        const char *const *tokens, size_t n,
                                        struct idem_result *res, int *rc)
{
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done < IDEM_BATCH_MAX ? n - done : IDEM_BATCH_MAX;
        const char *argv[IDEM_BATCH_MAX][7];
        char num[IDEM_BATCH_MAX][2][24];
        struct rpool_cmd cmds[IDEM_BATCH_MAX + 1];
        for (size_t i = 0; i < chunk; i++) {
            claim_args(st, in[done + i], tokens[done + i], num[i], argv[i]);
            cmds[i] = (struct rpool_cmd){
                .script = &script_idem_claim, .nkeys = 1, .argc = 7, .argv = argv[i]};
        }
        enum rreply_class trip = run(st, cmds, chunk, 1, res + done, rc + done);
        if (trip != RREPLY_OK) {
            for (size_t i = 0; i < done; i++)
                idem_result_free(&res[i]);
            return trip;
        }
        done += chunk;
    }
    return RREPLY_OK;
}

enum rreply_class idem_store_claim(struct idem_store *st, const struct idem_claim_in *in,
                                   const char *token, struct idem_result *res)
{
    int rc = RREPLY_UNAVAILABLE;
    enum rreply_class trip = idem_store_claim_many(st, &in, &token, 1, res, &rc);
    if (trip != RREPLY_OK)
        return trip;
    if (rc != RREPLY_OK)
        idem_result_free(res);
    return (enum rreply_class)rc;
}

enum rreply_class idem_store_complete(struct idem_store *st, const struct idem_lease_in *in,
                                      struct idem_result *res)
{
    char status[8];
    snprintf(status, sizeof(status), "%d", in->status);
    const char *args[] = {in->lease_token, status, in->headers_json, in->body, in->body_encoding};
    size_t lens[] = {in->lease_token_len, strlen(status), strlen(in->headers_json), in->body_len,
                     strlen(in->body_encoding)};
    return run_one(st, &script_idem_complete, 1, &in->ref, 5, args, lens, res);
}

enum rreply_class idem_store_release(struct idem_store *st, const struct idem_lease_in *in,
                                     struct idem_result *res)
{
    const char *args[] = {in->lease_token};
    size_t lens[] = {in->lease_token_len};
    return run_one(st, &script_idem_release, 1, &in->ref, 1, args, lens, res);
}

enum rreply_class idem_store_extend(struct idem_store *st, const struct idem_lease_in *in,
                                    struct idem_result *res)
{
    char lease[24];
    snprintf(lease, sizeof(lease), "%lld", (long long)in->lease_ms);
    const char *args[] = {in->lease_token, lease};
    size_t lens[] = {in->lease_token_len, strlen(lease)};
    return run_one(st, &script_idem_extend, 1, &in->ref, 2, args, lens, res);
}

enum rreply_class idem_store_checkpoint(struct idem_store *st, const struct idem_lease_in *in,
                                        struct idem_result *res)
{
    const char *args[] = {in->lease_token, in->checkpoint};
    size_t lens[] = {in->lease_token_len, in->checkpoint_len};
    return run_one(st, &script_idem_checkpoint, 1, &in->ref, 2, args, lens, res);
}

enum rreply_class idem_store_record(struct idem_store *st, const struct idem_ref *ref,
                                    struct idem_result *res)
{
    /* Read-only: nothing for a replica to acknowledge, so no WAIT. */
    return run_one(st, &script_idem_record, 0, ref, 0, NULL, NULL, res);
}
