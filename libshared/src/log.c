/* SPDX-License-Identifier: Apache-2.0 */
/* log: JSON-lines logging to stdout — line formatting, JSON string escaping, and the
 * bounded ring buffer drained by one writer thread. */
#include "shared/log.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096
#define LOG_RING_SIZE ((size_t)256 * 1024)
#define LOG_DAEMON_MAX 64
/* Longest msg and string value, quoted, so one long value cannot crowd out the rest. */
#define LOG_MSG_MAX 2048
#define LOG_VALUE_MAX 1024

/* Appended when a line had to be cut; its room is reserved up front so it always fits. */
static const char log_trunc_tail[] = ",\"truncated\":true}\n";

static char log_daemon[LOG_DAEMON_MAX] = "warden";
static _Atomic int log_min_level = LOG_INFO;
static _Atomic uint64_t log_dropped_lines;

/* The ring: producers copy whole lines into the free part under ring_mu; the writer
 * thread writes the used part to fd 1 without holding ring_mu, then releases it. */
static pthread_mutex_t ring_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ring_cv = PTHREAD_COND_INITIALIZER;
static char ring[LOG_RING_SIZE];
static size_t ring_head; /* first queued byte */
static size_t ring_used; /* queued bytes */
static int ring_running; /* writer thread accepts lines */
static int ring_stopping;
static pthread_t ring_thread;

/* Serialises every write() to fd 1, so a direct (critical) line never lands between two
 * partial writes of the writer thread and splits one of its lines. */
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const log_level_names[] = {"debug", "info", "warn", "error", "critical"};

void log_init(const char *daemon, enum log_level min_level)
{
    if (daemon)
        snprintf(log_daemon, sizeof(log_daemon), "%s", daemon);
    atomic_store(&log_min_level, (int)min_level);
}

int log_level_parse(const char *s, enum log_level *out)
{
    assert(out);
    if (!s)
        return -1;
    for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
        if (strcasecmp(s, log_level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level >= sizeof(log_level_names) / sizeof(log_level_names[0]))
        return "unknown";
    return log_level_names[level];
}

int log_enabled(enum log_level level)
{
    return (int)level >= atomic_load_explicit(&log_min_level, memory_order_relaxed);
}

uint64_t log_dropped(void)
{
    return atomic_load(&log_dropped_lines);
}

/* ---- hashing ---------------------------------------------------------------------- */

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

static void sodium_init_once(void)
{
    /* SHA-256 needs no random source, so even a failed init leaves it usable. */
    if (sodium_init() < 0)
        return;
}

char *log_hash_id(const void *secret, size_t len, char out[13])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[crypto_hash_sha256_BYTES];

    assert(out && (secret || len == 0));
    pthread_once(&sodium_once, sodium_init_once);
    crypto_hash_sha256(digest, secret, len);
    for (size_t i = 0; i < 6; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0x0f];
    }
    out[12] = '\0';
    return out;
}

/* ---- JSON escaping ---------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence starting at p (a multi-byte lead), or 0 if it
 * is not one (overlong, surrogate, above U+10FFFF, cut short). The string is
 * NUL-terminated and NUL is never a continuation byte, so this never reads past it. */
static size_t utf8_seq_len(const unsigned char *p)
{
    size_t n;
    unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        if (p[0] == 0xe0)
            lo = 0xa0; /* overlong */
        else if (p[0] == 0xed)
            hi = 0x9f; /* UTF-16 surrogates */
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        if (p[0] == 0xf0)
            lo = 0x90; /* overlong */
        else if (p[0] == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    }
    return n;
}

/* The escaped form of the character at p: its text into tmp (or a pointer to the input
 * bytes, for valid UTF-8), its output length into *outlen. Returns input bytes used. */
static size_t escape_one(const unsigned char *p, char tmp[8], const char **piece, size_t *outlen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char c = p[0];

    *piece = tmp;
    *outlen = 2;
    tmp[0] = '\\';
    switch (c) {
    case '"': tmp[1] = '"'; return 1;
    case '\\': tmp[1] = '\\'; return 1;
    case '\n': tmp[1] = 'n'; return 1;
    case '\r': tmp[1] = 'r'; return 1;
    case '\t': tmp[1] = 't'; return 1;
    case '\b': tmp[1] = 'b'; return 1;
    case '\f': tmp[1] = 'f'; return 1;
    default: break;
    }
    if (c < 0x20 || c == 0x7f) {
        tmp[1] = 'u';
        tmp[2] = '0';
        tmp[3] = '0';
        tmp[4] = hex[c >> 4];
        tmp[5] = hex[c & 0x0f];
        *outlen = 6;
        return 1;
    }
    if (c < 0x80) {
        *piece = (const char *)p;
        *outlen = 1;
        return 1;
    }
    size_t n = utf8_seq_len(p);
    if (n == 0) {
        *piece = "\\ufffd"; /* invalid byte: the replacement character */
        *outlen = 6;
        return 1;
    }
    *piece = (const char *)p;
    *outlen = n;
    return n;
}

