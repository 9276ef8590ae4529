/* SPDX-License-Identifier: Apache-2.0 */
/* Security properties docs/security.md states, each over real sockets, real daemons and a
 * real Redis: the default listening address; API_TOKEN and ADMIN_TOKEN on every daemon, as
 * another local user sees them; who may connect to a unix socket; who may read a secret
 * given in the environment (/proc/<pid>/environ) and that *_FILE keeps it out of there;
 * secrets in locked memory; and what a Redis dump gives away: idemd's lease tokens and
 * stored responses, tokend's sealed successor together with TOKEN_HASH_KEY, and an auditd
 * chain rewritten by a signing-key holder, caught only by a checkpoint kept outside Redis.
 * The tests that switch user need root (they are skipped, and say so, otherwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../tokend/token.h"
#include "../lib/harness.h"
#include "test_auditd_util.h"
#include "test_tokend_util.h"

#define NOBODY 65534 /* another local user */
#define OTHER 65533  /* yet another one */
#define API "sec-api-token-0123456789abcdef"
#define ADMIN "sec-admin-token-0123456789abcdef"

static struct th_redis redis;

static int setup(void **state)
{
    (void)state;
    if (crypto_init() != 0)
        return -1;
    return th_redis_start(&redis, NULL);
}

static int teardown(void **state)
{
    (void)state;
    th_redis_stop(&redis);
    return 0;
}

static void need_root(void)
{
    if (geteuid() != 0) {
        print_message("switching to another local user needs root: SKIPPED\n");
        skip();
    }
}

/* Run fn(arg) in a child process as uid (and gid) uid; returns its exit status, -1 when the
 * switch failed. */
static int as_user(uid_t uid, int (*fn)(const void *), const void *arg)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(uid) != 0 || setuid(uid) != 0)
            _exit(255);
        _exit(fn(arg));
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) == 255)
        return -1;
    return WEXITSTATUS(st);
}

/* ---- where a daemon listens by default ------------------------------------------------- */

/* The listening TCP sockets (state 0A) in pid's network namespace, as "addr:port" hex
 * pairs of /proc/<pid>/net/<proto>, space-separated, into out. */
static void listeners(pid_t pid, const char *proto, char *out, size_t size)
{
    char path[64], line[512], local[64], remote[64], st[8];
    snprintf(path, sizeof(path), "/proc/%d/net/%s", (int)pid, proto);
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, " %*[0-9]: %63s %63s %7s", local, remote, st) == 3 &&
            strcmp(st, "0A") == 0)
            snprintf(out + strlen(out), size - strlen(out), "%s%s", out[0] ? " " : "", local);
    fclose(f);
}

