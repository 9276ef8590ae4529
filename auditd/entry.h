/* SPDX-License-Identifier: Apache-2.0 */
/* entry: audit events and chain entries — validating a caller's event, building the
 * canonical entry body (compact JSON, keys sorted bytewise), hashing and signing it. */
#ifndef AUDIT_ENTRY_H
#define AUDIT_ENTRY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/crypto.h"
#include "shared/jsonv.h"

#define AUDIT_HASH_HEX_LEN 64
#define AUDIT_SIG_B64_LEN 88 /* base64 of 64 bytes, padded */
#define AUDIT_TS_LEN 24      /* "2026-11-22T10:00:00.123Z" */
#define AUDIT_META_MAX_BYTES (16 * 1024)
/* An event serialised compactly is at most this long, so that an entry body (the event
 * with seq, prev, ts, kv: ~200 bytes more) always fits the 65,535 bytes a tlog-tiles entry
 * bundle allows. The limits of the fields keep an event below ~24 KiB anyway. */
#define AUDIT_EVENT_MAX_BYTES (32 * 1024)
#define AUDIT_META_MAX_DEPTH 8
#define AUDIT_INT_MAX 9007199254740991LL /* 2^53 - 1 */
#define AUDIT_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* Validate a caller's event object and return a new object holding only its fields
 * (caller json_decref's), or NULL with e set for a 400 invalid_request. Refuses actor
 * "auditd" and actions starting "audit." (reserved for the daemon's own events), and an
 * event longer than AUDIT_EVENT_MAX_BYTES serialised. */
json_t *audit_event_parse(const json_t *in, struct jv_error *e);

/* The fields of one stored entry. */
struct audit_entry {
    long long seq;
    char prev[AUDIT_HASH_HEX_LEN + 1];
    char hash[AUDIT_HASH_HEX_LEN + 1];
    char ts[AUDIT_TS_LEN + 1];
    char kv[8];
    char sig[AUDIT_SIG_B64_LEN + 1];
    char *body; /* malloc'd, NUL-terminated; the exact stored bytes */
    size_t body_len;
};

/* Current UTC time with milliseconds, "YYYY-MM-DDTHH:MM:SS.mmmZ", into ts. */
void audit_now_ts(char ts[AUDIT_TS_LEN + 1]);

/* Fill e (seq, prev, ts and kv already set) from event: the canonical body, its hash and
 * the signature by sk over the 32 raw bytes of the hash. Returns 0, or -1 out of memory
 * (e->body is then NULL). Frees any previous e->body. Thread-safe. */
int audit_entry_seal(struct audit_entry *e, const json_t *event, const uint8_t *sk);

/* The two halves of audit_entry_seal, for signing a batch on several threads: build the
 * body and its hash (0, or -1 out of memory); then sign the hash. */
int audit_entry_build(struct audit_entry *e, const json_t *event);
void audit_entry_sign(struct audit_entry *e, const uint8_t *sk);

/* SHA-256 of body as lowercase hex, and the raw bytes (raw may be NULL). */
void audit_body_hash(const char *body, size_t len, char hex[AUDIT_HASH_HEX_LEN + 1],
                     uint8_t raw[CRYPTO_SHA256_LEN]);

/* The parsed fields of a stored body: seq, prev, ts, kv and the event (new reference,
 * caller json_decref's). Returns 0, or -1 if the body is not a well-formed entry body. */
int audit_body_parse(const char *body, size_t len, long long *seq,
                     char prev[AUDIT_HASH_HEX_LEN + 1], char ts[AUDIT_TS_LEN + 1], char kv[8],
                     json_t **event);

/* An entry as the API and export files show it:
 * {"seq","hash","prev_hash","ts","key_version","signature","event","body"}; with
 * with_body 0, only the 201 answer's fields. NULL if the body does not parse. */
json_t *audit_entry_json(const struct audit_entry *e, int with_body);

void audit_entry_clear(struct audit_entry *e); /* frees body; NULL does nothing */

/* Parse one line of an export file (an entry in the GET /v1/events form: seq, hash,
 * signature and body are what count; the rest is informative) into e. Returns 0, or -1
 * if the line is not such an entry. Caller clears e. */
int audit_entry_from_line(struct audit_entry *e, const char *line, size_t len);

#endif
