/* SPDX-License-Identifier: Apache-2.0 */
/* chaos: the driver of `make chaos`. For each daemon and each fault it runs one cell (see
 * chaos.h), prints one markdown table per daemon (also written to CHAOS_OUT) and exits 1
 * if any invariant was breached or a cell could not run, else 0.
 *
 * Settings, all optional: CHAOS_DAEMONS and CHAOS_FAULTS (space-separated subsets),
 * CHAOS_THREADS (32), CHAOS_THINK_MS (20), CHAOS_WARM_MS (3000), CHAOS_AFTER_MS (4000: load
 * after the fault, at least), CHAOS_CLEAN_MS (1000), CHAOS_RECOVER_MAX_MS (30000),
 * CHAOS_FREEZE_MS (5000), CHAOS_DOWN_MS (1000), CHAOS_SLEEP_MS (2000),
 * CHAOS_MAXCLIENTS_MS (3000), CHAOS_FILLERS (8), CHAOS_NOISE_MS (100),
 * CHAOS_APPENDFSYNC (always), CHAOS_OUT (chaos-results.md in the build dir). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "chaos.h"

struct ch_settings ch_set;

static const struct ch_workload *const workloads[] = {&ch_wl_ratelimitd, &ch_wl_auditd,
                                                      &ch_wl_idemd, &ch_wl_tokend};
#define NWORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

/* One row of the table. */
struct ch_row {
    const char *fault;
    struct ch_summary sum;
    char note[CH_NOTE_LEN * 2];
    char verdict[CH_VERDICT_LEN];
    int result; /* 0 holds, 1 breached, -1 could not run or check */
};

static int env_int(const char *name, int def, int min, int max)
{
    const char *v = getenv(name);
    char *end;
    if (!v || !v[0])
        return def;
    long n = strtol(v, &end, 10);
    if (*end || n < min || n > max) {
        fprintf(stderr, "chaos: %s=%s: not an integer in %d..%d\n", name, v, min, max);
        exit(2);
    }
    return (int)n;
}

static void load_settings(void)
{
    const char *fsync_mode = getenv("CHAOS_APPENDFSYNC");
    ch_set = (struct ch_settings){
        .threads = env_int("CHAOS_THREADS", 32, 1, 256),
        .think_ms = env_int("CHAOS_THINK_MS", 20, 0, 1000),
        .warm_ms = env_int("CHAOS_WARM_MS", 3000, 500, 60000),
        .after_min_ms = env_int("CHAOS_AFTER_MS", 4000, 1000, 60000),
        .clean_ms = env_int("CHAOS_CLEAN_MS", 1000, 100, 10000),
        .recover_max_ms = env_int("CHAOS_RECOVER_MAX_MS", 30000, 1000, 300000),
        .freeze_ms = env_int("CHAOS_FREEZE_MS", 5000, 100, 60000),
        .down_ms = env_int("CHAOS_DOWN_MS", 1000, 0, 60000),
        .sleep_ms = env_int("CHAOS_SLEEP_MS", 2000, 100, 60000),
        .maxclients_ms = env_int("CHAOS_MAXCLIENTS_MS", 3000, 100, 60000),
        .fillers = env_int("CHAOS_FILLERS", 8, 1, 64),
        .noise_ms = env_int("CHAOS_NOISE_MS", 100, 0, 10000),
        .appendfsync = fsync_mode ? fsync_mode : "always",
    };
    if (strcmp(ch_set.appendfsync, "everysec") != 0 && strcmp(ch_set.appendfsync, "always") != 0) {
        fprintf(stderr, "chaos: CHAOS_APPENDFSYNC=%s: everysec or always\n", ch_set.appendfsync);
        exit(2);
    }
}

/* Is name in the space-separated list in variable var (unset: everything is)? */
static int selected(const char *var, const char *name)
{
    const char *list = getenv(var);
    size_t n = strlen(name);
    if (!list || !list[0])
        return 1;
    for (const char *at = strstr(list, name); at; at = strstr(at + 1, name))
        if ((at == list || at[-1] == ' ') && (at[n] == '\0' || at[n] == ' '))
            return 1;
    return 0;
}

/* ---- one cell --------------------------------------------------------------------------- */

struct loader {
    struct ch_cell *cell;
    int id; /* -1: the monitor */
    pthread_t thread;
};

static void *load_main(void *arg)
{
    struct loader *l = arg;
    struct ch_cell *c = l->cell;
    unsigned seed = (unsigned)(ch_now_us() ^ ((int64_t)l->id << 20));
    while (!atomic_load(&c->stop)) {
        if (l->id < 0) {
            c->wl->monitor(c);
            ch_sleep_ms(20);
            continue;
        }
        c->wl->step(c, &seed, l->id);
        if (ch_set.think_ms)
            ch_sleep_ms(ch_set.think_ms);
    }
    return NULL;
}

