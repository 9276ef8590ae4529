/* SPDX-License-Identifier: Apache-2.0 */
/* checkpointer: on-demand and periodic signed checkpoints, on a loop thread of its own. */
#include "checkpointer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "background.h"
#include "checkpoint.h"
#include "shared/log.h"

struct audit_checkpointer {
    const struct audit_keys *keys;
    const struct audit_key *key;
    struct audit_guard *guard;
    struct audit_checkpointer_config conf;
    struct metric_series *m_total, *m_witness_errors;
    struct audit_bg *bg;
    /* the loop thread's */
    struct loop_timer timer;
    int64_t period_ms;
    int witness_failing;
    _Atomic int looking;             /* a look for /ready asked and not yet done */
    enum audit_verdict look_verdict; /* not read: the guard keeps what it saw */
};

/* One note to sign, on demand (fn set) or for the periodic store. */
struct cp_call {
    struct audit_checkpointer *c;
    enum audit_verdict v;
    struct audit_head h;
    struct audit_cp cp;
    char note[AUDIT_NOTE_MAX];
    int n, stored;
    audit_cp_fn fn;
    void *arg;
};

/* Write the note into the witness directory as <chain>-<size, 20 digits>.checkpoint unless
 * a file of that name is there (the same size signs to the same note): a temporary file,
 * renamed into place, so a reader never sees half of one. */
static void witness(struct audit_checkpointer *c, long long size, const char *note, size_t len)
{
    char path[4200], tmp[4300];
    if (!c->conf.witness_dir)
        return;
    snprintf(path, sizeof(path), "%s/%s-%020lld.checkpoint", c->conf.witness_dir, c->conf.chain,
             size);
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    if (access(path, F_OK) != 0) {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        int ok = fd >= 0 && write(fd, note, len) == (ssize_t)len && fsync(fd) == 0;
        if (fd >= 0)
            close(fd);
        ok = ok && rename(tmp, path) == 0;
        if (!ok) {
            unlink(tmp);
            metric_inc(c->m_witness_errors);
            if (!c->witness_failing)
                log_error(NULL, "cannot write a checkpoint into AUDIT_CHECKPOINT_WITNESS_DIR",
                          LF_S("path", path), LF_S("error", strerror(errno)));
        }
        c->witness_failing = !ok;
    }
}

/* A signed checkpoint vouches for a chain and a tree: never sign one that lost or replaced
 * what this instance has seen, which would make the loss look legitimate to auditors. The
 * root signed is the one audit_guard_check recomputed from the tiles. Returns the note's
 * length, or an AUDIT_CP_ value. */
static int sign_checked(struct cp_call *k, enum rreply_class cls)
{
    struct audit_checkpointer *c = k->c;
    if (cls != RREPLY_OK)
        return cls == RREPLY_UNAVAILABLE ? AUDIT_CP_REDIS : AUDIT_CP_REDIS_ERROR;
    if (k->v != AUDIT_CHAIN_HOLDS)
        return AUDIT_CP_REFUSED;
    if (k->h.tree_size != k->h.seq)
        return AUDIT_CP_BEHIND;
    memset(&k->cp, 0, sizeof(k->cp));
    snprintf(k->cp.origin, sizeof(k->cp.origin), "%s", c->conf.origin);
    k->cp.has_tree = 1;
    k->cp.size = k->cp.chain_seq = k->h.seq;
    memcpy(k->cp.root, k->h.root, sizeof(k->cp.root));
    memcpy(k->cp.chain_hash, k->h.hash, sizeof(k->cp.chain_hash));
    int n = audit_checkpoint_make(&k->cp, c->key, k->note, sizeof(k->note));
    if (n < 0)
        return AUDIT_CP_INTERNAL;
    witness(c, k->cp.size, k->note, (size_t)n);
    return n;
}

static void stored(void *arg, enum rreply_class cls)
{
    struct cp_call *k = arg;
    if (cls == RREPLY_OK && k->stored) {
        metric_inc(k->c->m_total);
        log_info(NULL, "checkpoint stored", LF_I("seq", k->cp.chain_seq),
                 LF_S("hash", k->cp.chain_hash));
    }
    free(k);
}

