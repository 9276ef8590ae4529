/* SPDX-License-Identifier: Apache-2.0 */
/* chaos workload for auditd: every thread appends events (one in ten requests a batch of
 * four), each with its own event_id, and retries a 503 or a lost answer with the same body
 * for up to 10 s, as the API page tells callers to. Invariants after the run:
 *   - audit-verify, run against the cell's Redis with the daemon's keyring, says OK;
 *   - every acknowledged (201 or 200) entry's seq, hash and event_id are in the chain;
 *   - no event_id is in the chain twice (a retry never appends again). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos.h"

#define AU_KEY_ENV "AUDIT_PRIVATE_KEY_V1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define AU_LOG_KEY "audit:{default}:log"
#define AU_HEAD_KEY "audit:{default}:head"
#define AU_BATCH 4
#define AU_THREADS_MAX 256

struct au_ack {
    long long seq;
    char hash[65];
    char event_id[40];
};

struct au_state {
    struct ch_vec acks;
    long next[AU_THREADS_MAX]; /* each thread's event counter */
};

static int au_setup(struct ch_cell *c, const char **env)
{
    struct au_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    c->state = s;
    ch_vec_init(&s->acks, sizeof(struct au_ack));
    env[0] = AU_KEY_ENV;
    env[1] = "LOG_LEVEL=warn";
    return 0;
}

/* Append one entry of an answer (the 201/200 body, or one of its "entries") to the acks. */
static void keep_ack(struct au_state *s, json_t *entry, const char *event_id)
{
    struct au_ack a = {.seq = json_integer_value(json_object_get(entry, "seq"))};
    const char *hash = json_string_value(json_object_get(entry, "hash"));
    snprintf(a.hash, sizeof(a.hash), "%s", hash ? hash : "");
    snprintf(a.event_id, sizeof(a.event_id), "%s", event_id);
    ch_vec_push(&s->acks, &a);
}

/* One event's JSON, with event id "t<thread>-<n>". */
static int event_json(char *out, size_t size, int thread, long n)
{
    return snprintf(out, size,
                    "{\"actor\":\"user:%d\",\"action\":\"chaos.write\",\"resource\":\"doc:%ld\","
                    "\"outcome\":\"success\",\"event_id\":\"t%d-%ld\",\"metadata\":{\"n\":%ld}}",
                    thread, n, thread, n, n);
}

/* The request body: one event, or {"events":[...]} of count events from first on. */
static void build_body(char *body, size_t size, int thread, long first, int count)
{
    size_t at = 0;
    if (count > 1)
        at += (size_t)snprintf(body, size, "{\"events\":[");
    for (int i = 0; i < count && at + 1 < size; i++) {
        if (i)
            body[at++] = ',';
        at += (size_t)event_json(body + at, size - at, thread, first + i);
    }
    if (count > 1 && at < size)
        snprintf(body + at, size - at, "]}");
}

static void au_step(struct ch_cell *c, unsigned *seed, int thread)
{
    struct au_state *s = c->state;
    int batch = rand_r(seed) % 10 == 0, count = batch ? AU_BATCH : 1;
    long first = s->next[thread % AU_THREADS_MAX];
    char body[1024];
    s->next[thread % AU_THREADS_MAX] += count;
    build_body(body, sizeof(body), thread, first, count);
    static const int normal[] = {200, 201, 0};
    struct ch_call call;
    int st =
        ch_post_retrying(c, batch ? "/v1/events/batch" : "/v1/events", body, normal, &call, NULL);
    json_t *entries = json_object_get(call.json, "entries");
    for (int i = 0; (st == 200 || st == 201) && i < count; i++) {
        char id[40];
        snprintf(id, sizeof(id), "t%d-%ld", thread, first + i);
        keep_ack(s, batch ? json_array_get(entries, (size_t)i) : call.json, id);
    }
    ch_call_free(&call);
}

/* ---- the checks ------------------------------------------------------------------------ */

/* The chain as read back from Redis: hash and event id by seq (index 0 unused). */
struct au_chain {
    long long n;
    char (*hash)[65];
    char (*event_id)[40];
};

/* Read one stream entry ("<seq>-0", [body, b, hash, h, sig, s]) into the chain. */
static void read_entry(struct au_chain *ch, redisReply *e)
{
    long long seq = strtoll(e->element[0]->str, NULL, 10);
    redisReply *f = e->element[1];
    if (seq < 1 || seq > ch->n)
        return;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const char *name = f->element[i]->str, *value = f->element[i + 1]->str;
        if (strcmp(name, "hash") == 0)
            snprintf(ch->hash[seq], sizeof(ch->hash[seq]), "%s", value);
        if (strcmp(name, "body") != 0)
            continue;
        json_t *body = json_loads(value, 0, NULL);
        const char *id =
            json_string_value(json_object_get(json_object_get(body, "event"), "event_id"));
        snprintf(ch->event_id[seq], sizeof(ch->event_id[seq]), "%s", id ? id : "");
        json_decref(body);
    }
}

