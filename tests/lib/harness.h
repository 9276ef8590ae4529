/* SPDX-License-Identifier: Apache-2.0 */
/* harness: what integration tests and bench programs need around the code under test — a
 * private redis-server, daemons run as subprocesses, and a small HTTP/1.1 client over real
 * sockets. Uses hiredis, jansson and POSIX only (not libshared, so it cannot share its bugs).
 *
 * Temporary files go under $WARDEN_TEST_TMPDIR (set by tests/run.sh, which removes it and
 * kills whatever is left in it), else /tmp. Every child process gets
 * prctl(PR_SET_PDEATHSIG, SIGKILL): it dies with the *thread* that started it, so start
 * long-lived children (Redis, daemons) from the main thread or one that outlives them. */
#ifndef WARDEN_TESTS_HARNESS_H
#define WARDEN_TESTS_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

/* ---- temp dirs, ports, paths, time ----------------------------------------------------- */

/* Create a unique new directory under $WARDEN_TEST_TMPDIR (else /tmp) and write its path to
 * out. Returns 0 or -1. Thread-safe. The caller removes it (run.sh removes it anyway). */
int th_tmpdir(char *out, size_t size);

/* A loopback TCP port nothing listens on. Picked at random below the kernel's ephemeral range
 * (so no outgoing connection of the test can be using it, nor take it between a Redis kill
 * and restart) and checked by binding 127.0.0.1 to it; falls back to binding port 0.
 * Returns the port or -1. Thread-safe. */
int th_free_port(void);

/* Where the built binaries are: $WARDEN_BUILD (set by tests/run.sh) else "build".
 * th_bin("bin/idemd") → "<build>/bin/idemd", in a thread-local buffer that the next call
 * from the same thread overwrites. */
const char *th_bin(const char *rel);

/* Write text into path, creating or truncating it. Returns 0 or -1. */
int th_write_file(const char *path, const char *text);

/* Monotonic milliseconds. */
int64_t th_now_ms(void);

/* ---- under a checker (make valgrind) ---------------------------------------------------- */

/* $WARDEN_WRAP: a command prefix, words separated by spaces (no quoting, no glob
 * characters), e.g. "valgrind --tool=memcheck --log-file=/dir/%q{WARDEN_WRAP_TAG}.%p.log".
 * When it is set, every program the harness starts from the build dir (th_bin: daemons,
 * their tools, testd) runs as WRAP... <program> <args>, with WARDEN_WRAP_TAG=<name>.<test
 * pid>.<n> added to its environment so that a wrapper can name a file per process; other
 * programs (redis-server, sh, promtool...) run as they are. tests/run.sh puts the same
 * prefix before each test binary (tagged with its name).
 *
 * $WARDEN_TIME_SCALE: a whole number from 1 (the default) to 100 by which everything runs
 * slower under the wrapper. The harness multiplies its own waits by it: Redis PING and
 * GET /health after a start, th_proc_wait/th_proc_stop/th_run timeouts, th_http's 10 s and
 * th_connect's. Tests multiply with th_ms() where they wait for something (th_read_response)
 * or bound how long it may take. Lower bounds (it waited at least its configured timeout)
 * need no scaling: a checker only makes things slower. A test whose point is a latency that
 * scaling would make meaningless skips under a scale > 1 (cmocka's skip(), which run.sh lists,
 * never counts as passed). An invalid value stops the test with a message. */
int th_time_scale(void);

/* ms * th_time_scale() (saturating). */
int th_ms(int ms);

/* ---- a private redis-server ------------------------------------------------------------- */

#define TH_REDIS_ARGS_MAX 1024

struct th_redis {
    int port;
    pid_t pid;     /* 0 when not running */
    char dir[256]; /* its --dir: redis.log, redis.pid, any RDB/AOF */
    char url[128]; /* "redis://127.0.0.1:<port>/0" */
    int tls_port;  /* th_redis_start_tls: its TLS port (0: none) */
    /* Private: the extra arguments, NUL-separated, kept for th_redis_restart. */
    char extra[TH_REDIS_ARGS_MAX];
    size_t extra_len;
};

