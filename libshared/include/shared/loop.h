/* SPDX-License-Identifier: Apache-2.0 */
/* loop: an event loop for one thread — descriptors watched with epoll, timers, work
 * deferred to the end of the current turn, and work posted from other threads.
 *
 * A turn: wait for events (bounded by the nearest timer), run the callbacks of the ready
 * descriptors, run the expired timers, then run everything deferred during the turn
 * (loop_defer) — which is where batched output is written: the commands a turn produced
 * leave in one write. Nothing in a loop blocks; a callback that needs to wait arms a
 * timer or watches a descriptor and returns.
 *
 * Everything but loop_post() and loop_stop() must be called on the loop's own thread. */
#ifndef WARDEN_LOOP_H
#define WARDEN_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct loop;

/* Readiness, as passed to a watcher (several may be set). */
#define LOOP_READ 0x1u
#define LOOP_WRITE 0x2u
#define LOOP_ERROR 0x4u /* error or hang-up: reading or writing will say which */

/* A watched descriptor. Owned by the caller, who keeps it alive while it is watched. */
struct loop_io {
    int fd;
    unsigned events; /* LOOP_READ and/or LOOP_WRITE being watched */
    void (*fn)(struct loop_io *io, unsigned ready);
    void *arg;
};

/* A one-shot timer. Owned by the caller; zero-initialised or stopped, it is not armed. */
struct loop_timer {
    int64_t at_ms; /* when it fires, on loop_now_ms()'s clock */
    size_t slot;   /* its place in the loop's heap, + 1; 0 when not armed */
    void (*fn)(struct loop_timer *t);
    void *arg;
};

/* Work to run at the end of the current turn (or of the next one, when deferred from
 * outside a turn). Owned by the caller; deferring it again before it ran does nothing. */
struct loop_task {
    struct loop_task *next;
    int queued;
    void (*fn)(struct loop_task *t);
    void *arg;
};

/* A new loop, or NULL with the reason in err. */
struct loop *loop_create(char *err, size_t errsize);
/* Free the loop (not running). Watchers, timers and tasks are the callers'. NULL is fine. */
void loop_free(struct loop *l);

/* Run turns until loop_stop(). Returns 0, or -1 if epoll failed. */
int loop_run(struct loop *l);
/* Ask the loop to return from loop_run after the current turn. Thread-safe. */
void loop_stop(struct loop *l);

/* The time of this turn's start, in monotonic milliseconds: one clock read per turn. */
int64_t loop_now_ms(const struct loop *l);
/* Read the clock again (after long work within a turn). */
int64_t loop_update_now(struct loop *l);

/* Watch io->fd for events (LOOP_READ, LOOP_WRITE). Level-triggered. Returns 0 or -1. */
int loop_io_start(struct loop *l, struct loop_io *io, unsigned events);
/* Change what is watched; no system call when it is what is watched already. */
int loop_io_set(struct loop *l, struct loop_io *io, unsigned events);
/* Stop watching (before closing the descriptor). Safe for an io not watched. Its events
 * not yet run in this turn are dropped, so io may be freed right after. */
void loop_io_stop(struct loop *l, struct loop_io *io);

/* Arm t to fire after_ms from this turn's time (re-arming moves it). */
void loop_timer_start(struct loop *l, struct loop_timer *t, int64_t after_ms);
/* Disarm t; harmless if it is not armed. */
void loop_timer_stop(struct loop *l, struct loop_timer *t);
/* Is t armed? */
int loop_timer_armed(const struct loop_timer *t);

/* Run t at the end of this turn, after the ready descriptors and the timers. */
void loop_defer(struct loop *l, struct loop_task *t);
/* Take t back if it is deferred and has not run (before freeing it). */
void loop_cancel(struct loop *l, struct loop_task *t);

/* Run fn(arg) on the loop's thread, from any thread. Wakes the loop. Returns 0, or -1 if
 * out of memory. */
int loop_post(struct loop *l, void (*fn)(void *arg), void *arg);

/* Counters for metrics and tests: turns run, and descriptor events handled. */
struct loop_stats {
    uint64_t turns;
    uint64_t events;
};
void loop_stats(const struct loop *l, struct loop_stats *out);

#endif
