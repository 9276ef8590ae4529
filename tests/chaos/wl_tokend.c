/* SPDX-License-Identifier: Apache-2.0 */
/* chaos workload for tokend: a set of sessions shared by all threads (so two threads often
 * refresh one token at once, like two browser tabs). A thread picks a session and logs in
 * (no live family), refreshes its token (80%), revokes its family (6%), plays a thief
 * replaying one of its tokens rotated out more than the grace window ago (6%: reuse
 * detection revokes the family), or introspects (8%). A 503 or a lost answer is retried
 * with the same request for up to 10 s. TOKEN_REUSE_GRACE is 5 s, longer than any outage
 * the faults cause, so a retried refresh lands in the grace window and gets the same
 * successor; a retry later than that would be answered token_reused (the family revoked),
 * which the invariants below accept as a revocation.
 *
 * Invariants after the run:
 *   - no token rotated twice: every 200 to a refresh presenting token T names the same
 *     successor;
 *   - no revoked family refreshed: no 200 to a refresh sent after the family's revocation
 *     was acknowledged (a 200 to a revoke, or a 401 token_reused answer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos.h"

#define TK_KEY_ENV "TOKEN_HASH_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define TK_GRACE_MS 5000
#define TK_SESSIONS 32
#define TK_HISTORY 8
#define TK_LEN 128
#define TK_UA                                                                                      \
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "     \
    "Safari/537.36"

struct tk_session {
    pthread_mutex_t mu;
    int alive, logging_in;
    char current[TK_LEN];
    char old[TK_HISTORY][TK_LEN]; /* tokens it rotated out, and when (client time) */
    int64_t old_at_us[TK_HISTORY];
    int nold;
};

struct tk_refresh {
    char presented[TK_LEN], successor[TK_LEN];
    int64_t sent_us;
    int grace;
};

struct tk_revoke {
    char family[40];
    int64_t acked_us;
    int by_reuse;
};

struct tk_state {
    struct tk_session sess[TK_SESSIONS];
    struct ch_vec refreshes, revokes;
};

static int tk_setup(struct ch_cell *c, const char **env)
{
    struct tk_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    c->state = s;
    for (int i = 0; i < TK_SESSIONS; i++)
        pthread_mutex_init(&s->sess[i].mu, NULL);
    ch_vec_init(&s->refreshes, sizeof(struct tk_refresh));
    ch_vec_init(&s->revokes, sizeof(struct tk_revoke));
    env[0] = TK_KEY_ENV;
    env[1] = "TOKEN_REUSE_GRACE=5s";
    env[2] = "LOG_LEVEL=warn";
    return 0;
}

/* The family id of a token "rt1.<family>.<secret>" into out ("" if malformed). */
static const char *family_of(const char *token, char *out, size_t size)
{
    const char *dot = strncmp(token, "rt1.", 4) == 0 ? strchr(token + 4, '.') : NULL;
    size_t n = dot ? (size_t)(dot - token - 4) : 0;
    snprintf(out, size, "%.*s", (int)(n < size ? n : 0), token + 4);
    return out;
}

static void keep_revoke(struct tk_state *s, const char *family, int64_t acked_us, int by_reuse)
{
    struct tk_revoke r = {.acked_us = acked_us, .by_reuse = by_reuse};
    snprintf(r.family, sizeof(r.family), "%s", family);
    ch_vec_push(&s->revokes, &r);
}

static void login(struct ch_cell *c, int i)
{
    static const int normal[] = {201, 0};
    struct tk_session *se = &((struct tk_state *)c->state)->sess[i];
    struct ch_call call;
    char body[512];
    snprintf(
        body, sizeof(body),
        "{\"user_id\":\"u%d\",\"client_id\":\"web\",\"device_id\":\"d%d\",\"user_agent\":\"%s\"}",
        i, i, TK_UA);
    int st = ch_post_retrying(c, "/v1/tokens", body, normal, &call, NULL);
    pthread_mutex_lock(&se->mu);
    if (st == 201) {
        snprintf(se->current, sizeof(se->current), "%s", ch_jstr(&call, "refresh_token"));
        se->alive = 1;
        se->nold = 0;
    }
    se->logging_in = 0;
    pthread_mutex_unlock(&se->mu);
    ch_call_free(&call);
}

