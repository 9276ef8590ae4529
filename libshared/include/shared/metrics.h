/* SPDX-License-Identifier: Apache-2.0 */
/* metrics: counters, gauges and histograms with labels, rendered in the Prometheus text
 * format 0.0.4.
 *
 * Families are registered at startup (not thread-safe); after that everything is
 * thread-safe. A series (one set of label values) is found without a lock once it
 * exists: lookups scan a published, append-only array; only the first use of a new
 * label set takes the family's mutex. Updates are single atomic operations. A family
 * holds at most METRICS_MAX_SERIES series; further label sets share one series whose
 * label values are all "_overflow", so a flood of odd values cannot grow memory. */
#ifndef WARDEN_METRICS_H
#define WARDEN_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_SERIES 512
#define METRICS_MAX_LABELS 4
#define METRICS_MAX_BUCKETS 24

struct metrics;       /* a registry: every family of one daemon */
struct metric;        /* a family: one name, one type, fixed label names */
struct metric_series; /* one label set of a family */

/* Default latency buckets in seconds (100us .. 10s). */
extern const double METRICS_LATENCY_BUCKETS[];
extern const size_t METRICS_LATENCY_BUCKETS_N;

/* prefix (e.g. "idemd") is prepended to every family name with '_'. */
struct metrics *metrics_create(const char *prefix);
void metrics_free(struct metrics *m); /* NULL does nothing */

/* Register a family. labels is a comma-separated list of label names ("route,method,code")
 * or NULL. Returns the family; registration errors are programming errors (assert). */
struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *labels);
struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *labels);
struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const double *buckets, size_t nbuckets);

/* The family registered under name (without the prefix), or NULL. For giving a family
 * registered elsewhere its known label values at 0 from the start. */
struct metric *metrics_find(struct metrics *m, const char *name);

/* The series for these label values (as many as the family has label names; NULL for a
 * family without labels). Never NULL. */
struct metric_series *metric_series(struct metric *f, const char *const *values);
#define metric_with(f, ...) metric_series((f), (const char *const[]){__VA_ARGS__})

void metric_inc(struct metric_series *s);                 /* counter += 1 */
void metric_add(struct metric_series *s, uint64_t n);     /* counter += n */
void metric_set(struct metric_series *s, double v);       /* gauge = v */
void metric_gauge_add(struct metric_series *s, double d); /* gauge += d */
void metric_observe(struct metric_series *s, double v);   /* histogram */

/* Current value of a counter or gauge (tests, /v1 state objects). */
double metric_value(struct metric_series *s);
/* Count of observations of a histogram series, and how many were <= le. */
uint64_t metric_hist_count(struct metric_series *s);
uint64_t metric_hist_count_le(struct metric_series *s, double le);

/* Called at the start of every metrics_render(), to refresh gauges read from elsewhere
 * (pool statistics). At most 8 hooks. */
void metrics_on_render(struct metrics *m, void (*fn)(void *arg), void *arg);

/* Render everything. Returns a malloc'd NUL-terminated string (caller frees) and its
 * length in *len, or NULL when out of memory. */
char *metrics_render(struct metrics *m, size_t *len);

#endif
