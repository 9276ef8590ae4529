/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for shared/log: the JSON shape of a line, escaping, truncation, level
 * filtering, hash ids, the writer thread and dropping when the buffer is full. */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shared/log.h"

/* ---- capturing fd 1 ----------------------------------------------------------------- */

struct capture {
    int saved_fd;
    FILE *file;
};

/* Point fd 1 at a temporary file. */
static void capture_begin(struct capture *c)
{
    fflush(stdout);
    c->file = tmpfile();
    assert_non_null(c->file);
    c->saved_fd = dup(STDOUT_FILENO);
    assert_true(c->saved_fd >= 0);
    assert_true(dup2(fileno(c->file), STDOUT_FILENO) >= 0);
}

/* What was written so far, without ending the capture (caller frees). */
static char *capture_peek(struct capture *c)
{
    int fd = fileno(c->file);
    off_t size = lseek(fd, 0, SEEK_END);
    assert_true(size >= 0);
    char *buf = calloc(1, (size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
    return buf;
}

/* Restore fd 1 and return everything written meanwhile (caller frees). */
static char *capture_end(struct capture *c)
{
    fflush(stdout);
    assert_true(dup2(c->saved_fd, STDOUT_FILENO) >= 0);
    close(c->saved_fd);
    char *text = capture_peek(c);
    fclose(c->file);
    return text;
}

/* Split text into lines (without the '\n'); every line must end with one. Unused
 * entries point to an empty string. */
static size_t split_lines(char *text, char **lines, size_t max)
{
    static char empty[1];
    size_t n = 0;
    for (size_t i = 0; i < max; i++)
        lines[i] = empty;
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl); /* no partial last line */
        *nl = '\0';
        assert_true(n < max);
        lines[n++] = p;
        p = nl + 1;
    }
    return n;
}

static json_t *parse_line(const char *line)
{
    json_error_t err;
    json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        fail_msg("not JSON (%s): %s", err.text, line);
    assert_true(json_is_object(j));
    return j;
}

/* Log exactly one line with fn's logging, return it parsed. */
static json_t *one_line(void (*fn)(void), char **raw)
{
    struct capture c;
    capture_begin(&c);
    fn();
    char *text = capture_end(&c);
    /* Exactly one line: one newline, at the end. */
    size_t len = strlen(text);
    assert_true(len > 0 && text[len - 1] == '\n');
    assert_ptr_equal(strchr(text, '\n'), text + len - 1);
    text[len - 1] = '\0';
    json_t *j = parse_line(text);
    text[len - 1] = '\n';
    if (raw)
        *raw = text;
    else
        free(text);
    return j;
}

static int setup(void **state)
{
    (void)state;
    log_init("idemd", LOG_DEBUG);
    return 0;
}

/* ---- shape -------------------------------------------------------------------------- */

static void emit_full(void)
{
    log_info("req-42", "claim accepted", LF_S("route", "/v1/claim"), LF_I("status", 200),
             LF_I("big", -9007199254740993LL), LF_D("ratio", 0.25), LF_B("cached", 1),
             LF_B("replayed", 0), LF_S("none", NULL));
}

static void test_line_shape_and_field_order(void **state)
{
    (void)state;
    char *raw;
    json_t *j = one_line(emit_full, &raw);

    static const char *const keys[] = {"ts",     "level", "daemon", "msg",    "request_id", "route",
                                       "status", "big",   "ratio",  "cached", "replayed",   "none"};
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        assert_true(i < sizeof(keys) / sizeof(keys[0]));
        assert_string_equal(key, keys[i]);
        i++;
    }
    assert_int_equal(i, sizeof(keys) / sizeof(keys[0]));
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(j, "daemon")), "idemd");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "claim accepted");
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "req-42");
    assert_string_equal(json_string_value(json_object_get(j, "route")), "/v1/claim");
    assert_true(json_is_integer(json_object_get(j, "status")));
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    assert_true(json_integer_value(json_object_get(j, "big")) == -9007199254740993LL);
    assert_true(json_is_real(json_object_get(j, "ratio")));
    assert_true(json_real_value(json_object_get(j, "ratio")) == 0.25);
    assert_true(json_is_true(json_object_get(j, "cached")));
    assert_true(json_is_false(json_object_get(j, "replayed")));
    assert_true(json_is_null(json_object_get(j, "none")));
    /* Exactly one object on one line, starting as documented. */
    assert_memory_equal(raw, "{\"ts\":\"", 7);
    assert_int_equal(raw[strlen(raw) - 1], '\n');
    free(raw);
    json_decref(j);
}

