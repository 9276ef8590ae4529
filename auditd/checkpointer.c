/* SPDX-License-Identifier: Apache-2.0 */
/* checkpointer: on-demand and periodic signed checkpoints. */
#include "checkpointer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "shared/log.h"

struct audit_checkpointer {
    struct rpool *pool;
    const struct audit_keys *keys;
    const struct audit_key *key;
    struct audit_guard *guard;
    struct audit_checkpointer_config conf;
    struct metric_series *m_total, *m_witness_errors;
    pthread_mutex_t wmu; /* one witness file written at a time */
    int witness_failing;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
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
    pthread_mutex_lock(&c->wmu);
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
    pthread_mutex_unlock(&c->wmu);
}

/* A signed checkpoint vouches for a chain and a tree: never sign one that lost or replaced
 * what this instance has seen, which would make the loss look legitimate to auditors. The
 * root signed is the one audit_guard_check recomputed from the tiles. */
static int sign_now(struct audit_checkpointer *c, struct audit_cp *cp, char *out, size_t outsize)
{
    struct audit_head h;
    enum audit_verdict v;
    enum rreply_class rc = audit_guard_check(c->guard, c->pool, c->keys, &v, &h);
    if (rc != RREPLY_OK)
        return rc == RREPLY_UNAVAILABLE ? AUDIT_CP_REDIS : AUDIT_CP_REDIS_ERROR;
    if (v != AUDIT_CHAIN_HOLDS)
        return AUDIT_CP_REFUSED;
    if (h.tree_size != h.seq)
        return AUDIT_CP_BEHIND;
    memset(cp, 0, sizeof(*cp));
    snprintf(cp->origin, sizeof(cp->origin), "%s", c->conf.origin);
    cp->has_tree = 1;
    cp->size = cp->chain_seq = h.seq;
    memcpy(cp->root, h.root, sizeof(cp->root));
    memcpy(cp->chain_hash, h.hash, sizeof(cp->chain_hash));
    int n = audit_checkpoint_make(cp, c->key, out, outsize);
    if (n < 0)
        return AUDIT_CP_INTERNAL;
    witness(c, cp->size, out, (size_t)n);
    return n;
}

int audit_checkpointer_now(struct audit_checkpointer *c, char *out, size_t outsize)
{
    struct audit_cp cp;
    return sign_now(c, &cp, out, outsize);
}

static void tick(struct audit_checkpointer *c)
{
    char note[AUDIT_NOTE_MAX];
    struct audit_cp cp;
    int stored = 0;
    if (sign_now(c, &cp, note, sizeof(note)) < 0)
        return;
    if (audit_store_checkpoint(c->pool, c->keys, c->conf.interval_ms, cp.chain_seq, cp.chain_hash,
                               note, &stored) == RREPLY_OK &&
        stored) {
        metric_inc(c->m_total);
        log_info(NULL, "checkpoint stored", LF_I("seq", cp.chain_seq), LF_S("hash", cp.chain_hash));
    }
}

static void *checkpointer_main(void *arg)
{
    struct audit_checkpointer *c = arg;
    /* Tick several times per interval so the first instance to see a new interval fills
     * it soon after it starts; the script keeps it to one per interval. */
    int64_t period = c->conf.interval_ms / 4;
    if (period < 100)
        period = 100;
    if (period > 5000)
        period = 5000;
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        pthread_mutex_unlock(&c->mu);
        tick(c);
        pthread_mutex_lock(&c->mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += period / 1000;
        until.tv_nsec += (period % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        while (!c->stopping && pthread_cond_timedwait(&c->cv, &c->mu, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

struct audit_checkpointer *audit_checkpointer_start(struct rpool *p, const struct audit_keys *k,
                                                    const struct audit_key *key,
                                                    struct audit_guard *g,
                                                    const struct audit_checkpointer_config *conf,
                                                    struct metrics *m)
{
    struct audit_checkpointer *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->pool = p;
    c->keys = k;
    c->key = key;
    c->guard = g;
    c->conf = *conf;
    c->m_total = metric_with(
        metrics_counter(m, "checkpoints_total", "Periodic checkpoints stored", NULL), NULL);
    c->m_witness_errors = metric_with(
        metrics_counter(m, "witness_errors_total",
                        "Signed checkpoints that could not be written to the witness directory",
                        NULL),
        NULL);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->wmu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (conf->interval_ms > 0 && pthread_create(&c->thread, NULL, checkpointer_main, c) != 0) {
        free(c);
        return NULL;
    }
    if (conf->interval_ms <= 0)
        c->stopping = 1;
    return c;
}

void audit_checkpointer_stop(struct audit_checkpointer *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    int running = !c->stopping;
    c->stopping = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (running)
        pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->wmu);
    pthread_cond_destroy(&c->cv);
    free(c);
}
