/* SPDX-License-Identifier: Apache-2.0 */
/* accept: an operator's accept of the chain Redis shows (POST /v1/admin/chain/accept,
 * --accept-chain), made as a request to the appender: its audit.chain_accepted item, and
 * what the committed item says. */
#ifndef AUDIT_ACCEPT_H
#define AUDIT_ACCEPT_H

#include "appender.h"

/* What an accept adopted: the floor the instance remembered, the head it accepted (the
 * entry's predecessor, unless the key's audit.key_activated came first), and the
 * audit.chain_accepted entry that records both (caller clears it). */
struct audit_acceptance {
    long long remembered_seq, accepted_seq;
    char remembered_hash[AUDIT_HASH_HEX_LEN + 1], accepted_hash[AUDIT_HASH_HEX_LEN + 1];
    struct audit_entry entry;
};

/* An operator says the chain Redis shows now is the one to go on with (after restoring an
 * older backup, say): a request with accept set and the one item this fills (its event
 * audit.chain_accepted, actor auditd, metadata via; caller frees it) appends, if the
 * chain's head and log agree, that event on it, with remembered_seq/hash and
 * accepted_seq/hash added, and resets the guard's floor to that entry (AUDIT_APPEND_BROKEN:
 * head and log disagree, nothing accepted). Returns 0, or -1 out of memory. */
int audit_accept_item(struct audit_item *item, const char *via);
/* What the accepted item says (its entry moved into out). */
void audit_acceptance_read(struct audit_item *item, struct audit_acceptance *out);

/* The same, waiting for the answer (startup). out is filled on OK. */
enum audit_append_status audit_appender_accept(struct audit_appender *ap, const char *via,
                                               struct audit_acceptance *out);

#endif