/* Is pid running binary (its exec is done)? */
static int is_running(pid_t pid, const char *binary)
{
    char link[64], exe[PATH_MAX], real[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(link, exe, sizeof(exe) - 1);
    if (n < 0 || !realpath(binary, real))
        return 0;
    exe[n] = '\0';
    return strcmp(exe, real) == 0;
}

/* Each daemon with LISTEN_ADDR unset, in a network namespace of its own (so its default
 * port cannot collide with anything on the host): its only listening socket is
 * 127.0.0.1:<its port>, nothing on IPv6, nothing on 0.0.0.0. */
static void test_default_listen_is_loopback_only(void **state)
{
    (void)state;
    const char *probe[] = {"unshare", "-n", "true", NULL};
    if (geteuid() != 0 || th_run("/usr/bin/unshare", probe, NULL, NULL, NULL, 5000) != 0) {
        print_message("unshare -n is not available (needs root): SKIPPED\n");
        skip();
    }
    static const char *const bins[] = {"bin/ratelimitd", "bin/auditd", "bin/idemd", "bin/tokend"};
    static const char *const want[] = {"0100007F:1F91", "0100007F:1F92", "0100007F:1F93",
                                       "0100007F:1F94"}; /* 127.0.0.1:8081..8084 */
    const char *env[] = {KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=0", KEY, NULL};
    for (int d = 0; d < 4; d++) {
        struct th_proc p;
        char bin[512], v4[256] = "", v6[256];
        snprintf(bin, sizeof(bin), "%s", th_bin(bins[d]));
        const char *argv[] = {
            "unshare", "-n", "sh", "-c", "/usr/sbin/ip link set lo up && exec \"$0\"", bin, NULL};
        assert_int_equal(th_proc_start(&p, "/usr/bin/unshare", argv, env, 0), 0);
        /* once unshare and sh have exec'd the daemon, and it listens */
        for (int64_t end = th_now_ms() + th_ms(5000); !v4[0] && th_now_ms() < end; usleep(20000))
            if (is_running(p.pid, bin))
                listeners(p.pid, "tcp", v4, sizeof(v4));
        listeners(p.pid, "tcp6", v6, sizeof(v6));
        th_proc_stop(&p, SIGTERM, 5000);
        if (strcmp(v4, want[d]) != 0 || v6[0])
            fail_msg("%s listens on [%s] and [%s], wanted only %s", bins[d], v4, v6, want[d]);
    }
}

/* ---- API_TOKEN and ADMIN_TOKEN, from another local user's side ------------------------ */

struct call {
    const char *method, *path, *body;
    const char *token; /* NULL: no Authorization header */
    int want;
};

/* The calls to make on one port, up to an entry with a NULL method. */
struct calls {
    int port;
    const struct call *c;
};

/* Make each call; returns 0 when every answer was the wanted one (a 401 with
 * WWW-Authenticate: Bearer), else the 1-based number of the first that was not. */
static int do_calls(const void *arg)
{
    const struct call *c = ((const struct calls *)arg)->c;
    int port = ((const struct calls *)arg)->port;
    for (int i = 0; c[i].method; i++) {
        char auth[128];
        const char *h[3] = {"Content-Type: application/json", NULL, NULL};
        if (c[i].token) {
            snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c[i].token);
            h[1] = auth;
        }
        struct th_resp r = {0};
        int ok = th_http(port, c[i].method, c[i].path, h, c[i].body,
                         c[i].body ? strlen(c[i].body) : 0, &r) == 0 &&
                 r.status == c[i].want;
        if (ok && c[i].want == 401) {
            char www[32];
            ok = th_header(&r, "WWW-Authenticate", www, sizeof(www)) && strcmp(www, "Bearer") == 0;
        }
        if (!ok)
            fprintf(stderr, "%s %s: got %d, wanted %d\n", c[i].method, c[i].path, r.status,
                    c[i].want);
        th_resp_free(&r);
        if (!ok)
            return i + 1;
    }
    return 0;
}

/* Wait until GET /ready answers 200 (Redis reached, scripts loaded). */
static void wait_ready(int port)
{
    int st = 0;
    for (int64_t end = th_now_ms() + th_ms(5000); st != 200 && th_now_ms() < end;) {
        struct th_resp r = {0};
        st = th_http(port, "GET", "/ready", NULL, NULL, 0, &r) == 0 ? r.status : 0;
        th_resp_free(&r);
        if (st != 200)
            usleep(20000);
    }
    assert_int_equal(st, 200);
}

struct daemon_case {
    const char *bin, *write_path, *write_body, *read_path;
    int write_ok;
};

/* Every daemon with API_TOKEN (and ADMIN_TOKEN) set, called by another local user: the
 * loopback port answers it, every /v1 route refuses it (401, WWW-Authenticate: Bearer)
 * without the token, with a wrong one and with the admin token, and nothing reaches Redis;
 * /health, /ready and /metrics stay open; with the token the same call works; the token is
 * never in the log. */
static void test_api_token_guards_every_daemon(void **state)
{
    (void)state;
    need_root();
    static const struct daemon_case cases[] = {
        {"bin/ratelimitd", "/v1/check", "{\"rule\":\"default\",\"key\":\"k\"}", "/v1/rules", 200},
        {"bin/auditd", "/v1/events", "{\"actor\":\"u\",\"action\":\"a\"}", "/v1/head", 201},
        {"bin/idemd", "/v1/claim", "{\"scope\":\"s\",\"key\":\"k\",\"fingerprint\":\"f\"}",
         "/v1/record?scope=s&key=k", 201},
        {"bin/tokend", "/v1/tokens",
         "{\"user_id\":\"u\",\"device_id\":\"d\",\"user_agent\":\"" CHROME120 "\"}",
         "/v1/users/u/sessions", 201},
    };
    const char *extra[] = {"API_TOKEN=" API,
                           "ADMIN_TOKEN=" ADMIN,
                           KEY_V1_ENV,
                           "AUDIT_CHECKPOINT_INTERVAL=0",
                           KEY,
                           NULL};
    for (int d = 0; d < 4; d++) {
        const struct daemon_case *k = &cases[d];
        struct th_proc p;
        freeReplyObject(th_redis_cmd(&redis, "FLUSHALL"));
        assert_int_equal(th_daemon_start(&p, k->bin, redis.url, extra), 0);
        wait_ready(p.port);
        const struct call refused[] = {
            {"POST", k->write_path, k->write_body, NULL, 401},
            {"POST", k->write_path, k->write_body, API "x", 401},
            {"POST", k->write_path, k->write_body, ADMIN, 401},
            {"GET", k->read_path, NULL, NULL, 401},
            {"GET", "/health", NULL, NULL, 200},
            {"GET", "/ready", NULL, NULL, 200},
            {"GET", "/metrics", NULL, NULL, 200},
            {NULL, NULL, NULL, NULL, 0},
        };
        int bad = as_user(NOBODY, do_calls, &(struct calls){p.port, refused});
        if (bad != 0)
            fail_msg("%s: call %d as another user", k->bin, bad);
        assert_int_equal(th_redis_int(&redis, "DBSIZE"), 0);
        const struct call allowed[] = {
            {"POST", k->write_path, k->write_body, API, k->write_ok},
            {"GET", k->read_path, NULL, API, 200},
            {NULL, NULL, NULL, NULL, 0},
        };
        assert_int_equal(as_user(NOBODY, do_calls, &(struct calls){p.port, allowed}), 0);
        assert_true(th_redis_int(&redis, "DBSIZE") > 0);
        th_proc_stop(&p, SIGTERM, 5000);
        assert_false(th_proc_log_contains(&p, API));
        assert_false(th_proc_log_contains(&p, ADMIN));
    }
}

/* ratelimitd's admin route takes ADMIN_TOKEN and not API_TOKEN, its other routes the
 * reverse; without ADMIN_TOKEN the admin route takes API_TOKEN. */
static void test_admin_token_is_separate(void **state)
{
    (void)state;
    struct th_proc p, q;
    const char *both[] = {"API_TOKEN=" API, "ADMIN_TOKEN=" ADMIN, NULL};
    const char *api_only[] = {"API_TOKEN=" API, NULL};
    assert_int_equal(th_daemon_start(&p, "bin/ratelimitd", redis.url, both), 0);
    assert_int_equal(th_daemon_start(&q, "bin/ratelimitd", redis.url, api_only), 0);
    const char *reset = "{\"action\":\"reset\"}", *check = "{\"rule\":\"default\",\"key\":\"a\"}";
    const struct call with_admin[] = {
        {"POST", "/v1/breaker", reset, API, 401},
        {"POST", "/v1/breaker", reset, ADMIN, 200},
        {"POST", "/v1/check", check, ADMIN, 401},
        {"POST", "/v1/check", check, API, 200},
        {NULL, NULL, NULL, NULL, 0},
    };
    const struct call without_admin[] = {
        {"POST", "/v1/breaker", reset, NULL, 401},
        {"POST", "/v1/breaker", reset, ADMIN, 401},
        {"POST", "/v1/breaker", reset, API, 200},
        {NULL, NULL, NULL, NULL, 0},
    };
    assert_int_equal(do_calls(&(struct calls){p.port, with_admin}), 0);
    assert_int_equal(do_calls(&(struct calls){q.port, without_admin}), 0);
    th_proc_stop(&p, SIGTERM, 5000);
    th_proc_stop(&q, SIGTERM, 5000);
}

/* ---- the unix socket -------------------------------------------------------------------- */

static int connect_unix(const void *arg)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", (const char *)arg);
    if (lstat(sa.sun_path, &st) != 0)
        return 2; /* the directory would be in the way, not the socket */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    int err = errno;
    close(fd);
    return rc == 0 ? 0 : err == EACCES ? 1 : 3;
}

