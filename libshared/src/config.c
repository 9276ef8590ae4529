/* SPDX-License-Identifier: Apache-2.0 */
/* config: typed, validated environment variables with one-line errors, and the record of
 * effective values that --check-config prints (secrets masked, held in locked memory). */
#include "shared/config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "shared/crypto.h"

#define CFG_ERR_MAX 512
#define CFG_NAME_MAX 128 /* longest variable name, "_FILE" included */
#define CFG_QUOTE_MAX 80 /* longest value quoted in an error line */
#define CFG_SECRET_FILE_MAX (64 * 1024)

struct cfg_entry {
    char *name;
    char *shown; /* printed after "NAME=": already masked and free of control characters */
    char *value; /* cfg_str's returned copy, else NULL */
};

struct cfg {
    int failed;
    char errstr[CFG_ERR_MAX];
    struct cfg_entry *entries; /* in the order read */
    size_t nentries, cap_entries;
    char **secrets; /* crypto_secret_alloc()ed values, wiped by cfg_free() */
    size_t nsecrets, cap_secrets;
};

struct cfg_unit {
    const char *name;
    uint64_t mult;
};

static const struct cfg_unit duration_units[] = {
    {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}, {NULL, 0},
};
static const struct cfg_unit size_units[] = {
    {"GiB", 1ULL << 30}, {"MiB", 1ULL << 20}, {"KiB", 1ULL << 10}, {"B", 1}, {NULL, 0},
};

#define CFG_DURATION_EXAMPLES "e.g. 50ms, 5s, 5m, 24h, 7d"
#define CFG_SIZE_EXAMPLES "e.g. 512B, 64KiB, 1MiB, 1GiB"
#define CFG_BOOL_ALLOWED "true/false, 1/0, yes/no, on/off"

struct cfg *cfg_create(void)
{
    return calloc(1, sizeof(struct cfg));
}

void cfg_free(struct cfg *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nsecrets; i++)
        crypto_secret_free(c->secrets[i]);
    for (size_t i = 0; i < c->nentries; i++) {
        free(c->entries[i].name);
        free(c->entries[i].shown);
        free(c->entries[i].value);
    }
    free(c->secrets);
    free(c->entries);
    free(c);
}

int cfg_failed(const struct cfg *c)
{
    assert(c != NULL);
    return c->failed;
}

const char *cfg_errstr(const struct cfg *c)
{
    assert(c != NULL);
    return c->errstr;
}

void cfg_fail(struct cfg *c, const char *fmt, ...)
{
    va_list ap;

    assert(c != NULL);
    if (c->failed)
        return; /* the first error is the one worth fixing first */
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap);
    va_end(ap);
    /* The contract is exactly one line. */
    for (char *p = c->errstr; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    c->failed = 1;
}

/* ---- helpers ------------------------------------------------------------------------- */

static int is_control(char ch)
{
    return (unsigned char)ch < 0x20 || ch == 0x7f;
}

/* Copy s for display: control characters become '?' so a value cannot break the
 * one-line format; past max characters it is cut and "..." appended. */
