/* SPDX-License-Identifier: Apache-2.0 */
/* harness: time, temp dirs, ports and programs run as subprocesses, for integration tests
 * and bench programs (see harness.h; the private redis-server is harness_redis.c, the
 * HTTP client harness_http.c). */
/* GNU extensions used: memmem, pipe2, close_range, environ (the Makefile passes it too). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "harness.h"
#include "harness_buf.h"
#include "harness_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TH_LOG_TAIL 8192 /* how much of a log a failure prints */
#define TH_DEFAULT_PATH "PATH=/usr/local/bin:/usr/bin:/bin"

int64_t th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int th_time_scale(void)
{
    const char *s = getenv("WARDEN_TIME_SCALE");
    char *end;
    if (!s || !s[0])
        return 1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > 100) {
        fprintf(stderr, "th: WARDEN_TIME_SCALE=%s: expected a whole number from 1 to 100\n", s);
        exit(2);
    }
    return (int)v;
}

int th_ms(int ms)
{
    long long v = (long long)ms * th_time_scale();
    return v > INT_MAX ? INT_MAX : (int)v;
}

void thi_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A whole file as a NUL-terminated malloc'd string (length in *len if wanted), or NULL. */
static char *read_file(const char *path, size_t *len)
{
    struct th_buf b = {0};
    char chunk[4096];
    size_t n;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (th_buf_append(&b, chunk, n) != 0) {
            free(b.data);
            fclose(f);
            return NULL;
        }
    }
    fclose(f);
    if (len)
        *len = b.len;
    return th_buf_take(&b);
}

/* Print the end of a log file on stderr, to say why a start failed. */
void thi_dump_tail(const char *path)
{
    size_t len = 0;
    char *text = read_file(path, &len);
    if (!text)
        return;
    size_t from = len > TH_LOG_TAIL ? len - TH_LOG_TAIL : 0;
    fprintf(stderr, "---- %s%s ----\n%s\n---- end ----\n", path, from ? " (end)" : "", text + from);
    free(text);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void thi_remove_tree(const char *dir)
{
    if (dir[0])
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- temp dirs, ports, paths ---------------------------------------------------------- */

int thi_make_tmpdir(const char *prefix, char *out, size_t size)
{
    const char *base = getenv("WARDEN_TEST_TMPDIR");
    if (!base || !base[0])
        base = "/tmp";
    int n = snprintf(out, size, "%s/%s-XXXXXX", base, prefix);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "th: a temp dir under %s does not fit in %zu bytes\n", base, size);
        return -1;
    }
    if (!mkdtemp(out)) {
        fprintf(stderr, "th: cannot make a temp dir under %s: %s\n", base, strerror(errno));
        return -1;
    }
    return 0;
}

int th_tmpdir(char *out, size_t size)
{
    return thi_make_tmpdir("th", out, size);
}

/* Pid files let tests/run.sh kill what a crashed test left behind; a reaped child's file
 * is removed at once, so run.sh never kills a recycled pid. */
void thi_write_pidfile(const char *dir, const char *name, pid_t pid)
{
    char path[320];
    snprintf(path, sizeof(path), "%s/%s.pid", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%ld\n", (long)pid);
        fclose(f);
    }
}

void thi_remove_pidfile(const char *dir, const char *name)
{
    char path[320];
    snprintf(path, sizeof(path), "%s/%s.pid", dir, name);
    unlink(path);
}

/* Can 127.0.0.1:port be bound right now? (No SO_REUSEADDR: a TIME_WAIT also counts.) */
static int port_is_free(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* The lowest port the kernel hands out to outgoing connections. */
static int ephemeral_low(void)
{
    int low = 32768, high = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &low, &high) != 2)
            low = 32768;
        fclose(f);
    }
    return low;
}