/* Start Redis (AOF on, DEBUG allowed from loopback) and the daemon; wait until it is ready. */
static int cell_start(struct ch_cell *c)
{
    const char *redis_args[] = {
        "--appendonly", "yes", "--appendfsync", ch_set.appendfsync, "--enable-debug-command",
        "local",        NULL};
    const char *env[CH_ENV_MAX] = {0};
    if (th_tmpdir(c->dir, sizeof(c->dir)) != 0 || th_redis_start(&c->redis, redis_args) != 0)
        return -1;
    if (c->wl->setup(c, env) != 0 ||
        th_daemon_start(&c->daemon, c->wl->bin, c->redis.url, env) != 0)
        return -1;
    for (int i = 0; i < 100; i++) {
        struct ch_call call;
        int st = ch_request(c, "/ready", NULL, &call);
        ch_call_free(&call);
        if (st == 200)
            return 0;
        ch_sleep_ms(50);
    }
    fprintf(stderr, "chaos: %s never became ready\n", c->wl->name);
    return -1;
}

/* After the fault: keep the load on until every request has been normal for clean_ms (and
 * at least after_min_ms have passed), or recover_max_ms. */
static void wait_recovery(struct ch_cell *c)
{
    for (;;) {
        int64_t now = ch_now_us(), since_end = now - c->fault_end_us;
        int64_t last = atomic_load(&c->last_fail_us);
        int64_t clean = now - (last > c->fault_end_us ? last : c->fault_end_us);
        if (since_end >= (int64_t)ch_set.after_min_ms * 1000 &&
            clean >= (int64_t)ch_set.clean_ms * 1000)
            return;
        if (since_end >= (int64_t)ch_set.recover_max_ms * 1000)
            return;
        ch_sleep_ms(50);
    }
}

/* The loaded part of a cell: warm-up, fault, recovery. Returns 0, or -1 if the fault could
 * not be injected. */
static int cell_load(struct ch_cell *c, struct ch_row *row)
{
    struct loader *l = calloc((size_t)ch_set.threads + 1, sizeof(*l));
    int n = 0, rc = 0;
    if (!l)
        return -1;
    for (int i = c->wl->monitor ? -1 : 0; i < ch_set.threads; i++, n++) {
        l[n] = (struct loader){.cell = c, .id = i};
        if (pthread_create(&l[n].thread, NULL, load_main, &l[n]) != 0)
            break;
    }
    ch_sleep_ms(ch_set.warm_ms);
    c->fault_start_us = ch_now_us();
    if (c->fault->inject(c, row->note, sizeof(row->note)) != 0) {
        snprintf(row->note, sizeof(row->note), "could not inject the fault");
        rc = -1;
    }
    c->fault_end_us = ch_now_us();
    if (rc == 0)
        wait_recovery(c);
    c->end_us = ch_now_us();
    atomic_store(&c->stop, 1);
    for (int i = 0; i < n; i++)
        pthread_join(l[i].thread, NULL);
    free(l);
    return rc;
}

/* The daemon must still be alive and answer /health, and stop cleanly on SIGTERM. */
static int cell_stop_daemon(struct ch_cell *c, struct ch_row *row)
{
    struct ch_call call;
    int health = ch_request(c, "/health", NULL, &call);
    ch_call_free(&call);
    int status = th_proc_stop(&c->daemon, SIGTERM, 10000);
    if (health == 200 && status == 0)
        return 0;
    snprintf(row->verdict, sizeof(row->verdict), "BREACH: daemon /health %d, exit status %d",
             health, status);
    return 1;
}