static void quote(const char *s, char *out, size_t outsize, size_t max)
{
    size_t n = 0;

    assert(outsize > 4);
    for (; *s != '\0'; s++) {
        if (n == max || n + 4 >= outsize) {
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        out[n++] = is_control(*s) ? '?' : *s;
    }
    out[n] = '\0';
}

/* Record "NAME=value: reason (allowed: ...)" as the error, the value quoted safely. */
static void fail_value(struct cfg *c, const char *name, const char *value, const char *reason,
                       const char *allowed)
{
    char q[CFG_QUOTE_MAX + 4];

    quote(value, q, sizeof(q), CFG_QUOTE_MAX);
    cfg_fail(c, "%s=%s: %s (allowed: %s)", name, q, reason, allowed);
}

static void fail_oom(struct cfg *c, const char *name)
{
    cfg_fail(c, "%s: out of memory reading the configuration", name);
}

/* Append an entry for cfg_print(). Returns it, or NULL (and records an error) when out
 * of memory. */
static struct cfg_entry *record(struct cfg *c, const char *name, const char *shown)
{
    struct cfg_entry *e;
    size_t len = strlen(shown);

    if (c->nentries == c->cap_entries) {
        size_t cap = c->cap_entries ? 2 * c->cap_entries : 32;
        struct cfg_entry *grown = realloc(c->entries, cap * sizeof(*grown));
        if (grown == NULL)
            goto fail;
        c->entries = grown;
        c->cap_entries = cap;
    }
    e = &c->entries[c->nentries];
    *e = (struct cfg_entry){.name = strdup(name), .shown = malloc(len + 1)};
    if (e->name == NULL || e->shown == NULL) {
        free(e->name);
        free(e->shown);
        goto fail;
    }
    /* Printed one per line: control characters would forge or break lines. */
    for (size_t i = 0; i <= len; i++)
        e->shown[i] = (i < len && is_control(shown[i])) ? '?' : shown[i];
    c->nentries++;
    return e;

fail:
    fail_oom(c, name);
    return NULL;
}

/* NAME_FILE for NAME into buf. Returns 0, or -1 if the name is absurdly long. */
static int file_var(const char *name, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s_FILE", name);
    return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

/* The environment value of name, or NULL when unset or when an earlier error means
 * getters only hand out defaults. */
static const char *env_value(const struct cfg *c, const char *name)
{
    return c->failed ? NULL : getenv(name);
}

static int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* ---- parsers: each returns NULL on success or the reason the value is bad ------------ */

static const char *parse_int(const char *s, long long *out)
{
    const char *p = s;
    char *end;
    long long n;

    if (*s == '\0')
        return "empty value";
    if (*p == '-' || *p == '+')
        p++;
    if (!is_digit(*p))
        return "not an integer"; /* also rules out the spaces strtoll would skip */
    errno = 0;
    n = strtoll(s, &end, 10);
    if (*end != '\0')
        return "not an integer";
    if (errno == ERANGE)
        return "out of range";
    *out = n;
    return NULL;
}

/* A whole number followed by a unit from units; a bare "0" only when zero_ok. The
 * result fits in limit. */
static const char *parse_with_unit(const char *s, const struct cfg_unit *units, int zero_ok,
                                   uint64_t limit, uint64_t *out)
{
    uint64_t n = 0;
    const char *p = s;

    if (*s == '\0')
        return "empty value";
    if (*s == '-')
        return "negative values are not allowed";
    if (!is_digit(*s))
        return "not a number with a unit";
    for (; is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n > (limit - d) / 10)
            return "too large";
        n = n * 10 + d;
    }
    if (*p == '.' || *p == ',')
        return "not a whole number";
    if (*p == '\0' && n == 0 && zero_ok) {
        *out = 0;
        return NULL;
    }
    if (p[strspn(p, " \t\r\n")] == '\0')
        return "needs a unit";
    for (const struct cfg_unit *u = units; u->name != NULL; u++) {
        if (strcmp(p, u->name) != 0)
            continue;
        if (n > limit / u->mult)
            return "too large";
        *out = n * u->mult;
        return NULL;
    }
    return "unknown unit";
}

static const char *parse_duration(const char *s, int64_t *out_ms)
{
    uint64_t ms;
    const char *reason = parse_with_unit(s, duration_units, 1, INT64_MAX, &ms);

    if (reason == NULL)
        *out_ms = (int64_t)ms;
    return reason;
}

int cfg_parse_duration_ms(const char *s, int64_t *out_ms)
{
    if (s == NULL)
        return -1;
    return parse_duration(s, out_ms) == NULL ? 0 : -1;
}

int cfg_parse_size(const char *s, uint64_t *out)
{
    if (s == NULL)
        return -1;
    return parse_with_unit(s, size_units, 0, UINT64_MAX, out) == NULL ? 0 : -1;
}

/* ---- range descriptions for the "allowed" part of errors ----------------------------- */

/* v in the largest unit that represents it exactly: 90000 -> "90s", 3600000 -> "1h". */
static void fmt_unit(uint64_t v, const struct cfg_unit *units, const char *zero, char *buf,
                     size_t size)
{
    const struct cfg_unit *u = units;

    if (v == 0) {
        snprintf(buf, size, "%s", zero);
        return;
    }
    while (u[1].name != NULL && v % u->mult != 0)
        u++;
    snprintf(buf, size, "%llu%s", (unsigned long long)(v / u->mult), u->name);
}

static void range_duration(int64_t min, int64_t max, char *buf, size_t size)
{
    char lo[32], hi[32];

    fmt_unit(min < 0 ? 0 : (uint64_t)min, duration_units, "0", lo, sizeof(lo));
    fmt_unit(max < 0 ? 0 : (uint64_t)max, duration_units, "0", hi, sizeof(hi));
    if (max == INT64_MAX)
        snprintf(buf, size, CFG_DURATION_EXAMPLES "; at least %s", lo);
    else
        snprintf(buf, size, CFG_DURATION_EXAMPLES "; %s..%s", lo, hi);
}

static void range_size(uint64_t min, uint64_t max, char *buf, size_t size)
{
    char lo[32], hi[32];

    fmt_unit(min, size_units, "0B", lo, sizeof(lo));
    fmt_unit(max, size_units, "0B", hi, sizeof(hi));
    if (max == UINT64_MAX)
        snprintf(buf, size, CFG_SIZE_EXAMPLES "; at least %s", lo);
    else
        snprintf(buf, size, CFG_SIZE_EXAMPLES "; %s..%s", lo, hi);
}

static void range_int(long long min, long long max, char *buf, size_t size)
{
    if (min == LLONG_MIN && max == LLONG_MAX)
        snprintf(buf, size, "any integer");
    else if (max == LLONG_MAX)
        snprintf(buf, size, "an integer >= %lld", min);
    else if (min == LLONG_MIN)
        snprintf(buf, size, "an integer <= %lld", max);
    else
        snprintf(buf, size, "%lld..%lld", min, max);
}

/* ---- getters ----------------------------------------------------------------------- */

long long cfg_int(struct cfg *c, const char *name, long long def, long long min, long long max)
{
    const char *v, *reason;
    char allowed[96], shown[32];
    long long n = def;

    assert(c != NULL && name != NULL);
    v = env_value(c, name);
    if (v != NULL) {
        reason = parse_int(v, &n);
        if (reason == NULL && (n < min || n > max))
            reason = "out of range";
        if (reason != NULL) {
            range_int(min, max, allowed, sizeof(allowed));
            fail_value(c, name, v, reason, allowed);
            n = def;
        }
    }
    snprintf(shown, sizeof(shown), "%lld", n);
    record(c, name, shown);
    return n;
}

int cfg_bool(struct cfg *c, const char *name, int def)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    const char *v;
    int b = def ? 1 : 0, known = 0;

    assert(c != NULL && name != NULL);
    v = env_value(c, name);
    if (v != NULL) {
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]) && !known; i++) {
            if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
                b = strcasecmp(v, yes[i]) == 0;
                known = 1;
            }
        }
        if (!known) {
            fail_value(c, name, v, *v == '\0' ? "empty value" : "not a boolean", CFG_BOOL_ALLOWED);
            b = def ? 1 : 0;
        }
    }
    record(c, name, b ? "true" : "false");
    return b;
}