/* Escape s into out (outsize bytes, NUL-terminated). *complete tells whether all of s
 * made it. Returns the length written. */
static size_t escape_into(const char *s, char *out, size_t outsize, int *complete)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t len = 0;

    assert(out && outsize > 0);
    while (*p) {
        char tmp[8];
        const char *piece;
        size_t piece_len;
        size_t used = escape_one(p, tmp, &piece, &piece_len);
        /* Cut only between characters, so the output never ends inside an escape. */
        if (piece_len > outsize - 1 - len)
            break;
        memcpy(out + len, piece, piece_len);
        len += piece_len;
        p += used;
    }
    out[len] = '\0';
    *complete = (*p == '\0');
    return len;
}

size_t log_json_escape(const char *s, char *out, size_t outsize)
{
    int complete;
    return escape_into(s, out, outsize, &complete);
}

/* ---- line formatting -------------------------------------------------------------- */

/* A line under construction. cap excludes the room kept for the closing tail. */
struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
    size_t cap;
    int truncated;
};

/* Append raw text, all or nothing. Returns 0, or -1 when it does not fit. */
static int line_raw(struct line *l, const char *s, size_t n)
{
    if (n > l->cap - l->len)
        return -1;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return 0;
}

/* Append a quoted, escaped string of at most max bytes (quotes included), cut to fit.
 * Returns 0, 1 when it was cut (the line is marked truncated), or -1 when not even the
 * two quotes fit. */
static int line_str_max(struct line *l, const char *s, size_t max)
{
    size_t cap = l->cap - l->len < max ? l->cap : l->len + max;
    int complete;

    if (cap - l->len < 2)
        return -1;
    l->buf[l->len++] = '"';
    /* Keep one byte for the closing quote: the NUL escape_into writes lands there. */
    l->len += escape_into(s, l->buf + l->len, cap - l->len, &complete);
    l->buf[l->len++] = '"';
    if (complete)
        return 0;
    l->truncated = 1;
    return 1;
}

static int line_str(struct line *l, const char *s)
{
    return line_str_max(l, s, LOG_VALUE_MAX);
}

/* Append `,"key":` — rolls back and returns -1 if the key does not fit. */
static int line_key(struct line *l, const char *key)
{
    size_t mark = l->len;

    if (line_raw(l, ",", 1) != 0 || line_str(l, key) != 0 || line_raw(l, ":", 1) != 0) {
        l->len = mark;
        l->truncated = 1;
        return -1;
    }
    return 0;
}

static void line_field(struct line *l, const struct log_field *f)
{
    char num[64];
    size_t mark = l->len;
    int rc;

    if (line_key(l, f->key ? f->key : "") != 0)
        return;
    switch (f->type) {
    case LOG_F_STR:
        /* A cut string is still a value worth keeping. */
        rc = f->v.s ? (line_str(l, f->v.s) < 0 ? -1 : 0) : line_raw(l, "null", 4);
        break;
    case LOG_F_INT:
        rc = line_raw(l, num, (size_t)snprintf(num, sizeof(num), "%lld", f->v.i));
        break;
    case LOG_F_DBL:
        /* JSON has no NaN or infinities. */
        if (isfinite(f->v.d))
            rc = line_raw(l, num, (size_t)snprintf(num, sizeof(num), "%.6g", f->v.d));
        else
            rc = line_raw(l, "null", 4);
        break;
    case LOG_F_BOOL: rc = f->v.i ? line_raw(l, "true", 4) : line_raw(l, "false", 5); break;
    default: rc = line_raw(l, "null", 4); break;
    }
    if (rc != 0) {
        l->len = mark;
        l->truncated = 1;
    }
}

static void line_timestamp(struct line *l)
{
    struct timespec ts;
    struct tm tm;
    char buf[40];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    line_raw(l, "{\"ts\":\"", 7);
    line_raw(l, buf, n);
    line_raw(l, "\",\"level\":\"", 11);
}

