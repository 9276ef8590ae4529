/* SPDX-License-Identifier: Apache-2.0 */
/* accept: the operator's accept as an appender request. */
#include "accept.h"

#include <stdio.h>
#include <string.h>

int audit_accept_item(struct audit_item *item, const char *via)
{
    memset(item, 0, sizeof(*item));
    item->event = json_pack("{s:s, s:s, s:{s:s}}", "actor", "auditd", "action",
                            "audit.chain_accepted", "metadata", "via", via);
    return item->event ? 0 : -1;
}

void audit_acceptance_read(struct audit_item *item, struct audit_acceptance *out)
{
    json_t *meta = json_object_get(item->event, "metadata");
    out->remembered_seq = json_integer_value(json_object_get(meta, "remembered_seq"));
    snprintf(out->remembered_hash, sizeof(out->remembered_hash), "%s",
             json_string_value(json_object_get(meta, "remembered_hash")));
    out->accepted_seq = json_integer_value(json_object_get(meta, "accepted_seq"));
    snprintf(out->accepted_hash, sizeof(out->accepted_hash), "%s",
             json_string_value(json_object_get(meta, "accepted_hash")));
    out->entry = item->entry;
    memset(&item->entry, 0, sizeof(item->entry));
}

enum audit_append_status audit_appender_accept(struct audit_appender *ap, const char *via,
                                               struct audit_acceptance *out)
{
    struct audit_item item;
    struct audit_request req = {.items = &item, .n = 1, .accept = 1};
    memset(out, 0, sizeof(*out));
    if (audit_accept_item(&item, via) != 0)
        return AUDIT_APPEND_UNAVAILABLE;
    audit_appender_submit_wait(ap, &req);
    if (req.status == AUDIT_APPEND_OK)
        audit_acceptance_read(&item, out);
    audit_entry_clear(&item.entry);
    json_decref(item.event);
    return req.status;
}