/* With the units' UMask=0077 the socket is srwx------: another local user can see it but
 * not connect (EACCES); its owner can. */
static void test_unix_socket_only_for_its_user(void **state)
{
    (void)state;
    need_root();
    char dir[] = "/tmp/warden-sec.XXXXXX", path[128], listen[160];
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chmod(dir, 0755), 0); /* anyone may look in */
    snprintf(path, sizeof(path), "%s/idemd.sock", dir);
    snprintf(listen, sizeof(listen), "LISTEN_ADDR=unix:%s", path);
    const char *env[] = {listen, "REDIS_URL=redis://127.0.0.1:1/0", NULL};
    const char *argv[] = {"idemd", NULL};
    struct th_proc p;
    mode_t old = umask(0077);
    int started = th_proc_start(&p, th_bin("bin/idemd"), argv, env, 0);
    umask(old);
    struct stat st = {0};
    int seen = -1, other = -1, owner = -1;
    for (int64_t end = th_now_ms() + th_ms(5000);
         started == 0 && (seen = stat(path, &st)) != 0 && th_now_ms() < end;)
        usleep(20000);
    if (seen == 0) {
        other = as_user(NOBODY, connect_unix, path);
        owner = connect_unix(path);
    }
    if (started == 0)
        th_proc_stop(&p, SIGTERM, 5000);
    unlink(path); /* outside the test's temp dir: clean up before judging */
    rmdir(dir);
    assert_int_equal(started, 0);
    assert_int_equal(seen, 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(other, 1); /* EACCES */
    assert_int_equal(owner, 0);
}

