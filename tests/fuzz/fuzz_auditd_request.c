/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for auditd's request parsers (auditd/request.c): any bytes, parsed as
 * the HTTP layer does, are the body of POST /v1/events/batch and POST /v1/verify; the raw
 * bytes are also the query of GET /v1/events (from_seq&limit) and the :seq of
 * GET /v1/events/:seq. Accepted values are in the documented ranges and mean what the
 * text says; refusals name a field in a renderable answer. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../auditd/request.h"
#include "fuzz.h"

static void batch(const json_t *body)
{
    struct audit_item *items = NULL;
    size_t n = 0;
    struct jv_error e;
    int rc = audit_req_batch(body, &items, &n, &e);
    if (rc == 0) {
        json_t *events = json_object_get(body, "events");
        if (n < 1 || n > AUDIT_BATCH_EVENTS_MAX || n != json_array_size(events) ||
            json_object_size(body) != 1)
            abort();
        for (size_t i = 0; i < n; i++)
            if (!json_is_object(items[i].event))
                abort();
        audit_items_free(items, n);
    } else if (rc == -1) {
        fuzz_check_refusal(&e);
        /* Past the member check, a bad event is named by its index in the array. */
        json_t *events = json_object_get(body, "events");
        size_t i;
        if (json_object_size(body) == 1 && json_array_size(events) > 0 &&
            json_array_size(events) <= AUDIT_BATCH_EVENTS_MAX &&
            (sscanf(e.field, "events[%zu].", &i) != 1 || i >= json_array_size(events)))
            abort();
    }
}

static void verify(const json_t *body)
{
    struct audit_scan_opts o = {.from_seq = 1, .to_seq = -1};
    struct jv_error e;
    if (audit_req_verify(body, &o, &e) != 0) {
        fuzz_check_refusal(&e);
        return;
    }
    if (o.from_seq < 1 || o.from_seq > AUDIT_SEQ_MAX || o.to_seq > AUDIT_SEQ_MAX ||
        (o.to_seq >= 0 && o.to_seq < o.from_seq) || o.to_seq < -1)
        abort();
}

/* An accepted number is the decimal the text spells. */
static void check_num(const char *s, long long v, long long min, long long max)
{
    char *end;
    errno = 0;
    long long again = strtoll(s, &end, 10);
    if (v < min || v > max || errno || *end || again != v || s[0] < '0' || s[0] > '9')
        abort();
}

/* The query string: from_seq before the first '&', limit after it; "-" stands for absent. */
static void query(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    if (!s)
        return;
    char *amp = strchr(s, '&');
    if (amp)
        *amp++ = '\0';
    const char *from_s = strcmp(s, "-") == 0 ? NULL : s;
    const char *limit_s = amp && strcmp(amp, "-") != 0 ? amp : NULL;
    long long from, limit;
    struct jv_error e;
    if (audit_req_list(from_s, limit_s, &from, &limit, &e) == 0) {
        if (from_s)
            check_num(from_s, from, 1, AUDIT_SEQ_MAX);
        else if (from != 1)
            abort();
        if (limit_s)
            check_num(limit_s, limit, 1, AUDIT_LIST_LIMIT_MAX);
        else if (limit != 100)
            abort();
    } else {
        fuzz_check_refusal(&e);
    }
    long long seq = audit_req_num(s, 1, AUDIT_SEQ_MAX);
    if (seq != -1)
        check_num(s, seq, 1, AUDIT_SEQ_MAX);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (body && json_is_object(body)) {
        batch(body);
        verify(body);
    }
    json_decref(body);
    query(data, size);
    return 0;
}