/* Present token for a refresh; on 200 the session moves on to the successor (if token is
 * still its current one); a 401 ends the session's family. */
static void refresh(struct ch_cell *c, int i, const char *token)
{
    static const int normal[] = {200, 401, 0};
    struct tk_state *s = c->state;
    struct tk_session *se = &s->sess[i];
    struct ch_call call;
    char body[512], family[40];
    snprintf(body, sizeof(body),
             "{\"refresh_token\":\"%s\",\"device_id\":\"d%d\",\"user_agent\":\"%s\"}", token, i,
             TK_UA);
    int st = ch_post_retrying(c, "/v1/tokens/refresh", body, normal, &call, NULL);
    family_of(token, family, sizeof(family));
    if (st == 200) {
        struct tk_refresh r = {.sent_us = call.sent_us,
                               .grace = json_is_true(json_object_get(call.json, "grace"))};
        snprintf(r.presented, sizeof(r.presented), "%s", token);
        snprintf(r.successor, sizeof(r.successor), "%s", ch_jstr(&call, "refresh_token"));
        ch_vec_push(&s->refreshes, &r);
    } else if (st == 401 && strcmp(call.code, "token_reused") == 0) {
        keep_revoke(s, family, call.done_us, 1);
    }
    pthread_mutex_lock(&se->mu);
    if (st == 200 && strcmp(se->current, token) == 0) {
        int k = se->nold < TK_HISTORY ? se->nold++ : TK_HISTORY - 1; /* keep the oldest */
        snprintf(se->old[k], sizeof(se->old[k]), "%s", token);
        se->old_at_us[k] = call.done_us;
        snprintf(se->current, sizeof(se->current), "%s", ch_jstr(&call, "refresh_token"));
    } else if (st == 401 && strncmp(se->current, token, 4 + strlen(family)) == 0) {
        se->alive = 0; /* the family is over (revoked, or unknown) */
    }
    pthread_mutex_unlock(&se->mu);
    ch_call_free(&call);
}

static void revoke(struct ch_cell *c, int i, const char *token)
{
    static const int normal[] = {200, 0};
    struct tk_state *s = c->state;
    struct ch_call call;
    char body[128], family[40];
    family_of(token, family, sizeof(family));
    snprintf(body, sizeof(body), "{\"family_id\":\"%s\"}", family);
    if (ch_post_retrying(c, "/v1/tokens/revoke", body, normal, &call, NULL) == 200) {
        keep_revoke(s, family, call.done_us, 0);
        pthread_mutex_lock(&s->sess[i].mu);
        if (strcmp(s->sess[i].current, token) == 0)
            s->sess[i].alive = 0;
        pthread_mutex_unlock(&s->sess[i].mu);
    }
    ch_call_free(&call);
}

/* A token session i rotated out more than the grace window (+ 1 s) ago, into out. */
static int stolen_token(struct tk_session *se, char *out, size_t size)
{
    int64_t before = ch_now_us() - (TK_GRACE_MS + 1000) * 1000LL;
    for (int k = 0; k < se->nold; k++) {
        if (se->old_at_us[k] <= before) {
            snprintf(out, size, "%s", se->old[k]);
            return 0;
        }
    }
    return -1;
}

static void tk_step(struct ch_cell *c, unsigned *seed, int thread)
{
    static const int introspect_normal[] = {200, 0};
    struct tk_state *s = c->state;
    int i = (int)(rand_r(seed) % TK_SESSIONS), r = (int)(rand_r(seed) % 100), alive, busy;
    struct tk_session *se = &s->sess[i];
    char token[TK_LEN], stolen[TK_LEN], body[256];
    (void)thread;
    pthread_mutex_lock(&se->mu);
    alive = se->alive;
    busy = se->logging_in;
    se->logging_in |= !alive;
    snprintf(token, sizeof(token), "%s", se->current);
    int have_stolen = r >= 86 && r < 92 && stolen_token(se, stolen, sizeof(stolen)) == 0;
    pthread_mutex_unlock(&se->mu);
    if (!alive) {
        if (!busy)
            login(c, i);
        return;
    }
    if (r < 80 || (r >= 86 && r < 92 && !have_stolen)) {
        refresh(c, i, token);
    } else if (r < 86) {
        revoke(c, i, token);
    } else if (have_stolen) {
        refresh(c, i, stolen);
    } else {
        struct ch_call call;
        snprintf(body, sizeof(body), "{\"token\":\"%s\"}", token);
        ch_post_retrying(c, "/v1/tokens/introspect", body, introspect_normal, &call, NULL);
        ch_call_free(&call);
    }
}