int th_free_port(void)
{
    static _Thread_local unsigned seed;
    if (!seed)
        seed = (unsigned)th_now_ms() ^ ((unsigned)getpid() << 16) ^ (unsigned)(uintptr_t)&seed;
    int low = ephemeral_low();
    for (int i = 0; low > 11024 && i < 100; i++) {
        int port = 10000 + (int)((unsigned)rand_r(&seed) % (unsigned)(low - 10000));
        if (port_is_free(port))
            return port;
    }
    /* Fallback: let the kernel pick one. */
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

const char *th_bin(const char *rel)
{
    static _Thread_local char path[512];
    const char *build = getenv("WARDEN_BUILD");
    snprintf(path, sizeof(path), "%s/%s", build && build[0] ? build : "build", rel);
    return path;
}

/* ---- spawning ------------------------------------------------------------------------- */

/* The path to execute: name itself if it has a '/', else the first match on $PATH.
 * Returns 0, or -1 (with a message) if there is no such executable. */
int thi_resolve_path(const char *name, char *out, size_t size)
{
    if (strchr(name, '/')) {
        snprintf(out, size, "%s", name);
        if (access(out, X_OK) == 0)
            return 0;
    } else {
        const char *path = getenv("PATH");
        char dirs[4096];
        char *save = NULL;
        snprintf(dirs, sizeof(dirs), "%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
        for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            snprintf(out, size, "%s/%s", d, name);
            if (access(out, X_OK) == 0)
                return 0;
        }
    }
    fprintf(stderr, "th: %s: no such executable\n", name);
    return -1;
}

/* How to run a program: as it is, or after the words of $WARDEN_WRAP (see harness.h). */
struct th_exec {
    char path[512];    /* what to execve: the program, or the wrapper */
    char program[512]; /* the program's path */
    const char **argv; /* the caller's argv, or own (wrapped) */
    const char **own;  /* malloc'd argv when wrapped, else NULL */
    char *words;       /* malloc'd copy of $WARDEN_WRAP that own points into, or NULL */
    char tag[200];     /* "WARDEN_WRAP_TAG=<name>.<pid>.<n>" when wrapped */
};

/* Put $WARDEN_WRAP's words, the program's path and argv[1...] into x->argv. */
static int exec_wrap(struct th_exec *x, const char *wrap, const char *const *argv)
{
    static unsigned counter;
    size_t n = 0, k = 0;
    char *save = NULL;
    while (argv[n])
        n++;
    x->words = strdup(wrap);
    x->own = calloc(strlen(wrap) / 2 + 1 + n + 1, sizeof(*x->own));
    if (!x->words || !x->own)
        return -1;
    x->argv = x->own;
    for (char *w = strtok_r(x->words, " ", &save); w; w = strtok_r(NULL, " ", &save))
        x->argv[k++] = w;
    x->argv[k++] = x->program;
    for (size_t i = 1; i < n; i++)
        x->argv[k++] = argv[i];
    const char *base = strrchr(x->program, '/');
    int len = snprintf(x->tag, sizeof(x->tag), "WARDEN_WRAP_TAG=%.60s.%ld.%u",
                       base ? base + 1 : x->program, (long)getpid(),
                       __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
    for (int i = (int)strlen("WARDEN_WRAP_TAG="); i < len; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", x->tag[i]))
            x->tag[i] = '_';
    return thi_resolve_path(x->argv[0], x->path, sizeof(x->path));
}

/* Resolve binary; if it is under the build dir and $WARDEN_WRAP is set, run it wrapped.
 * Returns 0, or -1 (with a message); exec_free after either. */
static int exec_prepare(struct th_exec *x, const char *binary, const char *const *argv)
{
    char build[512];
    const char *wrap = getenv("WARDEN_WRAP"), *dir = getenv("WARDEN_BUILD");
    memset(x, 0, sizeof(*x));
    x->argv = (const char **)argv;
    if (thi_resolve_path(binary, x->program, sizeof(x->program)) != 0)
        return -1;
    snprintf(x->path, sizeof(x->path), "%s", x->program);
    /* As th_bin, which is not called: its buffer may hold one of the arguments. */
    snprintf(build, sizeof(build), "%s/", dir && dir[0] ? dir : "build");
    if (!wrap || !wrap[strspn(wrap, " ")] || strncmp(x->program, build, strlen(build)) != 0)
        return 0;
    if (exec_wrap(x, wrap, argv) != 0) {
        fprintf(stderr, "th: cannot run %s under WARDEN_WRAP=%s\n", binary, wrap);
        return -1;
    }
    return 0;
}

static void exec_free(struct th_exec *x)
{
    free((void *)x->own);
    free(x->words);
    x->own = NULL;
    x->words = NULL;
}

static int env_has(const char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return 1;
    return 0;
}

/* The child's environment: PATH and the sanitizer settings of this process (so `make asan`
 * reaches the daemons), unless env sets them, then env, then tag (may be NULL). Only the
 * array is malloc'd. */
char **thi_make_env(const char *const *env, const char *tag)
{
    static const char *const inherited[] = {"PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                                            NULL};
    size_t n = 0, k = 0;
    while (env && env[n])
        n++;
    const char **envp = calloc(n + 8, sizeof(*envp));
    if (!envp)
        return NULL;
    for (int i = 0; inherited[i]; i++) {
        if (env_has(env, inherited[i]))
            continue;
        size_t len = strlen(inherited[i]);
        const char *entry = NULL;
        for (char **e = environ; e && *e && !entry; e++)
            if (strncmp(*e, inherited[i], len) == 0 && (*e)[len] == '=')
                entry = *e;
        if (!entry && i == 0)
            entry = TH_DEFAULT_PATH;
        if (entry)
            envp[k++] = entry;
    }
    for (size_t i = 0; i < n; i++)
        envp[k++] = env[i];
    if (tag)
        envp[k++] = tag;
    return (char **)envp;
}

/* Fork and exec path with stdin from /dev/null and stdout/stderr on out_fd/err_fd (-1:
 * /dev/null). The test may have threads, so the child makes only async-signal-safe calls.
 * Returns the pid or -1. */
pid_t thi_spawn(const char *path, char *const argv[], char *const envp[], int out_fd, int err_fd)
{
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0)
        return -1;
    pid_t parent = getpid();
    long max_fd = sysconf(_SC_OPEN_MAX);
    pid_t pid = fork();
    if (pid == 0) {
        /* Die with the thread that started us, so a crashed test leaks nothing. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        /* Default dispositions and no blocked signals, whatever the test (or the shell that
         * ran it in the background, which ignores SIGINT) set up. */
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        for (int s = 1; s < NSIG; s++)
            sigaction(s, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(devnull, 0) < 0 || dup2(out_fd >= 0 ? out_fd : devnull, 1) < 0 ||
            dup2(err_fd >= 0 ? err_fd : devnull, 2) < 0)
            _exit(127);
        if (close_range(3, ~0U, 0) != 0)
            for (long fd = 3; fd < max_fd; fd++)
                close((int)fd);
        execve(path, argv, envp);
        static const char msg[] = "th: exec failed: ";
        (void)!write(2, msg, sizeof(msg) - 1);
        (void)!write(2, path, strlen(path));
        (void)!write(2, "\n", 1);
        _exit(127);
    }
    close(devnull);
    return pid;
}

/* A waitpid status as the harness reports it: exit status, 128+signal, or -1. */
static int decode_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

/* Wait up to timeout_ms for pid to exit, SIGKILL it after that; reaps it either way.
 * *forced says whether it had to be killed. Returns the exit status, 128+signal, or -1. */
int thi_reap(pid_t pid, int timeout_ms, int *forced)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    int status = 0;
    *forced = 0;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            break;
        if (got < 0 && errno != EINTR)
            return -1;
        if (th_now_ms() >= deadline) {
            *forced = 1;
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                    return -1;
            break;
        }
        thi_sleep_ms(2);
    }
    return decode_status(status);
}

/* ---- subprocesses --------------------------------------------------------------------- */

/* The directory holding p's log (and pid file). */
static void proc_dir(const struct th_proc *p, char *out, size_t size)
{
    snprintf(out, size, "%s", p->log_path);
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
}

static void proc_reaped(struct th_proc *p)
{
    char dir[256];
    proc_dir(p, dir, sizeof(dir));
    thi_remove_pidfile(dir, "proc");
    p->pid = 0;
}

/* One GET /health with the public client. Returns its status, or -1. */
static int health_status(int port, int timeout_ms)
{
    char req[128];
    struct th_resp resp;
    int status = -1;
    int n =
        snprintf(req, sizeof(req),
                 "GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", port);
    int fd = th_connect(port);
    if (fd < 0)
        return -1;
    if (th_send_all(fd, req, (size_t)n) == 0 && th_read_response(fd, &resp, timeout_ms) == 0) {
        status = resp.status;
        th_resp_free(&resp);
    }
    close(fd);
    return status;
}

/* Poll GET /health until it answers 200. Returns 0, or -1 if p exits or time runs out. */
static int proc_wait_healthy(struct th_proc *p, const char *binary)
{
    int64_t deadline = th_now_ms() + th_ms(TH_READY_WAIT_MS);
    for (;;) {
        int64_t left = deadline - th_now_ms();
        if (health_status(p->port, left < th_ms(1000) ? (int)left + 1 : th_ms(1000)) == 200)
            return 0;
        int ws;
        if (waitpid(p->pid, &ws, WNOHANG) == p->pid) {
            fprintf(stderr, "th_proc_start: %s ended (%d) before answering GET /health\n", binary,
                    decode_status(ws));
            proc_reaped(p);
            return -1;
        }
        if (th_now_ms() >= deadline) {
            fprintf(stderr, "th_proc_start: %s: no 200 from GET /health on port %d in %d ms\n",
                    binary, p->port, th_ms(TH_READY_WAIT_MS));
            th_proc_stop(p, SIGKILL, 1000);
            return -1;
        }
        thi_sleep_ms(10);
    }
}

int th_proc_start(struct th_proc *p, const char *binary, const char *const *argv,
                  const char *const *env, int port)
{
    char dir[200];
    struct th_exec x;
    const char *base = strrchr(binary, '/');
    memset(p, 0, sizeof(*p));
    p->port = port;
    if (exec_prepare(&x, binary, argv) != 0 || thi_make_tmpdir("proc", dir, sizeof(dir))) {
        exec_free(&x);
        return -1;
    }
    snprintf(p->log_path, sizeof(p->log_path), "%s/%.40s.log", dir, base ? base + 1 : binary);
    int logfd = open(p->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    char **envp = thi_make_env(env, x.tag[0] ? x.tag : NULL);
    pid_t pid =
        logfd >= 0 && envp ? thi_spawn(x.path, (char *const *)x.argv, envp, logfd, logfd) : -1;
    free(envp);
    exec_free(&x);
    if (logfd >= 0)
        close(logfd);
    if (pid < 0) {
        fprintf(stderr, "th_proc_start: cannot start %s: %s\n", binary, strerror(errno));
        return -1;
    }
    p->pid = pid;
    thi_write_pidfile(dir, "proc", pid);
    if (port > 0 && proc_wait_healthy(p, binary) != 0) {
        thi_dump_tail(p->log_path);
        return -1;
    }
    return 0;
}

int th_daemon_start(struct th_proc *p, const char *bin, const char *redis_url,
                    const char *const *extra)
{
    char url[300], listen[64];
    const char *env[TH_DAEMON_EXTRA_MAX + 4];
    const char *base = strrchr(bin, '/');
    const char *argv[] = {base ? base + 1 : bin, NULL};
    int n = 0, port = th_free_port();
    for (; extra && extra[n]; n++) {
        if (n == TH_DAEMON_EXTRA_MAX)
            return -1;
        env[n] = extra[n];
    }
    /* The defaults go after the extras and only where the extras are silent: getenv
     * takes the first of duplicate names. */
    snprintf(listen, sizeof(listen), "LISTEN_ADDR=127.0.0.1:%d", port);
    env[n++] = listen;
    if (!env_has(extra, "SHUTDOWN_TIMEOUT"))
        env[n++] = "SHUTDOWN_TIMEOUT=5s";
    if (redis_url && !env_has(extra, "REDIS_URL")) {
        snprintf(url, sizeof(url), "REDIS_URL=%s", redis_url);
        env[n++] = url;
    }
    env[n] = NULL;
    return th_proc_start(p, th_bin(bin), argv, env, port);
}

int th_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int rc = fputs(text, f) < 0 ? -1 : 0;
    return fclose(f) != 0 ? -1 : rc;
}

int th_proc_wait(struct th_proc *p, int timeout_ms)
{
    int forced;
    if (p->pid <= 0)
        return -1;
    int status = thi_reap(p->pid, th_ms(timeout_ms), &forced);
    if (forced)
        fprintf(stderr, "th_proc: pid %ld still running after %d ms; killed\n", (long)p->pid,
                th_ms(timeout_ms));
    proc_reaped(p);
    return status;
}

int th_proc_stop(struct th_proc *p, int sig, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, sig);
    if (sig != SIGKILL && sig != SIGSTOP)
        kill(p->pid, SIGCONT);
    return th_proc_wait(p, timeout_ms);
}

