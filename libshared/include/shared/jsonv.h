/* SPDX-License-Identifier: Apache-2.0 */
/* jsonv: validated reads of request fields, for handlers.
 *
 * Each getter looks up one member of a JSON object and checks its type and range.
 * Returns 1 when present and valid (*out set), 0 when absent and not required (*out
 * untouched), -1 when invalid, with e->field and e->detail set for a 400
 * invalid_request (http_invalid(r, e.field, "%s", e.detail)). Thread-safe. */
#ifndef WARDEN_JSONV_H
#define WARDEN_JSONV_H

#include <jansson.h>
#include <stddef.h>

struct jv_error {
    const char *field;  /* the getter's name, or field_buf for an unknown member */
    char field_buf[64]; /* a copy, so the error outlives the JSON it came from */
    char detail[160];
};

#define JV_REQUIRED 1
#define JV_OPTIONAL 0

/* String of minlen..maxlen bytes, no NUL bytes. *len may be NULL. */
int jv_string(const json_t *obj, const char *name, int required, size_t minlen, size_t maxlen,
              const char **out, size_t *len, struct jv_error *e);
/* Integer (JSON integer, not real) in [min, max]. */
int jv_int(const json_t *obj, const char *name, int required, long long min, long long max,
           long long *out, struct jv_error *e);
int jv_bool(const json_t *obj, const char *name, int required, int *out, struct jv_error *e);
/* Object member (borrowed). */
int jv_object(const json_t *obj, const char *name, int required, json_t **out, struct jv_error *e);
/* Array member (borrowed) with minlen..maxlen elements. */
int jv_array(const json_t *obj, const char *name, int required, size_t minlen, size_t maxlen,
             json_t **out, struct jv_error *e);
/* Fails on the first member not in the NULL-terminated list. Returns 0 or -1. */
int jv_only(const json_t *obj, const char *const *allowed, struct jv_error *e);
/* Name the failed member of an array's element by its place, as "events[3].actor", in
 * e->field_buf (cut at a character boundary when it does not fit). */
void jv_nest(struct jv_error *e, const char *array, size_t index);
/* The length of the longest prefix of s, at most max bytes, that does not end inside a
 * UTF-8 character: a cut name that stays valid in a JSON answer. */
size_t jv_utf8_prefix(const char *s, size_t max);

/* Set a field error by hand (for checks beyond the getters). Returns -1. */
int jv_fail(struct jv_error *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Is s[0..len) non-empty and made only of ASCII letters, digits and chars in extra? */
int jv_token_ok(const char *s, size_t len, const char *extra);
/* Is s[0..len) only printable ASCII (0x20..0x7e)? */
int jv_printable_ok(const char *s, size_t len);

#endif
