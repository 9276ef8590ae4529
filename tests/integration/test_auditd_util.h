/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by auditd's integration tests (header-only: each test binary is one
 * source file): starting auditd, running its tools, posting events, reading metrics. */
#ifndef TEST_AUDITD_UTIL_H
#define TEST_AUDITD_UTIL_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "../../auditd/merkle.h"
#include "../lib/harness.h"
#include "shared/crypto.h"

/* Base64 seeds of fixed test keys (32 bytes each: 0x01.., 0x02.., 0x09..). */
#define SEED_V1 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define SEED_V2 "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
/* The same keys as environment settings (single literals). */
#define KEY_V1_ENV "AUDIT_PRIVATE_KEY_V1=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define KEY_V2_ENV "AUDIT_PRIVATE_KEY_V2=AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
#define SEED_ROGUE "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="
#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* Start auditd against r with extra "NAME=value" settings (NULL-terminated); they come
 * first in the environment, so they override the defaults set here. flag (may be NULL)
 * is one command-line flag, e.g. "--accept-chain". */
static inline int au_start_flag(struct th_proc *p, struct th_redis *r, const char *const *extra,
                                const char *flag)
{
    char url[160], listen[64];
    const char *env[40];
    int n = 0, port = th_free_port();
    snprintf(url, sizeof(url), "REDIS_URL=%s", r->url);
    snprintf(listen, sizeof(listen), "LISTEN_ADDR=127.0.0.1:%d", port);
    for (int i = 0; extra && extra[i] && n < 34; i++)
        env[n++] = extra[i];
    env[n++] = url;
    env[n++] = listen;
    env[n++] = "SHUTDOWN_TIMEOUT=5s";
    env[n++] = "LOG_LEVEL=warn";
    env[n] = NULL;
    const char *argv[] = {"auditd", flag, NULL};
    return th_proc_start(p, th_bin("bin/auditd"), argv, env, port);
}

static inline int au_start(struct th_proc *p, struct th_redis *r, const char *const *extra)
{
    return au_start_flag(p, r, extra, NULL);
}

/* POST an event; returns the HTTP status and, on 201/200, the parsed answer in *out. */
static inline int au_post(int port, const char *path, const char *json, json_t **out)
{
    struct th_resp r;
    if (th_post_json(port, path, json, &r) != 0)
        return -1;
    int st = r.status;
    if (out)
        *out = th_json(&r);
    th_resp_free(&r);
    return st;
}

/* A thread that posts body n times to /v1/events on port and counts the 201s in ok
 * (pthread_create(&t, NULL, au_poster_main, &poster)). */
struct au_poster {
    int port, n, ok;
    const char *body;
};

static inline void *au_poster_main(void *arg)
{
    struct au_poster *p = arg;
    for (int i = 0; i < p->n; i++)
        p->ok += au_post(p->port, "/v1/events", p->body, NULL) == 201;
    return NULL;
}

/* GET path as JSON (NULL unless 200). */
static inline json_t *au_get(int port, const char *path)
{
    struct th_resp r;
    json_t *j = NULL;
    if (th_http(port, "GET", path, NULL, NULL, 0, &r) == 0 && r.status == 200)
        j = th_json(&r);
    th_resp_free(&r);
    return j;
}

/* GET path into a file (200 only). Returns 0 or -1. */
static inline int au_get_file(int port, const char *path, const char *file)
{
    struct th_resp r;
    int rc = -1;
    if (th_http(port, "GET", path, NULL, NULL, 0, &r) == 0 && r.status == 200) {
        FILE *f = fopen(file, "w");
        if (f && fwrite(r.body, 1, r.body_len, f) == r.body_len)
            rc = 0;
        if (f)
            fclose(f);
    }
    th_resp_free(&r);
    return rc;
}

