/* SPDX-License-Identifier: Apache-2.0 */
/* Integration tests of deploy/redis: a Redis started from redis.conf with the ACL file of
 * gen-acl.sh; the four daemons, each on its own ACL user with its secrets passed through
 * *_FILE variables (as the systemd units pass them), doing real work with no ACL denial;
 * every user refused (NOPERM) outside its key prefix and its command list; and the command
 * lists themselves checked against what the sources send, in both directions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>

#include "test_ops_util.h"

#define NDAEMONS 4
static const char *const DAEMONS[NDAEMONS] = {"ratelimitd", "idemd", "auditd", "tokend"};
static const char *const PREFIX[NDAEMONS] = {"ratelimit", "idem", "audit", "tok"};
static const char *const USERS[] = {"ratelimitd", "idemd",  "auditd", "tokend", "auditor",
                                    "audittrim",  "backup", "admin",  NULL};
/* Sources in a daemon's folder that are a tool's, run as a user of its own (audit-trim's
 * retention removes entries: the audittrim user, not auditd's). */
static const char *const NOT_THE_DAEMONS[] = {"cmd-audit-trim.c", "trim.c", NULL};

static char tmp[256], acl[300];
static struct th_proc redis;
static int redis_port;
static struct th_proc daemons[NDAEMONS];

/* <acl>/<user>.<ext> without its trailing newline (caller frees), or NULL. */
static char *acl_file(const char *user, const char *ext)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.%s", acl, user, ext);
    char *s = ops_read(path);
    if (s)
        s[strcspn(s, "\n")] = '\0';
    return s;
}

/* A connection authenticated as user (NULL user: not authenticated). */
static redisContext *as_user(const char *user)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    if (!c || c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    char *pw = user ? acl_file(user, "password") : NULL;
    if (user) {
        redisReply *r = pw ? redisCommand(c, "AUTH %s %s", user, pw) : NULL;
        int ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        free(pw);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* One command as user; the reply (caller frees) or NULL. */
static redisReply *cmd_as(const char *user, const char *fmt, ...)
{
    redisContext *c = as_user(user);
    redisReply *r = NULL;
    va_list ap;
    if (!c)
        return NULL;
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* gen-acl.sh for port, then redis-server deploy/redis/redis.conf with that ACL file. */
static int start_redis_once(int attempt)
{
    char data[320], aclfile[320], log[340], port_s[16], addr[32];
    redis_port = th_free_port();
    snprintf(acl, sizeof(acl), "%s/acl-%d", tmp, attempt);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", redis_port);
    const char *gen[] = {acl, addr, NULL};
    if (ops_sh("deploy/redis/gen-acl.sh", gen, NULL, NULL, 10000) != 0)
        return -1;
    snprintf(data, sizeof(data), "%s/data-%d", tmp, attempt);
    snprintf(aclfile, sizeof(aclfile), "%s/users.acl", acl);
    snprintf(log, sizeof(log), "%s/redis.log", data);
    snprintf(port_s, sizeof(port_s), "%d", redis_port);
    mkdir(data, 0700);
    const char *server = ops_which("redis-server");
    const char *argv[] = {"redis-server",
                          ops_src("deploy/redis/redis.conf"),
                          "--port",
                          port_s,
                          "--dir",
                          data,
                          "--aclfile",
                          aclfile,
                          "--logfile",
                          log,
                          "--daemonize",
                          "no",
                          NULL};
    if (!server || th_proc_start(&redis, server, argv, NULL, 0) != 0)
        return -1;
    for (int i = 0; i < 50; i++) {
        redisReply *r = cmd_as("admin", "PING");
        int up = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        freeReplyObject(r);
        if (up)
            return 0;
        usleep(100 * 1000);
    }
    th_proc_stop(&redis, SIGKILL, 1000);
    return -1;
}

static int setup(void **state)
{
    (void)state;
    if (access(ops_src("deploy/redis/redis.conf"), R_OK) != 0) {
        fprintf(stderr, "the source tree is not in the current directory (WARDEN_SRC)\n");
        return -1;
    }
    if (th_tmpdir(tmp, sizeof(tmp)) != 0)
        return -1;
    for (int attempt = 0; attempt < 5; attempt++)
        if (start_redis_once(attempt) == 0)
            return 0;
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NDAEMONS; i++)
        th_proc_stop(&daemons[i], SIGTERM, 5000);
    th_proc_stop(&redis, SIGTERM, 5000);
    return 0;
}

static void assert_config(const char *name, const char *want)
{
    redisReply *r = cmd_as("admin", "CONFIG GET %s", name);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    if (strstr(r->element[1]->str, want) == NULL)
        fail_msg("%s is \"%s\", wanted \"%s\"", name, r->element[1]->str, want);
    freeReplyObject(r);
}

/* Point 1 as the running server sees it, not as the file reads. */
static void test_redis_runs_as_configured(void **state)
{
    (void)state;
    assert_config("maxmemory-policy", "noeviction");
    assert_config("appendonly", "yes");
    assert_config("appendfsync", "everysec");
    assert_config("protected-mode", "yes");
    assert_config("bind", "127.0.0.1");
    char *conf = ops_read(ops_src("deploy/redis/redis.conf"));
    assert_non_null(conf);
    assert_non_null(strstr(conf, "use `always`")); /* when to fsync every write: the audit chain */
    free(conf);

    /* the default user is off: nothing works without AUTH, and AUTH default fails */
    redisReply *r = cmd_as(NULL, "PING");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "NOAUTH"));
    freeReplyObject(r);
    r = cmd_as(NULL, "AUTH default anything");
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    r = cmd_as("admin", "ACL GETUSER default");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->str, "flags");
    assert_string_equal(r->element[1]->element[0]->str, "off");
    freeReplyObject(r);
}