/* Format the whole line into l; always a complete JSON object ending in "}\n". */
static void line_format(struct line *l, enum log_level level, const char *request_id,
                        const char *msg, va_list ap)
{
    l->len = 0;
    l->cap = sizeof(l->buf) - sizeof(log_trunc_tail);
    l->truncated = 0;

    line_timestamp(l);
    line_raw(l, log_level_name(level), strlen(log_level_name(level)));
    line_raw(l, "\",\"daemon\":", 11);
    line_str(l, log_daemon);
    line_raw(l, ",\"msg\":", 7);
    line_str_max(l, msg, LOG_MSG_MAX);
    if (request_id && line_key(l, "request_id") == 0)
        line_str(l, request_id);
    for (;;) {
        struct log_field f = va_arg(ap, struct log_field);
        if (f.type == LOG_F_END)
            break;
        line_field(l, &f); /* may not fit; later, shorter ones still might */
    }
    /* The tail's room was kept out of cap, so these always fit. */
    if (l->truncated) {
        memcpy(l->buf + l->len, log_trunc_tail, sizeof(log_trunc_tail) - 1);
        l->len += sizeof(log_trunc_tail) - 1;
    } else {
        memcpy(l->buf + l->len, "}\n", 2);
        l->len += 2;
    }
}

/* ---- output ----------------------------------------------------------------------- */

/* Write all of buf to fd 1 with as many write() calls as it takes. Returns 0 or -1. */
static int write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* Someone made stdout non-blocking: wait rather than lose the line. */
                struct pollfd pfd = {.fd = STDOUT_FILENO, .events = POLLOUT};
                (void)poll(&pfd, 1, 1000);
                continue;
            }
            return -1; /* closed or broken stdout: nothing better to do than drop it */
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void write_direct(const char *buf, size_t len)
{
    pthread_mutex_lock(&out_mu);
    (void)write_all(buf, len);
    pthread_mutex_unlock(&out_mu);
}

/* Queue a line. Returns 0 when queued or dropped, -1 when no writer runs (write it
 * directly instead). */
static int ring_push(const char *buf, size_t len)
{
    pthread_mutex_lock(&ring_mu);
    if (!ring_running) {
        pthread_mutex_unlock(&ring_mu);
        return -1;
    }
    if (len > LOG_RING_SIZE - ring_used) {
        pthread_mutex_unlock(&ring_mu);
        atomic_fetch_add(&log_dropped_lines, 1);
        return 0;
    }
    size_t tail = (ring_head + ring_used) % LOG_RING_SIZE;
    size_t first = LOG_RING_SIZE - tail < len ? LOG_RING_SIZE - tail : len;
    memcpy(ring + tail, buf, first);
    memcpy(ring, buf + first, len - first);
    /* The writer only sleeps on an empty ring, so only that transition needs a wake-up. */
    if (ring_used == 0)
        pthread_cond_signal(&ring_cv);
    ring_used += len;
    pthread_mutex_unlock(&ring_mu);
    return 0;
}

/* Writer thread: write the queued bytes in place (producers only touch the free part),
 * then give the space back. Leaves once stopping and empty. */
static void *ring_writer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&ring_mu);
    for (;;) {
        while (ring_used == 0 && !ring_stopping)
            pthread_cond_wait(&ring_cv, &ring_mu);
        if (ring_used == 0)
            break;
        size_t head = ring_head;
        size_t n = LOG_RING_SIZE - head < ring_used ? LOG_RING_SIZE - head : ring_used;
        pthread_mutex_unlock(&ring_mu);
        write_direct(ring + head, n);
        pthread_mutex_lock(&ring_mu);
        ring_head = (head + n) % LOG_RING_SIZE;
        ring_used -= n;
    }
    pthread_mutex_unlock(&ring_mu);
    return NULL;
}

int log_start(void)
{
    sigset_t all, old;
    int rc;

    pthread_mutex_lock(&ring_mu);
    if (ring_running) {
        pthread_mutex_unlock(&ring_mu);
        return 0;
    }
    ring_stopping = 0;
    /* The writer must never be picked to run a signal handler the daemon installs. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&ring_thread, NULL, ring_writer, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        ring_running = 1;
    pthread_mutex_unlock(&ring_mu);
    return rc == 0 ? 0 : -1;
}

void log_stop(void)
{
    pthread_mutex_lock(&ring_mu);
    if (!ring_running) {
        pthread_mutex_unlock(&ring_mu);
        return;
    }
    /* From here on lines are written directly; the writer drains what is queued. */
    ring_running = 0;
    ring_stopping = 1;
    pthread_cond_signal(&ring_cv);
    pthread_mutex_unlock(&ring_mu);
    pthread_join(ring_thread, NULL);
}

void log_emit(enum log_level level, const char *request_id, const char *msg, ...)
{
    struct line l;
    va_list ap;

    if (!log_enabled(level))
        return;
    /* Callers log on error paths and may look at errno afterwards. */
    int saved_errno = errno;
    va_start(ap, msg);
    line_format(&l, level, request_id, msg ? msg : "", ap);
    va_end(ap);
    if (level >= LOG_CRITICAL || ring_push(l.buf, l.len) != 0)
        write_direct(l.buf, l.len);
    errno = saved_errno;
}
