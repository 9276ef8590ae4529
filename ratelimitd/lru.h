/* SPDX-License-Identifier: Apache-2.0 */
/* lru: a bounded in-memory map from a byte-string key to four integers, evicting the least
 * recently used entry when full. Backs the deny cache and the local fallback limiter, so
 * that a flood of distinct keys cannot grow memory past RATELIMIT_LOCAL_MAX_KEYS.
 * Every operation is O(1) on average. A shared map is thread-safe (one mutex); a map of
 * one thread (a worker's deny cache) takes no lock and is used by that thread only, but
 * for rl_lru_count, which any thread may call. */
#ifndef RATELIMITD_LRU_H
#define RATELIMITD_LRU_H

#include <stddef.h>
#include <stdint.h>

struct rl_lru;

/* What an update callback wants done with the entry. */
enum rl_lru_action { RL_LRU_KEEP, RL_LRU_STORE, RL_LRU_DELETE };

enum rl_lru_mode {
    RL_LRU_SHARED,     /* used from any thread: every operation under the map's mutex */
    RL_LRU_ONE_THREAD, /* used by one thread only: no lock */
};

/* capacity >= 1. Returns NULL when out of memory. */
struct rl_lru *rl_lru_create(size_t capacity, enum rl_lru_mode mode);
void rl_lru_free(struct rl_lru *l); /* NULL does nothing */

/* Atomically read-modify-write one entry: fn gets the current values (found = 0 and all
 * values 0 when absent), may change them, and says what to do. fn runs under the lock:
 * keep it short and do not call back into the map. Returns what fn returned. */
#define RL_LRU_VALUES 4
typedef enum rl_lru_action (*rl_lru_fn)(int64_t v[RL_LRU_VALUES], int found, void *ctx);
enum rl_lru_action rl_lru_update(struct rl_lru *l, const char *key, size_t len, rl_lru_fn fn,
                                 void *ctx);

/* Plain get (1 found, 0 absent), put (insert or overwrite; may evict), delete. */
int rl_lru_get(struct rl_lru *l, const char *key, size_t len, int64_t v[RL_LRU_VALUES]);
void rl_lru_put(struct rl_lru *l, const char *key, size_t len, const int64_t v[RL_LRU_VALUES]);
void rl_lru_delete(struct rl_lru *l, const char *key, size_t len);
void rl_lru_clear(struct rl_lru *l);
/* Entries now; any thread, either mode (a relaxed read: exact once the map is quiet). */
size_t rl_lru_count(struct rl_lru *l);

#endif
