/* SPDX-License-Identifier: Apache-2.0 */
/* wait: claims that asked for wait_ms while their key was in flight. Each is parked on the
 * event loop of its request (http_suspend), holding no thread: a timer re-runs the claim
 * against Redis on that loop, every IDEM_WAIT_POLL_MS at first and backing off to
 * IDEM_WAIT_POLL_MAX_MS, and the claim is answered as soon as the key is completed,
 * released or taken over, or when its wait ends. Claims parked on one loop for the same
 * record and request share one re-check while it is undecided, so a hundred duplicates
 * waiting on one key cost one script per tick.
 *
 * One struct idem_waiters per loop, used on that loop's thread only; struct idem_wait_set
 * gathers them for the drain at shutdown (its functions are thread-safe). */
#ifndef IDEMD_WAIT_H
#define IDEMD_WAIT_H

#include <stdint.h>

#include "request.h"
#include "shared/http.h"
#include "shared/loop.h"
#include "shared/redis_client.h"
#include "store.h"

/* The first re-check of a parked claim, and the longest interval between two. */
#define IDEM_WAIT_POLL_MS 20
#define IDEM_WAIT_POLL_MAX_MS 100

/* Renders the final answer of a parked claim: cls and res as given to an idem_store_done_fn
 * (res valid during the call only). The waiter then calls http_resume(). */
typedef void (*idem_wait_answer_fn)(struct http_req *r, const struct idem_claim_in *in,
                                    enum rreply_class cls, const struct idem_result *res,
                                    void *arg);

struct idem_wait_set;
struct idem_waiters;

/* The set of every loop's waiters, answered by answer(..., arg). Returns NULL when out of
 * memory. */
struct idem_wait_set *idem_wait_set_create(idem_wait_answer_fn answer, void *arg);
/* After every loop has stopped. NULL does nothing. */
void idem_wait_set_free(struct idem_wait_set *set);

/* The waiters of loop l (on l's thread, before it serves), added to set; their re-checks
 * go through store, the store's part of l. Returns NULL when out of memory. */
struct idem_waiters *idem_waiters_create(struct idem_wait_set *set, struct loop *l,
                                         struct idem_store_loop *store);
/* On the loop's thread, once it serves no more: take w out of its set and free it (a claim
 * still parked then is dropped unanswered, its connection being gone). NULL does nothing. */
void idem_waiters_free(struct idem_waiters *w);

/* Park r (suspended; the caller answers nothing itself) until the claim in (copied; the
 * strings it points to live as long as r) is decided or wait_ms passed. token is the lease
 * token this claim would get; c the loop's Redis client. On w's loop. Returns 0, or -1
 * when out of memory or draining (the caller answers then). */
int idem_waiters_park(struct idem_waiters *w, struct rclient *c, struct http_req *r,
                      const struct idem_claim_in *in, const char *token, int64_t wait_ms);

/* Shutdown begins (from any thread, e.g. app_on_drain's): every loop gives each parked
 * claim one last check and answers it at once (usually 409 with Retry-After, so the caller
 * retries elsewhere) instead of holding the drain for up to wait_ms; a claim that would
 * park afterwards is answered at once. */
void idem_wait_set_drain(struct idem_wait_set *set);

#endif
