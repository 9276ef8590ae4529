/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for configuration values, read the way the daemons read them: the
 * input is a list of settings separated by NUL bytes, each one byte choosing a variable
 * and the rest its value (for a *_FILE variable: the file's content, in a memory file).
 * The real loaders then read the environment: libshared's (http_config_load with
 * LISTEN_ADDR and API_TOKEN, rcl_config_load with REDIS_URL), tokend's, idemd's and
 * auditd's (keys included), and the getters themselves (cfg_int, cfg_bool,
 * cfg_duration_ms, cfg_size, cfg_enum) on FUZZ_* variables. Checked: an accepted value
 * means what its text says and is in range; a refusal is one line that starts with the
 * variable's name; no secret is ever in an error or the --check-config listing. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../auditd/config.h"
#include "../../auditd/keyring.h"
#include "../../auditd/store.h"
#include "../../idemd/config.h"
#include "../../tokend/config.h"
#include "fuzz.h"
#include "shared/crypto.h"
#include "shared/http.h"
#include "shared/listen.h"
#include "shared/redis_client.h"
#include "shared/redis_url.h"

enum kind { PLAIN, SECRET, SECRET_FILE };
static const struct var {
    const char *name;
    enum kind kind;
} VARS[] = {
    {"LISTEN_ADDR", PLAIN},
    {"HTTP_THREADS", PLAIN},
    {"HTTP_MAX_BODY", PLAIN},
    {"HTTP_CONNECTION_LIMIT", PLAIN},
    {"HTTP_CONNECTION_TIMEOUT", PLAIN},
    {"API_TOKEN", SECRET},
    {"API_TOKEN_FILE", SECRET_FILE},
    {"ADMIN_TOKEN", SECRET},
    {"REDIS_URL", SECRET},
    {"REDIS_URL_FILE", SECRET_FILE},
    {"REDIS_POOL_SIZE", PLAIN},
    {"REDIS_MIN_IDLE_CONNS", PLAIN},
    {"REDIS_MAX_CONN_AGE", PLAIN},
    {"REDIS_POOL_TIMEOUT", PLAIN},
    {"REDIS_IDLE_TIMEOUT", PLAIN},
    {"REDIS_IDLE_CHECK_FREQ", PLAIN},
    {"REDIS_CONNECT_TIMEOUT", PLAIN},
    {"REDIS_COMMAND_TIMEOUT", PLAIN},
    {"TOKEN_HASH_KEY", SECRET},
    {"TOKEN_HASH_KEY_FILE", SECRET_FILE},
    {"TOKEN_HASH_KEY_PREVIOUS", SECRET},
    {"TOKEN_IDLE_TTL", PLAIN},
    {"TOKEN_ABSOLUTE_TTL", PLAIN},
    {"TOKEN_REUSE_GRACE", PLAIN},
    {"TOKEN_FP_UA", PLAIN},
    {"TOKEN_FP_TLS", PLAIN},
    {"TOKEN_ON_FP_MISMATCH", PLAIN},
    {"TOKEN_MAX_FAMILIES_PER_USER", PLAIN},
    {"IDEM_TTL", PLAIN},
    {"IDEM_LEASE_TTL", PLAIN},
    {"IDEM_LEASE_MAX", PLAIN},
    {"IDEM_ON_LEASE_EXPIRY", PLAIN},
    {"IDEM_MAX_RESPONSE_BYTES", PLAIN},
    {"IDEM_WAIT_REPLICAS", PLAIN},
    {"IDEM_WAIT_TIMEOUT", PLAIN},
    {"IDEM_REPLAY_HEADERS", PLAIN},
    {"AUDIT_CHAIN", PLAIN},
    {"AUDIT_ORIGIN", PLAIN},
    {"AUDIT_BATCH_MAX", PLAIN},
    {"AUDIT_WAIT_REPLICAS", PLAIN},
    {"AUDIT_WAIT_TIMEOUT", PLAIN},
    {"AUDIT_DEDUP_WINDOW", PLAIN},
    {"AUDIT_CHECKPOINT_INTERVAL", PLAIN},
    {"AUDIT_PRIVATE_KEY", SECRET},
    {"AUDIT_PRIVATE_KEY_V1", SECRET},
    {"AUDIT_PRIVATE_KEY_V2_FILE", SECRET_FILE},
    {"AUDIT_PUBLIC_KEY_V1", PLAIN},
    {"AUDIT_PUBLIC_KEY_V3", PLAIN},
    {"AUDIT_ACTIVE_KEY_VERSION", PLAIN},
    {"FUZZ_INT", PLAIN},
    {"FUZZ_BOOL", PLAIN},
    {"FUZZ_DURATION", PLAIN},
    {"FUZZ_SIZE", PLAIN},
    {"FUZZ_ENUM", PLAIN},
};
#define NVARS (sizeof(VARS) / sizeof(VARS[0]))