static void test_ts_is_utc_with_millis(void **state)
{
    (void)state;
    time_t before = time(NULL);
    json_t *j = one_line(emit_full, NULL);
    time_t after = time(NULL);
    const char *ts = json_string_value(json_object_get(j, "ts"));
    assert_non_null(ts);

    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    assert_int_equal(regexec(&re, ts, 0, NULL, 0), 0);
    regfree(&re);

    struct tm tm = {0};
    assert_non_null(strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm));
    time_t t = timegm(&tm);
    assert_true(t >= before && t <= after); /* UTC, not local time */
    json_decref(j);
}

static void emit_no_rid(void)
{
    log_warn(NULL, "no request");
}

static void test_request_id_omitted_when_null(void **state)
{
    (void)state;
    json_t *j = one_line(emit_no_rid, NULL);
    assert_null(json_object_get(j, "request_id"));
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_int_equal(json_object_size(j), 4); /* ts, level, daemon, msg */
    json_decref(j);
}

/* ---- escaping ----------------------------------------------------------------------- */

static const char tricky[] = "q\"uote b\\slash\nnl\rcr\ttab \x01\x1f\x7f end";

static void emit_tricky(void)
{
    log_error("r\"id", tricky, LF_S("k\"ey\n", tricky),
              LF_S("utf8", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
}

static void test_escaping_round_trips(void **state)
{
    (void)state;
    char *raw;
    json_t *j = one_line(emit_tricky, &raw);
    /* No raw control character anywhere except the final newline. */
    for (const char *p = raw; p[1]; p++)
        assert_true((unsigned char)*p >= 0x20);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), tricky);
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "r\"id");
    assert_string_equal(json_string_value(json_object_get(j, "k\"ey\n")), tricky);
    assert_string_equal(json_string_value(json_object_get(j, "utf8")),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    assert_non_null(strstr(raw, "\\u0001"));
    assert_non_null(strstr(raw, "\\u001f"));
    free(raw);
    json_decref(j);
}

static void emit_invalid_utf8(void)
{
    /* stray continuation, lone lead, overlong '/', surrogate, above U+10FFFF, cut short */
    log_info(NULL, "a\x80"
                   "b\xff"
                   "c\xc0\xaf"
                   "d\xed\xa0\x80"
                   "e\xf4\x90\x80\x80"
                   "f\xe2\x82");
}

