/* SPDX-License-Identifier: Apache-2.0 */
/* store: sends idemd's Lua scripts on the loop's Redis client — the replicated writes in
 * batches, each followed by one WAIT, on a connection of their own — and turns their
 * replies into struct idem_result (see store.h for the contract, lua-scripts/idem_*.lua
 * for the reply shapes). */
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
    struct rcl_config writes_conf; /* the replicated writes' client: one connection a loop */
    int64_t wait_deadline_ms;      /* a WAIT's own deadline: command timeout + WAIT timeout */
    char wait_n[16], wait_ms[24];  /* WAIT arguments */
};

/* One store call in flight: its script's reply, and the WAIT's when there is one. */
struct idem_call {
    struct idem_call *next; /* in its loop's held or sent batch */
    struct rclient *rcl;
    idem_store_done_fn done;
    void *arg;
    redisReply *reply;     /* the script's (kept with rcl_steal), or NULL */
    enum rreply_class cls; /* of the script's outcome, then of the WAIT's */
    int pending;           /* replies still to come: 1, or 2 with a WAIT */
    int waited;            /* a WAIT follows the script */
    long long acked;       /* the WAIT's count */
    /* a held write: its script and a copy of its arguments, sent with the next batch */
    const struct script *script;
    int argc;
    const char *argv[IDEM_STORE_MAX_ARGS];
    size_t argvlen[IDEM_STORE_MAX_ARGS];
};

/* The replicated writes of one loop. WAIT blocks the connection it runs on until the
 * replicas acknowledge (up to IDEM_WAIT_TIMEOUT), and every command pipelined behind it on
 * that connection waits as long: so these writes have a connection of their own, and
 * while one batch's WAIT is out the writes that come are held, then sent together behind
 * one WAIT that covers them all (group commit). One connection also makes sure a WAIT
 * follows the scripts it answers for on the connection that ran them. */
struct idem_store_loop {
    struct idem_store *st;
    struct loop *loop;
    struct rclient *writes;             /* NULL without IDEM_WAIT_REPLICAS */
    struct idem_call *held, *held_tail; /* to send with the next batch */
    struct idem_call *sent;             /* the batch whose WAIT is out */
    int wait_out;
    struct loop_task send_task;
};

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