static void assert_mode(const char *path, unsigned want)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    if ((st.st_mode & 0777) != want)
        fail_msg("%s: mode %o, wanted %o", path, st.st_mode & 0777, want);
}

/* Passwords: generated, 256 bits, distinct, only hashed in users.acl, files 0600 in a 0700
 * directory, never overwritten. */
static void test_gen_acl_writes_private_files(void **state)
{
    (void)state;
    char path[512], url[256], *pw[sizeof(USERS) / sizeof(USERS[0])] = {0};
    char *aclfile;
    snprintf(path, sizeof(path), "%s/users.acl", acl);
    aclfile = ops_read(path);
    assert_non_null(aclfile);
    assert_mode(acl, 0700);
    assert_mode(path, 0600);
    for (int i = 0; USERS[i]; i++) {
        pw[i] = acl_file(USERS[i], "password");
        assert_non_null(pw[i]);
        assert_int_equal(strlen(pw[i]), 64);
        assert_int_equal(strspn(pw[i], "0123456789abcdef"), 64);
        assert_null(strstr(aclfile, pw[i]));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(pw[i], pw[j]);
        snprintf(path, sizeof(path), "%s/%s.password", acl, USERS[i]);
        assert_mode(path, 0600);
        snprintf(path, sizeof(path), "%s/%s.redis-url", acl, USERS[i]);
        assert_mode(path, 0600);
        char *got = acl_file(USERS[i], "redis-url");
        snprintf(url, sizeof(url), "redis://%s:%s@127.0.0.1:%d/0", USERS[i], pw[i], redis_port);
        assert_string_equal(got, url);
        free(got);
    }
    const char *again[] = {acl, NULL};
    char *err = NULL;
    assert_int_equal(ops_sh("deploy/redis/gen-acl.sh", again, NULL, &err, 10000), 1);
    assert_non_null(strstr(err, "exists"));
    char *still = acl_file("admin", "password");
    assert_string_equal(still, pw[7]); /* USERS[7] */
    free(still);
    free(err);
    for (int i = 0; pw[i]; i++)
        free(pw[i]);
    free(aclfile);
}

/* The +commands and ~pattern of user's line in users.acl. */
static void acl_rules(const char *user, struct ops_set *cmds, char *pattern, size_t psize)
{
    char path[512], head[64];
    snprintf(path, sizeof(path), "%s/users.acl", acl);
    char *text = ops_read(path);
    assert_non_null(text);
    snprintf(head, sizeof(head), "user %s ", user);
    char *line = strstr(text, head);
    assert_non_null(line);
    line[strcspn(line, "\n")] = '\0';
    pattern[0] = '\0';
    for (char *t = strtok(line, " "); t; t = strtok(NULL, " ")) {
        if (t[0] == '+')
            ops_set_add(cmds, t + 1, strlen(t + 1), 1);
        else if (t[0] == '~')
            snprintf(pattern, psize, "%s", t);
    }
    free(text);
}

