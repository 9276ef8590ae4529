/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers of the transparency-log tests (header-only): the independent checkers of
 * tests/tlog/ — the Python RFC 6962 verifier and the Go program over golang.org/x/mod's
 * sumdb/tlog and sumdb/note — built and run against an auditd, and the C2SP verifier key
 * of its checkpoints. Neither checker is ever skipped: a missing python3 or go fails the
 * test (make deps installs both). */
#ifndef TEST_TLOG_UTIL_H
#define TEST_TLOG_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_auditd_util.h"
#include "test_ops_util.h"

/* The note verifier key of the active key auditd on port signs with:
 * <origin>+<hex key id>+<base64(0x01 || public key)>. */
static inline void tl_vkey(int port, const char *origin, char *out, size_t size)
{
    json_t *keys = au_get(port, "/v1/keys"), *k;
    size_t i;
    uint8_t raw[33] = {0x01};
    char b64[64];
    out[0] = '\0';
    json_array_foreach(json_object_get(keys, "keys"), i, k)
    {
        const char *pk = json_string_value(json_object_get(k, "public_key"));
        if (!json_is_true(json_object_get(k, "signing")) ||
            crypto_unb64(pk, strlen(pk), raw + 1, 32) != 32)
            continue;
        crypto_b64(raw, sizeof(raw), b64, sizeof(b64));
        snprintf(out, size, "%s+%s+%s", origin, json_string_value(json_object_get(k, "key_id")),
                 b64);
    }
    json_decref(keys);
}

/* Run tests/tlog/rfc6962.py against the log of auditd on port, with checkpoint files
 * (NULL-terminated, may be NULL) and --every. Returns its exit status; its output in *out. */
static inline int tl_python(int port, const char *every, const char *const *checkpoints, char **out,
                            char **err)
{
    char url[64], tiles[64], script[1024];
    const char *argv[64] = {"python3", script, "--log", url, "--tiles", tiles, "--every", every};
    int n = 8;
    const char *py =
        access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : ops_which("python3");
    OPS_NEED_SOURCE();
    if (!py)
        fail_msg("python3 is not installed (make deps installs it)");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/", port);
    snprintf(tiles, sizeof(tiles), "http://127.0.0.1:%d/", port);
    snprintf(script, sizeof(script), "%s", ops_src("tests/tlog/rfc6962.py"));
    for (int i = 0; checkpoints && checkpoints[i] && n < 63; i++)
        argv[n++] = checkpoints[i];
    argv[n] = NULL;
    return th_run(py, argv, NULL, out, err, 600000);
}

/* Build tests/tlog/tlogcheck.go into dir (GOPATH mode over the Debian package's sources in
 * /usr/share/gocode), then run it against auditd on port with the verifier key and -every.
 * Returns its exit status; its output in *out, a build or run failure's in *err. */
static inline int tl_go(const char *dir, int port, const char *vkey, const char *every, char **out,
                        char **err)
{
    char bin[400], cache[400], src[1024], url[64], tiles[64], env_cache[420];
    OPS_NEED_SOURCE();
    if (!ops_which("go"))
        fail_msg("go is not installed (make deps installs golang-go and golang-golang-x-mod-dev)");
    if (access("/usr/share/gocode/src/golang.org/x/mod/sumdb/tlog/tlog.go", R_OK) != 0)
        fail_msg("golang.org/x/mod is not installed (make deps: golang-golang-x-mod-dev)");
    snprintf(bin, sizeof(bin), "%s/tlogcheck", dir);
    snprintf(cache, sizeof(cache), "%s/gocache", dir);
    snprintf(env_cache, sizeof(env_cache), "GOCACHE=%s", cache);
    snprintf(src, sizeof(src), "%s", ops_src("tests/tlog/tlogcheck.go"));
    const char *env[] = {"GO111MODULE=off", "GOPATH=/usr/share/gocode", env_cache,
                         "GOFLAGS=", NULL};
    if (access(bin, X_OK) != 0) {
        const char *build[] = {"go", "build", "-o", bin, src, NULL};
        int st = th_run(ops_which("go"), build, env, NULL, err, 300000);
        if (st != 0)
            return st < 0 ? 127 : st;
        free(*err);
        *err = NULL;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/", port);
    snprintf(tiles, sizeof(tiles), "http://127.0.0.1:%d/", port);
    const char *run[] = {"tlogcheck", "-log", url,      "-tiles", tiles,
                         "-vkey",     vkey,   "-every", every,    NULL};
    return th_run(bin, run, NULL, out, err, 600000);
}

#endif