static void test_invalid_utf8_replaced(void **state)
{
    (void)state;
    json_t *j = one_line(emit_invalid_utf8, NULL);
    const char *msg = json_string_value(json_object_get(j, "msg"));
    assert_non_null(msg);
    /* One U+FFFD (EF BF BD) per invalid byte. */
    assert_string_equal(msg, "a\xef\xbf\xbd"
                             "b\xef\xbf\xbd"
                             "c\xef\xbf\xbd\xef\xbf\xbd"
                             "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                             "e\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                             "f\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(j);
}

static void test_json_escape_exact(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(log_json_escape("a\"b\\c\n\t\x01", out, sizeof(out)), 17);
    assert_string_equal(out, "a\\\"b\\\\c\\n\\t\\u0001");
    assert_int_equal(log_json_escape(NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(log_json_escape("\xc3\xa9", out, sizeof(out)), 2);
    assert_string_equal(out, "\xc3\xa9");
}

static void test_json_escape_truncates_between_characters(void **state)
{
    (void)state;
    char out[8];
    /* "ab" fits, the 2-byte escape \" would need one byte more than is left. */
    assert_int_equal(log_json_escape("ab\"", out, 4), 2);
    assert_string_equal(out, "ab");
    /* A 2-byte UTF-8 character is never split. */
    assert_int_equal(log_json_escape("x\xc3\xa9", out, 3), 1);
    assert_string_equal(out, "x");
    /* Neither is a \u00XX escape. */
    assert_int_equal(log_json_escape("\x02", out, 6), 0);
    assert_string_equal(out, "");
    assert_int_equal(log_json_escape("\x02", out, 7), 6);
    assert_string_equal(out, "\\u0002");
    assert_int_equal(log_json_escape("abc", out, 1), 0);
    assert_string_equal(out, "");
}

static void emit_numbers(void)
{
    log_info(NULL, "numbers", LF_D("nan", NAN), LF_D("inf", INFINITY), LF_D("ninf", -INFINITY),
             LF_D("big", 1e300), LF_D("small", 1.5e-7), LF_D("third", 1.0 / 3.0));
}

static void test_doubles_are_valid_json(void **state)
{
    (void)state;
    json_t *j = one_line(emit_numbers, NULL);
    assert_true(json_is_null(json_object_get(j, "nan")));
    assert_true(json_is_null(json_object_get(j, "inf")));
    assert_true(json_is_null(json_object_get(j, "ninf")));
    assert_true(json_number_value(json_object_get(j, "big")) == 1e300);
    assert_true(json_number_value(json_object_get(j, "small")) == 1.5e-7);
    /* %.6g precision */
    assert_true(fabs(json_number_value(json_object_get(j, "third")) - 0.333333) < 1e-12);
    json_decref(j);
}

/* ---- truncation --------------------------------------------------------------------- */

static char long_text[10001];

static void emit_long_msg(void)
{
    memset(long_text, 'x', sizeof(long_text) - 1);
    log_info("rid-1", long_text, LF_I("after", 7));
}

static void test_long_msg_truncated_keeps_valid_json(void **state)
{
    (void)state;
    char *raw;
    json_t *j = one_line(emit_long_msg, &raw);
    assert_true(strlen(raw) <= 4096);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    const char *msg = json_string_value(json_object_get(j, "msg"));
    assert_true(strlen(msg) > 1000 && strlen(msg) < sizeof(long_text) - 1);
    assert_int_equal(strspn(msg, "x"), strlen(msg));
    /* A long msg does not push out the request id or later small fields. */
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "rid-1");
    assert_int_equal(json_integer_value(json_object_get(j, "after")), 7);
    free(raw);
    json_decref(j);
}

static void emit_long_escapes(void)
{
    /* Every byte expands to 6 (\u0001), so each value is cut mid-way. */
    memset(long_text, '\x01', sizeof(long_text) - 1);
    log_info(NULL, "escapes", LF_S("a", long_text), LF_S("b", long_text), LF_S("c", long_text),
             LF_S("d", long_text), LF_S("e", long_text), LF_I("last", 1));
}

static void test_long_values_truncated_keeps_valid_json(void **state)
{
    (void)state;
    char *raw;
    json_t *j = one_line(emit_long_escapes, &raw);
    assert_true(strlen(raw) <= 4096);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    const char *a = json_string_value(json_object_get(j, "a"));
    assert_non_null(a);
    assert_true(strlen(a) > 100);
    assert_int_equal(strspn(a, "\x01"), strlen(a));
    free(raw);
    json_decref(j);
}

static void emit_many_fields(void)
{
    /* 60 fields of ~80 bytes each overflow the 4 KiB line. */
    static const char v[] =
        "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv";
#define F4(p) LF_S(p "0", v), LF_S(p "1", v), LF_S(p "2", v), LF_S(p "3", v)
#define F20(p) F4(p "a"), F4(p "b"), F4(p "c"), F4(p "d"), F4(p "e")
    log_info(NULL, "many", F20("x"), F20("y"), F20("z"));
#undef F20
#undef F4
}

static void test_many_fields_truncated_keeps_valid_json(void **state)
{
    (void)state;
    char *raw;
    json_t *j = one_line(emit_many_fields, &raw);
    assert_true(strlen(raw) <= 4096);
    assert_true(strlen(raw) > 3900); /* filled, not given up early */
    assert_true(json_is_true(json_object_get(j, "truncated")));
    assert_non_null(json_object_get(j, "xa0"));
    assert_null(json_object_get(j, "ze3"));
    free(raw);
    json_decref(j);
}

/* ---- levels ------------------------------------------------------------------------- */

static void test_level_filtering(void **state)
{
    (void)state;
    struct capture c;
    log_init("idemd", LOG_WARN);
    assert_false(log_enabled(LOG_DEBUG));
    assert_false(log_enabled(LOG_INFO));
    assert_true(log_enabled(LOG_WARN));
    assert_true(log_enabled(LOG_CRITICAL));
    capture_begin(&c);
    log_debug(NULL, "d");
    log_info(NULL, "i");
    log_warn(NULL, "w");
    log_error(NULL, "e");
    log_critical(NULL, "c");
    char *text = capture_end(&c);
    char *lines[8];
    assert_int_equal(split_lines(text, lines, 8), 3);
    static const char *const want[] = {"warn", "error", "critical"};
    for (size_t i = 0; i < 3; i++) {
        json_t *j = parse_line(lines[i]);
        assert_string_equal(json_string_value(json_object_get(j, "level")), want[i]);
        json_decref(j);
    }
    free(text);
    log_init("idemd", LOG_DEBUG);
}

static void test_level_parse_and_name(void **state)
{
    (void)state;
    static const char *const names[] = {"debug", "info", "warn", "error", "critical"};
    static const enum log_level levels[] = {LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_CRITICAL};
    enum log_level l;
    for (size_t i = 0; i < 5; i++) {
        l = (enum log_level)99;
        assert_int_equal(log_level_parse(names[i], &l), 0);
        assert_int_equal(l, levels[i]);
        assert_string_equal(log_level_name(levels[i]), names[i]);
    }
    assert_int_equal(log_level_parse("WARN", &l), 0);
    assert_int_equal(l, LOG_WARN);
    l = LOG_INFO;
    assert_int_equal(log_level_parse("verbose", &l), -1);
    assert_int_equal(log_level_parse("", &l), -1);
    assert_int_equal(log_level_parse("warning", &l), -1);
    assert_int_equal(log_level_parse(NULL, &l), -1);
    assert_int_equal(l, LOG_INFO);
    assert_string_equal(log_level_name((enum log_level)42), "unknown");
}

/* ---- hash ids ----------------------------------------------------------------------- */

static void test_hash_id_known_vectors(void **state)
{
    (void)state;
    char out[13];
    /* SHA-256("abc") = ba7816bf 8f01cfea ..., SHA-256("") = e3b0c442 98fc1c14 ... */
    char again[13];
    assert_ptr_equal(log_hash_id("abc", 3, out), out);
    assert_string_equal(out, "ba7816bf8f01");
    assert_string_equal(log_hash_id("abc", 3, again), out); /* deterministic */
    assert_string_equal(log_hash_id("", 0, out), "e3b0c44298fc");
    assert_int_equal(strlen(log_hash_id("refresh-token-1", 15, out)), 12);
    assert_string_not_equal(out, log_hash_id("refresh-token-2", 15, again));
}

/* ---- writer thread ------------------------------------------------------------------ */

static void test_sync_before_start(void **state)
{
    (void)state;
    struct capture c;
    capture_begin(&c);
    log_info(NULL, "before start");
    /* No writer thread exists, so the line is already in the file. */
    char *now = capture_peek(&c);
    assert_non_null(strstr(now, "\"msg\":\"before start\""));
    free(now);
    free(capture_end(&c));
}

static void test_async_in_order_and_flushed_by_stop(void **state)
{
    (void)state;
    enum { N = 1000 };
    struct capture c;
    uint64_t dropped = log_dropped();
    capture_begin(&c);
    assert_int_equal(log_start(), 0);
    for (int i = 0; i < N; i++)
        log_info(NULL, "seq", LF_I("n", i));
    log_stop();
    char *text = capture_end(&c);
    /* 1000 short lines fit in the buffer: none may be dropped. */
    assert_int_equal(log_dropped(), dropped);
    static char *lines[N + 1];
    assert_int_equal(split_lines(text, lines, N + 1), N);
    for (int i = 0; i < N; i++) {
        json_t *j = parse_line(lines[i]);
        assert_int_equal(json_integer_value(json_object_get(j, "n")), i);
        json_decref(j);
    }
    free(text);
}

enum { MT_THREADS = 8, MT_LINES = 2000 };

static void *mt_logger(void *arg)
{
    long t = (long)arg;
    for (int i = 0; i < MT_LINES; i++)
        log_info("rid", "from thread", LF_I("t", t), LF_I("n", i), LF_S("pad", "0123456789"));
    return NULL;
}

static void test_threads_lines_never_interleave(void **state)
{
    (void)state;
    struct capture c;
    pthread_t th[MT_THREADS];
    uint64_t dropped = log_dropped();
    capture_begin(&c);
    assert_int_equal(log_start(), 0);
    for (long t = 0; t < MT_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, mt_logger, (void *)t), 0);
    for (int t = 0; t < MT_THREADS; t++)
        pthread_join(th[t], NULL);
    log_stop();
    char *text = capture_end(&c);
    static char *lines[MT_THREADS * MT_LINES + 1];
    size_t n = split_lines(text, lines, MT_THREADS * MT_LINES + 1);
    /* Every line whole; each thread's lines in its own order; all accounted for. */
    int next[MT_THREADS] = {0};
    for (size_t i = 0; i < n; i++) {
        json_t *j = parse_line(lines[i]);
        long long t = json_integer_value(json_object_get(j, "t"));
        long long seq = json_integer_value(json_object_get(j, "n"));
        assert_true(t >= 0 && t < MT_THREADS);
        assert_true(seq >= next[t]);
        next[t] = (int)seq + 1;
        json_decref(j);
    }
    assert_int_equal(n + (log_dropped() - dropped), MT_THREADS * MT_LINES);
    free(text);
}

/* A pipe nobody reads yet stands in for a stuck stdout. */
struct pipe_reader {
    int fd;
    char *buf;
    size_t len, cap;
};

static void *drain_pipe(void *arg)
{
    struct pipe_reader *r = arg;
    for (;;) {
        if (r->cap - r->len < 65536) {
            r->cap = r->cap * 2 + 65536;
            r->buf = realloc(r->buf, r->cap + 1);
            if (!r->buf)
                return NULL;
        }
        ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
        if (n <= 0)
            break;
        r->len += (size_t)n;
    }
    r->buf[r->len] = '\0';
    return NULL;
}

struct stuck_stdout {
    int saved_fd;
    int pipe_fd[2];
    struct pipe_reader reader;
    pthread_t reader_thread;
};

static void stuck_begin(struct stuck_stdout *s)
{
    fflush(stdout);
    assert_int_equal(pipe(s->pipe_fd), 0);
    /* Smallest pipe the kernel allows, so the ring fills first. */
    (void)fcntl(s->pipe_fd[1], F_SETPIPE_SZ, 4096);
    s->saved_fd = dup(STDOUT_FILENO);
    assert_true(dup2(s->pipe_fd[1], STDOUT_FILENO) >= 0);
    close(s->pipe_fd[1]);
    memset(&s->reader, 0, sizeof(s->reader));
    s->reader.fd = s->pipe_fd[0];
}

static void stuck_unblock(struct stuck_stdout *s)
{
    assert_int_equal(pthread_create(&s->reader_thread, NULL, drain_pipe, &s->reader), 0);
}

/* Restore fd 1 (closing the pipe's last write end) and return what was read. */
static char *stuck_end(struct stuck_stdout *s)
{
    assert_true(dup2(s->saved_fd, STDOUT_FILENO) >= 0);
    close(s->saved_fd);
    pthread_join(s->reader_thread, NULL);
    close(s->pipe_fd[0]);
    assert_non_null(s->reader.buf);
    return s->reader.buf;
}

static char pad_1k[1025];

static void test_full_buffer_drops_and_counts(void **state)
{
    (void)state;
    enum { N = 2000 };
    struct stuck_stdout s;
    memset(pad_1k, 'p', sizeof(pad_1k) - 1);
    uint64_t dropped = log_dropped();
    stuck_begin(&s);
    assert_int_equal(log_start(), 0);
    /* ~1.1 KB lines, 2.2 MB in all, while nothing reads: at most the 256 KiB ring plus
     * the pipe (a few KiB) can be taken, so most lines must be dropped, immediately. */
    for (int i = 0; i < N; i++)
        log_info(NULL, "fill", LF_I("n", i), LF_S("pad", pad_1k));
    uint64_t lost = log_dropped() - dropped;
    assert_true(lost >= N - 400);
    stuck_unblock(&s);
    log_stop();
    char *text = stuck_end(&s);
    static char *lines[N + 1];
    size_t n = split_lines(text, lines, N + 1);
    assert_int_equal(n + lost, N);
    assert_int_equal(log_dropped() - dropped, lost); /* nothing dropped after unblocking */
    long long prev = -1;
    for (size_t i = 0; i < n; i++) {
        json_t *j = parse_line(lines[i]);
        long long seq = json_integer_value(json_object_get(j, "n"));
        assert_true(seq > prev);
        prev = seq;
        json_decref(j);
    }
    free(text);
}

static void *log_one_critical(void *arg)
{
    (void)arg;
    log_critical(NULL, "pool exhausted");
    return NULL;
}

static void test_critical_bypasses_full_buffer(void **state)
{
    (void)state;
    struct stuck_stdout s;
    pthread_t th;
    memset(pad_1k, 'p', sizeof(pad_1k) - 1);
    stuck_begin(&s);
    assert_int_equal(log_start(), 0);
    for (int i = 0; i < 400; i++) /* more than the ring holds */
        log_info(NULL, "fill", LF_S("pad", pad_1k));
    /* Then lines shorter than the critical one, so what room is left cannot take it. */
    for (int i = 0; i < 100; i++)
        log_info(NULL, "f");
    uint64_t dropped = log_dropped();
    assert_int_equal(pthread_create(&th, NULL, log_one_critical, NULL), 0);
    /* A queued critical line would be dropped at once (the ring is full and stuck); a
     * direct one waits for stdout. Give a wrong implementation time to show itself. */
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 200000000L};
    nanosleep(&pause, NULL);
    assert_int_equal(log_dropped(), dropped);
    stuck_unblock(&s);
    pthread_join(th, NULL);
    log_stop();
    assert_int_equal(log_dropped(), dropped);
    char *text = stuck_end(&s);
    assert_non_null(
        strstr(text, "\"level\":\"critical\",\"daemon\":\"idemd\",\"msg\":\"pool exhausted\""));
    free(text);
}