/* ---- the checks ------------------------------------------------------------------------ */

static int by_presented(const void *a, const void *b)
{
    return strcmp(((const struct tk_refresh *)a)->presented,
                  ((const struct tk_refresh *)b)->presented);
}

static int by_family(const void *a, const void *b)
{
    const struct tk_revoke *x = a, *y = b;
    int d = strcmp(x->family, y->family);
    return d ? d : (x->acked_us > y->acked_us) - (x->acked_us < y->acked_us);
}

/* Tokens that got two different successors. */
static long rotated_twice(struct tk_refresh *r, size_t n)
{
    long bad = 0;
    qsort(r, n, sizeof(*r), by_presented);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(r[i].presented, r[i - 1].presented) != 0 ||
            strcmp(r[i].successor, r[i - 1].successor) == 0)
            continue;
        if (bad++ < 5)
            fprintf(stderr, "chaos: tokend token of family %.22s rotated to two successors\n",
                    r[i].presented + 4);
    }
    return bad;
}

/* 200 refreshes sent after their family's revocation was acknowledged. */
static long refreshed_after_revoke(const struct tk_refresh *r, size_t n, struct tk_revoke *rv,
                                   size_t nrv)
{
    long bad = 0;
    qsort(rv, nrv, sizeof(*rv), by_family);
    for (size_t i = 0; i < n; i++) {
        struct tk_revoke key = {.acked_us = 0};
        family_of(r[i].presented, key.family, sizeof(key.family));
        size_t lo = 0, hi = nrv; /* the first revocation of that family */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (by_family(&rv[mid], &key) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == nrv || strcmp(rv[lo].family, key.family) != 0 || r[i].sent_us <= rv[lo].acked_us)
            continue;
        if (bad++ < 5)
            fprintf(stderr, "chaos: tokend family %s refreshed %lld ms after its revocation\n",
                    key.family, (long long)(r[i].sent_us - rv[lo].acked_us) / 1000);
    }
    return bad;
}

static int tk_check(struct ch_cell *c, char *verdict, size_t size)
{
    struct tk_state *s = c->state;
    long grace = 0, reuse = 0;
    for (size_t i = 0; i < s->refreshes.n; i++)
        grace += ((struct tk_refresh *)s->refreshes.items)[i].grace;
    for (size_t i = 0; i < s->revokes.n; i++)
        reuse += ((struct tk_revoke *)s->revokes.items)[i].by_reuse;
    long twice = rotated_twice(s->refreshes.items, s->refreshes.n);
    long after =
        refreshed_after_revoke(s->refreshes.items, s->refreshes.n, s->revokes.items, s->revokes.n);
    snprintf(verdict, size,
             "%s: %zu refreshes answered 200 (%ld from the grace window), %ld tokens rotated "
             "twice; %zu revocations acknowledged (%ld by reuse detection), %ld refreshes after "
             "one",
             twice || after ? "BREACH" : "hold", s->refreshes.n, grace, twice, s->revokes.n, reuse,
             after);
    return twice || after;
}

static void tk_finish(struct ch_cell *c)
{
    struct tk_state *s = c->state;
    if (!s)
        return;
    for (int i = 0; i < TK_SESSIONS; i++)
        pthread_mutex_destroy(&s->sess[i].mu);
    ch_vec_free(&s->refreshes);
    ch_vec_free(&s->revokes);
    free(s);
    c->state = NULL;
}

const struct ch_workload ch_wl_tokend = {
    .name = "tokend",
    .bin = "bin/tokend",
    .setup = tk_setup,
    .step = tk_step,
    .monitor = NULL,
    .check = tk_check,
    .finish = tk_finish,
};