static int memfd[NVARS];          /* the memory file of each *_FILE variable */
static const char *secret[NVARS]; /* each secret given in this run, NULL otherwise */

static void set(size_t v, const char *value, size_t len)
{
    char path[64];
    if (VARS[v].kind != SECRET_FILE) {
        setenv(VARS[v].name, value, 1);
    } else {
        if (ftruncate(memfd[v], 0) != 0 || pwrite(memfd[v], value, len, 0) != (ssize_t)len)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd[v]);
        setenv(VARS[v].name, path, 1);
    }
    secret[v] = VARS[v].kind == PLAIN ? NULL : value;
}

/* Is secret v part of another variable's value (which may be shown)? */
static int shown_elsewhere(size_t v)
{
    for (size_t w = 0; w < NVARS; w++) {
        const char *value = getenv(VARS[w].name);
        if (w != v && value && strstr(value, secret[v]))
            return 1;
    }
    return 0;
}

/* Every refusal is one line that starts with a variable's name (NAME for NAME_FILE too);
 * no secret is in it or in the listing. */
static void check_cfg(const struct cfg *c)
{
    char *listing = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&listing, &len);
    if (!f)
        abort();
    cfg_print(c, f);
    fclose(f);
    const char *err = cfg_failed(c) ? cfg_errstr(c) : "";
    if (cfg_failed(c)) {
        size_t name = strspn(err, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        int known = 0;
        for (size_t v = 0; v < NVARS; v++)
            known |= strncmp(err, VARS[v].name, name) == 0 &&
                     (VARS[v].name[name] == '\0' || strcmp(VARS[v].name + name, "_FILE") == 0);
        if (!known || !strchr("=: ,", err[name]) || err[name] == '\0' || strpbrk(err, "\r\n"))
            abort();
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)listing[i] < 0x20 && listing[i] != '\n')
            abort();
    for (size_t v = 0; v < NVARS; v++)
        if (secret[v] && !shown_elsewhere(v) &&
            (fuzz_echoes(err, secret[v]) || fuzz_echoes(listing, secret[v])))
            abort();
    free(listing);
}

/* A getter on a configuration of its own: its value is checked only when it took it. */
static struct cfg *getter_cfg(void)
{
    struct cfg *c = cfg_create();
    if (!c)
        abort();
    return c;
}

static void getter_done(struct cfg *c)
{
    check_cfg(c);
    cfg_free(c);
}

/* A value accepted by a getter is what its text spells, within the range asked for. */
static void check_getters(void)
{
    static const char *const words[] = {"debug", "info", "warn", "error", "critical", NULL};
    const char *s;
    struct cfg *c = getter_cfg();
    long long n = cfg_int(c, "FUZZ_INT", 5, -1000, 1000000);
    if (!cfg_failed(c) && (s = getenv("FUZZ_INT")) &&
        (n < -1000 || n > 1000000 || strtoll(s, NULL, 10) != n))
        abort();
    getter_done(c);
    c = getter_cfg();
    int b = cfg_bool(c, "FUZZ_BOOL", 0);
    if (!cfg_failed(c) && (s = getenv("FUZZ_BOOL")) &&
        b != (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") ||
              !strcasecmp(s, "on")))
        abort();
    getter_done(c);
    c = getter_cfg();
    int64_t ms = cfg_duration_ms(c, "FUZZ_DURATION", "1s", 0, INT64_MAX), ms2;
    if (!cfg_failed(c) && (s = getenv("FUZZ_DURATION")) &&
        (ms < 0 || cfg_parse_duration_ms(s, &ms2) != 0 || ms2 != ms))
        abort();
    getter_done(c);
    c = getter_cfg();
    uint64_t sz = cfg_size(c, "FUZZ_SIZE", "1KiB", 1, UINT64_MAX), sz2;
    if (!cfg_failed(c) && (s = getenv("FUZZ_SIZE")) &&
        (cfg_parse_size(s, &sz2) != 0 || sz2 != sz || sz < 1))
        abort();
    getter_done(c);
    c = getter_cfg();
    int w = cfg_enum(c, "FUZZ_ENUM", "info", words);
    if (!cfg_failed(c) && (s = getenv("FUZZ_ENUM")) && strcmp(s, words[w]) != 0)
        abort();
    getter_done(c);
}

