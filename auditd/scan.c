/* SPDX-License-Identifier: Apache-2.0 */
/* scan: paged verification of a chain in Redis. */
#include "scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 1000

/* The hash of entry seq (the trusted starting link of a partial verification). */
static enum rpool_status hash_of(struct rpool *p, const struct audit_keys *k, long long seq,
                                 char out[AUDIT_HASH_HEX_LEN + 1], int *found)
{
    struct audit_entry e;
    size_t n = 0;
    enum rpool_status st = audit_store_range(p, k, seq, seq, 1, &e, &n);
    *found = st == RPOOL_OK && n == 1;
    if (*found) {
        snprintf(out, AUDIT_HASH_HEX_LEN + 1, "%s", e.hash);
        audit_entry_clear(&e);
    }
    return st;
}

static enum rpool_status feed_pages(struct rpool *p, const struct audit_keys *k,
                                    struct audit_verifier *v, const struct audit_scan_opts *o,
                                    long long upto)
{
    struct audit_entry *page = calloc(PAGE, sizeof(*page));
    enum rpool_status st = RPOOL_OK;
    long long next = o->from_seq;
    int stop = 0;
    if (!page)
        return RPOOL_CONN;
    while (!stop && next <= upto) {
        size_t n = 0;
        st = audit_store_range(p, k, next, upto, PAGE, page, &n);
        if (st != RPOOL_OK || n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            if (!stop)
                stop = audit_verifier_feed(v, &page[i]);
            audit_entry_clear(&page[i]);
        }
        next = page[n - 1].seq + 1;
        if (o->progress)
            o->progress(next - 1, upto, o->progress_arg);
    }
    free(page);
    return st;
}

enum rpool_status audit_scan_redis(struct rpool *p, const struct audit_keys *k,
                                   const struct audit_keyring *kr, const struct audit_scan_opts *o,
                                   struct audit_vresult *out)
{
    long long head_seq;
    char head_hash[AUDIT_HASH_HEX_LEN + 1], prev[AUDIT_HASH_HEX_LEN + 1];
    int exists, found = 0;
    enum rpool_status st = audit_store_head(p, k, &head_seq, head_hash, &exists);
    if (st != RPOOL_OK)
        return st;
    long long upto = head_seq;
    if (!exists) /* no head: verify whatever the log holds, then report head_missing */
        st = audit_store_last_seq(p, k, &upto);
    if (st == RPOOL_OK && o->to_seq >= 0 && o->to_seq < upto)
        upto = o->to_seq;
    if (st == RPOOL_OK && o->from_seq > 1)
        st = hash_of(p, k, o->from_seq - 1, prev, &found);
    if (st != RPOOL_OK)
        return st;
    struct audit_verifier *v =
        audit_verifier_create(kr, o->threads, o->from_seq, found ? prev : NULL);
    if (!v)
        return RPOOL_CONN;
    if (o->expect_seq > 0)
        audit_verifier_expect(v, o->expect_seq, o->expect_hash);
    st = feed_pages(p, k, v, o, upto);
    int whole = o->to_seq < 0 || o->to_seq >= head_seq;
    audit_verifier_finish(v, whole, exists, head_seq, head_hash, out);
    out->head_seq = head_seq;
    audit_verifier_free(v);
    return st;
}

/* The verifier for an export, created at the first entry worth checking. */
static struct audit_verifier *file_verifier(const struct audit_keyring *kr, int threads,
                                            const struct audit_scan_opts *o)
{
    struct audit_verifier *v = audit_verifier_create(kr, threads, o->from_seq, NULL);
    if (v && o->expect_seq > 0)
        audit_verifier_expect(v, o->expect_seq, o->expect_hash);
    return v;
}

int audit_scan_file(FILE *f, const struct audit_keyring *kr, const struct audit_scan_opts *o,
                    struct audit_vresult *out)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int stop = 0, first = 1;
    struct audit_verifier *v = NULL;
    while (!stop && (len = getline(&line, &cap, f)) > 0) {
        struct audit_entry e;
        if (len == 1 && line[0] == '\n')
            continue;
        if (audit_entry_from_line(&e, line, (size_t)len) != 0) {
            /* An unreadable line breaks the chain where it stands. */
            e.seq = -1;
            e.body = NULL;
        }
        if (e.seq >= 0 && e.seq < o->from_seq) {
            audit_entry_clear(&e);
            continue;
        }
        if (first) {
            v = file_verifier(kr, o->threads, o);
            first = 0;
        }
        stop = v ? audit_verifier_feed(v, &e) : 1;
        if (o->progress && e.seq > 0 && e.seq % 10000 == 0)
            o->progress(e.seq, 0, o->progress_arg);
        audit_entry_clear(&e);
    }
    free(line);
    if (ferror(f) || (!v && !first))
        return -1;
    if (!v && !(v = file_verifier(kr, 1, o)))
        return -1;
    audit_verifier_finish(v, 0, 0, 0, NULL, out);
    audit_verifier_free(v);
    return 0;
}