static inline void au_write(const char *file, const char *text)
{
    FILE *f = fopen(file, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* The value of a metric line starting with prefix (e.g. "auditd_cas_conflicts_total "). */
static inline double au_metric(int port, const char *prefix)
{
    struct th_resp r;
    double v = -1;
    if (th_http(port, "GET", "/metrics", NULL, NULL, 0, &r) == 0 && r.status == 200) {
        const char *at = strstr(r.body, prefix);
        while (at && at != r.body && at[-1] != '\n')
            at = strstr(at + 1, prefix);
        if (at)
            v = atof(at + strlen(prefix));
    }
    th_resp_free(&r);
    return v;
}

/* The stored hash of every seq 1..n of the default chain (index seq-1; "" where none),
 * read in pages; caller frees. Stops early if Redis does not answer. */
static inline char (*au_stored_hashes(struct th_redis *r, long long n))[65]
{
    char(*h)[65] = calloc((size_t)n + 1, sizeof(*h));
    long long from = 1;
    while (h && from <= n) {
        redisReply *rep = th_redis_cmd(r, "XRANGE audit:{default}:log %lld-0 + COUNT 1000", from);
        if (!rep || rep->elements == 0) {
            freeReplyObject(rep);
            break;
        }
        for (size_t i = 0; i < rep->elements; i++) {
            long long seq = atoll(rep->element[i]->element[0]->str);
            if (seq >= 1 && seq <= n)
                snprintf(h[seq - 1], 65, "%s", rep->element[i]->element[1]->element[3]->str);
            from = seq + 1;
        }
        freeReplyObject(rep);
    }
    return h;
}

/* Check an Ed25519 signature with an independent implementation: openssl pkeyutl
 * -verify -rawin, the public key given as base64 of its 32 bytes. dir holds the scratch
 * files. Returns 1 verified, 0 not. */
static inline int au_openssl_verify(const char *dir, const char *pk64, const void *msg,
                                    size_t msg_len, const uint8_t sig[64])
{
    char der_f[320], pem_f[320], msg_f[320], sig_f[320];
    uint8_t der[44] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
    if (crypto_unb64(pk64, strlen(pk64), der + 12, 32) != 32)
        return 0;
    snprintf(der_f, sizeof(der_f), "%s/osv-pub.der", dir);
    snprintf(pem_f, sizeof(pem_f), "%s/osv-pub.pem", dir);
    snprintf(msg_f, sizeof(msg_f), "%s/osv-msg.bin", dir);
    snprintf(sig_f, sizeof(sig_f), "%s/osv-sig.bin", dir);
    FILE *f = fopen(der_f, "wb");
    fwrite(der, 1, sizeof(der), f);
    fclose(f);
    f = fopen(msg_f, "wb");
    fwrite(msg, 1, msg_len, f);
    fclose(f);
    f = fopen(sig_f, "wb");
    fwrite(sig, 1, 64, f);
    fclose(f);
    const char *conv[] = {"openssl", "pkey", "-pubin", "-inform", "DER",
                          "-in",     der_f,  "-out",   pem_f,     NULL};
    if (th_run("/usr/bin/openssl", conv, NULL, NULL, NULL, 10000) != 0)
        return 0;
    const char *ver[] = {"openssl", "pkeyutl", "-verify", "-pubin",   "-inkey", pem_f,
                         "-rawin",  "-in",     msg_f,     "-sigfile", sig_f,    NULL};
    char *out = NULL;
    int st = th_run("/usr/bin/openssl", ver, NULL, &out, NULL, 10000);
    int ok = st == 0 && out && strstr(out, "Signature Verified Successfully");
    free(out);
    return ok;
}

/* ---- the Merkle tree, recomputed here from the bodies as the API serves them ---------- */

/* MTH of leaf hashes lh[lo..hi) by RFC 6962's definition (written for the tests, apart from
 * auditd's merkle.c). */
static inline void au_mth(uint8_t (*lh)[32], long long lo, long long hi, uint8_t out[32])
{
    if (hi - lo == 1) {
        memcpy(out, lh[lo], 32);
        return;
    }
    long long k = 1;
    while (k * 2 < hi - lo)
        k *= 2;
    uint8_t buf[65] = {1};
    au_mth(lh, lo, lo + k, buf + 1);
    au_mth(lh, lo + k, hi, buf + 33);
    crypto_sha256(buf, sizeof(buf), out);
}

/* The leaf hashes of entries 1..n of the chain auditd on port serves (GET /v1/events),
 * calloc'd (caller frees); NULL if it serves fewer. */
static inline uint8_t (*au_leaf_hashes(int port, long long n))[32]
{
    uint8_t(*lh)[32] = calloc((size_t)n + 1, 32);
    char path[96];
    long long have = 0;
    while (lh && have < n) {
        snprintf(path, sizeof(path), "/v1/events?from_seq=%lld&limit=1000", have + 1);
        json_t *page = au_get(port, path), *e;
        size_t i, got = 0;
        json_array_foreach(json_object_get(page, "entries"), i, e)
        {
            const char *body = json_string_value(json_object_get(e, "body"));
            size_t len = json_string_length(json_object_get(e, "body"));
            uint8_t *buf = malloc(len + 1);
            if (have < n && body && buf) {
                buf[0] = 0;
                memcpy(buf + 1, body, len);
                crypto_sha256(buf, len + 1, lh[have++]);
                got++;
            }
            free(buf);
        }
        json_decref(page);
        if (got == 0)
            break;
    }
    if (lh && have < n) {
        free(lh);
        lh = NULL;
    }
    return lh;
}

/* The root of the first n entries (n >= 1). Returns 0, or -1 if they could not be read. */
static inline int au_tree_root(int port, long long n, uint8_t out[32])
{
    uint8_t(*lh)[32] = au_leaf_hashes(port, n);
    if (!lh)
        return -1;
    au_mth(lh, 0, n, out);
    free(lh);
    return 0;
}

/* Set the tree fields of chain's head to those of its first n stored entries, as a careful
 * hand cutting the chain back to n would (with auditd's merkle.c; the tiles are left). */
static inline void au_set_tree(struct th_redis *r, const char *chain, long long n)
{
    struct audit_merkle_frontier f;
    uint8_t leaf[32], root[32];
    char hex[65];
    audit_merkle_frontier_init(&f);
    redisReply *log = th_redis_cmd(r, "XRANGE audit:{%s}:log 1-0 %lld-0", chain, n);
    for (size_t i = 0; log && i < log->elements; i++) {
        redisReply *fields = log->element[i]->element[1];
        audit_merkle_leaf_hash(fields->element[1]->str, fields->element[1]->len, leaf);
        audit_merkle_frontier_push(&f, leaf, NULL, NULL);
    }
    freeReplyObject(log);
    audit_merkle_frontier_root(&f, root);
    crypto_hex(root, 32, hex);
    freeReplyObject(th_redis_cmd(r, "HSET audit:{%s}:head tsize %lld root %s frontier %b", chain,
                                 f.size, hex, f.h, (size_t)f.n * 32));
}

/* Run audit-verify with args (NULL-terminated, without argv[0]); returns its exit status
 * and its stdout in *out (caller frees). */
static inline int au_verify(const char *const *args, char **out)
{
    const char *argv[16] = {"audit-verify"};
    int n = 1;
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return th_run(th_bin("bin/audit-verify"), argv, NULL, out, NULL, 60000);
}

#endif
