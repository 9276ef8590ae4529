/* SPDX-License-Identifier: Apache-2.0 */
/* chaos workload for idemd: threads claim keys out of a small shared set (so they meet on
 * the same key), do a few ms of "work", then complete (80%), release (15%) or abandon (5%,
 * the lease then runs out and the next claimer takes over). A 503 or a lost answer is
 * retried with the same attempt_id (claim) or the same body (complete, release) for up to
 * 10 s. A completed or replayed key is retired: its slot moves on to a new key.
 *
 * Invariant: no key was claimed twice while a lease was valid. A claim answered 201 at
 * client times [sent, got] with lease_expires_in_ms L was granted at some Redis instant in
 * [sent, got] and lasts until at least sent + L (less 1 ms: Redis keeps lease times in
 * whole ms, and 500 ppm of L for the two clocks), unless its holder ended it, which cannot
 * have happened before the holder sent its complete/release. So it was certainly valid
 * over [got, min(sent + L, end sent)]. Another claim of the same key with another lease
 * token, sent and answered entirely inside that span, took a valid lease: a breach.
 * Claims after a release or complete, or after the lease ran out (takeover), fall outside
 * the span and are legitimate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos.h"

#define ID_SLOTS 256
#define ID_LEASE_MS 2000
#define ID_NO_END INT64_MAX

struct id_claim {
    int slot, gen;
    int recovered;
    int64_t sent_us, got_us, until_us, end_sent_us;
    char token[64];
};

struct id_state {
    atomic_int gen[ID_SLOTS];
    atomic_long attempts;
    struct ch_vec claims;
};

static int id_setup(struct ch_cell *c, const char **env)
{
    struct id_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    c->state = s;
    ch_vec_init(&s->claims, sizeof(struct id_claim));
    env[0] = "LOG_LEVEL=warn";
    return 0;
}

/* Complete, release or abandon a claimed key; the end's first send time goes into cl. */
static void finish_claim(struct ch_cell *c, unsigned *seed, struct id_claim *cl, const char *key)
{
    static const int normal[] = {200, 404, 409, 0};
    struct id_state *s = c->state;
    struct ch_call call;
    char body[512];
    int r = (int)(rand_r(seed) % 100), complete = r < 80;
    ch_sleep_ms((int)(rand_r(seed) % 10));
    cl->end_sent_us = ID_NO_END;
    if (r >= 95)
        return; /* abandoned: the lease runs out */
    snprintf(body, sizeof(body), "{\"scope\":\"chaos\",\"key\":\"%s\",\"lease_token\":\"%s\"%s}",
             key, cl->token, complete ? ",\"status\":201,\"body\":\"done\"" : "");
    int st = ch_post_retrying(c, complete ? "/v1/complete" : "/v1/release", body, normal, &call,
                              &cl->end_sent_us);
    if (st == 200 && complete) {
        int gen = cl->gen;
        atomic_compare_exchange_strong(&s->gen[cl->slot], &gen, gen + 1);
    }
    ch_call_free(&call);
}

static void id_step(struct ch_cell *c, unsigned *seed, int thread)
{
    static const int normal[] = {200, 201, 409, 0};
    struct id_state *s = c->state;
    struct id_claim cl = {.slot = (int)(rand_r(seed) % ID_SLOTS)};
    struct ch_call call;
    char key[48], body[512];
    cl.gen = atomic_load(&s->gen[cl.slot]);
    snprintf(key, sizeof(key), "s%d-g%d", cl.slot, cl.gen);
    snprintf(body, sizeof(body),
             "{\"scope\":\"chaos\",\"key\":\"%s\",\"fingerprint\":\"f\",\"lease_ms\":%d,"
             "\"attempt_id\":\"t%d-%ld\"}",
             key, ID_LEASE_MS, thread, atomic_fetch_add(&s->attempts, 1));
    int st = ch_post_retrying(c, "/v1/claim", body, normal, &call, NULL);
    if (st == 200) { /* replay: the key is done, move the slot on */
        int gen = cl.gen;
        atomic_compare_exchange_strong(&s->gen[cl.slot], &gen, gen + 1);
    }
    if (st != 201) {
        ch_call_free(&call);
        return;
    }
    cl.sent_us = call.sent_us;
    cl.got_us = call.done_us;
    /* Redis keeps lease times in whole ms (up to 1 ms early), and its clock may run up to
     * 500 ppm off this one. */
    int64_t lease_us = ch_jint(&call, "lease_expires_in_ms") * 1000;
    cl.until_us = call.sent_us + lease_us - 1000 - lease_us / 2000;
    cl.recovered = json_is_true(json_object_get(call.json, "recovered"));
    snprintf(cl.token, sizeof(cl.token), "%s", ch_jstr(&call, "lease_token"));
    ch_call_free(&call);
    finish_claim(c, seed, &cl, key);
    ch_vec_push(&s->claims, &cl);
}

