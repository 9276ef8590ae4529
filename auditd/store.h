/* SPDX-License-Identifier: Apache-2.0 */
/* store: reading a chain from Redis — its key names, the head, ranges of entries, the
 * key-version table. Writes go through the appender (audit_append.lua) only. */
#ifndef AUDIT_STORE_H
#define AUDIT_STORE_H

#include <jansson.h>

#include "entry.h"
#include "shared/redis_pool.h"

#define AUDIT_CHAIN_MAX 64

/* The Redis keys of one chain; {<chain>} keeps them in one cluster slot. tile is the
 * prefix of the tree's tile keys (tree.h), trim the record of what was trimmed. */
struct audit_keys {
    char head[96], log[96], ids[96], idseq[96], keys[96], checkpoints[112], tile[96], trim[96];
};

/* Is name a valid chain name ([a-z0-9_.-]{1,64})? */
int audit_chain_valid(const char *name);
void audit_keys_init(struct audit_keys *k, const char *chain);

/* Read the head. *exists is 0 when the head key is absent (then seq 0, zero hash).
 * Returns RPOOL_OK or the failure. */
enum rpool_status audit_store_head(struct rpool *p, const struct audit_keys *k, long long *seq,
                                   char hash[AUDIT_HASH_HEX_LEN + 1], int *exists);

/* The seq of the last log entry (0 when empty). */
enum rpool_status audit_store_last_seq(struct rpool *p, const struct audit_keys *k, long long *seq);

/* Up to max entries with from <= seq <= to (to < 0: no bound) into out[] (each filled from
 * the stored fields and the parsed body; entries whose body does not parse keep ts/kv/
 * prev empty). *n is how many. Caller clears each entry. Stream ids that are not
 * "<seq>-0" are skipped. */
enum rpool_status audit_store_range(struct rpool *p, const struct audit_keys *k, long long from,
                                    long long to, size_t max, struct audit_entry *out, size_t *n);

/* The key-version table as a JSON object version -> first seq (new reference). */
enum rpool_status audit_store_key_table(struct rpool *p, const struct audit_keys *k, json_t **out);

/* Fill e from a stored stream entry: seq, body, hash, sig, and from the body prev, ts and
 * kv (left empty when the body does not parse). Returns 0, or -1 out of memory. */
int audit_entry_from_stored(struct audit_entry *e, long long seq, const char *body, size_t body_len,
                            const char *hash, const char *sig);

#endif
