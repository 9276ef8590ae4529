/* SPDX-License-Identifier: Apache-2.0 */
/* store: auditd's Redis — the key names of a chain, the scripts it runs, and every command
 * and script call that reads or writes them: the head (with the Merkle tree beside it),
 * ranges of entries, the key-version table, tiles, the trim record, the append and
 * checkpoint compare-and-sets. No other file of the daemon names a key or a script: the
 * trim (audit_trim.lua) is audit-trim's, under a Redis user of its own (trim.c).
 *
 * Every outcome is classified by redis_reply.h: RREPLY_OK, RREPLY_UNAVAILABLE (answer 503
 * backend_unavailable) or RREPLY_INTERNAL (an error reply, or a reply of a shape auditd
 * never writes: 500).
 *
 * A call comes in two forms: audit_store_X runs on a db (query.h: the caller's own loop
 * and client, run until the reply is in — the tools, startup, a verification) and returns
 * the class; audit_store_X_async sends on a loop's client and returns 0 (fn(arg, class)
 * runs later on the loop, once the outputs are filled; they must stay valid until then)
 * or -1 when out of memory (fn will not run). A db or a client is used by one thread. */
#ifndef AUDIT_STORE_H
#define AUDIT_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "entry.h"
#include "query.h"
#include "shared/redis_reply.h"
#include "shared/script.h"

#define AUDIT_CHAIN_MAX 64

/* The scripts the daemon loads at start (NULL-terminated). */
extern const struct script *const AUDIT_STORE_SCRIPTS[];

/* The Redis keys of one chain; {<chain>} keeps them in one cluster slot. tile is the
 * prefix of the tree's tile keys (tree.h), trim the record of what was trimmed. */
struct audit_keys {
    char head[96], log[96], ids[96], idseq[96], keys[96], checkpoints[112], tile[96], trim[96];
};

/* Is name a valid chain name ([a-z0-9_.-]{1,64})? */
int audit_chain_valid(const char *name);
void audit_keys_init(struct audit_keys *k, const char *chain);
/* The key of tile (level, index) into out. */
void audit_tile_key(const struct audit_keys *k, int level, long long index, char *out, size_t size);

/* ---- the chain ---- */

/* Read the head. *exists is 0 when the head key is absent (then seq 0, zero hash). */
enum rreply_class audit_store_head(struct audit_db *p, const struct audit_keys *k, long long *seq,
                                   char hash[AUDIT_HASH_HEX_LEN + 1], int *exists);
int audit_store_head_async(struct rclient *rc, const struct audit_keys *k, long long *seq,
                           char hash[AUDIT_HASH_HEX_LEN + 1], int *exists, audit_done_fn fn,
                           void *arg);

/* The seq of the last log entry (0 when empty). */
enum rreply_class audit_store_last_seq(struct audit_db *p, const struct audit_keys *k,
                                       long long *seq);

/* The head (as audit_store_head) and the last log entry's seq in one round trip. */
int audit_store_ends_async(struct rclient *rc, const struct audit_keys *k, long long *head_seq,
                           char hash[AUDIT_HASH_HEX_LEN + 1], int *exists, long long *last_seq,
                           audit_done_fn fn, void *arg);

/* Up to max entries with from <= seq <= to (to < 0: no bound) into out[] (each filled from
 * the stored fields and the parsed body; entries whose body does not parse keep ts/kv/
 * prev empty). *n is how many. Caller clears each entry. Stream ids that are not
 * "<seq>-0" are skipped. */
enum rreply_class audit_store_range(struct audit_db *p, const struct audit_keys *k, long long from,
                                    long long to, size_t max, struct audit_entry *out, size_t *n);
int audit_store_range_async(struct rclient *rc, const struct audit_keys *k, long long from,
                            long long to, size_t max, struct audit_entry *out, size_t *n,
                            audit_done_fn fn, void *arg);

/* The key-version table as a JSON object version -> first seq (new reference, also on
 * failure). */
enum rreply_class audit_store_key_table(struct audit_db *p, const struct audit_keys *k,
                                        json_t **out);
int audit_store_key_table_async(struct rclient *rc, const struct audit_keys *k, json_t **out,
                                audit_done_fn fn, void *arg);

/* The first seq Redis still holds after audit-trim (1 when nothing was trimmed). */
enum rreply_class audit_store_first_seq(struct audit_db *p, const struct audit_keys *k,
                                        long long *first);
int audit_store_first_seq_async(struct rclient *rc, const struct audit_keys *k, long long *first,
                                audit_done_fn fn, void *arg);

