/* SPDX-License-Identifier: Apache-2.0 */
/* metrics: the registry of counter, gauge and histogram families, lock-free series lookup,
 * atomic updates, and rendering in the Prometheus text format 0.0.4. */
#include "shared/metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX_HOOKS 8
#define METRICS_OVERFLOW_VALUE "_overflow"

const double METRICS_LATENCY_BUCKETS[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                          0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                          1,      2.5,     5,      10};
const size_t METRICS_LATENCY_BUCKETS_N =
    sizeof(METRICS_LATENCY_BUCKETS) / sizeof(METRICS_LATENCY_BUCKETS[0]);

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metric_series {
    struct metric *family;
    uint64_t hash;                          /* of the label values, checked before them */
    const char *values[METRICS_MAX_LABELS]; /* copies, stored after buckets[] */
    _Atomic uint64_t value;                 /* counter: count; gauge: the double's bits */
    _Atomic uint64_t sum_bits;              /* histogram: sum of observations (double bits) */
    _Atomic uint64_t buckets[];             /* histogram: per bucket, not cumulative; the
                                               last one counts values above every bound */
};

struct metric {
    struct metric *next;
    enum metric_type type;
    char *name; /* prefixed */
    char *help;
    size_t nlabels;
    char *labels[METRICS_MAX_LABELS];
    size_t nbuckets;
    double bounds[METRICS_MAX_BUCKETS];

    /* series[0..nseries) is published and never changes; a new series is written into
     * series[nseries] under mu, then nseries is bumped with a release store, so a reader
     * that acquires nseries sees every series below it complete. */
    pthread_mutex_t mu;
    _Atomic size_t nseries;
    struct metric_series *series[METRICS_MAX_SERIES];
    struct metric_series *overflow; /* shared by label sets that find no free slot */
    _Atomic int overflow_used;
};

struct metrics_hook {
    void (*fn)(void *arg);
    void *arg;
};

struct metrics {
    char *prefix;
    struct metric *first, *last;
    size_t nhooks;
    struct metrics_hook hooks[METRICS_MAX_HOOKS];
};

/* ---- helpers ---------------------------------------------------------------------- */

/* Out of memory while registering at startup: the daemon cannot run, say so and stop. */
static void oom_abort(void)
{
    fputs("metrics: out of memory while registering metrics\n", stderr);
    abort();
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        oom_abort();
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xcalloc(1, n);
    memcpy(p, s, n);
    return p;
}

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

/* Add d to a double kept as bits in an atomic word. C11 has no atomic double add, so
 * retry a compare-and-swap until no other thread changed the word in between. */
static void atomic_double_add(_Atomic uint64_t *a, double d)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    uint64_t upd;
    do {
        upd = double_bits(bits_double(old) + d);
    } while (!atomic_compare_exchange_weak_explicit(a, &old, upd, memory_order_relaxed,
                                                    memory_order_relaxed));
}

static int is_name_char(char c, int first, int colon_ok)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return 1;
    if (c == ':' && colon_ok)
        return 1;
    return !first && c >= '0' && c <= '9';
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: the same without ':'. */
static int valid_name(const char *s, size_t len, int colon_ok)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_name_char(s[i], i == 0, colon_ok))
            return 0;
    }
    return 1;
}

/* FNV-1a over the values, with a separator so ("ab","c") and ("a","bc") differ. */
static uint64_t labels_hash(const char *const *values, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
            h = (h ^ *p) * 0x100000001b3ULL;
        h = (h ^ 0xff) * 0x100000001b3ULL;
    }
    return h;
}

/* ---- registration ----------------------------------------------------------------- */

struct metrics *metrics_create(const char *prefix)
{
    assert(!prefix || !*prefix || valid_name(prefix, strlen(prefix), 1));
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->prefix = strdup(prefix ? prefix : "");
    if (!m->prefix) {
        free(m);
        return NULL;
    }
    return m;
}

/* A series with its label values copied into the same allocation. NULL if out of memory. */
static struct metric_series *series_new(struct metric *f, const char *const *values, uint64_t hash)
{
    size_t nb = f->type == METRIC_HISTOGRAM ? f->nbuckets + 1 : 0;
    size_t head = sizeof(struct metric_series) + nb * sizeof(_Atomic uint64_t);
    size_t total = head;
    size_t nlabels = f->nlabels;
    size_t lens[METRICS_MAX_LABELS] = {0};