/* Is name (upper case) a Redis command? Asked of the server itself. */
static int is_command(const char *name)
{
    redisReply *r = cmd_as("admin", "COMMAND INFO %s", name);
    int yes = r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
              r->element[0]->type == REDIS_REPLY_ARRAY;
    freeReplyObject(r);
    return yes;
}

/* Upper-case string literals of dir's *.c that name Redis commands (HTTP methods aside). */
static void c_commands(const char *dir, struct ops_set *out)
{
    static const char *const HTTP[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    struct ops_set lits = {0};
    ops_set_scan_dir_except(&lits, ops_src(dir), ".c", "\"([A-Z][A-Z]+)\"", 0, NOT_THE_DAEMONS);
    for (int i = 0; i < lits.n; i++) {
        int http = 0;
        for (size_t j = 0; j < sizeof(HTTP) / sizeof(HTTP[0]); j++)
            http |= strcmp(lits.items[i], HTTP[j]) == 0;
        if (!http && is_command(lits.items[i]))
            ops_set_add(out, lits.items[i], strlen(lits.items[i]), 1);
    }
    ops_set_free(&lits);
}

/* Commands the Lua scripts a daemon's sources name (script_<name>) call. */
static void lua_commands(const char *dir, struct ops_set *out)
{
    struct ops_set names = {0};
    char rel[256];
    ops_set_scan_dir_except(&names, ops_src(dir), ".c", "script_([a-z0-9_]+)", 0, NOT_THE_DAEMONS);
    for (int i = 0; i < names.n; i++) {
        snprintf(rel, sizeof(rel), "lua-scripts/%s.lua", names.items[i]);
        char *text = ops_read(ops_src(rel));
        if (text)
            ops_set_scan(out, text, "redis\\.p?call\\([[:space:]]*['\"]([A-Za-z]+)['\"]", 1);
        free(text);
    }
    ops_set_free(&names);
}

/* What libshared's client sends on every daemon's behalf (redis_conn.c, app.c): AUTH and
 * SELECT on connect, PING and SCRIPT EXISTS / SCRIPT LOAD for /ready, EVALSHA, INFO at
 * startup. Checked below against the literals libshared holds. */
static const char *const POOL[] = {"auth",        "select",        "ping",    "info",
                                   "script|load", "script|exists", "evalsha", NULL};

static void test_acl_lists_are_what_the_sources_send(void **state)
{
    (void)state;
    OPS_NEED_SOURCE();
    struct ops_set shared = {0}, pool = {0};
    c_commands("libshared/src", &shared);
    for (int i = 0; POOL[i]; i++)
        ops_set_add(&pool, POOL[i], strlen(POOL[i]), 0);
    ops_set_add(&pool, "script", 6, 0); /* SCRIPT LOAD / SCRIPT EXISTS */
    ops_set_add(&pool, "exists", 6, 0); /* the EXISTS of SCRIPT EXISTS */
    char diff[1024];
    if (ops_set_minus(&shared, &pool, diff, sizeof(diff)) > 0)
        fail_msg("libshared sends commands the pool list lacks:%s", diff);
    for (int d = 0; d < NDAEMONS; d++) {
        struct ops_set want = {0}, have = {0};
        char pattern[64], want_pattern[64];
        for (int i = 0; POOL[i]; i++)
            ops_set_add(&want, POOL[i], strlen(POOL[i]), 0);
        c_commands(DAEMONS[d], &want);
        lua_commands(DAEMONS[d], &want);
        acl_rules(DAEMONS[d], &have, pattern, sizeof(pattern));
        snprintf(want_pattern, sizeof(want_pattern), "~%s:*", PREFIX[d]);
        assert_string_equal(pattern, want_pattern);
        if (ops_set_minus(&want, &have, diff, sizeof(diff)) > 0)
            fail_msg("%s sends commands its ACL user lacks:%s", DAEMONS[d], diff);
        if (ops_set_minus(&have, &want, diff, sizeof(diff)) > 0)
            fail_msg("%s's ACL user allows commands it never sends:%s", DAEMONS[d], diff);
        assert_true(want.n > 10);
        ops_set_free(&want);
        ops_set_free(&have);
    }
    ops_set_free(&shared);
    ops_set_free(&pool);
}

/* ---- the four daemons at work, each on its own user --------------------------------------- */

#define API_TOKEN "ops-acl-api-token-0123456789abcdef"
#define FP                                                                                         \
    "\"device_id\":\"d-1\",\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0\""

/* One call with the API token; asserts the status; the body as JSON (caller frees; NULL if it
 * is not JSON). */
static json_t *expect(int port, const char *method, const char *path, const char *body, int want)
{
    const char *h[] = {"Authorization: Bearer " API_TOKEN, "Content-Type: application/json", NULL};
    struct th_resp r;
    assert_int_equal(th_http(port, method, path, h, body, body ? strlen(body) : 0, &r), 0);
    if (r.status != want)
        fail_msg("%s %s: %d %s (wanted %d)", method, path, r.status, r.body, want);
    json_t *j = th_json(&r);
    th_resp_free(&r);
    return j;
}

static const char *str_of(const json_t *j, const char *name)
{
    const char *s = json_string_value(json_object_get(j, name));
    if (!s)
        fail_msg("no string \"%s\" in the answer", name);
    return s;
}

/* Write name into tmp with text; returns "VAR=<path>" in out. */
static const char *secret_file(const char *var, const char *name, const char *text, char *out,
                               size_t size)
{
    char path[320];
    snprintf(path, sizeof(path), "%s/%s", tmp, name);
    assert_int_equal(th_write_file(path, text), 0);
    chmod(path, 0600);
    snprintf(out, size, "%s=%s", var, path);
    return out;
}

/* Each daemon with REDIS_URL_FILE naming its own user's URL and every secret as a file:
 * what the systemd units hand over through LoadCredential. WAIT is switched on in idemd
 * and auditd, and auditd checkpoints every second, so those commands are exercised too. */
static void start_daemons(void)
{
    char url[NDAEMONS][400], api[400], admin[400], key[400], hash[400], rules[400], *pem = NULL;
    const char *keygen[] = {"auditd", "keygen", NULL};
    assert_int_equal(th_run(th_bin("bin/auditd"), keygen, NULL, &pem, NULL, 5000), 0);
    *strstr(pem, "public_key:") = '\0';
    secret_file("API_TOKEN_FILE", "api-token", API_TOKEN "\n", api, sizeof(api));
    secret_file("ADMIN_TOKEN_FILE", "admin-token", "ops-acl-admin-token-0123456789\n", admin,
                sizeof(admin));
    secret_file("AUDIT_PRIVATE_KEY_V1_FILE", "audit-v1.pem", pem, key, sizeof(key));
    secret_file("TOKEN_HASH_KEY_FILE", "token-hash-key",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n", hash, sizeof(hash));
    secret_file(
        "RATELIMIT_RULES_FILE", "rules.json",
        "{\"rules\":[{\"name\":\"g\",\"limit\":10,\"period\":\"1m\"},"
        "{\"name\":\"s\",\"algorithm\":\"sliding_window\",\"limit\":10,\"period\":\"1m\"}]}",
        rules, sizeof(rules));
    free(pem);
    for (int d = 0; d < NDAEMONS; d++)
        snprintf(url[d], sizeof(url[d]), "REDIS_URL_FILE=%s/%s.redis-url", acl, DAEMONS[d]);
    const char *env[NDAEMONS][8] = {
        {url[0], api, admin, rules, NULL},
        {url[1], api, "IDEM_WAIT_REPLICAS=1", "IDEM_WAIT_TIMEOUT=1ms", NULL},
        {url[2], api, key, "AUDIT_WAIT_REPLICAS=1", "AUDIT_WAIT_TIMEOUT=1ms",
         "AUDIT_CHECKPOINT_INTERVAL=1s", NULL},
        {url[3], api, hash, "TOKEN_MAX_FAMILIES_PER_USER=2", NULL},
    };
    for (int d = 0; d < NDAEMONS; d++) {
        char bin[64];
        snprintf(bin, sizeof(bin), "bin/%s", DAEMONS[d]);
        assert_int_equal(th_daemon_start(&daemons[d], bin, NULL, env[d]), 0);
        json_decref(expect(daemons[d].port, "GET", "/ready", NULL, 200));
    }
}

static void work_ratelimitd(int port)
{
    static const char *const CALLS[][2] = {{"/v1/check", "{\"rule\":\"g\",\"key\":\"k\"}"},
                                           {"/v1/check", "{\"rule\":\"s\",\"key\":\"k\"}"},
                                           {"/v1/peek", "{\"rule\":\"g\",\"key\":\"k\"}"},
                                           {"/v1/peek", "{\"rule\":\"s\",\"key\":\"k\"}"}};
    for (size_t i = 0; i < sizeof(CALLS) / sizeof(CALLS[0]); i++) {
        json_t *j = expect(port, "POST", CALLS[i][0], CALLS[i][1], 200);
        assert_string_equal(str_of(j, "source"), "redis"); /* decided by Redis, no fallback */
        json_decref(j);
    }
    json_decref(expect(port, "POST", "/v1/reset", "{\"rule\":\"g\",\"key\":\"k\"}", 200));
}

static void work_idemd(int port)
{
    char body[512], lease[64];
    json_t *j = expect(port, "POST", "/v1/claim",
                       "{\"scope\":\"ops\",\"key\":\"k1\",\"fingerprint\":\"f1\"}", 201);
    snprintf(lease, sizeof(lease), "%s", str_of(j, "lease_token"));
    assert_non_null(json_object_get(j, "replicas_acked")); /* WAIT ran */
    json_decref(j);
    snprintf(body, sizeof(body),
             "{\"scope\":\"ops\",\"key\":\"k1\",\"lease_token\":\"%s\",\"checkpoint\":\"step-1\"}",
             lease);
    json_decref(expect(port, "POST", "/v1/checkpoint", body, 200));
    snprintf(body, sizeof(body),
             "{\"scope\":\"ops\",\"key\":\"k1\",\"lease_token\":\"%s\",\"lease_ms\":30000}", lease);
    json_decref(expect(port, "POST", "/v1/extend", body, 200));
    json_decref(expect(port, "GET", "/v1/record?scope=ops&key=k1", NULL, 200));
    snprintf(body, sizeof(body),
             "{\"scope\":\"ops\",\"key\":\"k1\",\"lease_token\":\"%s\",\"status\":201,\"body\":"
             "\"done\"}",
             lease);
    json_decref(expect(port, "POST", "/v1/complete", body, 200));
    j = expect(port, "POST", "/v1/claim",
               "{\"scope\":\"ops\",\"key\":\"k1\",\"fingerprint\":\"f1\"}", 200);
    assert_string_equal(str_of(j, "outcome"), "replay");
    json_decref(j);
    j = expect(port, "POST", "/v1/claim",
               "{\"scope\":\"ops\",\"key\":\"k2\",\"fingerprint\":\"f2\"}", 201);
    snprintf(body, sizeof(body), "{\"scope\":\"ops\",\"key\":\"k2\",\"lease_token\":\"%s\"}",
             str_of(j, "lease_token"));
    json_decref(j);
    json_decref(expect(port, "POST", "/v1/release", body, 200));
}

/* The archive of the newest stored checkpoint written as the auditor, then audit-trim as
 * the audittrim user removes seq 1 (auditd records it with the admin token from a file),
 * then the archive and Redis verify together as the auditor. */
static void audit_retention(const char *keyring, int port)
{
    char dir[320], auditd[64], trim_url[512], token[400], *url = acl_file("auditor", "redis-url");
    char *turl = acl_file("audittrim", "redis-url"), env_url[600], *out = NULL;
    snprintf(dir, sizeof(dir), "%s/archive", tmp);
    snprintf(auditd, sizeof(auditd), "http://127.0.0.1:%d", port);
    snprintf(env_url, sizeof(env_url), "REDIS_URL=%s", url);
    snprintf(trim_url, sizeof(trim_url), "REDIS_URL=%s", turl);
    /* auditd here has no ADMIN_TOKEN: its admin routes take the API token */
    snprintf(token, sizeof(token), "ADMIN_TOKEN_FILE=%s/api-token", tmp);
    const char *auditor[] = {env_url, NULL}, *trimmer[] = {trim_url, token, NULL};
    const char *exp[] = {"audit-export", "--tiles", dir, NULL};
    char *err = NULL;
    /* the newest stored checkpoint must hold seq 1: one of an interval after the appends */
    long long cp_seq = 0;
    for (int i = 0; i < 40 && cp_seq < 1; i++) {
        redisReply *r = cmd_as("admin", "XREVRANGE audit:{default}:checkpoints + - COUNT 1");
        if (r && r->elements == 1)
            cp_seq = atoll(r->element[0]->element[1]->element[1]->str);
        freeReplyObject(r);
        if (cp_seq < 1)
            usleep(100 * 1000);
    }
    assert_true(cp_seq >= 1);
    int st = th_run(th_bin("bin/audit-export"), exp, auditor, &out, &err, 10000);
    if (st != 0)
        fail_msg("audit-export --tiles as auditor: exit %d: %s %s", st, out ? out : "",
                 err ? err : "");
    free(out);
    free(err);
    out = err = NULL;
    const char *trim[] = {"audit-trim",   "--tiles", dir,        "--keys", keyring,
                          "--before-seq", "2",       "--auditd", auditd,   NULL};
    st = th_run(th_bin("bin/audit-trim"), trim, trimmer, &out, &err, 20000);
    if (st != 0 || !strstr(out, "trimmed chain default before seq 2"))
        fail_msg("audit-trim as audittrim: exit %d: %s %s", st, out ? out : "", err ? err : "");
    free(out);
    free(err);
    out = err = NULL;
    const char *verify[] = {"audit-verify", "--tiles", dir, "--redis", url,
                            "--keys",       keyring,   NULL};
    st = th_run(th_bin("bin/audit-verify"), verify, NULL, &out, NULL, 10000);
    if (st != 0)
        fail_msg("audit-verify --tiles --redis as auditor: exit %d: %s", st, out ? out : "");
    free(out);
    free(url);
    free(turl);
}

/* audit-verify and audit-export as the read-only auditor user, its URL in REDIS_URL. */
static void audit_tools(const char *keyring)
{
    char *url = acl_file("auditor", "redis-url"), *out = NULL, env_url[512];
    snprintf(env_url, sizeof(env_url), "REDIS_URL=%s", url);
    const char *verify[] = {"audit-verify", "--keys", keyring, NULL};
    const char *export[] = {"audit-export", NULL}, *env[] = {env_url, NULL};
    int st = th_run(th_bin("bin/audit-verify"), verify, env, &out, NULL, 10000);
    if (st != 0)
        fail_msg("audit-verify as auditor: exit %d: %s", st, out ? out : "");
    free(out);
    out = NULL;
    assert_int_equal(th_run(th_bin("bin/audit-export"), export, env, &out, NULL, 10000), 0);
    assert_non_null(strstr(out, "\"seq\":5"));
    free(out);
    free(url);
}

static void work_auditd(int port)
{
    char keyring[320];
    const char *ev = "{\"actor\":\"u:1\",\"action\":\"ops.test\",\"event_id\":\"e1\"}";
    json_t *j = expect(port, "POST", "/v1/events", ev, 201);
    assert_non_null(json_object_get(j, "replicas_acked")); /* WAIT ran */
    json_decref(j);
    json_decref(expect(port, "POST", "/v1/events", ev, 200)); /* the same event_id: deduplicated */
    json_decref(expect(
        port, "POST", "/v1/events/batch",
        "{\"events\":[{\"actor\":\"u:2\",\"action\":\"ops.a\"},"
        "{\"actor\":\"u:2\",\"action\":\"ops.b\"},{\"actor\":\"u:2\",\"action\":\"ops.c\"}]}",
        201));
    json_decref(expect(port, "GET", "/v1/events?from_seq=1", NULL, 200));
    json_decref(expect(port, "GET", "/v1/events/2", NULL, 200));
    json_decref(expect(port, "GET", "/v1/head", NULL, 200));
    j = expect(port, "POST", "/v1/verify", "{}", 200);
    assert_true(json_is_true(json_object_get(j, "ok")));
    json_decref(j);
    j = expect(port, "GET", "/v1/keys", NULL, 200);
    snprintf(keyring, sizeof(keyring), "%s/keyring.json", tmp);
    assert_int_equal(json_dump_file(j, keyring, 0), 0);
    json_decref(j);
    int stored = 0; /* the checkpointer (1 s interval) writes through its own script */
    for (int i = 0; i < 50 && !stored; i++) {
        redisReply *r = cmd_as("admin", "EXISTS audit:{default}:checkpoints");
        stored = r && r->integer == 1;
        freeReplyObject(r);
        if (!stored)
            usleep(100 * 1000);
    }
    assert_true(stored);
    audit_tools(keyring);
    audit_retention(keyring, port);
}

static void work_tokend(int port)
{
    char body[512], family[64];
    json_t *j = expect(port, "POST", "/v1/tokens",
                       "{\"user_id\":\"u1\",\"client_id\":\"web\"," FP "}", 201);
    snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"," FP "}", str_of(j, "refresh_token"));
    json_decref(j);
    j = expect(port, "POST", "/v1/tokens/refresh", body, 200);
    snprintf(body, sizeof(body), "{\"token\":\"%s\"," FP "}", str_of(j, "refresh_token"));
    json_decref(j);
    j = expect(port, "POST", "/v1/tokens/introspect", body, 200);
    assert_true(json_is_true(json_object_get(j, "active")));
    json_decref(j);
    json_decref(expect(port, "GET", "/v1/users/u1/sessions", NULL, 200));
    snprintf(body + strcspn(body, ","), 4, "}");
    json_decref(expect(port, "POST", "/v1/tokens/revoke", body, 200));
    for (int i = 0; i < 3; i++) { /* the third passes TOKEN_MAX_FAMILIES_PER_USER: eviction */
        j = expect(port, "POST", "/v1/tokens", "{\"user_id\":\"u1\",\"client_id\":\"web\"," FP "}",
                   201);
        snprintf(family, sizeof(family), "%s", str_of(j, "family_id"));
        json_decref(j);
    }
    snprintf(body, sizeof(body), "/v1/users/u1/sessions/%s", family);
    json_decref(expect(port, "DELETE", body, NULL, 200));
    json_decref(expect(port, "POST", "/v1/tokens/revoke", "{\"user_id\":\"u1\"}", 200));
}

/* <daemon>_redis_errors_total: every series 0. */
static void assert_no_redis_errors(int d)
{
    struct th_resp r;
    char name[64];
    assert_int_equal(th_http(daemons[d].port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    snprintf(name, sizeof(name), "\n%s_redis_errors_total{", DAEMONS[d]);
    for (const char *p = strstr(r.body, name); p; p = strstr(p + 1, name)) {
        const char *end = strchr(p + 1, '\n');
        const char *v = end ? end - 1 : p;
        while (v > p && v[-1] != ' ')
            v--;
        if (atof(v) != 0)
            fail_msg("%.*s", (int)(end ? end - p - 1 : 80), p + 1);
    }
    th_resp_free(&r);
}

static void test_daemons_work_on_their_own_users(void **state)
{
    (void)state;
    freeReplyObject(cmd_as("admin", "ACL LOG RESET")); /* test_redis_runs_as_configured's AUTH */
    start_daemons();
    work_ratelimitd(daemons[0].port);
    work_idemd(daemons[1].port);
    work_auditd(daemons[2].port);
    work_tokend(daemons[3].port);
    redisReply *log = cmd_as("admin", "ACL LOG");
    assert_non_null(log);
    if (log->elements != 0) {
        redisReply *e = log->element[0]; /* count reason context object username ... */
        char what[512] = "";
        for (size_t k = 0; k + 1 < e->elements && k < 10; k += 2)
            if (e->element[k + 1]->type == REDIS_REPLY_STRING)
                snprintf(what + strlen(what), sizeof(what) - strlen(what), " %s=%s",
                         e->element[k]->str, e->element[k + 1]->str);
        fail_msg("%zu ACL denials while the daemons worked, the last:%s", log->elements, what);
    }
    freeReplyObject(log);
    for (int d = 0; d < NDAEMONS; d++)
        assert_no_redis_errors(d);
}

/* ---- and refused outside their lists ------------------------------------------------------ */

static redisReply *argv_as(const char *user, const char **argv)
{
    redisContext *c = as_user(user);
    int n = 0;
    while (argv[n])
        n++;
    redisReply *r = c ? redisCommandArgv(c, n, argv, NULL) : NULL;
    redisFree(c);
    return r;
}

/* user sends argv and gets NOPERM (Redis 7.0 words a refusal inside a script as an ERR
 * saying the user "can't run this command"). */
static void assert_refused(const char *user, const char **argv)
{
    redisReply *r = argv_as(user, argv);
    if (!r || r->type != REDIS_REPLY_ERROR ||
        (!strstr(r->str, "NOPERM") && !strstr(r->str, "user executing the script can't run")))
        fail_msg("%s: %s %s: %s", user, argv[0], argv[1] ? argv[1] : "",
                 r ? (r->str ? r->str : "(not an error)") : "(no reply)");
    freeReplyObject(r);
}

static void assert_allowed(const char *user, const char **argv)
{
    redisReply *r = argv_as(user, argv);
    if (!r || r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s: %s", user, argv[0], r ? r->str : "(no reply)");
    freeReplyObject(r);
}

static void refused_outside_prefix_and_list(int d)
{
    const char *u = DAEMONS[d];
    char own[64], other[64], pattern[64];
    snprintf(own, sizeof(own), "%s:ops-probe", PREFIX[d]);
    snprintf(pattern, sizeof(pattern), "%s:*", PREFIX[d]);
    for (int e = 0; e < NDAEMONS; e++) { /* a command it has, on another daemon's keys */
        snprintf(other, sizeof(other), "%s:ops-probe", PREFIX[e]);
        if (e != d)
            assert_refused(u, (const char *[]){"HMGET", other, "f", NULL});
    }
    assert_refused(u, (const char *[]){"SET", own, "v", NULL});
    assert_refused(u, (const char *[]){"GET", own, NULL});
    assert_refused(u, (const char *[]){"KEYS", pattern, NULL});
    assert_refused(u, (const char *[]){"SCAN", "0", NULL});
    assert_refused(u, (const char *[]){"EVAL", "return 1", "0", NULL});
    assert_refused(u, (const char *[]){"FLUSHALL", NULL});
    assert_refused(u, (const char *[]){"CONFIG", "GET", "maxmemory", NULL});
    assert_refused(u, (const char *[]){"XTRIM", own, "MAXLEN", "0", NULL});
    assert_refused(u, (const char *[]){"ACL", "LIST", NULL});
}

static void test_users_refused_outside_their_lists(void **state)
{
    (void)state;
    for (int d = 0; d < NDAEMONS; d++)
        refused_outside_prefix_and_list(d);
    const char *log = "audit:{default}:log", *head = "audit:{default}:head";
    /* auditd cannot remove what it wrote, not even from inside a script */
    assert_refused("auditd", (const char *[]){"DEL", log, NULL});
    assert_refused("auditd", (const char *[]){"XDEL", log, "1-0", NULL});
    redisReply *sha = argv_as(
        "auditd", (const char *[]){"SCRIPT", "LOAD", "return redis.call('DEL', KEYS[1])", NULL});
    assert_int_equal(sha->type, REDIS_REPLY_STRING);
    assert_refused("auditd", (const char *[]){"EVALSHA", sha->str, "1", log, NULL});
    freeReplyObject(sha);
    redisReply *still = cmd_as("admin", "EXISTS %s", log);
    assert_int_equal(still->integer, 1);
    freeReplyObject(still);
    /* the auditor reads and writes nothing */
    assert_allowed("auditor", (const char *[]){"HMGET", head, "seq", NULL});
    assert_refused("auditor", (const char *[]){"XADD", log, "*", "a", "b", NULL});
    assert_refused("auditor", (const char *[]){"HSET", head, "seq", "0", NULL});
    assert_refused("auditor", (const char *[]){"DEL", head, NULL});
    /* the retention job removes entries, tiles and nothing else, and appends nothing */
    assert_refused("audittrim", (const char *[]){"XADD", log, "*", "a", "b", NULL});
    assert_refused("audittrim", (const char *[]){"HSET", head, "seq", "0", NULL});
    assert_refused("audittrim", (const char *[]){"DEL", head, NULL});
    assert_allowed("audittrim", (const char *[]){"HMGET", head, "seq", NULL});
    /* the backup job snapshots and reads no key */
    assert_allowed("backup", (const char *[]){"INFO", "persistence", NULL});
    assert_refused("backup", (const char *[]){"HMGET", head, "seq", NULL});
    assert_refused("backup", (const char *[]){"CONFIG", "SET", "appendonly", "no", NULL});
    assert_refused("backup", (const char *[]){"FLUSHALL", NULL});
    /* Redis logged them, under each user */
    redisReply *r = cmd_as("admin", "ACL LOG 128");
    char seen[512] = "";
    size_t used = 0; /* strlen(seen); whole names only, while they fit */
    for (size_t i = 0; r && i < r->elements; i++)
        for (size_t k = 0; k + 1 < r->element[i]->elements; k += 2) {
            const char *name = r->element[i]->element[k + 1]->str;
            if (strcmp(r->element[i]->element[k]->str, "username") == 0 &&
                used + 1 + strlen(name) < sizeof(seen))
                used += (size_t)snprintf(seen + used, sizeof(seen) - used, " %s", name);
        }
    freeReplyObject(r);
    for (int i = 0; i < 6; i++) /* every user but admin was refused something */
        if (!strstr(seen, USERS[i]))
            fail_msg("no ACL LOG entry for %s (entries for:%s)", USERS[i], seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_runs_as_configured),
        cmocka_unit_test(test_gen_acl_writes_private_files),
        cmocka_unit_test(test_acl_lists_are_what_the_sources_send),
        cmocka_unit_test(test_daemons_work_on_their_own_users),
        cmocka_unit_test(test_users_refused_outside_their_lists),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
