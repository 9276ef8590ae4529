/* SPDX-License-Identifier: Apache-2.0 */
/* harness_redis: a private redis-server per test — start on a free port, stop, kill,
 * restart on the same port and data, pause (SIGSTOP) — and commands to it (see harness.h). */
#include "harness.h"
#include "harness_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define TH_RESTART_BIND_MS 2000 /* how long a restart retries a busy port */

/* Keep extra_args (NUL-separated) in r for restarts. Returns 0 or -1 if they do not fit. */
static int redis_keep_args(struct th_redis *r, const char *const *extra)
{
    r->extra_len = 0;
    for (size_t i = 0; extra && extra[i]; i++) {
        size_t n = strlen(extra[i]) + 1;
        if (r->extra_len + n > sizeof(r->extra)) {
            fprintf(stderr, "th_redis_start: extra arguments exceed %d bytes\n", TH_REDIS_ARGS_MAX);
            return -1;
        }
        memcpy(r->extra + r->extra_len, extra[i], n);
        r->extra_len += n;
    }
    return 0;
}

/* Fork redis-server for r's port, dir and extra arguments; records pid and pid file. */
static int redis_spawn(struct th_redis *r)
{
    char port[16], logfile[300], path[512];
    const char *argv[16 + TH_REDIS_ARGS_MAX + 1]; /* each extra takes >= 1 byte */
    int n = 0;
    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(logfile, sizeof(logfile), "%s/redis.log", r->dir);
    snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d/0", r->port);
    if (thi_resolve_path("redis-server", path, sizeof(path)) != 0)
        return -1;
    /* clang-format off */
    const char *fixed[] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no", "--dir", r->dir,
                           "--daemonize", "no", "--logfile", logfile, NULL};
    /* clang-format on */
    for (int i = 0; fixed[i]; i++)
        argv[n++] = fixed[i];
    for (size_t off = 0; off < r->extra_len; off += strlen(r->extra + off) + 1)
        argv[n++] = r->extra + off;
    argv[n] = NULL;

    /* Errors before Redis opens its log file (bad arguments) go to stderr: same file. */
    int logfd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    char **envp = thi_make_env(NULL, NULL);
    pid_t pid = logfd >= 0 && envp ? thi_spawn(path, (char *const *)argv, envp, logfd, logfd) : -1;
    free(envp);
    if (logfd >= 0)
        close(logfd);
    if (pid < 0)
        return -1;
    r->pid = pid;
    thi_write_pidfile(r->dir, "redis", pid);
    return 0;
}

/* Signal and reap r's server (SIGKILL after timeout_ms); no-op if it is not running. */
static void redis_end(struct th_redis *r, int sig, int timeout_ms)
{
    int forced;
    if (r->pid <= 0)
        return;
    kill(r->pid, sig);
    if (sig != SIGKILL)
        kill(r->pid, SIGCONT); /* a paused server would never see the SIGTERM */
    thi_reap(r->pid, timeout_ms, &forced);
    r->pid = 0;
    thi_remove_pidfile(r->dir, "redis");
}

static int redis_pings(struct th_redis *r)
{
    redisReply *reply = th_redis_cmd_ms(r, 200, "PING");
    int ok = reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0;
    freeReplyObject(reply);
    return ok;
}

/* Wait for PING to answer. Returns 0, 1 if the server exited (port taken, bad argument),
 * -1 after timeout_ms. */
static int redis_wait_ready(struct th_redis *r, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    for (;;) {
        if (redis_pings(r))
            return 0;
        int status;
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0;
            thi_remove_pidfile(r->dir, "redis");
            return 1;
        }
        if (th_now_ms() >= deadline)
            return -1;
        thi_sleep_ms(10);
    }
}

int th_redis_start(struct th_redis *r, const char *const *extra_args)
{
    memset(r, 0, sizeof(*r));
    if (redis_keep_args(r, extra_args) != 0 || thi_make_tmpdir("redis", r->dir, sizeof(r->dir)))
        goto fail;
    /* Another process may take the port between th_free_port and the bind: try again. */
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = th_free_port();
        if (r->port < 0 || redis_spawn(r) != 0)
            goto fail;
        int ready = redis_wait_ready(r, th_ms(TH_READY_WAIT_MS));
        if (ready == 0)
            return 0;
        if (ready < 0)
            break;
    }