/* Fill e from a stored stream entry: seq, body, hash, sig, and from the body prev, ts and
 * kv (left empty when the body does not parse). Returns 0, or -1 out of memory. */
int audit_entry_from_stored(struct audit_entry *e, long long seq, const char *body, size_t body_len,
                            const char *hash, const char *sig);

/* ---- the tree (tree.h) ---- */

struct audit_head;
struct audit_tileset;

/* Read the head and its tree in one HMGET. */
enum rreply_class audit_store_tree_head(struct audit_db *p, const struct audit_keys *k,
                                        struct audit_head *h);
int audit_store_tree_head_async(struct rclient *rc, const struct audit_keys *k,
                                struct audit_head *h, audit_done_fn fn, void *arg);

/* The head (as audit_store_tree_head) and the stored hash of entry at_seq (at_seq 0: not
 * read) in one round trip (pipelined). hash_at is "" when there is no such entry. */
enum rreply_class audit_store_head_at(struct audit_db *p, const struct audit_keys *k,
                                      long long at_seq, struct audit_head *h,
                                      char hash_at[AUDIT_HASH_HEX_LEN + 1]);
int audit_store_head_at_async(struct rclient *rc, const struct audit_keys *k, long long at_seq,
                              struct audit_head *h, char hash_at[AUDIT_HASH_HEX_LEN + 1],
                              audit_done_fn fn, void *arg);

/* Fill every tile of s from Redis in one pipelined round trip; a tile that holds fewer
 * hashes than its width (trimmed, or never written) keeps data NULL. With head (may be
 * NULL), the head and its tree are read in the same round trip. */
enum rreply_class audit_store_tiles(struct audit_db *p, const struct audit_keys *k,
                                    struct audit_tileset *s, struct audit_head *head);
int audit_store_tiles_async(struct rclient *rc, const struct audit_keys *k, struct audit_tileset *s,
                            struct audit_head *head, audit_done_fn fn, void *arg);

/* The first width hashes of tile (level, index) into out. Returns 1 read, 0 if the tile is
 * empty or absent, -1 if Redis failed or holds another length. */
int audit_store_tile(struct audit_db *p, const struct audit_keys *k, int level, long long index,
                     int width, uint8_t *out);

/* ---- the append compare-and-set (audit_append.lua) ---- */

struct audit_item;
struct audit_floor;
struct audit_tree_delta;

struct audit_append_args {
    const struct audit_keys *keys;
    long long head_seq; /* the head the batch is built on */
    const char *head_hash;
    long long tree_size; /* the tree size the delta starts from */
    const struct audit_floor *floor;
    int64_t dedup_window_ms;
    const char *key_version; /* of the batch */
    int activation;          /* items[0] is its audit.key_activated */
    struct audit_item *const *items;
    size_t n; /* 0: the tree catching up with older entries */
    const struct audit_tree_delta *delta;
};

/* Run the script. On RREPLY_OK *reply is its array reply with a first word (caller frees).
 * What a points into (items, delta, floor, head hash) must stay as it is until fn runs. */
int audit_store_append_async(struct rclient *rc, const struct audit_append_args *a,
                             redisReply **reply, audit_done_fn fn, void *arg);

/* WAIT replicas wait_ms (within timeout_ms): *acked is how many replicas have every write
 * of the connection so far. */
int audit_store_wait_async(struct rclient *rc, int replicas, int64_t wait_ms, int64_t timeout_ms,
                           long long *acked, audit_done_fn fn, void *arg);

/* The reply's first word ("" if not a string). */
const char *audit_reply_word(const redisReply *r);
/* Element i as a number (an integer, or a decimal string); 0 if absent. */
long long audit_reply_int(const redisReply *r, size_t i);

/* ---- checkpoints ---- */

/* Store a signed note for the head (seq, hash) unless one was stored in this interval
 * (audit_checkpoint.lua). *stored is 1 when this note was. */
enum rreply_class audit_store_checkpoint(struct audit_db *p, const struct audit_keys *k,
                                         int64_t interval_ms, long long seq, const char *hash,
                                         const char *note, int *stored);
int audit_store_checkpoint_async(struct rclient *rc, const struct audit_keys *k,
                                 int64_t interval_ms, long long seq, const char *hash,
                                 const char *note, int *stored, audit_done_fn fn, void *arg);

/* The note of the last stored checkpoint into note (size bytes). Returns its length, 0 if
 * there is none, -1 if Redis failed or it does not fit. */
int audit_store_last_checkpoint(struct audit_db *p, const struct audit_keys *k, char *note,
                                size_t size);

#endif
