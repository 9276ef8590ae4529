/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the operations tests (header-only: each test binary is one source
 * file): where the source tree is, reading its files, running its shell scripts, small
 * string sets, and finding tools that may not be installed. */
#ifndef TEST_OPS_UTIL_H
#define TEST_OPS_UTIL_H

#include <ctype.h>
#include <dirent.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/harness.h"

/* A path in the source tree: $WARDEN_SRC, else the current directory (make test and the
 * runner start there). In a thread-local buffer that the next call overwrites. */
static inline const char *ops_src(const char *rel)
{
    static __thread char buf[1024];
    const char *root = getenv("WARDEN_SRC");
    snprintf(buf, sizeof(buf), "%s/%s", root && *root ? root : ".", rel);
    return buf;
}

/* The whole file, NUL-terminated (caller frees), or NULL. */
static inline char *ops_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)size + 1)) != NULL) {
        if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
            free(buf);
            buf = NULL;
        } else {
            buf[size] = '\0';
        }
    }
    fclose(f);
    return buf;
}

/* Is the source tree there? (Tests that read it fail with this message otherwise.) */
#define OPS_NEED_SOURCE()                                                                          \
    do {                                                                                           \
        if (access(ops_src("deploy/redis/redis.conf"), R_OK) != 0)                                 \
            fail_msg("the source tree is not in the current directory; run from the checkout "     \
                     "or set WARDEN_SRC");                                                         \
    } while (0)

/* The full path of a program on $PATH, or NULL if it is not installed. */
static inline const char *ops_which(const char *name)
{
    static __thread char buf[1024];
    const char *path = getenv("PATH");
    while (path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
        if (n > 0 && access(buf, X_OK) == 0)
            return buf;
        path += n + (path[n] == ':');
    }
    return NULL;
}

/* Run `sh <script> args...` from the source tree; stdout/stderr as th_run. */
static inline int ops_sh(const char *script, const char *const *args, char **out, char **err,
                         int timeout_ms)
{
    const char *argv[24] = {"sh", NULL};
    char path[1024];
    int n = 1;
    snprintf(path, sizeof(path), "%s", ops_src(script));
    argv[n++] = path;
    for (int i = 0; args && args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return th_run("/bin/sh", argv, NULL, out, err, timeout_ms);
}

/* The value of the first line of text starting "key=" (a systemd unit's setting), copied
 * into buf; NULL if there is none. */
static inline char *ops_unit_value(const char *text, const char *key, char *buf, size_t size)
{
    size_t n = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, key, n) == 0 && p[n] == '=') {
            snprintf(buf, size, "%.*s", (int)strcspn(p + n + 1, "\n"), p + n + 1);
            return buf;
        }
    return NULL;
}

/* make install of this checkout's built programs (those of $WARDEN_BUILD, not rebuilt)
 * into destdir with PREFIX=/usr, as the package does. Returns make's status; its output
 * goes to stderr when it fails. */
static inline int ops_install(const char *destdir)
{
    char build[1100], dest[1100], src[1024], *err = NULL;
    const char *make = ops_which("make");
    if (!make)
        return -1;
    char make_path[1024];
    snprintf(make_path, sizeof(make_path), "%s", make);
    snprintf(src, sizeof(src), "%s", ops_src("."));
    snprintf(build, sizeof(build), "BUILD=%s", th_bin("."));
    snprintf(dest, sizeof(dest), "DESTDIR=%s", destdir);
    const char *argv[] = {"make",    "-s",          "-C", src,   "-o", "all",
                          "install", "PREFIX=/usr", dest, build, NULL};
    int st = th_run(make_path, argv, NULL, NULL, &err, 60000);
    if (st != 0)
        fprintf(stderr, "make install: exit %d\n%s", st, err ? err : "");
    free(err);
    return st;
}

/* A listening socket on 127.0.0.1:port (the caller closes it), or -1. */
static inline int ops_occupy(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 4) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* A PORT_BASE for make run whose four ports (base+1..base+4) are free now, or -1. */
static inline int ops_free_base(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int p = th_free_port(), ok = 1;
        if (p < 2 || p > 65000)
            continue;
        for (int i = 1; i <= 4 && ok; i++) {
            int fd = ops_occupy(p - 1 + i);
            ok = fd >= 0;
            if (fd >= 0)
                close(fd);
        }
        if (ok)
            return p - 1;
    }
    return -1;
}

/* ---- a small set of strings (command names, variable names) ---------------------------- */

#define OPS_SET_MAX 512

struct ops_set {
    char *items[OPS_SET_MAX];
    int n;
};

static inline int ops_set_has(const struct ops_set *s, const char *v)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->items[i], v) == 0)
            return 1;
    return 0;
}

/* Add a copy of v (lower-cased if lower) unless it is there already. */
static inline void ops_set_add(struct ops_set *s, const char *v, size_t len, int lower)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%.*s", (int)len, v);
    for (char *p = buf; lower && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (!ops_set_has(s, buf) && s->n < OPS_SET_MAX)
        s->items[s->n++] = strdup(buf);
}

static inline void ops_set_free(struct ops_set *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->items[i]);
    s->n = 0;
}

/* The members of a that b lacks, space-separated, into buf. Returns how many. */
static inline int ops_set_minus(const struct ops_set *a, const struct ops_set *b, char *buf,
                                size_t size)
{
    int n = 0;
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < a->n; i++) {
        if (ops_set_has(b, a->items[i]))
            continue;
        n++;
        if (off < size)
            off += (size_t)snprintf(buf + off, size - off, " %s", a->items[i]);
    }
    return n;
}

/* Add every match of group 1 of the extended regex pattern in text. */
static inline void ops_set_scan(struct ops_set *s, const char *text, const char *pattern, int lower)
{
    regex_t re;
    regmatch_t m[2];
    if (regcomp(&re, pattern, REG_EXTENDED) != 0)
        return;
    for (const char *p = text; regexec(&re, p, 2, m, 0) == 0; p += m[0].rm_eo) {
        ops_set_add(s, p + m[1].rm_so, (size_t)(m[1].rm_eo - m[1].rm_so), lower);
        if (m[0].rm_eo == 0)
            break;
    }
    regfree(&re);
}

/* The same over every file of dir whose name ends with suffix, but those named in except
 * (NULL-terminated, may be NULL). */
static inline void ops_set_scan_dir_except(struct ops_set *s, const char *dir, const char *suffix,
                                           const char *pattern, int lower,
                                           const char *const *except)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t sl = strlen(suffix);
    while (d && (e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        int skip = nl <= sl || strcmp(e->d_name + nl - sl, suffix) != 0;
        for (int i = 0; except && except[i] && !skip; i++)
            skip = strcmp(e->d_name, except[i]) == 0;
        if (skip)
            continue;
        char path[1024];
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
            continue; /* no such long paths in the tree */
        char *text = ops_read(path);
        if (text)
            ops_set_scan(s, text, pattern, lower);
        free(text);
    }
    if (d)
        closedir(d);
}

static inline void ops_set_scan_dir(struct ops_set *s, const char *dir, const char *suffix,
                                    const char *pattern, int lower)
{
    ops_set_scan_dir_except(s, dir, suffix, pattern, lower, NULL);
}

#endif
