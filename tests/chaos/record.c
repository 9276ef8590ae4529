/* SPDX-License-Identifier: Apache-2.0 */
/* chaos: requests to the daemon under test, their record, and the numbers the table shows
 * (failures by kind, longest answers, time to recovery). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chaos.h"

int64_t ch_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void ch_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int ch_request(struct ch_cell *c, const char *path, const char *json, struct ch_call *out)
{
    struct th_resp r;
    int rc;
    memset(out, 0, sizeof(*out));
    out->sent_us = ch_now_us();
    if (json)
        rc = th_post_json(c->daemon.port, path, json, &r);
    else
        rc = th_http(c->daemon.port, "GET", path, NULL, NULL, 0, &r);
    out->done_us = ch_now_us();
    if (rc != 0) {
        out->status = -1;
        return -1;
    }
    out->status = r.status;
    out->json = th_json(&r);
    const char *code = json_string_value(json_object_get(out->json, "code"));
    snprintf(out->code, sizeof(out->code), "%s", code ? code : "");
    th_resp_free(&r);
    return out->status;
}

void ch_call_free(struct ch_call *call)
{
    json_decref(call->json);
    call->json = NULL;
}

long long ch_jint(const struct ch_call *call, const char *name)
{
    return json_integer_value(json_object_get(call->json, name));
}

const char *ch_jstr(const struct ch_call *call, const char *name)
{
    const char *s = json_string_value(json_object_get(call->json, name));
    return s ? s : "";
}

const char *ch_fail_kind(const struct ch_call *call, char *buf, size_t size)
{
    if (call->status < 0)
        snprintf(buf, size, "transport");
    else
        snprintf(buf, size, "%d %s", call->status, call->code[0] ? call->code : "(no code)");
    return buf;
}

int ch_post_retrying(struct ch_cell *c, const char *path, const char *json, const int *normal,
                     struct ch_call *call, int64_t *first_sent)
{
    int64_t deadline = ch_now_us() + CH_RETRY_MS * 1000LL;
    char kind[CH_KIND_LEN];
    for (int attempt = 0;; attempt++) {
        int st = ch_request(c, path, json, call), ok = 0;
        for (int i = 0; normal[i]; i++)
            ok |= st == normal[i];
        ch_record(c, call, ok ? NULL : ch_fail_kind(call, kind, sizeof(kind)));
        if (attempt == 0 && first_sent)
            *first_sent = call->sent_us;
        if ((st != 503 && st >= 0) || ch_now_us() >= deadline)
            return st;
        ch_call_free(call);
        ch_sleep_ms(100);
    }
}

static void count_kind(struct ch_cell *c, const char *kind)
{
    for (int i = 0; i < c->nkinds; i++) {
        if (strcmp(c->kinds[i].name, kind) == 0) {
            c->kinds[i].count++;
            return;
        }
    }
    /* The last slot collects whatever does not fit as "other". */
    int i = c->nkinds < CH_MAX_KINDS ? c->nkinds++ : CH_MAX_KINDS - 1;
    if (c->kinds[i].count == 0)
        snprintf(c->kinds[i].name, sizeof(c->kinds[i].name), "%s",
                 i == CH_MAX_KINDS - 1 ? "other" : kind);
    else if (i == CH_MAX_KINDS - 1)
        snprintf(c->kinds[i].name, sizeof(c->kinds[i].name), "other");
    c->kinds[i].count++;
}

void ch_record(struct ch_cell *c, const struct ch_call *call, const char *kind)
{
    pthread_mutex_lock(&c->mu);
    if (c->nsamples == c->samples_cap) {
        size_t cap = c->samples_cap ? c->samples_cap * 2 : 4096;
        struct ch_sample *s = realloc(c->samples, cap * sizeof(*s));
        if (!s) {
            pthread_mutex_unlock(&c->mu);
            return;
        }
        c->samples = s;
        c->samples_cap = cap;
    }
    c->samples[c->nsamples++] =
        (struct ch_sample){.sent_us = call->sent_us, .done_us = call->done_us, .failed = !!kind};
    if (kind)
        count_kind(c, kind);
    pthread_mutex_unlock(&c->mu);
    if (!kind)
        return;
    long long seen = atomic_load(&c->last_fail_us);
    while (seen < call->done_us &&
           !atomic_compare_exchange_weak(&c->last_fail_us, &seen, (long long)call->done_us))
        ;
}

int64_t ch_healthy_max_us(struct ch_cell *c)
{
    int64_t max = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nsamples; i++) {
        const struct ch_sample *s = &c->samples[i];
        if (s->done_us < c->fault_start_us && s->done_us - s->sent_us > max)
            max = s->done_us - s->sent_us;
    }
    pthread_mutex_unlock(&c->mu);
    return max;
}

/* The kinds, largest first, as "503 backend_unavailable: 12, transport: 1". */
static void format_kinds(struct ch_cell *c, char *out, size_t size)
{
    struct ch_kind sorted[CH_MAX_KINDS];
    size_t at = 0;
    memcpy(sorted, c->kinds, sizeof(sorted));
    for (int i = 1; i < c->nkinds; i++)
        for (int j = i; j > 0 && sorted[j].count > sorted[j - 1].count; j--) {
            struct ch_kind t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    out[0] = '\0';
    for (int i = 0; i < c->nkinds && at < size; i++)
        at += (size_t)snprintf(out + at, size - at, "%s%s: %ld", i ? ", " : "", sorted[i].name,
                               sorted[i].count);
    if (c->nkinds == 0)
        snprintf(out, size, "none");
}

/* Recovery: R is the later of the fault's end and the completion of the last failed request;
 * the time to recovery is R - fault end, provided every request completed in the clean
 * window after R (up to the end of the load) was normal — else the cell did not recover. */
void ch_summarize(struct ch_cell *c, struct ch_summary *out)
{
    int64_t last_fail = c->fault_end_us;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nsamples; i++) {
        const struct ch_sample *s = &c->samples[i];
        int64_t took = s->done_us - s->sent_us;
        out->requests++;
        out->failed += s->failed;
        if (s->done_us < c->fault_start_us && took > out->healthy_max_us)
            out->healthy_max_us = took;
        if (s->done_us >= c->fault_start_us && took > out->fault_max_us)
            out->fault_max_us = took;
        if (s->failed && s->done_us > last_fail)
            last_fail = s->done_us;
    }
    format_kinds(c, out->kinds, sizeof(out->kinds));
    pthread_mutex_unlock(&c->mu);
    out->recovery_us =
        c->end_us - last_fail >= (int64_t)ch_set.clean_ms * 1000 ? last_fail - c->fault_end_us : -1;
}

void ch_vec_init(struct ch_vec *v, size_t item_size)
{
    memset(v, 0, sizeof(*v));
    pthread_mutex_init(&v->mu, NULL);
    v->size = item_size;
}

int ch_vec_push(struct ch_vec *v, const void *item)
{
    int rc = 0;
    pthread_mutex_lock(&v->mu);
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 1024;
        void *items = realloc(v->items, cap * v->size);
        if (items) {
            v->items = items;
            v->cap = cap;
        }
    }
    if (v->n < v->cap)
        memcpy((char *)v->items + v->n++ * v->size, item, v->size);
    else
        rc = -1;
    pthread_mutex_unlock(&v->mu);
    return rc;
}

void ch_vec_free(struct ch_vec *v)
{
    free(v->items);
    pthread_mutex_destroy(&v->mu);
    memset(v, 0, sizeof(*v));
}
