/* SPDX-License-Identifier: Apache-2.0 */
/* log: one JSON object per line on stdout.
 *
 *     {"ts":"2026-11-22T10:00:00.123Z","level":"info","daemon":"idemd","msg":"...",
 *      "request_id":"...", <fields>...}
 *
 * Lines are formatted on the caller's stack and handed to a writer thread through a
 * bounded buffer, so a slow stdout never stalls a request; if the buffer is full the line
 * is dropped and counted (log_dropped()). Lines at or above `critical` and everything
 * before log_start() are written directly. Thread-safe. Never pass secrets: log a short
 * hash (log_hash_id()) of a secret identifier instead. */
#ifndef WARDEN_LOG_H
#define WARDEN_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_CRITICAL };

enum log_field_type { LOG_F_END, LOG_F_STR, LOG_F_INT, LOG_F_DBL, LOG_F_BOOL };

struct log_field {
    const char *key;
    enum log_field_type type;
    union {
        const char *s;
        long long i;
        double d;
    } v;
};

#define LF_S(k, val) ((struct log_field){.key = (k), .type = LOG_F_STR, .v.s = (val)})
#define LF_I(k, val) ((struct log_field){.key = (k), .type = LOG_F_INT, .v.i = (long long)(val)})
#define LF_D(k, val) ((struct log_field){.key = (k), .type = LOG_F_DBL, .v.d = (double)(val)})
#define LF_B(k, val) ((struct log_field){.key = (k), .type = LOG_F_BOOL, .v.i = !!(val)})
#define LF_END ((struct log_field){.key = NULL, .type = LOG_F_END})

/* Set the daemon name and minimum level (before any thread logs). */
void log_init(const char *daemon, enum log_level min_level);
/* Start the writer thread; log_stop() flushes what is queued and joins it. */
int log_start(void);
void log_stop(void);

/* Parse "debug".."critical". Returns 0, or -1. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);
int log_enabled(enum log_level level);

/* Emit a line. request_id may be NULL. Fields end with LF_END; use the macros below. */
void log_emit(enum log_level level, const char *request_id, const char *msg, ...);

#define log_debug(rid, msg, ...) log_emit(LOG_DEBUG, rid, msg, ##__VA_ARGS__, LF_END)
#define log_info(rid, msg, ...) log_emit(LOG_INFO, rid, msg, ##__VA_ARGS__, LF_END)
#define log_warn(rid, msg, ...) log_emit(LOG_WARN, rid, msg, ##__VA_ARGS__, LF_END)
#define log_error(rid, msg, ...) log_emit(LOG_ERROR, rid, msg, ##__VA_ARGS__, LF_END)
#define log_critical(rid, msg, ...) log_emit(LOG_CRITICAL, rid, msg, ##__VA_ARGS__, LF_END)

/* Lines dropped because the buffer was full. */
uint64_t log_dropped(void);

/* A short, stable, non-reversible id for a secret (first 12 hex chars of its
 * SHA-256), into out (size >= 13). Returns out. */
char *log_hash_id(const void *secret, size_t len, char out[13]);

/* Escape s as the inside of a JSON string into out (size outsize, always
 * NUL-terminated; truncated if it does not fit). Returns the length written. */
size_t log_json_escape(const char *s, char *out, size_t outsize);

#endif