char *th_proc_log(const struct th_proc *p)
{
    return read_file(p->log_path, NULL);
}

int th_proc_log_contains(const struct th_proc *p, const char *needle)
{
    size_t len = 0;
    char *text = read_file(p->log_path, &len);
    int found = text && memmem(text, len, needle, strlen(needle)) != NULL;
    free(text);
    return found;
}

/* Read both pipes (fd -1: none) into their buffers until both close. Returns 0, or -1 if
 * the deadline passes first or memory runs out. */
static int drain_pipes(int out_fd, struct th_buf *out, int err_fd, struct th_buf *err,
                       int64_t deadline)
{
    struct pollfd pfd[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};
    struct th_buf *bufs[2] = {out, err};
    char chunk[4096];
    while (pfd[0].fd >= 0 || pfd[1].fd >= 0) {
        int64_t left = deadline - th_now_ms();
        if (left <= 0)
            return -1;
        int n = poll(pfd, 2, (int)left);
        if (n < 0 && errno != EINTR)
            return -1;
        for (int i = 0; i < 2 && n > 0; i++) {
            if (pfd[i].fd < 0 || !pfd[i].revents)
                continue;
            ssize_t got = read(pfd[i].fd, chunk, sizeof(chunk));
            if (got > 0 && th_buf_append(bufs[i], chunk, (size_t)got) != 0)
                return -1;
            if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
                pfd[i].fd = -1; /* closed; the caller closes the fd itself */
        }
    }
    return 0;
}