fail:
    fprintf(stderr, "th_redis_start: redis-server did not start (port %d)\n", r->port);
    if (r->dir[0]) {
        char log[300];
        snprintf(log, sizeof(log), "%s/redis.log", r->dir);
        thi_dump_tail(log);
    }
    redis_end(r, SIGKILL, 0);
    thi_remove_tree(r->dir);
    r->dir[0] = '\0';
    return -1;
}

void th_redis_stop(struct th_redis *r)
{
    redis_end(r, SIGTERM, 5000);
    thi_remove_tree(r->dir);
    r->dir[0] = '\0';
}

void th_redis_kill(struct th_redis *r)
{
    redis_end(r, SIGKILL, 0);
}

int th_redis_restart(struct th_redis *r)
{
    int64_t bind_deadline = th_now_ms() + TH_RESTART_BIND_MS;
    redis_end(r, SIGKILL, 0);
    for (;;) {
        if (redis_spawn(r) != 0)
            return -1;
        int ready = redis_wait_ready(r, th_ms(TH_READY_WAIT_MS));
        if (ready == 0)
            return 0;
        if (ready < 0 || th_now_ms() >= bind_deadline)
            break;
        thi_sleep_ms(50); /* most likely the port is still busy */
    }
    fprintf(stderr, "th_redis_restart: redis-server did not come back on port %d\n", r->port);
    char log[300];
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    thi_dump_tail(log);
    redis_end(r, SIGKILL, 0);
    return -1;
}

void th_redis_pause(struct th_redis *r)
{
    if (r->pid > 0)
        kill(r->pid, SIGSTOP);
}

void th_redis_resume(struct th_redis *r)
{
    if (r->pid > 0)
        kill(r->pid, SIGCONT);
}

static redisReply *redis_vcmd(const struct th_redis *r, int timeout_ms, const char *fmt, va_list ap)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000,
                         .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    redisReply *reply = NULL;
    if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK)
        reply = redisvCommand(c, fmt, ap);
    redisFree(c);
    return reply;
}

redisReply *th_redis_cmd_ms(struct th_redis *r, int timeout_ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redis_vcmd(r, timeout_ms, fmt, ap);
    va_end(ap);
    return reply;
}

redisReply *th_redis_cmd(struct th_redis *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redis_vcmd(r, 1000, fmt, ap);
    va_end(ap);
    return reply;
}

long long th_redis_int(struct th_redis *r, const char *fmt, ...)
{
    va_list ap;
    long long value = -1;
    va_start(ap, fmt);
    redisReply *reply = redis_vcmd(r, 1000, fmt, ap);
    va_end(ap);
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        value = reply->integer;
    } else if (reply && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS)) {
        char *end;
        errno = 0;
        long long v = strtoll(reply->str, &end, 10);
        if (errno == 0 && end != reply->str && *end == '\0')
            value = v;
    }
    freeReplyObject(reply);
    return value;
}

int th_make_certs(const char *dir, const char *ca)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-days 2 -subj /CN=%s -keyout %s.key -out %s.crt 2>/dev/null && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost "
             "-keyout server.key -out server.csr 2>/dev/null && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && "
             "openssl x509 -req -in server.csr -CA %s.crt -CAkey %s.key -CAcreateserial "
             "-days 2 -extfile san.ext -out server.crt 2>/dev/null",
             dir, ca, ca, ca, ca, ca);
    return system(cmd) == 0 ? 0 : -1;
}

int th_redis_start_tls(struct th_redis *r, const char *dir)
{
    char port_s[16], cert[300], key[300], ca[300];
    int port = th_free_port();
    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(cert, sizeof(cert), "%s/server.crt", dir);
    snprintf(key, sizeof(key), "%s/server.key", dir);
    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    const char *args[] = {"--tls-port",
                          port_s,
                          "--tls-cert-file",
                          cert,
                          "--tls-key-file",
                          key,
                          "--tls-ca-cert-file",
                          ca,
                          "--tls-auth-clients",
                          "no",
                          NULL};
    if (th_redis_start(r, args) != 0)
        return -1;
    r->tls_port = port;
    return 0;
}