struct idem_store *idem_store_create(const struct idem_config *conf, const struct rcl_config *rc)
{
    struct idem_store *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->conf = conf;
    st->writes_conf = *rc;
    st->writes_conf.pool_size = rc->loops > 0 ? rc->loops : 1; /* one each */
    st->writes_conf.min_idle = st->writes_conf.pool_size;      /* kept open */
    st->wait_deadline_ms = rc->command_timeout_ms + conf->wait_timeout_ms;
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
    if (r->type == REDIS_REPLY_ERROR) {
        /* OOM under noeviction, NOPERM, a script killed: Redis cannot serve the call (503);
         * anything else is a bug (500), as in every daemon (redis_reply.h). */
        log_error(NULL, "redis refused an idemd script", LF_S("error", r->str));
        return rreply_classify(RCL_REPLY_ERROR, r);
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

/* Both replies are in (or the only one): parse the script's, tell the caller, free. */
static void call_finish(struct idem_call *k)
{
    struct idem_result res;
    enum rreply_class cls = k->cls;
    memset(&res, 0, sizeof(res));
    if (cls == RREPLY_OK && k->reply)
        cls = parse_reply(k->reply, &res);
    else if (cls == RREPLY_OK)
        cls = RREPLY_INTERNAL;
    if (cls == RREPLY_OK) {
        res.replicas_acked = k->waited ? (int)(k->acked < 0 ? 0 : k->acked) : -1;
        k->done(k->arg, cls, &res);
    } else {
        k->done(k->arg, cls, NULL);
    }
    freeReplyObject(k->reply);
    free(k);
}

static void on_script(void *arg, enum rcl_status st, redisReply *reply)
{
    struct idem_call *k = arg;
    if (st == RCL_OK || (st == RCL_REPLY_ERROR && reply)) {
        k->reply = rcl_steal(k->rcl); /* an error reply too: parse_reply reads and logs it */
        k->cls = k->reply ? RREPLY_OK : RREPLY_INTERNAL;
    } else {
        k->cls = rreply_classify(st, NULL);
    }
    if (--k->pending == 0)
        call_finish(k);
}

/* The WAIT's reply, for every call of the batch it covers: the count of replicas that
 * acknowledged, whatever it is (fewer than asked is the same answer). A WAIT that got no
 * reply at all fails its calls as Redis being unavailable, as a script without a reply
 * would. Then the writes held meanwhile go. */
static void send_batch(struct idem_store_loop *sl);

static void on_wait(void *arg, enum rcl_status st, redisReply *reply)
{
    struct idem_store_loop *sl = arg;
    struct idem_call *k = sl->sent, *next;
    sl->sent = NULL;
    sl->wait_out = 0;
    for (; k; k = next) {
        next = k->next;
        if (st == RCL_OK && reply && reply->type == REDIS_REPLY_INTEGER)
            k->acked = reply->integer;
        else if (st != RCL_OK && st != RCL_REPLY_ERROR && k->cls == RREPLY_OK)
            k->cls = rreply_classify(st, NULL);
        if (--k->pending == 0)
            call_finish(k);
    }
    if (sl->held)
        loop_defer(sl->loop, &sl->send_task);
}

/* Send the held writes, then one WAIT behind them. A script that cannot be sent (out of
 * memory) fails its call as unavailable; a WAIT that cannot, leaves its calls acked 0. */
static void send_batch(struct idem_store_loop *sl)
{
    struct idem_store *st = sl->st;
    struct idem_call *k = sl->held, *next, *sent = NULL, **tail = &sent;
    if (sl->wait_out || !k)
        return;
    sl->held = sl->held_tail = NULL;
    for (; k; k = next) {
        next = k->next;
        k->next = NULL;
        if (rcl_eval(sl->writes, k->script, 1, k->argc, k->argv, k->argvlen, 0, on_script, k) ==
            0) {
            *tail = k;
            tail = &k->next;
            continue;
        }
        k->cls = RREPLY_UNAVAILABLE;
        k->pending = 0;
        call_finish(k);
    }
    if (!sent)
        return;
    const char *wargv[] = {"WAIT", st->wait_n, st->wait_ms};
    if (rcl_command(sl->writes, 3, wargv, NULL, st->wait_deadline_ms, on_wait, sl) == 0) {
        sl->sent = sent;
        sl->wait_out = 1;
        return;
    }
    for (k = sent; k; k = next) { /* their scripts' replies finish them */
        next = k->next;
        k->next = NULL;
        k->pending--;
    }
}

static void on_send_task(struct loop_task *t)
{
    send_batch(t->arg);
}

/* Send script s on its key and arguments. A write under IDEM_WAIT_REPLICAS is copied and
 * held for the loop's next batch, sent at the end of this turn (or when the WAIT that is
 * out returns). */
static int run(struct idem_store_loop *sl, struct rclient *c, const struct script *s, int writes,
               int argc, const char **argv, const size_t *lens, idem_store_done_fn done, void *arg)
{
    int replicated = writes && sl->writes;
    size_t bytes = 0;
    for (int i = 0; replicated && i < argc; i++)
        bytes += lens[i] + 1;
    struct idem_call *k = calloc(1, sizeof(*k) + bytes);
    if (!k)
        return -1;
    k->rcl = replicated ? sl->writes : c;
    k->done = done;
    k->arg = arg;
    k->pending = 1;
    k->acked = -1;
    if (!replicated) {
        if (rcl_eval(c, s, 1, argc, argv, lens, 0, on_script, k) != 0) {
            free(k);
            return -1;
        }
        return 0;
    }
    char *copy = (char *)(k + 1);
    k->script = s;
    k->argc = argc;
    for (int i = 0; i < argc; i++) {
        memcpy(copy, argv[i], lens[i]);
        copy[lens[i]] = '\0';
        k->argv[i] = copy;
        k->argvlen[i] = lens[i];
        copy += lens[i] + 1;
    }
    k->waited = 1;
    k->pending = 2;
    if (sl->held_tail)
        sl->held_tail->next = k;
    else
        sl->held = k;
    sl->held_tail = k;
    if (!sl->wait_out)
        loop_defer(sl->loop, &sl->send_task);
    return 0;
}

struct idem_store_loop *idem_store_loop_create(struct idem_store *st, struct loop *l)
{
    char err[160];
    struct idem_store_loop *sl = calloc(1, sizeof(*sl));
    if (!sl)
        return NULL;
    sl->st = st;
    sl->loop = l;
    sl->send_task = (struct loop_task){.fn = on_send_task, .arg = sl};
    if (st->conf->wait_replicas > 0)
        sl->writes = rcl_create(l, &st->writes_conf, err, sizeof(err));
    if (st->conf->wait_replicas > 0 && !sl->writes) {
        log_critical(NULL, "cannot create the replicated writes' Redis client", LF_S("error", err));
        free(sl);
        return NULL;
    }
    return sl;
}

void idem_store_loop_free(struct idem_store_loop *sl)
{
    if (!sl)
        return;
    loop_cancel(sl->loop, &sl->send_task);
    rcl_free(sl->writes); /* fails what is out: their callbacks still see sl */
    struct idem_call *k = sl->held, *next;
    for (; k; k = next) { /* never sent: their requests are gone with the loop */
        next = k->next;
        free(k);
    }
    free(sl);
}

/* One script on one record: the key, then nargs arguments. */
static int run_one(struct idem_store_loop *sl, struct rclient *c, const struct script *s,
                   int writes, const struct idem_ref *ref, int nargs, const char **args,
                   const size_t *lens, idem_store_done_fn done, void *arg)
{
    const char *argv[IDEM_STORE_MAX_ARGS];
    size_t argvlen[IDEM_STORE_MAX_ARGS];
    argv[0] = ref->rkey;
    argvlen[0] = strlen(ref->rkey);
    for (int i = 0; i < nargs; i++) {
        argv[i + 1] = args[i];
        argvlen[i + 1] = lens ? lens[i] : strlen(args[i]);
    }
    return run(sl, c, s, writes, nargs + 1, argv, argvlen, done, arg);
}

int idem_store_claim(struct idem_store_loop *sl, struct rclient *c, const struct idem_claim_in *in,
                     const char *token, idem_store_done_fn done, void *arg)
{
    char lease[24], ttl[24];
    snprintf(lease, sizeof(lease), "%lld", (long long)in->lease_ms);
    const struct idem_config *conf = sl->st->conf;
    snprintf(ttl, sizeof(ttl), "%lld", (long long)conf->ttl_ms);
    const char *args[] = {in->fingerprint, token, lease, ttl, conf->takeover ? "takeover" : "block",
                          in->attempt_id};
    return run_one(sl, c, &script_idem_claim, 1, &in->ref, 6, args, NULL, done, arg);
}

int idem_store_complete(struct idem_store_loop *sl, struct rclient *c,
                        const struct idem_lease_in *in, idem_store_done_fn done, void *arg)
{
    char status[8];
    snprintf(status, sizeof(status), "%d", in->status);
    const char *args[] = {in->lease_token, status, in->headers_json, in->body, in->body_encoding};
    size_t lens[] = {in->lease_token_len, strlen(status), strlen(in->headers_json), in->body_len,
                     strlen(in->body_encoding)};
    return run_one(sl, c, &script_idem_complete, 1, &in->ref, 5, args, lens, done, arg);
}

int idem_store_release(struct idem_store_loop *sl, struct rclient *c,
                       const struct idem_lease_in *in, idem_store_done_fn done, void *arg)
{
    const char *args[] = {in->lease_token};
    size_t lens[] = {in->lease_token_len};
    return run_one(sl, c, &script_idem_release, 1, &in->ref, 1, args, lens, done, arg);
}

int idem_store_extend(struct idem_store_loop *sl, struct rclient *c, const struct idem_lease_in *in,
                      idem_store_done_fn done, void *arg)
{
    char lease[24];
    snprintf(lease, sizeof(lease), "%lld", (long long)in->lease_ms);
    const char *args[] = {in->lease_token, lease};
    size_t lens[] = {in->lease_token_len, strlen(lease)};
    return run_one(sl, c, &script_idem_extend, 1, &in->ref, 2, args, lens, done, arg);
}

int idem_store_checkpoint(struct idem_store_loop *sl, struct rclient *c,
                          const struct idem_lease_in *in, idem_store_done_fn done, void *arg)
{
    const char *args[] = {in->lease_token, in->checkpoint};
    size_t lens[] = {in->lease_token_len, in->checkpoint_len};
    return run_one(sl, c, &script_idem_checkpoint, 1, &in->ref, 2, args, lens, done, arg);
}

int idem_store_record(struct idem_store_loop *sl, struct rclient *c, const struct idem_ref *ref,
                      idem_store_done_fn done, void *arg)
{
    return run_one(sl, c, &script_idem_record, 0, ref, 0, NULL, NULL, done, arg);
}