static void test_restart_after_stop(void **state)
{
    (void)state;
    struct capture c;
    capture_begin(&c);
    assert_int_equal(log_start(), 0);
    log_info(NULL, "first run");
    log_stop();
    log_stop(); /* a second stop does nothing */
    log_info(NULL, "between runs");
    assert_int_equal(log_start(), 0);
    log_info(NULL, "second run");
    log_stop();
    char *text = capture_end(&c);
    char *lines[4];
    assert_int_equal(split_lines(text, lines, 4), 3);
    assert_non_null(strstr(lines[0], "\"first run\""));
    assert_non_null(strstr(lines[1], "\"between runs\""));
    assert_non_null(strstr(lines[2], "\"second run\""));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_line_shape_and_field_order, setup),
        cmocka_unit_test_setup(test_ts_is_utc_with_millis, setup),
        cmocka_unit_test_setup(test_request_id_omitted_when_null, setup),
        cmocka_unit_test_setup(test_escaping_round_trips, setup),
        cmocka_unit_test_setup(test_invalid_utf8_replaced, setup),
        cmocka_unit_test(test_json_escape_exact),
        cmocka_unit_test(test_json_escape_truncates_between_characters),
        cmocka_unit_test_setup(test_doubles_are_valid_json, setup),
        cmocka_unit_test_setup(test_long_msg_truncated_keeps_valid_json, setup),
        cmocka_unit_test_setup(test_long_values_truncated_keeps_valid_json, setup),
        cmocka_unit_test_setup(test_many_fields_truncated_keeps_valid_json, setup),
        cmocka_unit_test_setup(test_level_filtering, setup),
        cmocka_unit_test(test_level_parse_and_name),
        cmocka_unit_test(test_hash_id_known_vectors),
        cmocka_unit_test_setup(test_sync_before_start, setup),
        cmocka_unit_test_setup(test_async_in_order_and_flushed_by_stop, setup),
        cmocka_unit_test_setup(test_threads_lines_never_interleave, setup),
        cmocka_unit_test_setup(test_full_buffer_drops_and_counts, setup),
        cmocka_unit_test_setup(test_critical_bypasses_full_buffer, setup),
        cmocka_unit_test_setup(test_restart_after_stop, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