/* ---- the check ------------------------------------------------------------------------- */

static int by_key(const void *a, const void *b)
{
    const struct id_claim *x = a, *y = b;
    if (x->slot != y->slot)
        return x->slot - y->slot;
    if (x->gen != y->gen)
        return x->gen - y->gen;
    return (x->sent_us > y->sent_us) - (x->sent_us < y->sent_us);
}

/* Did b take the key while a's lease was certainly valid? */
static int overlaps(const struct id_claim *a, const struct id_claim *b)
{
    int64_t valid_to = a->until_us < a->end_sent_us ? a->until_us : a->end_sent_us;
    return strcmp(a->token, b->token) != 0 && b->sent_us >= a->got_us && b->got_us <= valid_to;
}

static void report(const struct id_claim *a, const struct id_claim *b, int64_t origin_us)
{
    const struct id_claim *x[2] = {a, b};
    fprintf(stderr,
            "chaos: idemd key s%d-g%d claimed twice while a lease was valid "
            "(client times in us from the fault's start):\n",
            a->slot, a->gen);
    for (int i = 0; i < 2; i++)
        fprintf(stderr, "  sent %lld got %lld valid until >= %lld end sent %lld%s\n",
                (long long)(x[i]->sent_us - origin_us), (long long)(x[i]->got_us - origin_us),
                (long long)(x[i]->until_us - origin_us),
                x[i]->end_sent_us == ID_NO_END ? -1LL : (long long)(x[i]->end_sent_us - origin_us),
                x[i]->recovered ? " (recovered)" : "");
}

static long double_claims(struct id_claim *cl, size_t n, int64_t origin_us)
{
    long bad = 0;
    qsort(cl, n, sizeof(*cl), by_key);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n && cl[j].slot == cl[i].slot && cl[j].gen == cl[i].gen; j++) {
            if (!overlaps(&cl[i], &cl[j]) && !overlaps(&cl[j], &cl[i]))
                continue;
            if (bad++ < 5)
                report(&cl[i], &cl[j], origin_us);
        }
    }
    return bad;
}

static int id_check(struct ch_cell *c, char *verdict, size_t size)
{
    struct id_state *s = c->state;
    long recovered = 0;
    for (size_t i = 0; i < s->claims.n; i++)
        recovered += ((struct id_claim *)s->claims.items)[i].recovered;
    long bad = double_claims(s->claims.items, s->claims.n, c->fault_start_us);
    snprintf(verdict, size,
             "%s: %zu claims (%ld took over an expired lease), %ld taken while another lease "
             "was valid",
             bad ? "BREACH" : "hold", s->claims.n, recovered, bad);
    return bad != 0;
}

static void id_finish(struct ch_cell *c)
{
    struct id_state *s = c->state;
    if (!s)
        return;
    ch_vec_free(&s->claims);
    free(s);
    c->state = NULL;
}

const struct ch_workload ch_wl_idemd = {
    .name = "idemd",
    .bin = "bin/idemd",
    .setup = id_setup,
    .step = id_step,
    .monitor = NULL,
    .check = id_check,
    .finish = id_finish,
};
