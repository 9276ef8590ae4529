/* SPDX-License-Identifier: Apache-2.0 */
/* request: parsing and validation of auditd's requests (see request.h). */
#include "request.h"

#include <stdlib.h>

#include "checkpoint.h"

long long audit_req_num(const char *s, long long min, long long max)
{
    char *end;
    /* strtoll would also take leading whitespace and a sign. */
    if (!s || *s < '0' || *s > '9')
        return -1;
    long long v = strtoll(s, &end, 10);
    return (*end || v < min || v > max) ? -1 : v;
}

void audit_items_free(struct audit_item *items, size_t n)
{
    for (size_t i = 0; items && i < n; i++) {
        json_decref(items[i].event);
        audit_entry_clear(&items[i].entry);
    }
    free(items);
}

int audit_req_batch(const json_t *body, struct audit_item **items, size_t *n, struct jv_error *e)
{
    static const char *const fields[] = {"events", NULL};
    json_t *events, *ev;
    size_t i;
    if (jv_only(body, fields, e) != 0 ||
        jv_array(body, "events", JV_REQUIRED, 1, AUDIT_BATCH_EVENTS_MAX, &events, e) < 0)
        return -1;
    struct audit_item *all = calloc(json_array_size(events), sizeof(*all));
    if (!all)
        return -2;
    json_array_foreach(events, i, ev)
    {
        if (!(all[i].event = audit_event_parse(ev, e))) {
            jv_nest(e, "events", i);
            audit_items_free(all, i);
            return -1;
        }
    }
    *items = all;
    *n = json_array_size(events);
    return 0;
}

int audit_req_list(const char *from_seq, const char *limit, long long *from, long long *lim,
                   struct jv_error *e)
{
    *from = from_seq ? audit_req_num(from_seq, 1, AUDIT_SEQ_MAX) : 1;
    *lim = limit ? audit_req_num(limit, 1, AUDIT_LIST_LIMIT_MAX) : 100;
    if (*from < 0 || *lim < 0)
        return jv_fail(e, *from < 0 ? "from_seq" : "limit", "from_seq >= 1, limit 1..%d",
                       AUDIT_LIST_LIMIT_MAX);
    return 0;
}

int audit_req_verify(const json_t *body, struct audit_scan_opts *o, struct jv_error *e)
{
    static const char *const fields[] = {"from_seq", "to_seq", NULL};
    if (body && (jv_only(body, fields, e) != 0 ||
                 jv_int(body, "from_seq", JV_OPTIONAL, 1, AUDIT_SEQ_MAX, &o->from_seq, e) < 0 ||
                 (!json_is_null(json_object_get(body, "to_seq")) &&
                  jv_int(body, "to_seq", JV_OPTIONAL, 0, AUDIT_SEQ_MAX, &o->to_seq, e) < 0)))
        return -1;
    if (o->to_seq >= 0 && o->to_seq < o->from_seq)
        return jv_fail(e, "to_seq", "to_seq must be null or at least from_seq");
    return 0;
}

int audit_req_trim(const json_t *body, long long *before_seq, const char **note, size_t *note_len,
                   struct jv_error *e)
{
    static const char *const FIELDS[] = {"before_seq", "checkpoint", NULL};
    if (!body)
        return jv_fail(e, "body", "{\"before_seq\", \"checkpoint\"} is required");
    if (jv_only(body, FIELDS, e) != 0 ||
        jv_int(body, "before_seq", JV_REQUIRED, 2, AUDIT_SEQ_MAX, before_seq, e) != 1 ||
        jv_string(body, "checkpoint", JV_REQUIRED, 1, AUDIT_NOTE_MAX, note, note_len, e) != 1)
        return -1;
    return 0;
}