/* ---- secrets in the environment and in memory ----------------------------------------- */

/* Does /proc/<pid>/environ contain needle? 0 yes, 1 no, 2 unreadable. */
static int environ_has(pid_t pid, const char *needle)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 2;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        return 2;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = '\n';
    buf[n] = '\0';
    return strstr(buf, needle) ? 0 : 1;
}

struct env_probe {
    pid_t pid;
    const char *needle;
};

static int environ_probe(const void *arg)
{
    const struct env_probe *e = arg;
    return environ_has(e->pid, e->needle);
}

/* A secret in a plain variable stays in /proc/<pid>/environ for the daemon's whole life:
 * readable by its own user and root, not by another user. Given as *_FILE, only the path
 * is there. */
static void test_env_secret_stays_in_proc_environ(void **state)
{
    (void)state;
    need_root();
    char listen[64], bin[512], tmp[256], file[300], file_env[320];
    struct th_proc p;
    int port = th_free_port();
    snprintf(listen, sizeof(listen), "LISTEN_ADDR=127.0.0.1:%d", port);
    snprintf(bin, sizeof(bin), "%s", th_bin("bin/idemd"));
    const char *env[] = {listen, "API_TOKEN=" API, "REDIS_URL=redis://127.0.0.1:1/0", NULL};
    const char *argv[] = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, NULL};
    assert_int_equal(th_proc_start(&p, "/usr/bin/setpriv", argv, env, port), 0);
    struct env_probe e = {p.pid, "API_TOKEN=" API};
    assert_int_equal(environ_has(p.pid, e.needle), 0);       /* root */
    assert_int_equal(as_user(NOBODY, environ_probe, &e), 0); /* the daemon's own user */
    assert_int_equal(as_user(OTHER, environ_probe, &e), 2);  /* anyone else: EACCES */
    th_proc_stop(&p, SIGTERM, 5000);

    assert_int_equal(th_tmpdir(tmp, sizeof(tmp)), 0);
    snprintf(file, sizeof(file), "%s/api-token", tmp);
    assert_int_equal(th_write_file(file, API "\n"), 0);
    snprintf(file_env, sizeof(file_env), "API_TOKEN_FILE=%s", file);
    const char *fextra[] = {file_env, NULL};
    assert_int_equal(th_daemon_start(&p, "bin/idemd", redis.url, fextra), 0);
    assert_int_equal(environ_has(p.pid, file_env), 0);
    assert_int_equal(environ_has(p.pid, API), 1);
    const struct call calls[] = {
        {"GET", "/v1/record?scope=s&key=none", NULL, NULL, 401},
        {"GET", "/v1/record?scope=s&key=none", NULL, API, 404},
        {NULL, NULL, NULL, NULL, 0},
    };
    assert_int_equal(do_calls(&(struct calls){p.port, calls}),
                     0); /* and the daemon does use the file's token */
    th_proc_stop(&p, SIGTERM, 5000);
}

