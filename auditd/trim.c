/* SPDX-License-Identifier: Apache-2.0 */
/* trim: archive verified, trim recorded, then entries and full tiles removed from Redis. */
#include "trim.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_client.h"
#include "archive.h"
#include "query.h"
#include "scan.h"
#include "scripts.h"
#include "tree.h"

#define KEYS_PER_CALL 1000 /* tile keys one audit_trim.lua call deletes */

/* (1) The archive covers 1..N-1 and verifies, alone, against its checkpoint. */
static int archive_verifies(struct audit_archive *a, const struct audit_keyring *kr,
                            const struct audit_trim_opts *o, char *err, size_t errsize)
{
    struct audit_scan_opts so = {.from_seq = 1, .to_seq = -1, .threads = o->threads, .tree = 1};
    struct audit_vresult res;
    const struct audit_cp *cp = audit_archive_checkpoint(a);
    if (cp->size < o->before_seq - 1) {
        snprintf(err, errsize, "the archive ends at seq %lld: it does not hold 1..%lld", cp->size,
                 o->before_seq - 1);
        return -1;
    }
    if (audit_scan_archive(a, NULL, NULL, kr, &so, &res) != RREPLY_OK || !res.ok) {
        snprintf(err, errsize, "the archive does not verify: %s at seq %lld",
                 audit_reason_name(res.reason), res.first_bad_seq);
        return -1;
    }
    return 0;
}

/* (3) auditd records the trim; the entry's seq into *seq. */
static int record(const struct audit_archive *a, const struct audit_trim_opts *o, long long *seq,
                  char *err, size_t errsize)
{
    size_t len;
    const char *note = audit_archive_note(a, &len);
    json_t *req =
        json_pack("{s:I, s:s%}", "before_seq", (json_int_t)o->before_seq, "checkpoint", note, len);
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL, *body = NULL;
    int status = 0, rc = -1;
    json_decref(req);
    if (text && audit_admin_post(o->auditd_url, "/v1/admin/trim", o->admin_token, text, 30000,
                                 &status, &body, err, errsize) == 0) {
        json_t *ans = json_loads(body, 0, NULL);
        json_t *s = json_object_get(json_object_get(ans, "entry"), "seq");
        if (status == 200 && json_is_integer(s)) {
            *seq = (long long)json_integer_value(s);
            rc = 0;
        } else {
            snprintf(err, errsize, "auditd did not record the trim: %d %.200s", status, body);
        }
        json_decref(ans);
    }
    free(text);
    free(body);
    return rc;
}

/* audit_trim.lua once: remove the entries before before_seq and the tiles named in
 * tile_keys[0..n), recording seq rec as the trim's entry; adds to *entries and *tiles what
 * was removed. Returns 0, or -1 if Redis failed. (Here, not in store.c: audit-trim runs it
 * under a Redis user of its own, which the daemon's lacks.) */
static enum rreply_class parse_trim(struct audit_query *q, redisReply **r)
{
    long long *entries = q->out[0], *tiles = q->out[1];
    if (r[0]->type != REDIS_REPLY_ARRAY || r[0]->elements != 3 ||
        r[0]->element[1]->type != REDIS_REPLY_INTEGER ||
        r[0]->element[2]->type != REDIS_REPLY_INTEGER)
        return RREPLY_INTERNAL;
    *entries += r[0]->element[1]->integer;
    *tiles += r[0]->element[2]->integer;
    return RREPLY_OK;
}

static int trim_call(struct audit_db *p, const struct audit_keys *k, long long before_seq,
                     long long rec, char (*tile_keys)[128], size_t n, long long *entries,
                     long long *tiles)
{
    struct audit_query q = {0};
    const char **argv = calloc(n + 4, sizeof(*argv));
    q.mem[0] = argv;
    q.failed = !argv;
    snprintf(q.num[0], sizeof(q.num[0]), "%lld", before_seq);
    snprintf(q.num[1], sizeof(q.num[1]), "%lld", rec);
    if (argv) {
        argv[0] = k->log;
        argv[1] = k->trim;
        for (size_t i = 0; i < n; i++)
            argv[2 + i] = tile_keys[i];
        argv[2 + n] = q.num[0];
        argv[3 + n] = q.num[1];
    }
    q.cmd = q.fixed;
    q.fixed[0] = (struct audit_cmd){
        .script = &script_audit_trim, .nkeys = (int)(2 + n), .argc = (int)(4 + n), .argv = argv};
    q.n = 1;
    q.out[0] = entries;
    q.out[1] = tiles;
    q.parse = parse_trim;
    return audit_query_run(p, &q) == RREPLY_OK ? 0 : -1;
}