    for (size_t i = 0; i < nlabels; i++) {
        assert(values[i]);
        lens[i] = strlen(values[i]) + 1;
        total += lens[i];
    }
    struct metric_series *s = calloc(1, total);
    if (!s)
        return NULL;
    s->family = f;
    s->hash = hash;
    char *p = (char *)s + head;
    for (size_t i = 0; i < nlabels; i++) {
        memcpy(p, values[i], lens[i]);
        s->values[i] = p;
        p += lens[i];
    }
    atomic_init(&s->value, f->type == METRIC_GAUGE ? double_bits(0.0) : 0);
    atomic_init(&s->sum_bits, double_bits(0.0));
    for (size_t i = 0; i < nb; i++)
        atomic_init(&s->buckets[i], 0);
    return s;
}

/* Split "a,b,c" into the family's label names. */
static void parse_labels(struct metric *f, const char *labels)
{
    const char *p = labels;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        assert(f->nlabels < METRICS_MAX_LABELS);
        assert(valid_name(p, len, 0) && !(len >= 2 && p[0] == '_' && p[1] == '_'));
        assert(!(f->type == METRIC_HISTOGRAM && len == 2 && memcmp(p, "le", 2) == 0));
        char *name = xcalloc(1, len + 1);
        memcpy(name, p, len);
        for (size_t i = 0; i < f->nlabels; i++)
            assert(strcmp(f->labels[i], name) != 0);
        f->labels[f->nlabels++] = name;
        p = comma ? comma + 1 : NULL;
    }
}

static struct metric *family_new(struct metrics *m, enum metric_type type, const char *name,
                                 const char *help, const char *labels)
{
    assert(m && name && help);
    assert(valid_name(name, strlen(name), 1));
    size_t plen = strlen(m->prefix);
    size_t len = plen + (plen ? 1 : 0) + strlen(name) + 1;

    struct metric *f = xcalloc(1, sizeof(*f));
    f->type = type;
    f->name = xcalloc(1, len);
    snprintf(f->name, len, "%s%s%s", m->prefix, plen ? "_" : "", name);
    for (struct metric *o = m->first; o; o = o->next)
        assert(strcmp(o->name, f->name) != 0);
    f->help = xstrdup(help);
    parse_labels(f, labels);
    pthread_mutex_init(&f->mu, NULL);
    atomic_init(&f->nseries, 0);
    atomic_init(&f->overflow_used, 0);
    return f;
}

/* Create the overflow series (and, without labels, the one series, so it renders as 0
 * from the start) and append the family to the registry. */
static struct metric *family_add(struct metrics *m, struct metric *f)
{
    const char *ovf[METRICS_MAX_LABELS];
    for (size_t i = 0; i < METRICS_MAX_LABELS; i++)
        ovf[i] = METRICS_OVERFLOW_VALUE;
    f->overflow = series_new(f, ovf, labels_hash(ovf, f->nlabels));
    if (!f->overflow)
        oom_abort();
    if (f->nlabels == 0) {
        f->series[0] = f->overflow;
        f->overflow = NULL;
        atomic_store_explicit(&f->nseries, 1, memory_order_release);
    }
    if (m->last)
        m->last->next = f;
    else
        m->first = f;
    m->last = f;
    return f;
}

struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *labels)
{
    return family_add(m, family_new(m, METRIC_COUNTER, name, help, labels));
}

struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *labels)
{
    return family_add(m, family_new(m, METRIC_GAUGE, name, help, labels));
}

struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const double *buckets, size_t nbuckets)
{
    assert(buckets && nbuckets >= 1 && nbuckets <= METRICS_MAX_BUCKETS);
    struct metric *f = family_new(m, METRIC_HISTOGRAM, name, help, labels);
    for (size_t i = 0; i < nbuckets; i++) {
        assert(isfinite(buckets[i]) && (i == 0 || buckets[i] > buckets[i - 1]));
        f->bounds[i] = buckets[i];
    }
    f->nbuckets = nbuckets;
    return family_add(m, f);
}

struct metric *metrics_find(struct metrics *m, const char *name)
{
    size_t plen = strlen(m->prefix);
    for (struct metric *f = m->first; f; f = f->next) {
        const char *n = f->name;
        if (plen && (strncmp(n, m->prefix, plen) != 0 || n[plen] != '_'))
            continue;
        if (strcmp(n + plen + (plen ? 1 : 0), name) == 0)
            return f;
    }
    return NULL;
}

