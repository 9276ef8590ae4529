/* SPDX-License-Identifier: Apache-2.0 */
/* appender: the one writer of a chain within a process. It runs an event loop on a thread
 * of its own, with its own Redis client (redis_client.h). Requests are posted to it from
 * any thread; what arrived during one turn of its loop (and while the previous call was in
 * flight), up to AUDIT_BATCH_MAX requests, is built on the head it knows, signed and
 * committed with one audit_append.lua compare-and-set (group commit). On a conflict
 * (another instance moved the head) it rebuilds the batch on the new head and tries again.
 * The same script call refuses a chain that no longer holds the guard's floor (guard.h).
 * A request is answered (its done function called, on the appender's thread) only once
 * its entries are in Redis and the floor is remembered, or the attempt failed. */
#ifndef AUDIT_APPENDER_H
#define AUDIT_APPENDER_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "entry.h"
#include "guard.h"
#include "keyring.h"
#include "shared/metrics.h"
#include "shared/redis_client.h"
#include "store.h"

enum audit_item_state {
    AUDIT_ITEM_PENDING = 0,
    AUDIT_ITEM_APPENDED,  /* entry holds the new entry */
    AUDIT_ITEM_DUPLICATE, /* event_id seen: dup_seq is the existing entry */
};

struct audit_item {
    json_t *event; /* validated event (borrowed from the caller) */
    enum audit_item_state state;
    long long dup_seq;
    struct audit_item *dup_of; /* same event_id earlier in the same commit */
    struct audit_entry entry;
};

enum audit_append_status {
    AUDIT_APPEND_OK = 0,
    AUDIT_APPEND_UNAVAILABLE, /* Redis unreachable or timed out: outcome unknown */
    AUDIT_APPEND_INTERNAL,    /* Redis answered an error (a bug, or a broken data set) */
    AUDIT_APPEND_BROKEN,      /* head and log disagree: nothing appended */
    AUDIT_APPEND_REFUSED,     /* the chain does not hold the guard's floor: nothing appended */
    AUDIT_APPEND_STATE,       /* appended, but AUDIT_STATE_DIR could not be written */
};

struct audit_request;

/* Called once when req is answered (status, replicas_acked and each item's state and entry
 * set), on req->loop's thread (the requests of one commit for one loop in one post), or on
 * the appender's. It may free req. */
typedef void (*audit_request_done_fn)(struct audit_request *req);

struct audit_request {
    struct audit_item *items;
    size_t n;
    enum audit_append_status status;
    long long replicas_acked;
    int accept; /* an operator's accept: see audit_appender_accept */
    audit_request_done_fn done;
    void *arg;         /* the caller's */
    struct loop *loop; /* done runs on this loop's thread; NULL: on the appender's */
    /* private to the appender */
    struct audit_appender *ap;
    struct audit_request *next;
};

struct audit_appender_config {
    int batch_max; /* requests per compare-and-set */
    int64_t dedup_window_ms;
    int wait_replicas; /* 0: no WAIT */
    int64_t wait_timeout_ms;
};

struct audit_appender;

/* Starts the appender's thread and loop, with a client of rconf (one connection is
 * enough). kr must hold an active signing key; everything is borrowed for the appender's
 * life. NULL with the reason in err on failure. */
struct audit_appender *audit_appender_create(const struct rcl_config *rconf,
                                             const struct audit_keys *k,
                                             const struct audit_keyring *kr, struct audit_guard *g,
                                             const struct audit_appender_config *conf,
                                             struct metrics *m, char *err, size_t errsize);

/* Queue req (items filled, state pending, done set; req and its items stay the caller's
 * until done runs). Thread-safe and never blocks. Returns 0, or -1 when out of memory
 * (done will not run). */
int audit_appender_submit(struct audit_appender *ap, struct audit_request *req);

/* Queue req and wait for its answer (startup, and callers that may block). */
void audit_appender_submit_wait(struct audit_appender *ap, struct audit_request *req);

/* Check that the head and the log agree (head seq = last entry's seq and head hash = its
 * hash, or both empty), and wait for the answer (startup). Returns 0; -1 with the
 * mismatch in err; -2 if Redis is down. */
int audit_appender_check(struct audit_appender *ap, char *err, size_t errsize);

/* Finish what is queued, stop the thread, free. No request may be submitted from then on.
 * NULL does nothing. */
void audit_appender_free(struct audit_appender *ap);

#endif