/* Run audit_trim.lua over the tile keys of keys[from..to) (at least one call, which also
 * trims the log). */
static int run_script(struct audit_db *p, const struct audit_keys *k,
                      const struct audit_trim_opts *o, long long rec, char (*keys)[128],
                      size_t nkeys, struct audit_trim_result *res)
{
    for (size_t at = 0; at == 0 || at < nkeys; at += KEYS_PER_CALL) {
        size_t n = nkeys - at < KEYS_PER_CALL ? nkeys - at : KEYS_PER_CALL;
        if (trim_call(p, k, o->before_seq, rec, keys + at, n, &res->entries_removed,
                      &res->tiles_removed) != 0)
            return -1;
    }
    return 0;
}

/* The full tiles wholly before leaf n (= N - 1) and not before leaf from (already gone). */
static char (*tile_keys(const struct audit_keys *k, long long from, long long n,
                        size_t *count))[128]
{
    char(*keys)[128] = NULL;
    size_t cap = 0;
    *count = 0;
    for (int l = 0; AUDIT_MERKLE_TILE_HEIGHT * (l + 1) < 62; l++) {
        long long span = 1LL << (AUDIT_MERKLE_TILE_HEIGHT * (l + 1)); /* leaves under a tile */
        for (long long t = from / span; (t + 1) * span <= n; t++) {
            if (*count == cap) {
                cap = cap ? cap * 2 : 256;
                char(*more)[128] = realloc(keys, cap * 128);
                if (!more) {
                    free(keys);
                    return NULL;
                }
                keys = more;
            }
            audit_tile_key(k, l, t, keys[(*count)++], 128);
        }
    }
    return keys ? keys : calloc(1, 128);
}

int audit_trim(struct audit_db *p, const struct audit_keys *k, const struct audit_keyring *kr,
               const struct audit_trim_opts *o, struct audit_trim_result *res, char *err,
               size_t errsize)
{
    long long first;
    size_t nkeys = 0;
    char(*keys)[128] = NULL;
    int rc = AUDIT_TRIM_REFUSED;
    memset(res, 0, sizeof(*res));
    struct audit_archive *a = audit_archive_open(o->dir, kr, err, errsize);
    if (!a || archive_verifies(a, kr, o, err, errsize) != 0)
        goto done;
    rc = AUDIT_TRIM_FAILED;
    if (audit_store_first_seq(p, k, &first) != RREPLY_OK) {
        snprintf(err, errsize, "redis unavailable");
        goto done;
    }
    res->first_seq = first;
    if ((res->already = first >= o->before_seq)) {
        rc = AUDIT_TRIM_DONE;
        goto done;
    }
    int holds = audit_tree_holds(p, k, audit_archive_checkpoint(a)); /* (2) */
    if (holds != 0) {
        snprintf(err, errsize, "%s",
                 holds < 0 ? "redis unavailable"
                           : "the archive's checkpoint is not of the tree "
                             "and chain in Redis");
        rc = holds < 0 ? AUDIT_TRIM_FAILED : AUDIT_TRIM_REFUSED;
        goto done;
    }
    if (!(keys = tile_keys(k, first - 1, o->before_seq - 1, &nkeys)) ||
        record(a, o, &res->record_seq, err, errsize) != 0)
        goto done;
    if (run_script(p, k, o, res->record_seq, keys, nkeys, res) != 0) {
        snprintf(err, errsize, "recorded at seq %lld, but Redis did not trim: run again",
                 res->record_seq);
        goto done;
    }
    res->first_seq = o->before_seq;
    rc = AUDIT_TRIM_DONE;
done:
    free(keys);
    audit_archive_close(a);
    return rc;
}