void metrics_on_render(struct metrics *m, void (*fn)(void *arg), void *arg)
{
    assert(m && fn && m->nhooks < METRICS_MAX_HOOKS);
    m->hooks[m->nhooks].fn = fn;
    m->hooks[m->nhooks].arg = arg;
    m->nhooks++;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    struct metric *f = m->first;
    while (f) {
        struct metric *next = f->next;
        size_t n = atomic_load(&f->nseries);
        for (size_t i = 0; i < n; i++)
            free(f->series[i]);
        free(f->overflow);
        for (size_t i = 0; i < f->nlabels; i++)
            free(f->labels[i]);
        pthread_mutex_destroy(&f->mu);
        free(f->name);
        free(f->help);
        free(f);
        f = next;
    }
    free(m->prefix);
    free(m);
}

/* ---- lookup ----------------------------------------------------------------------- */

static int series_matches(const struct metric_series *s, const char *const *values, size_t nlabels,
                          uint64_t hash)
{
    if (s->hash != hash)
        return 0;
    for (size_t i = 0; i < nlabels; i++) {
        if (strcmp(s->values[i], values[i]) != 0)
            return 0;
    }
    return 1;
}

static struct metric_series *series_find(struct metric *f, const char *const *values, uint64_t hash,
                                         size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        if (series_matches(f->series[i], values, f->nlabels, hash))
            return f->series[i];
    }
    return NULL;
}

static struct metric_series *use_overflow(struct metric *f)
{
    atomic_store_explicit(&f->overflow_used, 1, memory_order_relaxed);
    return f->overflow;
}

struct metric_series *metric_series(struct metric *f, const char *const *values)
{
    assert(f);
    if (f->nlabels == 0)
        return f->series[0];
    assert(values);
    for (size_t i = 0; i < f->nlabels; i++)
        assert(values[i]);

    uint64_t hash = labels_hash(values, f->nlabels);
    size_t seen = atomic_load_explicit(&f->nseries, memory_order_acquire);
    struct metric_series *s = series_find(f, values, hash, 0, seen);
    if (s)
        return s;
    /* A full family never changes again: no need for the lock. */
    if (seen == METRICS_MAX_SERIES || series_matches(f->overflow, values, f->nlabels, hash))
        return use_overflow(f);

