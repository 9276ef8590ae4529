/* SPDX-License-Identifier: Apache-2.0 */
/* store: chain reads from Redis (head, log ranges, key-version table). */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int audit_chain_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > AUDIT_CHAIN_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
              ch == '-'))
            return 0;
    }
    return 1;
}

void audit_keys_init(struct audit_keys *k, const char *chain)
{
    snprintf(k->head, sizeof(k->head), "audit:{%s}:head", chain);
    snprintf(k->log, sizeof(k->log), "audit:{%s}:log", chain);
    snprintf(k->ids, sizeof(k->ids), "audit:{%s}:ids", chain);
    snprintf(k->idseq, sizeof(k->idseq), "audit:{%s}:idseq", chain);
    snprintf(k->keys, sizeof(k->keys), "audit:{%s}:keys", chain);
    snprintf(k->checkpoints, sizeof(k->checkpoints), "audit:{%s}:checkpoints", chain);
    snprintf(k->tile, sizeof(k->tile), "audit:{%s}:tile:", chain);
    snprintf(k->trim, sizeof(k->trim), "audit:{%s}:trim", chain);
}

/* An HMGET seq hash reply into seq, hash and exists (absent head: 0, zero hash). */
static enum rpool_status parse_head(const redisReply *r, long long *seq,
                                    char hash[AUDIT_HASH_HEX_LEN + 1], int *exists)
{
    *seq = 0;
    *exists = 0;
    memcpy(hash, AUDIT_ZERO_HASH, AUDIT_HASH_HEX_LEN + 1);
    if (r->type != REDIS_REPLY_ARRAY)
        return RPOOL_REPLY_ERROR;
    if (r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        *seq = atoll(r->element[0]->str);
        snprintf(hash, AUDIT_HASH_HEX_LEN + 1, "%s", r->element[1]->str);
        *exists = 1;
    }
    return RPOOL_OK;
}

enum rpool_status audit_store_head(struct rpool *p, const struct audit_keys *k, long long *seq,
                                   char hash[AUDIT_HASH_HEX_LEN + 1], int *exists)
{
    const char *argv[] = {"HMGET", k->head, "seq", "hash"};
    redisReply *r = NULL;
    enum rpool_status st = rpool_command(p, 4, argv, NULL, 0, &r);
    *seq = 0;
    *exists = 0;
    memcpy(hash, AUDIT_ZERO_HASH, AUDIT_HASH_HEX_LEN + 1);
    if (st == RPOOL_OK)
        st = parse_head(r, seq, hash, exists);
    freeReplyObject(r);
    return st;
}

enum rpool_status audit_store_last_seq(struct rpool *p, const struct audit_keys *k, long long *seq)
{
    const char *argv[] = {"XREVRANGE", k->log, "+", "-", "COUNT", "1"};
    redisReply *r = NULL;
    enum rpool_status st = rpool_command(p, 6, argv, NULL, 0, &r);
    *seq = 0;
    if (st == RPOOL_OK && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2)
        *seq = atoll(r->element[0]->element[0]->str);
    else if (st == RPOOL_OK && r->type != REDIS_REPLY_ARRAY)
        st = RPOOL_REPLY_ERROR;
    freeReplyObject(r);
    return st;
}

int audit_entry_from_stored(struct audit_entry *e, long long seq, const char *body, size_t body_len,
                            const char *hash, const char *sig)
{
    long long body_seq;
    memset(e, 0, sizeof(*e));
    e->seq = seq;
    snprintf(e->hash, sizeof(e->hash), "%s", hash ? hash : "");
    snprintf(e->sig, sizeof(e->sig), "%s", sig ? sig : "");
    e->body = malloc(body_len + 1);
    if (!e->body)
        return -1;
    memcpy(e->body, body, body_len);
    e->body[body_len] = '\0';
    e->body_len = body_len;
    if (audit_body_parse(body, body_len, &body_seq, e->prev, e->ts, e->kv, NULL) != 0) {
        e->prev[0] = e->ts[0] = e->kv[0] = '\0';
    }
    return 0;
}

/* One stream entry [id, [field, value, ...]] into e. Returns 1 filled, 0 skipped. */
static int stream_entry(const redisReply *it, struct audit_entry *e)
{
    const redisReply *f;
    const char *body = NULL, *hash = NULL, *sig = NULL;
    size_t body_len = 0;
    char *end;
    if (it->type != REDIS_REPLY_ARRAY || it->elements != 2)
        return 0;
    long long seq = strtoll(it->element[0]->str, &end, 10);
    if (strcmp(end, "-0") != 0)
        return 0;
    f = it->element[1];
    for (size_t j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2) {
        const char *name = f->element[j]->str;
        const redisReply *v = f->element[j + 1];
        if (strcmp(name, "body") == 0) {
            body = v->str;
            body_len = v->len;
        } else if (strcmp(name, "hash") == 0) {
            hash = v->str;
        } else if (strcmp(name, "sig") == 0) {
            sig = v->str;
        }
    }
    if (audit_entry_from_stored(e, seq, body ? body : "", body_len, hash, sig) != 0)
        return 0;
    return 1;
}

enum rpool_status audit_store_range(struct rpool *p, const struct audit_keys *k, long long from,
                                    long long to, size_t max, struct audit_entry *out, size_t *n)
{
    char start[32], end[32], count[24];
    snprintf(start, sizeof(start), "%lld-0", from);
    if (to < 0)
        snprintf(end, sizeof(end), "+");
    else
        snprintf(end, sizeof(end), "%lld-0", to);
    snprintf(count, sizeof(count), "%zu", max);
    const char *argv[] = {"XRANGE", k->log, start, end, "COUNT", count};
    redisReply *r = NULL;
    enum rpool_status st = rpool_command(p, 6, argv, NULL, 0, &r);
    *n = 0;
    if (st == RPOOL_OK && r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements && *n < max; i++)
            *n += (size_t)stream_entry(r->element[i], &out[*n]);
    } else if (st == RPOOL_OK) {
        st = RPOOL_REPLY_ERROR;
    }
    freeReplyObject(r);
    return st;
}

enum rpool_status audit_store_key_table(struct rpool *p, const struct audit_keys *k, json_t **out)
{
    const char *argv[] = {"HGETALL", k->keys};
    redisReply *r = NULL;
    enum rpool_status st = rpool_command(p, 2, argv, NULL, 0, &r);
    *out = json_object();
    if (st == RPOOL_OK && r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            json_object_set_new(*out, r->element[i]->str,
                                json_integer(atoll(r->element[i + 1]->str)));
    } else if (st == RPOOL_OK) {
        st = RPOOL_REPLY_ERROR;
    }
    freeReplyObject(r);
    return st;
}