int64_t cfg_duration_ms(struct cfg *c, const char *name, const char *def, int64_t min_ms,
                        int64_t max_ms)
{
    const char *v, *reason, *shown = def;
    char allowed[128];
    int64_t ms = 0, got;

    assert(c != NULL && name != NULL && def != NULL);
    if (parse_duration(def, &ms) != NULL) {
        assert(!"cfg_duration_ms: bad built-in default");
        cfg_fail(c, "%s: bad built-in default \"%s\"", name, def);
    }
    v = env_value(c, name);
    if (v != NULL) {
        reason = parse_duration(v, &got);
        if (reason == NULL && (got < min_ms || got > max_ms))
            reason = "out of range";
        if (reason == NULL) {
            ms = got;
            shown = v;
        } else {
            range_duration(min_ms, max_ms, allowed, sizeof(allowed));
            fail_value(c, name, v, reason, allowed);
        }
    }
    record(c, name, shown);
    return ms;
}

uint64_t cfg_size(struct cfg *c, const char *name, const char *def, uint64_t min, uint64_t max)
{
    const char *v, *reason, *shown = def;
    char allowed[128];
    uint64_t n = 0, got;

    assert(c != NULL && name != NULL && def != NULL);
    if (cfg_parse_size(def, &n) != 0) {
        assert(!"cfg_size: bad built-in default");
        cfg_fail(c, "%s: bad built-in default \"%s\"", name, def);
    }
    v = env_value(c, name);
    if (v != NULL) {
        reason = parse_with_unit(v, size_units, 0, UINT64_MAX, &got);
        if (reason == NULL && (got < min || got > max))
            reason = "out of range";
        if (reason == NULL) {
            n = got;
            shown = v;
        } else {
            range_size(min, max, allowed, sizeof(allowed));
            fail_value(c, name, v, reason, allowed);
        }
    }
    record(c, name, shown);
    return n;
}