    pthread_mutex_lock(&f->mu);
    size_t n = atomic_load_explicit(&f->nseries, memory_order_relaxed);
    s = series_find(f, values, hash, seen, n); /* another thread may have just added it */
    if (!s && n < METRICS_MAX_SERIES) {
        s = series_new(f, values, hash);
        if (s) {
            f->series[n] = s;
            atomic_store_explicit(&f->nseries, n + 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&f->mu);
    return s ? s : use_overflow(f);
}

/* ---- updates ---------------------------------------------------------------------- */

void metric_inc(struct metric_series *s)
{
    metric_add(s, 1);
}

void metric_add(struct metric_series *s, uint64_t n)
{
    assert(s && s->family->type == METRIC_COUNTER);
    atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
}

void metric_set(struct metric_series *s, double v)
{
    assert(s && s->family->type == METRIC_GAUGE);
    atomic_store_explicit(&s->value, double_bits(v), memory_order_relaxed);
}

void metric_gauge_add(struct metric_series *s, double d)
{
    assert(s && s->family->type == METRIC_GAUGE);
    atomic_double_add(&s->value, d);
}

void metric_observe(struct metric_series *s, double v)
{
    assert(s && s->family->type == METRIC_HISTOGRAM);
    const struct metric *f = s->family;
    size_t i = 0;
    /* NaN compares false everywhere and lands in the +Inf bucket, as in other clients. */
    while (i < f->nbuckets && !(v <= f->bounds[i]))
        i++;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_double_add(&s->sum_bits, v);
}

double metric_value(struct metric_series *s)
{
    assert(s);
    uint64_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
    switch (s->family->type) {
    case METRIC_COUNTER: return (double)v;
    case METRIC_GAUGE: return bits_double(v);
    default: return bits_double(atomic_load_explicit(&s->sum_bits, memory_order_relaxed));
    }
}

uint64_t metric_hist_count(struct metric_series *s)
{
    return metric_hist_count_le(s, INFINITY);
}

/* Exact when le is one of the bounds (or +Inf); otherwise the count up to the largest
 * bound below le, since buckets are all a histogram keeps. */
uint64_t metric_hist_count_le(struct metric_series *s, double le)
{
    assert(s && s->family->type == METRIC_HISTOGRAM);
    const struct metric *f = s->family;
    uint64_t total = 0;
    for (size_t i = 0; i < f->nbuckets && f->bounds[i] <= le; i++)
        total += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
    if (isinf(le) && le > 0)
        total += atomic_load_explicit(&s->buckets[f->nbuckets], memory_order_relaxed);
    return total;
}

/* ---- rendering -------------------------------------------------------------------- */

struct sbuf {
    char *buf;
    size_t len, cap;
    int oom;
};

static void sb_append(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (n + 1 > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (n + 1 > cap - b->len)
            cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) {
            b->oom = 1;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_append(b, s, strlen(s));
}

/* Escape backslash and newline (HELP text), and double quotes too (label values). */
static void sb_escaped(struct sbuf *b, const char *s, int quotes)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (*s == '"' && quotes)
            esc = "\\\"";
        if (esc) {
            sb_append(b, run, (size_t)(s - run));
            sb_puts(b, esc);
            run = s + 1;
        }
    }
    sb_append(b, run, (size_t)(s - run));
}

/* Shortest text that reads back as the same double; integers without an exponent. */
static void format_double(double v, char *out, size_t outsize)
{
    if (isnan(v)) {
        snprintf(out, outsize, "NaN");
    } else if (isinf(v)) {
        snprintf(out, outsize, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e21) {
        snprintf(out, outsize, "%.0f", v);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(out, outsize, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                break;
        }
    }
}

static void sb_double(struct sbuf *b, double v)
{
    char num[40];
    format_double(v, num, sizeof(num));
    sb_puts(b, num);
}

static void sb_u64(struct sbuf *b, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRIu64, v);
    sb_puts(b, num);
}

/* `name{l1="v1",...,le="x"} ` — braces only when there is at least one label. */
static void sb_series_head(struct sbuf *b, const struct metric *f, const char *suffix,
                           const struct metric_series *s, const char *le)
{
    sb_puts(b, f->name);
    sb_puts(b, suffix);
    if (f->nlabels > 0 || le) {
        sb_puts(b, "{");
        for (size_t i = 0; i < f->nlabels; i++) {
            sb_puts(b, i ? "," : "");
            sb_puts(b, f->labels[i]);
            sb_puts(b, "=\"");
            sb_escaped(b, s->values[i], 1);
            sb_puts(b, "\"");
        }
        if (le) {
            sb_puts(b, f->nlabels ? ",le=\"" : "le=\"");
            sb_puts(b, le);
            sb_puts(b, "\"");
        }
        sb_puts(b, "}");
    }
    sb_puts(b, " ");
}

/* Buckets are kept per bucket and summed here; _count is the +Inf bucket, so the two
 * always agree even while observations land during the render. */
static void render_histogram(struct sbuf *b, const struct metric *f, const struct metric_series *s)
{
    char le[40];
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= f->nbuckets; i++) {
        cumulative += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        if (i < f->nbuckets)
            format_double(f->bounds[i], le, sizeof(le));
        else
            snprintf(le, sizeof(le), "+Inf");
        sb_series_head(b, f, "_bucket", s, le);
        sb_u64(b, cumulative);
        sb_puts(b, "\n");
    }
    sb_series_head(b, f, "_sum", s, NULL);
    sb_double(b, bits_double(atomic_load_explicit(&s->sum_bits, memory_order_relaxed)));
    sb_puts(b, "\n");
    sb_series_head(b, f, "_count", s, NULL);
    sb_u64(b, cumulative);
    sb_puts(b, "\n");
}

static void render_series(struct sbuf *b, const struct metric *f, const struct metric_series *s)
{
    if (f->type == METRIC_HISTOGRAM) {
        render_histogram(b, f, s);
        return;
    }
    sb_series_head(b, f, "", s, NULL);
    uint64_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
    if (f->type == METRIC_COUNTER)
        sb_u64(b, v);
    else
        sb_double(b, bits_double(v));
    sb_puts(b, "\n");
}

static void render_family(struct sbuf *b, struct metric *f)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};

    sb_puts(b, "# HELP ");
    sb_puts(b, f->name);
    sb_puts(b, " ");
    sb_escaped(b, f->help, 0);
    sb_puts(b, "\n# TYPE ");
    sb_puts(b, f->name);
    sb_puts(b, " ");
    sb_puts(b, type_names[f->type]);
    sb_puts(b, "\n");
    size_t n = atomic_load_explicit(&f->nseries, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        render_series(b, f, f->series[i]);
    if (atomic_load_explicit(&f->overflow_used, memory_order_relaxed))
        render_series(b, f, f->overflow);
}

char *metrics_render(struct metrics *m, size_t *len)
{
    struct sbuf b = {0};

    assert(m);
    for (size_t i = 0; i < m->nhooks; i++)
        m->hooks[i].fn(m->hooks[i].arg);
    sb_append(&b, "", 0); /* an empty registry still renders as "" */
    for (struct metric *f = m->first; f; f = f->next)
        render_family(&b, f);
    if (b.oom) {
        free(b.buf);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.buf;
}
