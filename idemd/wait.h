/* SPDX-License-Identifier: Apache-2.0 */
/* wait: claims that asked for wait_ms while their key was in flight. Their
 * connections are suspended (http_suspend), so waiting holds no HTTP worker; one thread
 * re-runs every waiting claim against Redis at a short interval (all of them pipelined in
 * one round trip) and answers each as soon as the key is completed, released or taken
 * over, or when its wait ends. Thread-safe. */
#ifndef IDEMD_WAIT_H
#define IDEMD_WAIT_H

#include <stdint.h>

#include "request.h"
#include "shared/http.h"
#include "store.h"

/* How often the waiting claims are re-checked. */
#define IDEM_WAIT_POLL_MS 20

/* Renders the final answer of a waiting claim: rc is the store status, res its result
 * (valid only when rc is RREPLY_OK; the waiter frees it afterwards). The waiter then calls
 * http_resume(). */
typedef void (*idem_wait_answer_fn)(struct http_req *r, const struct idem_claim_in *in, int rc,
                                    struct idem_result *res, void *arg);

struct idem_waiter;

/* Starts the thread. Returns NULL when out of memory or threads. */
struct idem_waiter *idem_waiter_create(struct idem_store *st, idem_wait_answer_fn answer,
                                       void *arg);

/* Park r (the caller has called http_suspend and answers nothing itself) until the claim
 * in (copied; the strings it points to live as long as r) is decided or wait_ms passed.
 * token is the lease token this claim would get. Returns 0, or -1 when out of memory or
 * stopping (the caller answers then). */
int idem_waiter_add(struct idem_waiter *w, struct http_req *r, const struct idem_claim_in *in,
                    const char *token, int64_t wait_ms);

/* Claims waiting now. */
int idem_waiter_count(struct idem_waiter *w);

/* Answer whatever still waits (one last check) and stop the thread; later adds fail, so
 * their callers answer at once. For shutdown: waiting claims must not hold it up.
 * Call from one thread; a second call does nothing. */
void idem_waiter_stop(struct idem_waiter *w);

/* Stop (if not yet stopped) and free. NULL does nothing. */
void idem_waiter_free(struct idem_waiter *w);

#endif
