/* SPDX-License-Identifier: Apache-2.0 */
/* config: typed, validated environment variables (warden is configured by env only).
 *
 * Each getter reads one variable, validates it, records the effective value (for
 * --check-config) and returns it. The first bad value is kept as the error: one line
 * naming the variable, the value and what is allowed; getters after an error still
 * return their defaults so a caller can read everything and check once at the end:
 *
 *     struct cfg *c = cfg_create();
 *     long threads = cfg_int(c, "HTTP_THREADS", 32, 1, 1024);
 *     int64_t ttl = cfg_duration_ms(c, "IDEM_TTL", "24h", 1000, INT64_MAX);
 *     if (cfg_failed(c)) { fprintf(stderr, "%s\n", cfg_errstr(c)); exit(2); }
 *
 * Not thread-safe; used at startup. Strings returned are owned by the cfg and live
 * until cfg_free(). */
#ifndef WARDEN_CONFIG_H
#define WARDEN_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cfg;

struct cfg *cfg_create(void);
void cfg_free(struct cfg *c); /* wipes secrets; NULL does nothing */

/* Set when a value was bad; errstr is the one line to print before exit(2). */
int cfg_failed(const struct cfg *c);
const char *cfg_errstr(const struct cfg *c);

/* Record an error found by the caller's own cross-field validation (first one wins). */
void cfg_fail(struct cfg *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Integer in [min, max] (decimal). */
long long cfg_int(struct cfg *c, const char *name, long long def, long long min, long long max);

/* Boolean: true/false, 1/0, yes/no, on/off (any case). */
int cfg_bool(struct cfg *c, const char *name, int def);

/* Duration with a unit — ms, s, m, h, d (e.g. "50ms", "5m"); a bare "0" is 0. Returns
 * milliseconds in [min_ms, max_ms]. def is written the same way. */
int64_t cfg_duration_ms(struct cfg *c, const char *name, const char *def, int64_t min_ms,
                        int64_t max_ms);

/* Size with a unit — B, KiB, MiB, GiB (e.g. "64KiB"). Returns bytes in [min, max]. */
uint64_t cfg_size(struct cfg *c, const char *name, const char *def, uint64_t min, uint64_t max);

/* One of a NULL-terminated list of allowed words. Returns its index. */
int cfg_enum(struct cfg *c, const char *name, const char *def, const char *const *allowed);

/* Any string; if valid is given it must accept it (allowed describes what it accepts,
 * for the error). def may be NULL: returns NULL when unset. */
const char *cfg_str(struct cfg *c, const char *name, const char *def,
                    int (*valid)(const char *value), const char *allowed);

/* A secret: NAME, or NAME_FILE naming a file holding it (one trailing newline is
 * stripped); both set is an error. The value lives in locked memory, is masked in
 * cfg_print() and wiped by cfg_free(). Returns NULL when unset. */
const char *cfg_secret(struct cfg *c, const char *name);

/* Is NAME or NAME_FILE set in the environment? */
int cfg_isset(const char *name);

/* Record a derived or otherwise-read value for cfg_print() (e.g. a variable family like
 * AUDIT_PRIVATE_KEY_V<n>, read by the daemon itself). */
void cfg_note(struct cfg *c, const char *name, const char *value, int secret);

/* Print the effective configuration, one `NAME=value` per line, secrets masked. */
void cfg_print(const struct cfg *c, FILE *out);

/* Parsers behind the getters, for values that do not come from the environment (rules
 * files). Return 0, or -1 on bad syntax. */
int cfg_parse_duration_ms(const char *s, int64_t *out_ms);
int cfg_parse_size(const char *s, uint64_t *out);

#endif