/* "a, b, c" from a NULL-terminated word list, cut short if it does not fit. */
static void join_words(const char *const *words, char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; words[i] != NULL && n < size; i++) {
        int w = snprintf(buf + n, size - n, "%s%s", i ? ", " : "", words[i]);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

int cfg_enum(struct cfg *c, const char *name, const char *def, const char *const *allowed)
{
    const char *v;
    char words[256];
    int idx = -1;

    assert(c != NULL && name != NULL && def != NULL && allowed != NULL);
    for (int i = 0; allowed[i] != NULL && idx < 0; i++)
        if (strcmp(def, allowed[i]) == 0)
            idx = i;
    assert(idx >= 0 && "cfg_enum: default not among the allowed words");
    if (idx < 0)
        idx = 0;
    v = env_value(c, name);
    if (v != NULL) {
        int found = -1;
        for (int i = 0; allowed[i] != NULL && found < 0; i++)
            if (strcmp(v, allowed[i]) == 0)
                found = i;
        if (found >= 0) {
            idx = found;
        } else {
            join_words(allowed, words, sizeof(words));
            fail_value(c, name, v, *v == '\0' ? "empty value" : "unknown value", words);
        }
    }
    record(c, name, allowed[idx]);
    return idx;
}

const char *cfg_str(struct cfg *c, const char *name, const char *def,
                    int (*valid)(const char *value), const char *allowed)
{
    const char *v, *use = def;
    struct cfg_entry *e;

    assert(c != NULL && name != NULL);
    v = env_value(c, name);
    if (v != NULL) {
        if (valid != NULL && !valid(v))
            fail_value(c, name, v, "invalid value", allowed ? allowed : "see the documentation");
        else
            use = v;
    }
    e = record(c, name, use != NULL ? use : "<unset>");
    if (e == NULL || use == NULL)
        return NULL;
    /* A copy: the environment may change after this call, the cfg's strings do not. */
    e->value = strdup(use);
    if (e->value == NULL)
        fail_oom(c, name);
    return e->value;
}

/* ---- secrets ----------------------------------------------------------------------- */

/* Keep s for cfg_free(). Returns 0, or -1 (s freed, error recorded) when out of memory. */
static int keep_secret(struct cfg *c, const char *name, char *s)
{
    if (c->nsecrets == c->cap_secrets) {
        size_t cap = c->cap_secrets ? 2 * c->cap_secrets : 8;
        char **grown = realloc(c->secrets, cap * sizeof(*grown));
        if (grown == NULL) {
            crypto_secret_free(s);
            fail_oom(c, name);
            return -1;
        }
        c->secrets = grown;
        c->cap_secrets = cap;
    }
    c->secrets[c->nsecrets++] = s;
    return 0;
}

/* A NUL-terminated copy of data[0..len) in secret memory, or NULL. */
static char *secret_dup(const char *data, size_t len)
{
    char *s = crypto_secret_alloc(len + 1);

    if (s != NULL) {
        memcpy(s, data, len);
        s[len] = '\0';
    }
    return s;
}

/* Read at most cap bytes of path into buf. Returns 0, or an errno value. */
static int read_file(const char *path, char *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    size_t n = 0;
    int err = 0;

    if (fd < 0)
        return errno;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = errno;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *len = n;
    return err;
}

/* The secret held in the file NAME_FILE names: whole file, one trailing newline off. */
static char *secret_from_file(struct cfg *c, const char *name, const char *fname, const char *path)
{
    char q[CFG_QUOTE_MAX + 4], allowed[CFG_NAME_MAX + 64];
    const char *reason = NULL;
    char *buf = NULL, *s = NULL;
    size_t n = 0;
    int err;

    snprintf(allowed, sizeof(allowed), "a readable file of at most 64KiB holding %s", name);
    quote(path, q, sizeof(q), CFG_QUOTE_MAX);
    if (*path == '\0') {
        reason = "empty path";
        goto fail;
    }
    /* Read straight into locked memory: the file's content is the secret. */
    buf = crypto_secret_alloc(CFG_SECRET_FILE_MAX + 1);
    if (buf == NULL) {
        fail_oom(c, fname);
        goto fail;
    }
    err = read_file(path, buf, CFG_SECRET_FILE_MAX + 1, &n);
    if (err != 0) {
        cfg_fail(c, "%s=%s: cannot read: %s (allowed: %s)", fname, q, strerror(err), allowed);
        goto fail;
    }
    if (n > CFG_SECRET_FILE_MAX)
        reason = "file larger than 64KiB";
    if (reason == NULL && n > 0 && buf[n - 1] == '\n')
        n -= (n > 1 && buf[n - 2] == '\r') ? 2 : 1;
    if (reason == NULL && n == 0)
        reason = "file is empty";
    if (reason == NULL && memchr(buf, '\0', n) != NULL)
        reason = "file contains a NUL byte";
    if (reason != NULL)
        goto fail;
    s = secret_dup(buf, n);
    if (s == NULL)
        fail_oom(c, fname);

fail:
    if (reason != NULL)
        cfg_fail(c, "%s=%s: %s (allowed: %s)", fname, q, reason, allowed);
    crypto_secret_free(buf);
    return s;
}

/* Load NAME or NAME_FILE into secret memory; NULL when unset or bad. *from_file says
 * which one it came from. */
static char *secret_load(struct cfg *c, const char *name, const char *fname, int *from_file)
{
    const char *v = env_value(c, name), *path = env_value(c, fname);
    char q[CFG_QUOTE_MAX + 4];
    char *s;

    *from_file = 0;
    if (v != NULL && path != NULL) {
        quote(path, q, sizeof(q), CFG_QUOTE_MAX);
        cfg_fail(c, "%s=<secret>, %s=%s: both set (allowed: only one of %s, %s)", name, fname, q,
                 name, fname);
        return NULL;
    }
    if (path != NULL) {
        *from_file = 1;
        return secret_from_file(c, name, fname, path);
    }
    if (v == NULL)
        return NULL;
    /* An empty secret would silently turn authentication off: refuse it. */
    if (*v == '\0') {
        cfg_fail(c, "%s=: empty secret (allowed: a non-empty value, or %s naming a file)", name,
                 fname);
        return NULL;
    }
    s = secret_dup(v, strlen(v));
    if (s == NULL)
        fail_oom(c, name);
    return s;
}

const char *cfg_secret(struct cfg *c, const char *name)
{
    char fname[CFG_NAME_MAX], shown[CFG_NAME_MAX + CFG_QUOTE_MAX + 64], q[CFG_QUOTE_MAX + 4];
    int from_file;
    char *s;

    assert(c != NULL && name != NULL);
    if (file_var(name, fname, sizeof(fname)) != 0) {
        assert(!"cfg_secret: variable name too long");
        cfg_fail(c, "%s: variable name too long", name);
        return NULL;
    }
    s = secret_load(c, name, fname, &from_file);
    if (s == NULL || keep_secret(c, name, s) != 0) {
        record(c, name, "<unset>");
        return NULL;
    }
    if (from_file) {
        quote(getenv(fname), q, sizeof(q), CFG_QUOTE_MAX);
        snprintf(shown, sizeof(shown), "<set, %zu bytes, from %s=%s>", strlen(s), fname, q);
    } else {
        snprintf(shown, sizeof(shown), "<set, %zu bytes>", strlen(s));
    }
    record(c, name, shown);
    return s;
}

int cfg_isset(const char *name)
{
    char fname[CFG_NAME_MAX];

    assert(name != NULL);
    if (getenv(name) != NULL)
        return 1;
    return file_var(name, fname, sizeof(fname)) == 0 && getenv(fname) != NULL;
}

/* ---- printing ---------------------------------------------------------------------- */

void cfg_note(struct cfg *c, const char *name, const char *value, int secret)
{
    char masked[64];

    assert(c != NULL && name != NULL);
    if (value == NULL) {
        record(c, name, "<unset>");
    } else if (secret) {
        snprintf(masked, sizeof(masked), "<set, %zu bytes>", strlen(value));
        record(c, name, masked);
    } else {
        record(c, name, value);
    }
}

void cfg_print(const struct cfg *c, FILE *out)
{
    assert(c != NULL && out != NULL);
    for (size_t i = 0; i < c->nentries; i++) {
        int later = 0;
        /* A variable read twice prints once, with the value read last. */
        for (size_t j = i + 1; j < c->nentries && !later; j++)
            later = strcmp(c->entries[i].name, c->entries[j].name) == 0;
        if (!later)
            fprintf(out, "%s=%s\n", c->entries[i].name, c->entries[i].shown);
    }
}
