/* SPDX-License-Identifier: Apache-2.0 */
/* chaos: the six faults, each injected into the cell's private Redis from the main thread.
 * Each returns once the fault is over (Redis answers normally again). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "chaos.h"

/* A field of INFO <section> as an integer, -1 if Redis does not answer or lacks it. */
static long long info_field(struct th_redis *r, const char *section, const char *field)
{
    redisReply *reply = th_redis_cmd(r, "INFO %s", section);
    long long v = -1;
    char pat[64];
    snprintf(pat, sizeof(pat), "\r\n%s:", field);
    if (reply && reply->type == REDIS_REPLY_STRING) {
        const char *at = strstr(reply->str, pat);
        if (at)
            v = strtoll(at + strlen(pat), NULL, 10);
    }
    freeReplyObject(reply);
    return v;
}

/* Is reply the status "OK"? Frees it. */
static int reply_ok(redisReply *reply)
{
    int ok = reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0;
    freeReplyObject(reply);
    return ok;
}

static int fault_freeze(struct ch_cell *c, char *note, size_t size)
{
    th_redis_pause(&c->redis);
    ch_sleep_ms(ch_set.freeze_ms);
    th_redis_resume(&c->redis);
    snprintf(note, size, "SIGSTOP, SIGCONT %d ms later", ch_set.freeze_ms);
    return 0;
}

/* kill -9, down for a while, restarted on the same port and dir: it replays its AOF. */
static int fault_kill(struct ch_cell *c, char *note, size_t size)
{
    th_redis_kill(&c->redis);
    ch_sleep_ms(ch_set.down_ms);
    int64_t t0 = ch_now_us();
    if (th_redis_restart(&c->redis) != 0)
        return -1;
    long long keys = th_redis_int(&c->redis, "DBSIZE");
    snprintf(note, size, "down %d ms, restart %lld ms, %lld keys back from the AOF", ch_set.down_ms,
             (long long)(ch_now_us() - t0) / 1000, keys);
    return 0;
}

static int fault_script_flush(struct ch_cell *c, char *note, size_t size)
{
    if (!reply_ok(th_redis_cmd(&c->redis, "SCRIPT FLUSH")))
        return -1;
    snprintf(note, size, "script cache emptied");
    return 0;
}

static int fault_client_kill(struct ch_cell *c, char *note, size_t size)
{
    redisReply *reply = th_redis_cmd(&c->redis, "CLIENT KILL TYPE normal");
    long long killed = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    freeReplyObject(reply);
    if (killed < 0)
        return -1;
    snprintf(note, size, "%lld connections closed", killed);
    return 0;
}

static int fault_debug_sleep(struct ch_cell *c, char *note, size_t size)
{
    if (!reply_ok(th_redis_cmd_ms(&c->redis, ch_set.sleep_ms + 5000, "DEBUG SLEEP %d.%03d",
                                  ch_set.sleep_ms / 1000, ch_set.sleep_ms % 1000)))
        return -1;
    snprintf(note, size, "Redis busy for %d ms", ch_set.sleep_ms);
    return 0;
}

/* ---- maxclients reached ---------------------------------------------------------------- */

static redisContext *named_conn(int port, const char *name)
{
    struct timeval tv = {.tv_sec = 1};
    redisContext *ctx = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (ctx && !ctx->err && redisSetTimeout(ctx, tv) == REDIS_OK &&
        reply_ok(redisCommand(ctx, "CLIENT SETNAME %s", name)))
        return ctx;
    redisFree(ctx);
    return NULL;
}

/* Close every normal connection not named chaos-*: the daemon's, which it must then
 * reopen. Returns how many were closed, -1 if the list could not be read. */
static long kill_unnamed(redisContext *admin)
{
    redisReply *list = redisCommand(admin, "CLIENT LIST TYPE normal");
    long killed = 0;
    if (!list || list->type != REDIS_REPLY_STRING) {
        freeReplyObject(list);
        return -1;
    }
    char *save = NULL;
    for (char *line = strtok_r(list->str, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        const char *name = strstr(line, " name=");
        if (strncmp(line, "id=", 3) != 0 || (name && strncmp(name, " name=chaos-", 12) == 0))
            continue;
        redisReply *r = redisCommand(admin, "CLIENT KILL ID %lld", strtoll(line + 3, NULL, 10));
        killed += r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
    }
    freeReplyObject(list);
    return killed;
}

/* The value of CONFIG GET name as a string (caller frees), or NULL. */
static char *config_get(redisContext *ctx, const char *name)
{
    redisReply *r = redisCommand(ctx, "CONFIG GET %s", name);
    char *v = NULL;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING)
        v = strdup(r->element[1]->str);
    freeReplyObject(r);
    return v;
}

#define CH_FILLERS_MAX 64

/* Idle connections fill every slot but theirs, maxclients is lowered to exactly that, and
 * the daemon's own connections are closed: each one it opens now is refused, until the
 * limit is raised back and the idle connections go. */
static int fault_maxclients(struct ch_cell *c, char *note, size_t size)
{
    redisContext *admin = named_conn(c->redis.port, "chaos-admin");
    redisContext *fill[CH_FILLERS_MAX] = {0};
    int nfill = ch_set.fillers < CH_FILLERS_MAX ? ch_set.fillers : CH_FILLERS_MAX, rc = -1;
    char *saved = admin ? config_get(admin, "maxclients") : NULL;
    long long before = info_field(&c->redis, "stats", "rejected_connections");
    for (int i = 0; saved && i < nfill; i++)
        if (!(fill[i] = named_conn(c->redis.port, "chaos-filler")))
            goto done;
    if (!saved || !reply_ok(redisCommand(admin, "CONFIG SET maxclients %d", nfill + 1)))
        goto done;
    long killed = kill_unnamed(admin);
    ch_sleep_ms(ch_set.maxclients_ms);
    if (!reply_ok(redisCommand(admin, "CONFIG SET maxclients %s", saved)))
        goto done;
    for (int i = 0; i < nfill; i++) {
        redisFree(fill[i]);
        fill[i] = NULL;
    }
    long long refused = info_field(&c->redis, "stats", "rejected_connections") - before;
    snprintf(note, size,
             "%d idle connections, %ld of the daemon's closed, %lld connections refused in %d ms",
             nfill, killed, refused, ch_set.maxclients_ms);
    rc = 0;
done:
    for (int i = 0; i < nfill; i++)
        redisFree(fill[i]);
    redisFree(admin);
    free(saved);
    return rc;
}

const struct ch_fault ch_faults[] = {
    {"freeze", fault_freeze},
    {"kill", fault_kill},
    {"script-flush", fault_script_flush},
    {"client-kill", fault_client_kill},
    {"debug-sleep", fault_debug_sleep},
    {"maxclients", fault_maxclients},
};
const size_t ch_nfaults = sizeof(ch_faults) / sizeof(ch_faults[0]);