/* Start redis-server on a free loopback port in a new temp dir, with
 * --port N --bind 127.0.0.1 --save "" --appendonly no --dir <dir> --daemonize no
 * --logfile <dir>/redis.log followed by extra_args (NULL-terminated argv fragments, may be
 * NULL, e.g. {"--appendonly","yes",NULL}). Waits up to 5 s for PING to answer PONG; retries
 * on another port if the first one was taken meanwhile. Returns 0, or -1 (with the end of
 * redis.log on stderr and nothing left running). */
int th_redis_start(struct th_redis *r, const char *const *extra_args);
/* A CA (dir/<ca>.crt, .key) and a server certificate for localhost and 127.0.0.1 signed by
 * it (dir/server.crt, .key), made with openssl. Returns 0 or -1. */
int th_make_certs(const char *dir, const char *ca);
/* th_redis_start with a TLS port (r->tls_port) serving dir/server.crt, clients trusted
 * without a certificate of their own; dir as th_make_certs(dir, "ca") made it. */
int th_redis_start_tls(struct th_redis *r, const char *dir);

/* SIGCONT (in case it is paused) + SIGTERM, wait (SIGKILL after 5 s), remove the dir.
 * Harmless on a stopped or killed Redis (then it only removes the dir). */
void th_redis_stop(struct th_redis *r);

/* SIGKILL and reap; keeps port and dir for th_redis_restart. */
void th_redis_kill(struct th_redis *r);

/* Start again on the same port and dir with the same arguments (kills it first if it is
 * still running); retries the bind for up to 2 s, then waits up to 5 s for PING.
 * Returns 0 or -1. */
int th_redis_restart(struct th_redis *r);

/* SIGSTOP / SIGCONT: a frozen Redis accepts connections but answers nothing. */
void th_redis_pause(struct th_redis *r);
void th_redis_resume(struct th_redis *r);

/* Run one command (redisCommand format, so %b works) on a fresh connection to r with a 1 s
 * connect and reply timeout. Returns the reply (caller frees with freeReplyObject), or NULL
 * on a connection error or timeout. Thread-safe. */
redisReply *th_redis_cmd(struct th_redis *r, const char *fmt, ...);

/* The same with a timeout of timeout_ms for the connect and for the reply. */
redisReply *th_redis_cmd_ms(struct th_redis *r, int timeout_ms, const char *fmt, ...);

/* Run one command and return its integer reply — or a string/status reply that is a
 * decimal integer, so "GET counter" works. -1 on anything else. Thread-safe. */
long long th_redis_int(struct th_redis *r, const char *fmt, ...);

/* ---- programs run as subprocesses ----------------------------------------------------- */

struct th_proc {
    pid_t pid; /* 0 once reaped */
    int port;
    char log_path[256]; /* stdout + stderr, in its own temp dir; kept after it exits */
};

/* Start binary with argv (NULL-terminated, argv[0] included) and an environment made of
 * PATH, any ASAN_OPTIONS/UBSAN_OPTIONS/LSAN_OPTIONS of the test, and env (NULL-terminated
 * "NAME=value" strings, may be NULL). stdin is /dev/null, stdout + stderr go to log_path.
 * If port > 0, waits up to 5 s until GET /health on 127.0.0.1:port answers 200; if it exits
 * first or never answers, kills it, prints its log on stderr and returns -1. Returns 0. */
int th_proc_start(struct th_proc *p, const char *binary, const char *const *argv,
                  const char *const *env, int port);

#define TH_DAEMON_EXTRA_MAX 24