/* libshared's loaders: LISTEN_ADDR splits into parts that spell it again; REDIS_URL
 * parses into a usable address. */
static void check_shared(void)
{
    struct cfg *c = cfg_create();
    struct http_config hc;
    struct rcl_config rc;
    struct listen_addr la;
    struct redis_url url;
    char again[400], err[128];
    http_config_load(&hc, c, "fuzz", 8080, 65536);
    if (!cfg_failed(c)) {
        if (listen_addr_parse(hc.listen, &la) != 0)
            abort();
        if (la.is_unix)
            snprintf(again, sizeof(again), "unix:%s", la.path);
        else
            snprintf(again, sizeof(again), strchr(la.host, ':') ? "[%s]:%s" : "%s:%s", la.host,
                     la.port);
        if (strcmp(again, hc.listen) != 0 || (!la.is_unix && atol(la.port) > 65535))
            abort();
    }
    check_cfg(c);
    cfg_free(c);
    c = cfg_create();
    rcl_config_defaults(&rc);
    rcl_config_load(&rc, c);
    if (!cfg_failed(c) && rc.url) {
        if (redis_url_parse(rc.url, &url, err, sizeof(err)) != 0 ||
            (url.path[0] ? url.path[0] != '/' : url.port < 1 || url.port > 65535) ||
            rc.min_idle > rc.pool_size)
            abort();
    }
    check_cfg(c);
    cfg_free(c);
}

/* The daemons' loaders, each on a configuration of its own (after a first error, the
 * getters only hand out defaults). */
static void check_daemons(void)
{
    struct cfg *c = cfg_create();
    struct tok_config tc;
    if (tok_config_load(&tc, c) == 0 &&
        (tc.keys.hash_len < TOK_KEY_MIN || tc.idle_ttl_ms < 1000 || tc.grace_ms > 300000))
        abort();
    check_cfg(c);
    tok_config_free(&tc);
    cfg_free(c);

    c = cfg_create();
    struct idem_config ic;
    idem_config_load(&ic, c);
    if (!cfg_failed(c) && ic.lease_default_ms > ic.lease_max_ms)
        abort();
    if (idem_config_replay_header(&ic, "Set-Cookie"))
        abort();
    check_cfg(c);
    cfg_free(c);

    c = cfg_create();
    struct audit_config ac;
    audit_config_load(&ac, c);
    struct audit_keyring *kr = audit_keyring_from_env(c, ac.origin, 0);
    if (!cfg_failed(c) && (!audit_chain_valid(ac.chain) || !kr))
        abort();
    check_cfg(c);
    audit_keyring_free(kr);
    cfg_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        crypto_init();
        clearenv(); /* only the variables set here: keeps every getenv short */
        for (size_t v = 0; v < NVARS; v++)
            if (VARS[v].kind == SECRET_FILE && (memfd[v] = memfd_create(VARS[v].name, 0)) < 0)
                abort();
        ready = 1;
    }
    for (size_t v = 0; v < NVARS; v++) {
        unsetenv(VARS[v].name);
        secret[v] = NULL;
    }
    char *s = fuzz_cstr(data, size);
    if (!s)
        return 0;
    /* Settings: [var][value...] separated by NUL; a later one for a variable wins. */
    for (size_t at = 0; at < size;) {
        size_t len = strlen(s + at);
        if (len > 0)
            set((unsigned char)s[at] % NVARS, s + at + 1, len - 1);
        at += len + 1;
    }
    check_getters();
    check_shared();
    check_daemons();
    free(s);
    return 0;
}
