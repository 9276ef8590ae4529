/* SPDX-License-Identifier: Apache-2.0 */
/* state: the remembered head in AUDIT_STATE_DIR, read at start and replaced atomically. */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/crypto.h"

#define STATE_MAX_BYTES 1024 /* the line is about 300 bytes; anything longer is not ours */

struct audit_state {
    int dirfd;
    char name[128];  /* audit-<chain>-<16 hex>.json */
    char tmp[160];   /* <name>.<pid>.tmp: a process sharing the directory has its own */
    char path[4200]; /* <dir>/<name>, for messages */
    char chain[72];
    char origin[160];
};

struct audit_state *audit_state_open(const char *dir, const char *chain, const char *origin,
                                     char *err, size_t errsize)
{
    uint8_t digest[CRYPTO_SHA256_LEN];
    char hex[2 * CRYPTO_SHA256_LEN + 1];
    struct audit_state *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0 || faccessat(s->dirfd, ".", W_OK | X_OK, AT_EACCESS) != 0) {
        snprintf(err, errsize, "AUDIT_STATE_DIR=%s: %s", dir,
                 s->dirfd < 0 ? strerror(errno) : "not writable by this user");
        goto fail;
    }
    crypto_sha256(origin, strlen(origin), digest);
    crypto_hex(digest, sizeof(digest), hex);
    snprintf(s->name, sizeof(s->name), "audit-%s-%.16s.json", chain, hex);
    snprintf(s->tmp, sizeof(s->tmp), "%s.%ld.tmp", s->name, (long)getpid());
    snprintf(s->path, sizeof(s->path), "%s/%s", dir, s->name);
    snprintf(s->chain, sizeof(s->chain), "%s", chain);
    snprintf(s->origin, sizeof(s->origin), "%s", origin);
    return s;
fail:
    audit_state_close(s);
    return NULL;
}

static int is_hash(const char *h)
{
    if (!h || strlen(h) != AUDIT_HASH_HEX_LEN)
        return 0;
    for (const char *p = h; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

/* The tree's part: absent (a file from before the tree), or root "" with tree_size 0, or a
 * root with tree_size = seq. */
static const char *tree_problem(json_t *doc, json_int_t seq)
{
    const char *root = json_string_value(json_object_get(doc, "root"));
    json_t *size = json_object_get(doc, "tree_size");
    if (json_object_size(doc) == 4)
        return NULL;
    if (!root || !json_is_integer(size))
        return "root is not a string or tree_size not a number";
    if (root[0] == '\0')
        return json_integer_value(size) == 0 ? NULL : "tree_size without a root";
    if (!is_hash(root))
        return "root is not 64 lowercase hex digits";
    return json_integer_value(size) == seq ? NULL : "tree_size differs from seq";
}

/* Check the parsed document; the reason goes into why. */
static int valid_doc(const struct audit_state *s, json_t *doc, const char **why)
{
    const char *chain = json_string_value(json_object_get(doc, "chain"));
    const char *origin = json_string_value(json_object_get(doc, "origin"));
    const char *hash = json_string_value(json_object_get(doc, "hash"));
    json_t *seq = json_object_get(doc, "seq");
    size_t size = json_object_size(doc);
    *why = NULL;
    if (!json_is_object(doc) || (size != 4 && size != 6) || !chain || !origin)
        *why = "not an object of exactly chain, hash, origin, root, seq and tree_size";
    else if (strcmp(chain, s->chain) != 0 || strcmp(origin, s->origin) != 0)
        *why = "it belongs to another chain or origin";
    else if (!json_is_integer(seq) || json_integer_value(seq) < 0 ||
             json_integer_value(seq) > AUDIT_INT_MAX)
        *why = "seq is not a whole number from 0 to 2^53-1";
    else if (!is_hash(hash))
        *why = "hash is not 64 lowercase hex digits";
    else if (json_integer_value(seq) == 0 && strcmp(hash, AUDIT_ZERO_HASH) != 0)
        *why = "seq 0 with a hash that is not 64 zeros";
    else
        *why = tree_problem(doc, json_integer_value(seq));
    return *why ? -1 : 0;
}

int audit_state_load(struct audit_state *s, long long *seq, char hash[AUDIT_HASH_HEX_LEN + 1],
                     char root[AUDIT_HASH_HEX_LEN + 1], char *err, size_t errsize)
{
    char buf[STATE_MAX_BYTES + 1];
    const char *why = NULL;
    int fd = openat(s->dirfd, s->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0) {
        snprintf(err, errsize, "%s: %s", s->path, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0 || n > STATE_MAX_BYTES) {
        snprintf(err, errsize, "%s: %s", s->path, n < 0 ? strerror(errno) : "too long");
        return -1;
    }
    json_t *doc = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (!doc)
        why = "not JSON";
    else if (valid_doc(s, doc, &why) == 0) {
        *seq = (long long)json_integer_value(json_object_get(doc, "seq"));
        snprintf(hash, AUDIT_HASH_HEX_LEN + 1, "%s",
                 json_string_value(json_object_get(doc, "hash")));
        const char *r = json_string_value(json_object_get(doc, "root"));
        snprintf(root, AUDIT_HASH_HEX_LEN + 1, "%s", r ? r : "");
    }
    json_decref(doc);
    if (why) {
        snprintf(err, errsize, "%s is not a state file of chain %s, origin %s: %s", s->path,
                 s->chain, s->origin, why);
        return -1;
    }
    return 1;
}

/* Write all of buf to fd. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int audit_state_save(struct audit_state *s, long long seq, const char *hash, const char *root,
                     char *err, size_t errsize)
{
    char line[STATE_MAX_BYTES];
    int n = snprintf(line, sizeof(line),
                     "{\"chain\":\"%s\",\"hash\":\"%s\",\"origin\":\"%s\",\"root\":\"%s\","
                     "\"seq\":%lld,\"tree_size\":%lld}\n",
                     s->chain, hash, s->origin, root, seq, root[0] ? seq : 0);
    const char *step = "open";
    int fd = openat(s->dirfd, s->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    /* The data must be on disk before the rename makes it the file, and the rename on
     * disk before an append is acknowledged: else a power cut could leave the old seq,
     * or an empty file, behind an acknowledged entry. */
    step = "write";
    if (n < 0 || (size_t)n >= sizeof(line) || write_all(fd, line, (size_t)n) != 0)
        goto fail;
    step = "fsync";
    if (fsync(fd) != 0)
        goto fail;
    close(fd);
    fd = -1;
    step = "rename";
    if (renameat(s->dirfd, s->tmp, s->dirfd, s->name) != 0)
        goto fail;
    step = "fsync of the directory";
    if (fsync(s->dirfd) != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errsize, "%s: %s: %s", s->path, step, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlinkat(s->dirfd, s->tmp, 0);
    return -1;
}

const char *audit_state_path(const struct audit_state *s)
{
    return s->path;
}

void audit_state_close(struct audit_state *s)
{
    if (!s)
        return;
    if (s->dirfd >= 0)
        close(s->dirfd);
    free(s);
}
