/* SPDX-License-Identifier: Apache-2.0 */
/* query: how store.c runs a Redis call — commands sent together, in one round trip, and a
 * function that fills the caller's outputs from their replies — on a loop's client
 * (redis_client.h): the reply comes later, on the loop's thread, or, for blocking callers
 * (the tools, startup, a verification), the caller's own loop is run until it is in. Every
 * outcome is classified by redis_reply.h. A query is used by one thread. */
#ifndef AUDIT_QUERY_H
#define AUDIT_QUERY_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/loop.h"
#include "shared/redis_client.h"
#include "shared/redis_reply.h"
#include "shared/script.h"

/* One command: argv[0..argc) (argvlen NULL: NUL-terminated strings); with script set,
 * EVALSHA of it, argv starting with its nkeys keys. */
struct audit_cmd {
    const struct script *script;
    int nkeys;
    int argc;
    const char *const *argv;
    const size_t *argvlen;
};

/* What an asynchronous call reports once its replies are in: their class. The outputs it
 * was given are filled when c is RREPLY_OK. Runs on the client's loop. */
typedef void (*audit_done_fn)(void *arg, enum rreply_class c);

#define AUDIT_QUERY_CMDS 2 /* commands of a query with a fixed shape */
#define AUDIT_QUERY_ARGS 7 /* arguments of one such command */

/* A command of a query on a loop's client. */
struct audit_query_slot {
    struct audit_query *q;
    size_t i;
};

/* Commands sent together, in one round trip, and how their replies fill the caller's
 * outputs. Run and waited for, a query lives on the caller's stack; sent, on the heap
 * until its last reply. */
struct audit_query {
    struct audit_cmd fixed[AUDIT_QUERY_CMDS];
    const char *argv[AUDIT_QUERY_CMDS][AUDIT_QUERY_ARGS];
    struct audit_cmd *cmd; /* fixed, or allocated (a tile fetch: in mem) */
    size_t n;
    int64_t timeout_ms;         /* <= 0: REDIS_COMMAND_TIMEOUT */
    char num[4][128];           /* numbers and key names the arguments hold */
    void *mem[4];               /* allocations freed with the query */
    void (*cleanup)(void *arg); /* called when the query is freed (may be NULL) */
    void *cleanup_arg;
    int failed; /* out of memory while building: not sent */
    int keep;   /* not on the heap: audit_query_send does not free it */
    /* Fills the outputs from the replies (each one classified ok); returns the class. */
    enum rreply_class (*parse)(struct audit_query *q, redisReply **r);
    void *out[4];
    long long max; /* a range's most entries */
    /* on a loop's client */
    struct rclient *rc;
    redisReply **replies;
    struct audit_query_slot *slots;
    size_t left;
    enum rreply_class c;
    audit_done_fn fn;
    void *fn_arg;
};

/* Add a command of argc string arguments (which must outlive the sending) to q. */
void audit_query_add(struct audit_query *q, int argc, ...);

/* A query on the heap for audit_query_send, or NULL. */
struct audit_query *audit_query_new(void);

/* Send q (from audit_query_new; NULL is refused) on rc: its commands leave at the end of
 * the loop's turn; once every reply is in, parse fills the outputs, q is freed, and
 * fn(arg, class) runs on the loop. An empty query still makes a round trip (PING), so fn
 * never runs inside this call. Returns 0, or -1 with q freed and fn not to be called (out
 * of memory). */
int audit_query_send(struct rclient *rc, struct audit_query *q, audit_done_fn fn, void *arg);

/* Where blocking calls run (the tools, startup, a verification): a loop of the calling
 * thread's own and its client; each call runs the loop until its replies are in. Used by
 * one thread at a time. */
struct audit_db {
    struct loop *loop;
    struct rclient *rc;
};

/* Open db with a client of rconf. Returns 0, or -1 with the reason in err. */
int audit_db_open(struct audit_db *db, const struct rcl_config *rconf, char *err, size_t errsize);
/* Close db (a db not open, or NULL, is fine). */
void audit_db_close(struct audit_db *db);

/* Run q (q on the caller's stack) on db and wait; parse fills the outputs. Frees what q
 * holds. Returns the class of the outcome (RREPLY_INTERNAL when it could not be sent). */
enum rreply_class audit_query_run(struct audit_db *db, struct audit_query *q);

#endif