int th_run(const char *binary, const char *const *argv, const char *const *env, char **out,
           char **err, int timeout_ms)
{
    int64_t deadline = th_now_ms() + th_ms(timeout_ms);
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    struct th_buf ob = {0}, eb = {0};
    struct th_exec x;
    char **envp = NULL;
    int status = -1, forced = 0;
    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    if (exec_prepare(&x, binary, argv) != 0) {
        exec_free(&x);
        return -1;
    }
    if ((out && pipe2(out_pipe, O_CLOEXEC) != 0) || (err && pipe2(err_pipe, O_CLOEXEC) != 0))
        goto done;
    envp = thi_make_env(env, x.tag[0] ? x.tag : NULL);
    pid_t pid =
        envp ? thi_spawn(x.path, (char *const *)x.argv, envp, out_pipe[1], err_pipe[1]) : -1;
    if (out_pipe[1] >= 0)
        close(out_pipe[1]);
    if (err_pipe[1] >= 0)
        close(err_pipe[1]);
    if (pid < 0)
        goto done;
    if (drain_pipes(out_pipe[0], &ob, err_pipe[0], &eb, deadline) != 0)
        deadline = 0; /* ran out of time: kill it now */
    int64_t left = deadline - th_now_ms();
    status = thi_reap(pid, left > 0 ? (int)left : 0, &forced);
    if (forced) {
        fprintf(stderr, "th_run: %s ran past %d ms; killed\n", binary, th_ms(timeout_ms));
        status = -1;
    }
    if (out)
        *out = th_buf_take(&ob);
    if (err)
        *err = th_buf_take(&eb);
done:
    exec_free(&x);
    free(envp);
    free(ob.data);
    free(eb.data);
    if (out_pipe[0] >= 0)
        close(out_pipe[0]);
    if (err_pipe[0] >= 0)
        close(err_pipe[0]);
    return status;
}