/* Start one of the project's daemons — bin is relative to the build dir, e.g. "bin/idemd"
 * — on a free loopback port (p->port), with LISTEN_ADDR and SHUTDOWN_TIMEOUT=5s set,
 * REDIS_URL=redis_url unless it is NULL, and the extra "NAME=value" settings (NULL-
 * terminated, at most TH_DAEMON_EXTRA_MAX; they override SHUTDOWN_TIMEOUT and REDIS_URL).
 * Waits for /health like th_proc_start. Returns 0 or -1. */
int th_daemon_start(struct th_proc *p, const char *bin, const char *redis_url,
                    const char *const *extra);

/* Send sig (and SIGCONT), wait up to timeout_ms for it to exit, SIGKILL after that.
 * Returns its exit status (WEXITSTATUS), 128+signal if a signal ended it (137 when it had
 * to be killed), or -1 if there is no process. Harmless to call twice. */
int th_proc_stop(struct th_proc *p, int sig, int timeout_ms);

/* The same without sending a signal first: waits up to timeout_ms, then SIGKILL. */
int th_proc_wait(struct th_proc *p, int timeout_ms);

/* Does the process's output so far contain needle? */
int th_proc_log_contains(const struct th_proc *p, const char *needle);

/* The whole output so far, NUL-terminated (caller frees), or NULL. */
char *th_proc_log(const struct th_proc *p);

/* Run a program to completion with the same environment rules as th_proc_start and stdin
 * from /dev/null, capturing stdout and stderr into NUL-terminated malloc'd strings (caller
 * frees; pass NULL to discard a stream). Returns the exit status, 128+signal if a signal
 * ended it, or -1 if it could not be run or ran past timeout_ms (then it is killed).
 * Thread-safe. */
int th_run(const char *binary, const char *const *argv, const char *const *env, char **out,
           char **err, int timeout_ms);

/* ---- a minimal HTTP/1.1 client (thread-safe, no globals) ------------------------------- */

struct th_resp {
    int status;
    char *headers; /* the header lines after the status line, "Name: value\r\n"... */
    char *body;    /* NUL-terminated (never NULL after success); body_len excludes it */
    size_t body_len;
};

/* One request on a new connection to 127.0.0.1:port. headers is a NULL-terminated list of
 * "Name: value" lines (may be NULL); body may be NULL. Adds Host, Content-Length (when a
 * body is given) and Connection: close unless headers already has them (or, for
 * Content-Length, Transfer-Encoding). Skips 1xx interim responses and reads the status,
 * headers and body (Content-Length, chunked, or until close; none for HEAD, 204, 304).
 * If the server closes while the body is being sent, its response is still read.
 * 10 s overall timeout. Returns 0 (out filled, free with th_resp_free) or -1. */
int th_http(int port, const char *method, const char *path, const char *const *headers,
            const char *body, size_t body_len, struct th_resp *out);

/* POST json (strlen) with Content-Type: application/json. Same return as th_http. */
int th_post_json(int port, const char *path, const char *json, struct th_resp *out);

/* The first header named name (case-insensitive), value trimmed, copied into buf (truncated
 * to bufsize). Returns buf, or NULL if there is no such header. */
const char *th_header(const struct th_resp *r, const char *name, char *buf, size_t bufsize);

/* The body parsed as JSON (caller json_decref's), or NULL if it is not JSON. */
json_t *th_json(const struct th_resp *r);

/* Free what a response holds and zero it; NULL and a zeroed response are fine. */
void th_resp_free(struct th_resp *r);

/* A blocking socket connected to 127.0.0.1:port (5 s connect timeout, 10 s send timeout),
 * for keep-alive and misbehaving clients. Returns the fd (caller closes) or -1. */
int th_connect(int port);

/* Send all of buf (no SIGPIPE). Returns 0, or -1 if the peer closed or it timed out. */
int th_send_all(int fd, const void *buf, size_t len);

/* Read exactly one response from fd — never past its end, so the next one stays readable —
 * with the same parsing as th_http (1xx responses are returned, not skipped), waiting at
 * most timeout_ms in all. Returns 0 (out filled) or -1. */
int th_read_response(int fd, struct th_resp *out, int timeout_ms);

#endif