static int read_chain(struct ch_cell *c, struct au_chain *ch)
{
    char from[32] = "-";
    /* Sized by the head, so an entry missing from the log still has its slot. */
    ch->n = th_redis_int(&c->redis, "HGET %s seq", AU_HEAD_KEY);
    if (ch->n < 0)
        return -1;
    ch->hash = calloc((size_t)ch->n + 1, sizeof(*ch->hash));
    ch->event_id = calloc((size_t)ch->n + 1, sizeof(*ch->event_id));
    if (!ch->hash || !ch->event_id)
        return -1;
    for (;;) {
        redisReply *r =
            th_redis_cmd_ms(&c->redis, 5000, "XRANGE %s %s + COUNT 1000", AU_LOG_KEY, from);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return -1;
        }
        for (size_t i = 0; i < r->elements; i++)
            read_entry(ch, r->element[i]);
        size_t got = r->elements;
        if (got)
            snprintf(from, sizeof(from), "(%s", r->element[got - 1]->element[0]->str);
        freeReplyObject(r);
        if (got < 1000)
            return 0;
    }
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Event ids found more than once in the chain. */
static long duplicate_ids(const struct au_chain *ch)
{
    char(*ids)[40] = malloc(((size_t)ch->n + 1) * sizeof(*ids));
    long n = 0, dup = 0;
    if (!ids)
        return -1;
    for (long long seq = 1; seq <= ch->n; seq++)
        if (ch->event_id[seq][0])
            memcpy(ids[n++], ch->event_id[seq], sizeof(ids[0]));
    qsort(ids, (size_t)n, sizeof(ids[0]), cmp_id);
    for (long i = 1; i < n; i++)
        dup += strcmp(ids[i], ids[i - 1]) == 0;
    free(ids);
    return dup;
}

/* Acknowledged entries whose seq, hash or event id the chain does not hold. */
static long missing_acks(const struct au_state *s, const struct au_chain *ch)
{
    const struct au_ack *a = s->acks.items;
    long missing = 0;
    for (size_t i = 0; i < s->acks.n; i++) {
        long long seq = a[i].seq;
        if (seq < 1 || seq > ch->n || strcmp(ch->hash[seq], a[i].hash) != 0 ||
            strcmp(ch->event_id[seq], a[i].event_id) != 0) {
            if (missing++ < 5)
                fprintf(stderr, "chaos: auditd acknowledged seq %lld (%s) not in the chain\n", seq,
                        a[i].event_id);
        }
    }
    return missing;
}

/* audit-verify with the daemon's keyring; its summary line into line. Returns its exit
 * status, or -1. */
static int run_verify(struct ch_cell *c, char *line, size_t size)
{
    char keys[300], url[160];
    struct ch_call call;
    char *out = NULL;
    snprintf(keys, sizeof(keys), "%s/keys.json", c->dir);
    snprintf(url, sizeof(url), "REDIS_URL=%s", c->redis.url);
    int st = ch_request(c, "/v1/keys", NULL, &call);
    char *text = st == 200 ? json_dumps(call.json, 0) : NULL;
    ch_call_free(&call);
    if (!text || th_write_file(keys, text) != 0) {
        free(text);
        return -1;
    }
    free(text);
    const char *argv[] = {"audit-verify", "--keys", keys, "--threads", "2", NULL};
    const char *env[] = {url, NULL};
    int rc = th_run(th_bin("bin/audit-verify"), argv, env, &out, NULL, 120000);
    snprintf(line, size, "%s", out ? out : "");
    line[strcspn(line, "\n")] = '\0';
    free(out);
    return rc;
}

static int au_check(struct ch_cell *c, char *verdict, size_t size)
{
    struct au_state *s = c->state;
    struct au_chain ch = {0};
    char line[200];
    int verify = run_verify(c, line, sizeof(line));
    int rc = read_chain(c, &ch);
    long missing = rc == 0 ? missing_acks(s, &ch) : -1;
    long dup = rc == 0 ? duplicate_ids(&ch) : -1;
    if (verify < 0 || rc != 0 || dup < 0) {
        snprintf(verdict, size, "NOT CHECKED: audit-verify %d, chain read %d", verify, rc);
        rc = -1;
    } else {
        rc = verify != 0 || missing != 0 || dup != 0;
        snprintf(verdict, size,
                 "%s: audit-verify exit %d (%s); %zu acknowledged entries, %ld not in the "
                 "chain; %ld event ids appended twice",
                 rc ? "BREACH" : "hold", verify, line, s->acks.n, missing, dup);
    }
    free(ch.hash);
    free(ch.event_id);
    return rc;
}

static void au_finish(struct ch_cell *c)
{
    struct au_state *s = c->state;
    if (!s)
        return;
    ch_vec_free(&s->acks);
    free(s);
    c->state = NULL;
}

const struct ch_workload ch_wl_auditd = {
    .name = "auditd",
    .bin = "bin/auditd",
    .setup = au_setup,
    .step = au_step,
    .monitor = NULL,
    .check = au_check,
    .finish = au_finish,
};
