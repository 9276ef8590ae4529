/* SPDX-License-Identifier: Apache-2.0 */
/* chaos: faults injected into Redis while a daemon is under steady load (`make chaos`).
 *
 * One *cell* is one daemon × one fault: a fresh Redis (AOF on) and a fresh daemon, tens of
 * client threads running the daemon's workload, a healthy warm-up, the fault, then load
 * until the daemon has recovered. Every request is recorded (send and receive time, normal
 * or a named kind of failure); after the run the workload checks its invariants.
 *
 * chaos.c runs the cells and prints the table, record.c holds the request recording and
 * the numbers drawn from it, faults.c the six faults, wl_<daemon>.c one workload each. */
#ifndef WARDEN_TESTS_CHAOS_H
#define WARDEN_TESTS_CHAOS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/harness.h"

#define CH_MAX_KINDS 32
#define CH_KIND_LEN 80
#define CH_NOTE_LEN 160
#define CH_VERDICT_LEN 512
#define CH_ENV_MAX 16

/* ---- settings (CHAOS_* variables, see chaos.c) ----------------------------------------- */

struct ch_settings {
    int threads;        /* load threads per cell */
    int think_ms;       /* pause between two operations of one thread */
    int warm_ms;        /* healthy load before the fault */
    int after_min_ms;   /* load after the fault ends, at least */
    int clean_ms;       /* recovered = this long with every request normal */
    int recover_max_ms; /* give up waiting for recovery after this long */
    int freeze_ms;      /* SIGSTOP .. SIGCONT */
    int down_ms;        /* kill -9 .. restart */
    int sleep_ms;       /* DEBUG SLEEP */
    int maxclients_ms;  /* how long maxclients stays reached */
    int fillers;        /* idle connections that fill the slots */
    int noise_ms;       /* scheduling noise allowed on top of a timeout */
    const char *appendfsync;
};

extern struct ch_settings ch_set;

/* ---- one cell --------------------------------------------------------------------------- */

/* Counts of one kind of answer that is not the workload's normal outcome. */
struct ch_kind {
    char name[CH_KIND_LEN];
    long count;
};

/* One request as the load generator saw it. */
struct ch_sample {
    int64_t sent_us, done_us;
    int failed;
};

struct ch_cell;

/* A daemon's workload. setup() fills the daemon's extra "NAME=value" settings (at most
 * CH_ENV_MAX - 1, NULL-terminated) and allocates c->state; step() is one client operation
 * (several requests at most), called in a loop by every load thread; monitor() (may be
 * NULL) is called every 20 ms by one more thread; check() tests the invariants after the
 * run and writes a one-line verdict: returns 0 if they hold, 1 if one is breached, -1 if
 * they could not be checked. finish() frees c->state. */
struct ch_workload {
    const char *name;
    const char *bin; /* relative to the build dir */
    int (*setup)(struct ch_cell *c, const char **env);
    void (*step)(struct ch_cell *c, unsigned *seed, int thread);
    void (*monitor)(struct ch_cell *c);
    int (*check)(struct ch_cell *c, char *verdict, size_t size);
    void (*finish)(struct ch_cell *c);
};

/* A fault: inject() runs in the main thread, puts the fault in place and returns once it
 * has ended (Redis answers again), with a short note of what it did. 0 or -1. */
struct ch_fault {
    const char *name;
    int (*inject)(struct ch_cell *c, char *note, size_t size);
};

struct ch_cell {
    const struct ch_workload *wl;
    const struct ch_fault *fault;
    struct th_redis redis;
    struct th_proc daemon;
    char dir[256]; /* the cell's own temp dir, for files a workload writes */
    void *state;   /* the workload's */

    atomic_int stop;
    int64_t fault_start_us, fault_end_us, end_us; /* end: when the load was told to stop */
    atomic_llong last_fail_us;                    /* done time of the latest failure */

    pthread_mutex_t mu; /* guards what follows */
    struct ch_kind kinds[CH_MAX_KINDS];
    int nkinds;
    struct ch_sample *samples;
    size_t nsamples, samples_cap;
};

/* ---- requests and their record (record.c) ---------------------------------------------- */

/* One request's answer: status (-1: no answer, a transport error), parsed JSON body (NULL
 * if none or not JSON), the problem "code" ("" if none), and the client's times. */
struct ch_call {
    int status;
    json_t *json;
    char code[64];
    int64_t sent_us, done_us;
};

/* Microseconds of the monotonic clock (the one every time in a cell is measured on). */
int64_t ch_now_us(void);
void ch_sleep_ms(int ms);

/* POST json to the cell's daemon (GET when json is NULL). Fills out; free with
 * ch_call_free. Returns out->status. */
int ch_request(struct ch_cell *c, const char *path, const char *json, struct ch_call *out);
void ch_call_free(struct ch_call *call);

/* Record a call. kind NULL: a normal outcome; else the name of its kind of failure.
 * ch_fail_kind() names the usual ones: "transport", or "<status> <code>". Thread-safe. */
void ch_record(struct ch_cell *c, const struct ch_call *call, const char *kind);
const char *ch_fail_kind(const struct ch_call *call, char *buf, size_t size);

/* POST json until the answer is neither a 503 nor a transport error, or CH_RETRY_MS has
 * passed, 100 ms apart — what a caller does with an outcome-unknown write. Every attempt
 * is recorded: normal when its status is in normal[] (0-terminated). The last answer stays
 * in *call (caller frees); the first attempt's send time goes to *first_sent if not NULL.
 * Returns the last status. */
#define CH_RETRY_MS 10000
int ch_post_retrying(struct ch_cell *c, const char *path, const char *json, const int *normal,
                     struct ch_call *call, int64_t *first_sent);

/* Integer and string members of a call's JSON body (0 / "" when absent). */
long long ch_jint(const struct ch_call *call, const char *name);
const char *ch_jstr(const struct ch_call *call, const char *name);

/* What the table shows of one cell, computed from its record. */
struct ch_summary {
    long requests, failed;
    int64_t healthy_max_us; /* longest answer sent before the fault */
    int64_t fault_max_us;   /* longest answer sent from the fault's start on */
    int64_t recovery_us;    /* -1: not recovered */
    char kinds[CH_NOTE_LEN * 2];
};
void ch_summarize(struct ch_cell *c, struct ch_summary *out);

/* The longest answer among calls sent before the fault started (the healthy baseline). */
int64_t ch_healthy_max_us(struct ch_cell *c);

/* ---- a growable array shared by load threads -------------------------------------------- */

struct ch_vec {
    pthread_mutex_t mu;
    void *items;
    size_t n, cap, size;
};
void ch_vec_init(struct ch_vec *v, size_t item_size);
/* Append a copy of item. Returns 0 or -1 (out of memory). Thread-safe. */
int ch_vec_push(struct ch_vec *v, const void *item);
void ch_vec_free(struct ch_vec *v);

/* ---- the parts ------------------------------------------------------------------------- */

extern const struct ch_fault ch_faults[];
extern const size_t ch_nfaults;
extern const struct ch_workload ch_wl_ratelimitd, ch_wl_auditd, ch_wl_idemd, ch_wl_tokend;

#endif
