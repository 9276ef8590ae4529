/* SPDX-License-Identifier: Apache-2.0 */
/* request: validation of auditd's request bodies and query parameters (auditd.md "API")
 * into plain values. Nothing here touches Redis, so bad input is refused before Redis is
 * asked. On failure e names the field for a 400 invalid_request. Thread-safe. */
#ifndef AUDIT_REQUEST_H
#define AUDIT_REQUEST_H

#include <jansson.h>
#include <stddef.h>

#include "appender.h"
#include "scan.h"
#include "shared/jsonv.h"

#define AUDIT_BATCH_EVENTS_MAX 1000
#define AUDIT_LIST_LIMIT_MAX 1000
#define AUDIT_SEQ_MAX (1LL << 62)

/* A decimal number in [min, max] without sign or spaces (a seq, a limit); -1 if s is NULL
 * or not one. */
long long audit_req_num(const char *s, long long min, long long max);

/* POST /v1/events/batch: {"events": [1..AUDIT_BATCH_EVENTS_MAX events]}, each checked by
 * audit_event_parse. Returns 0 with *items (calloc'd, one validated event each; free with
 * audit_items_free) and *n set; -1 with e set (a bad event is named as in
 * "events[3].actor"); -2 out of memory. */
int audit_req_batch(const json_t *body, struct audit_item **items, size_t *n, struct jv_error *e);
void audit_items_free(struct audit_item *items, size_t n); /* NULL does nothing */

/* GET /v1/events: the query values from_seq (default 1) and limit (default 100, at most
 * AUDIT_LIST_LIMIT_MAX), each NULL when absent. Returns 0, or -1 with e set. */
int audit_req_list(const char *from_seq, const char *limit, long long *from, long long *lim,
                   struct jv_error *e);

/* POST /v1/verify: an optional body {"from_seq", "to_seq" (null: up to the head)} over o's
 * from_seq and to_seq. body may be NULL. Returns 0, or -1 with e set. */
int audit_req_verify(const json_t *body, struct audit_scan_opts *o, struct jv_error *e);

/* POST /v1/admin/trim: {"before_seq": 2..2^62, "checkpoint": "<signed note>"}. Returns 0
 * with *before_seq and *note (borrowed from body) set, or -1 with e set. */
int audit_req_trim(const json_t *body, long long *before_seq, const char **note, size_t *note_len,
                   struct jv_error *e);

#endif