/* VmLck of a running process, in kB (-1 if unknown). */
static long locked_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static long locked_with(const char *bin, const char *const *extra)
{
    struct th_proc p;
    assert_int_equal(th_daemon_start(&p, bin, "redis://127.0.0.1:1/0", extra), 0);
    long kb = locked_kb(p.pid);
    th_proc_stop(&p, SIGTERM, 5000);
    return kb;
}

/* Secrets are held in locked memory: REDIS_URL (a secret, as it may carry a password) is,
 * and each further secret adds locked memory: API_TOKEN, ADMIN_TOKEN, tokend's hash key,
 * auditd's signing key. */
static void test_secrets_sit_in_locked_memory(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    /* ASan's mlock interceptor does nothing (it says "AddressSanitizer ignores mlock"), so
     * under make asan nothing can be locked: this is checked by make test and make valgrind. */
    skip();
#endif
    const char *url[] = {NULL}, *one[] = {"API_TOKEN=" API, NULL},
               *two[] = {"API_TOKEN=" API, "ADMIN_TOKEN=" ADMIN, NULL};
    const char *tok[] = {KEY, NULL}, *aud[] = {KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=0", NULL};
    long l0 = locked_with("bin/idemd", url), l1 = locked_with("bin/idemd", one),
         l2 = locked_with("bin/idemd", two);
    if (!(l0 > 0 && l1 > l0 && l2 > l1))
        fail_msg("VmLck: REDIS_URL %ld kB, +API_TOKEN %ld kB, +ADMIN_TOKEN %ld kB", l0, l1, l2);
    assert_true(locked_with("bin/tokend", tok) > l0);
    assert_true(locked_with("bin/auditd", aud) > l0);
}

/* ---- what a Redis dump gives away ------------------------------------------------------ */

/* idemd keeps the idempotency key (in the key name), the live lease token and the stored
 * response in clear: whoever reads them from Redis and can call idemd completes the record
 * with a response of their choosing, which is then replayed. */
static void test_idemd_dump_holds_lease_tokens_and_responses(void **state)
{
    (void)state;
    struct th_proc p;
    struct th_resp r;
    freeReplyObject(th_redis_cmd(&redis, "FLUSHALL"));
    assert_int_equal(th_daemon_start(&p, "bin/idemd", redis.url, NULL), 0);
    const char *claim = "{\"scope\":\"acme\",\"key\":\"order-77\",\"fingerprint\":\"fp\"}";
    assert_int_equal(th_post_json(p.port, "/v1/claim", claim, &r), 0);
    assert_int_equal(r.status, 201);
    json_t *j = th_json(&r);
    char lease[64];
    snprintf(lease, sizeof(lease), "%s", jstr(j, "lease_token"));
    json_decref(j);
    th_resp_free(&r);
    redisReply *stolen = th_redis_cmd(&redis, "HGET idem:acme:order-77 lease_token");
    assert_non_null(stolen);
    assert_int_equal(stolen->type, REDIS_REPLY_STRING);
    assert_string_equal(stolen->str, lease);
    char forged[256];
    snprintf(forged, sizeof(forged),
             "{\"scope\":\"acme\",\"key\":\"order-77\",\"lease_token\":\"%s\",\"status\":200,"
             "\"body\":\"forged\"}",
             stolen->str);
    freeReplyObject(stolen);
    assert_int_equal(th_post_json(p.port, "/v1/complete", forged, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    redisReply *body = th_redis_cmd(&redis, "HGET idem:acme:order-77 body");
    assert_string_equal(body->str, "forged");
    freeReplyObject(body);
    assert_int_equal(th_post_json(p.port, "/v1/claim", claim, &r), 0);
    assert_int_equal(r.status, 200);
    j = th_json(&r);
    assert_string_equal(jstr(j, "body"), "forged");
    json_decref(j);
    th_resp_free(&r);
    th_proc_stop(&p, SIGTERM, 5000);
}

/* tokend: the sealed grace successor stays in the family after the grace window, until the
 * next refresh; with TOKEN_HASH_KEY it opens to the live token, which refreshes. With
 * TOKEN_REUSE_GRACE=0 nothing sealed is stored. */
static void test_tokend_dump_and_hash_key_give_the_live_token(void **state)
{
    (void)state;
    struct th_proc p, nograce;
    char t0[80], t1[80], err[128];
    assert_int_equal(tt_start(&p, redis.url, NULL), 0); /* grace 1 s */
    issue(p.port, "dump-user", "dev-1", CHROME120, "", t0);
    refresh_ok(p.port, t0, "dev-1", CHROME120, "", t1);
    usleep((useconds_t)1300 * 1000); /* past the grace window */
    char *sealed = family_field(&redis, t1, "grace_successor");
    assert_true(strlen(sealed) > 0);
    struct tok_keys keys = {0};
    struct tok_token live;
    assert_int_equal(tok_keys_load(&keys, KEY_B64, NULL, err, sizeof(err)), 0);
    char family[TOK_FAMILY_LEN + 1];
    snprintf(family, sizeof(family), "%.22s", t1 + 4);
    assert_int_equal(tok_unseal(&keys, family, sealed, &live), 0);
    assert_string_equal(live.text, t1);
    free(sealed);
    tok_keys_free(&keys);
    char t2[80];
    refresh_ok(p.port, live.text, "dev-1", CHROME120, "", t2);
    th_proc_stop(&p, SIGTERM, 5000);

    const char *zero[] = {"TOKEN_REUSE_GRACE=0", NULL};
    assert_int_equal(tt_start(&nograce, redis.url, zero), 0);
    refresh_ok(nograce.port, t2, "dev-1", CHROME120, "", t1);
    sealed = family_field(&redis, t1, "grace_successor");
    assert_string_equal(sealed, "");
    free(sealed);
    th_proc_stop(&nograce, SIGTERM, 5000);
}

/* Whoever holds the signing key and can write to Redis replaces a chain with one of their
 * own that audit-verify accepts on its own; a checkpoint kept outside Redis catches it. */
static void test_auditd_rewrite_by_key_holder_caught_by_kept_checkpoint(void **state)
{
    (void)state;
    struct th_proc a, b;
    char tmp[256], cp[300], ring[300], *out = NULL;
    const char *env[] = {"AUDIT_CHAIN=sec", KEY_V1_ENV, "AUDIT_CHECKPOINT_INTERVAL=0", NULL};
    assert_int_equal(th_tmpdir(tmp, sizeof(tmp)), 0);
    snprintf(cp, sizeof(cp), "%s/kept-checkpoint.txt", tmp);
    snprintf(ring, sizeof(ring), "%s/keyring.json", tmp);
    freeReplyObject(th_redis_cmd(&redis, "FLUSHALL"));
    assert_int_equal(au_start(&a, &redis, env), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            au_post(a.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"real\"}", NULL), 201);
    assert_int_equal(au_get_file(a.port, "/v1/checkpoint", cp), 0); /* the auditor keeps it */
    assert_int_equal(au_get_file(a.port, "/v1/keys", ring), 0);
    th_proc_stop(&a, SIGTERM, 5000);
    /* the chain goes; the key holder writes another of the same length */
    freeReplyObject(th_redis_cmd(&redis, "FLUSHALL"));
    assert_int_equal(au_start(&b, &redis, env), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            au_post(b.port, "/v1/events", "{\"actor\":\"u\",\"action\":\"forged\"}", NULL), 201);
    th_proc_stop(&b, SIGTERM, 5000);
    const char *plain[] = {"--redis", redis.url, "--chain", "sec", "--keys", ring, NULL};
    assert_int_equal(au_verify(plain, &out), 0);
    assert_non_null(strstr(out, "OK: 4 entries"));
    free(out);
    const char *kept[] = {"--redis", redis.url,  "--chain", "sec", "--keys",
                          ring,      "--expect", cp,        NULL};
    assert_int_equal(au_verify(kept, &out), 1);
    assert_non_null(strstr(out, "TAMPERED at seq 4: head_mismatch"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_listen_is_loopback_only),
        cmocka_unit_test(test_api_token_guards_every_daemon),
        cmocka_unit_test(test_admin_token_is_separate),
        cmocka_unit_test(test_unix_socket_only_for_its_user),
        cmocka_unit_test(test_env_secret_stays_in_proc_environ),
        cmocka_unit_test(test_secrets_sit_in_locked_memory),
        cmocka_unit_test(test_idemd_dump_holds_lease_tokens_and_responses),
        cmocka_unit_test(test_tokend_dump_and_hash_key_give_the_live_token),
        cmocka_unit_test(test_auditd_rewrite_by_key_holder_caught_by_kept_checkpoint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
