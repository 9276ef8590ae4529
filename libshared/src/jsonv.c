/* SPDX-License-Identifier: Apache-2.0 */
/* jsonv: typed, range-checked getters for members of a request's JSON object, each
 * producing a short human-readable detail for a 400 invalid_request when it fails. */
#include "shared/jsonv.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int jv_fail(struct jv_error *e, const char *field, const char *fmt, ...)
{
    va_list ap;

    if (!e)
        return -1;
    e->field = field;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
    return -1;
}

/* Look name up. Returns 1 with *v set when present, 0 when absent and optional, -1 when
 * absent and required. A JSON null counts as present (and then fails the type check):
 * a caller that sends null for a field it meant to leave out gets told, not guessed at. */
static int member(const json_t *obj, const char *name, int required, json_t **v, struct jv_error *e)
{
    assert(obj && name);
    *v = json_object_get(obj, name);
    if (*v)
        return 1;
    if (required)
        return jv_fail(e, name, "is required");
    return 0;
}

int jv_string(const json_t *obj, const char *name, int required, size_t minlen, size_t maxlen,
              const char **out, size_t *len, struct jv_error *e)
{
    json_t *v;
    int rc = member(obj, name, required, &v, e);

    assert(out && minlen <= maxlen);
    if (rc <= 0)
        return rc;
    if (!json_is_string(v))
        goto bad;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    /* "\u0000" is valid JSON; a C string would silently end there. */
    if (strlen(s) != n)
        return jv_fail(e, name, "must not contain NUL bytes");
    if (n < minlen || n > maxlen)
        goto bad;
    *out = s;
    if (len)
        *len = n;
    return 1;

bad:
    if (minlen == maxlen)
        return jv_fail(e, name, "must be a string of %zu bytes", minlen);
    return jv_fail(e, name, "must be a string of %zu..%zu bytes", minlen, maxlen);
}

int jv_int(const json_t *obj, const char *name, int required, long long min, long long max,
           long long *out, struct jv_error *e)
{
    json_t *v;
    int rc = member(obj, name, required, &v, e);

    assert(out && min <= max);
    if (rc <= 0)
        return rc;
    /* Only JSON integers: 5.0, "5" and true are all refused rather than converted. */
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return jv_fail(e, name, "must be an integer in %lld..%lld", min, max);
    *out = json_integer_value(v);
    return 1;
}

int jv_bool(const json_t *obj, const char *name, int required, int *out, struct jv_error *e)
{
    json_t *v;
    int rc = member(obj, name, required, &v, e);

    assert(out);
    if (rc <= 0)
        return rc;
    if (!json_is_boolean(v))
        return jv_fail(e, name, "must be true or false");
    *out = json_is_true(v);
    return 1;
}

int jv_object(const json_t *obj, const char *name, int required, json_t **out, struct jv_error *e)
{
    json_t *v;
    int rc = member(obj, name, required, &v, e);

    assert(out);
    if (rc <= 0)
        return rc;
    if (!json_is_object(v))
        return jv_fail(e, name, "must be an object");
    *out = v;
    return 1;
}

int jv_array(const json_t *obj, const char *name, int required, size_t minlen, size_t maxlen,
             json_t **out, struct jv_error *e)
{
    json_t *v;
    int rc = member(obj, name, required, &v, e);

    assert(out && minlen <= maxlen);
    if (rc <= 0)
        return rc;
    if (!json_is_array(v) || json_array_size(v) < minlen || json_array_size(v) > maxlen) {
        if (minlen == maxlen)
            return jv_fail(e, name, "must be an array of %zu elements", minlen);
        return jv_fail(e, name, "must be an array of %zu..%zu elements", minlen, maxlen);
    }
    *out = v;
    return 1;
}

size_t jv_utf8_prefix(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    if (n < max)
        return n; /* all of s fits */
    /* The cut is before s[n]: if that byte continues a character, cut before the whole
     * character. */
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

void jv_nest(struct jv_error *e, const char *array, size_t index)
{
    char inner[sizeof(e->field_buf)];
    snprintf(inner, sizeof(inner), "%s", e->field ? e->field : "");
    int at = snprintf(e->field_buf, sizeof(e->field_buf), "%s[%zu].", array, index);
    if (at < 0 || (size_t)at >= sizeof(e->field_buf))
        at = 0;
    size_t n = jv_utf8_prefix(inner, sizeof(e->field_buf) - 1 - (size_t)at);
    memcpy(e->field_buf + at, inner, n);
    e->field_buf[(size_t)at + n] = '\0';
    e->field = e->field_buf;
}

int jv_only(const json_t *obj, const char *const *allowed, struct jv_error *e)
{
    const char *key;
    size_t key_len;
    json_t *v;

    assert(obj && allowed);
    /* Cast: jansson's iteration macros take a non-const object but do not modify it.
     * Keys are compared with their length, so "a\u0000b" is not taken for "a". */
    json_object_keylen_foreach((json_t *)obj, key, key_len, v)
    {
        size_t i = 0;
        while (allowed[i] &&
               !(strlen(allowed[i]) == key_len && memcmp(allowed[i], key, key_len) == 0))
            i++;
        if (!allowed[i]) {
            size_t n = jv_utf8_prefix(
                key, key_len < sizeof(e->field_buf) - 1 ? key_len : sizeof(e->field_buf) - 1);
            memcpy(e->field_buf, key, n);
            e->field_buf[n] = '\0';
            return jv_fail(e, e->field_buf, "unknown field");
        }
    }
    return 0;
}

static int is_alnum_ascii(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int jv_token_ok(const char *s, size_t len, const char *extra)
{
    if (!s || len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        /* c != 0: strchr would find the terminator of extra. */
        if (!is_alnum_ascii(c) && !(c != 0 && extra && strchr(extra, c)))
            return 0;
    }
    return 1;
}

int jv_printable_ok(const char *s, size_t len)
{
    if (!s)
        return len == 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e)
            return 0;
    }
    return 1;
}