static void run_cell(const struct ch_workload *wl, const struct ch_fault *fault, struct ch_row *row)
{
    struct ch_cell *c = calloc(1, sizeof(*c));
    *row = (struct ch_row){.fault = fault->name, .result = -1};
    if (!c)
        return;
    c->wl = wl;
    c->fault = fault;
    pthread_mutex_init(&c->mu, NULL);
    fprintf(stderr, "chaos: %s under %s ...\n", wl->name, fault->name);
    if (cell_start(c) == 0 && cell_load(c, row) == 0) {
        ch_summarize(c, &row->sum);
        row->result = wl->check(c, row->verdict, sizeof(row->verdict));
        if (cell_stop_daemon(c, row) != 0)
            row->result = 1;
    } else if (!row->verdict[0]) {
        snprintf(row->verdict, sizeof(row->verdict), "NOT RUN: the cell could not start");
    }
    fprintf(stderr, "chaos: %s under %s: %s\n", wl->name, fault->name, row->verdict);
    th_proc_stop(&c->daemon, SIGTERM, 10000);
    th_redis_stop(&c->redis);
    if (wl->finish)
        wl->finish(c);
    free(c->samples);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ---- the table ------------------------------------------------------------------------- */

static void print_ms(FILE *f, int64_t us)
{
    fprintf(f, "%lld", (long long)(us + 500) / 1000);
}

static void print_table(FILE *f, const char *daemon, const struct ch_row *rows, size_t n)
{
    fprintf(f, "\n### %s\n\n", daemon);
    fprintf(f, "| fault | what was done | requests | not normal, by kind | longest ms healthy "
               "| longest ms fault | recovery ms | invariants |\n");
    fprintf(f, "|---|---|---:|---|---:|---:|---:|---|\n");
    for (size_t i = 0; i < n; i++) {
        const struct ch_row *r = &rows[i];
        fprintf(f, "| %s | %s | %ld | %s | ", r->fault, r->note, r->sum.requests, r->sum.kinds);
        print_ms(f, r->sum.healthy_max_us);
        fprintf(f, " | ");
        print_ms(f, r->sum.fault_max_us);
        fprintf(f, " | ");
        if (r->sum.recovery_us >= 0)
            print_ms(f, r->sum.recovery_us);
        else
            fprintf(f, "not recovered in %d s", ch_set.recover_max_ms / 1000);
        fprintf(f, " | %s |\n", r->verdict);
    }
}

/* The machine, the date and the load average at the start (and, once the run is over, at
 * the end: other programs may be loading the machine too). */
static void print_header(FILE *f, int at_end)
{
    static char started[160];
    struct utsname u;
    double load[3] = {-1, -1, -1};
    char now_text[200];
    time_t now = time(NULL);
    getloadavg(load, 3);
    uname(&u);
    strftime(now_text, 32, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    snprintf(now_text + strlen(now_text), sizeof(now_text) - strlen(now_text),
             ", load average %.2f %.2f %.2f", load[0], load[1], load[2]);
    if (!started[0])
        snprintf(started, sizeof(started), "%s", now_text);
    fprintf(f, "chaos run on %s %s, %ld CPUs: started %s", u.sysname, u.machine,
            sysconf(_SC_NPROCESSORS_ONLN), started);
    fprintf(f, at_end ? "; ended %s\n" : "\n", now_text);
    fprintf(f,
            "settings: %d threads, think %d ms, warm-up %d ms, after >= %d ms, clean %d ms, "
            "freeze %d ms, down %d ms, DEBUG SLEEP %d ms, maxclients %d ms with %d idle "
            "connections, appendfsync %s, noise %d ms\n",
            ch_set.threads, ch_set.think_ms, ch_set.warm_ms, ch_set.after_min_ms, ch_set.clean_ms,
            ch_set.freeze_ms, ch_set.down_ms, ch_set.sleep_ms, ch_set.maxclients_ms, ch_set.fillers,
            ch_set.appendfsync, ch_set.noise_ms);
}

int main(void)
{
    struct ch_row rows[NWORKLOADS][16];
    size_t nrows[NWORKLOADS] = {0};
    int failed = 0;
    const char *out_path = getenv("CHAOS_OUT");
    signal(SIGPIPE, SIG_IGN);
    load_settings();
    print_header(stderr, 0);
    for (size_t w = 0; w < NWORKLOADS; w++) {
        if (!selected("CHAOS_DAEMONS", workloads[w]->name))
            continue;
        for (size_t f = 0; f < ch_nfaults; f++) {
            if (!selected("CHAOS_FAULTS", ch_faults[f].name))
                continue;
            struct ch_row *r = &rows[w][nrows[w]++];
            run_cell(workloads[w], &ch_faults[f], r);
            failed += r->result != 0;
        }
    }
    FILE *out = out_path && out_path[0] ? fopen(out_path, "w") : NULL;
    for (FILE *f = stdout; f; f = f == stdout ? out : NULL) {
        print_header(f, 1);
        for (size_t w = 0; w < NWORKLOADS; w++)
            if (nrows[w])
                print_table(f, workloads[w]->name, rows[w], nrows[w]);
        fprintf(f, "\n%s\n",
                failed ? "chaos: FAILED (see the invariants column)"
                       : "chaos: every invariant held");
    }
    if (out)
        fclose(out);
    return failed ? 1 : 0;
}