static void checked(void *arg, enum rreply_class cls)
{
    struct cp_call *k = arg;
    struct audit_checkpointer *c = k->c;
    k->n = sign_checked(k, cls);
    if (k->fn) {
        k->fn(k->arg, k->n, k->note);
        free(k);
    } else if (k->n < 0 ||
               audit_store_checkpoint_async(audit_bg_rclient(c->bg), c->keys, c->conf.interval_ms,
                                            k->cp.chain_seq, k->cp.chain_hash, k->note, &k->stored,
                                            stored, k) != 0) {
        free(k);
    }
}

/* Check the guard, then sign (and answer fn, or store). On the loop. */
static void sign(struct cp_call *k)
{
    struct audit_checkpointer *c = k->c;
    if (audit_guard_check_async(c->guard, audit_bg_rclient(c->bg), c->keys, &k->v, &k->h, checked,
                                k) != 0)
        checked(k, RREPLY_INTERNAL);
}

static void now_posted(void *arg)
{
    sign(arg);
}

int audit_checkpointer_now(struct audit_checkpointer *c, audit_cp_fn fn, void *arg)
{
    struct cp_call *k = calloc(1, sizeof(*k));
    if (!k)
        return -1;
    k->c = c;
    k->fn = fn;
    k->arg = arg;
    if (audit_bg_post(c->bg, now_posted, k) != 0) {
        free(k);
        return -1;
    }
    return 0;
}

/* Tick several times per interval so the first instance to see a new interval fills it
 * soon after it starts; the script keeps it to one per interval. */
static void tick(struct loop_timer *t)
{
    struct audit_checkpointer *c = t->arg;
    struct cp_call *k = calloc(1, sizeof(*k));
    if (k) {
        k->c = c;
        sign(k);
    }
    loop_timer_start(audit_bg_loop(c->bg), &c->timer, c->period_ms);
}

static void ticks_start(void *arg)
{
    struct audit_checkpointer *c = arg;
    c->timer = (struct loop_timer){.fn = tick, .arg = c};
    loop_timer_start(audit_bg_loop(c->bg), &c->timer, 0);
}

static void looked(void *arg, enum rreply_class cls)
{
    struct audit_checkpointer *c = arg;
    (void)cls; /* the guard keeps what it saw; a Redis down shows in /ready by itself */
    atomic_store(&c->looking, 0);
}

static void look_posted(void *arg)
{
    struct audit_checkpointer *c = arg;
    if (audit_guard_check_async(c->guard, audit_bg_rclient(c->bg), c->keys, &c->look_verdict, NULL,
                                looked, c) != 0)
        atomic_store(&c->looking, 0);
}

void audit_checkpointer_look(struct audit_checkpointer *c)
{
    int idle = 0;
    if (atomic_compare_exchange_strong(&c->looking, &idle, 1) &&
        audit_bg_post(c->bg, look_posted, c) != 0)
        atomic_store(&c->looking, 0);
}

struct audit_checkpointer *audit_checkpointer_start(const struct rcl_config *rconf,
                                                    const struct audit_keys *k,
                                                    const struct audit_key *key,
                                                    struct audit_guard *g,
                                                    const struct audit_checkpointer_config *conf,
                                                    struct metrics *m, char *err, size_t errsize)
{
    struct audit_checkpointer *c = calloc(1, sizeof(*c));
    snprintf(err, errsize, "out of memory");
    if (!c)
        return NULL;
    c->keys = k;
    c->key = key;
    c->guard = g;
    c->conf = *conf;
    c->period_ms = conf->interval_ms / 4;
    if (c->period_ms < 100)
        c->period_ms = 100;
    if (c->period_ms > 5000)
        c->period_ms = 5000;
    c->m_total = metric_with(
        metrics_counter(m, "checkpoints_total", "Periodic checkpoints stored", NULL), NULL);
    c->m_witness_errors = metric_with(
        metrics_counter(m, "witness_errors_total",
                        "Signed checkpoints that could not be written to the witness directory",
                        NULL),
        NULL);
    c->bg = audit_bg_start(rconf, err, errsize);
    if (!c->bg || (conf->interval_ms > 0 && audit_bg_post(c->bg, ticks_start, c) != 0)) {
        audit_checkpointer_stop(c);
        return NULL;
    }
    return c;
}

void audit_checkpointer_stop(struct audit_checkpointer *c)
{
    if (!c)
        return;
    audit_bg_stop(c->bg); /* what is in flight fails first, still with c */
    free(c);
}
