/* SPDX-License-Identifier: Apache-2.0 */
/* archive: reading and writing the static tlog-tiles tree of an export. */
#include "archive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/crypto.h"
#include "store.h"

#define FILE_MAX (AUDIT_MERKLE_TILE_WIDTH * (2 + AUDIT_BUNDLE_ENTRY_MAX)) /* a bundle at most */

struct audit_archive {
    char dir[4096];
    char *note;
    size_t note_len;
    struct audit_cp cp;
};

/* DIR/rel, read whole (at most FILE_MAX bytes) into *out (caller frees). Returns its
 * length, or -1. */
static long read_rel(const char *dir, const char *rel, uint8_t **out)
{
    char path[4300];
    struct stat st;
    long n = -1;
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *out = NULL;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= FILE_MAX &&
        (*out = malloc((size_t)st.st_size + 1)) != NULL &&
        read(fd, *out, (size_t)st.st_size) == (ssize_t)st.st_size) {
        (*out)[st.st_size] = '\0';
        n = (long)st.st_size;
    }
    close(fd);
    if (n < 0) {
        free(*out);
        *out = NULL;
    }
    return n;
}

struct audit_archive *audit_archive_open(const char *dir, const struct audit_keyring *kr, char *err,
                                         size_t errsize)
{
    struct audit_archive *a = calloc(1, sizeof(*a));
    uint8_t *note = NULL;
    long n;
    if (!a) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    snprintf(a->dir, sizeof(a->dir), "%s", dir);
    n = read_rel(dir, "checkpoint", &note);
    a->note = (char *)note;
    if (n < 0) {
        snprintf(err, errsize, "%s/checkpoint: cannot be read", dir);
        goto fail;
    }
    a->note_len = (size_t)n;
    if (audit_checkpoint_open(a->note, a->note_len, kr, &a->cp, err, errsize) != 0)
        goto fail;
    if (!a->cp.has_tree) {
        snprintf(err, errsize, "%s/checkpoint: a chain head, not a tree checkpoint", dir);
        goto fail;
    }
    return a;
fail:
    audit_archive_close(a);
    return NULL;
}

void audit_archive_close(struct audit_archive *a)
{
    if (!a)
        return;
    free(a->note);
    free(a);
}

const struct audit_cp *audit_archive_checkpoint(const struct audit_archive *a)
{
    return &a->cp;
}

const char *audit_archive_note(const struct audit_archive *a, size_t *len)
{
    *len = a->note_len;
    return a->note;
}

int audit_archive_sig_path(long long b, int w, char *out, size_t size)
{
    struct audit_tile_ref t = {AUDIT_TILE_ENTRIES, b, w};
    char path[AUDIT_TILE_PATH_MAX];
    if (audit_tile_format(&t, path, sizeof(path)) < 0)
        return -1;
    int n = snprintf(out, size, "signatures/%s", path + strlen("tile/entries/"));
    return n < 0 || (size_t)n >= size ? -1 : n;
}

int audit_archive_entries(struct audit_archive *a, long long b, struct audit_entry *out)
{
    struct audit_tile_ref t = {AUDIT_TILE_ENTRIES, b, 0};
    char rel[AUDIT_TILE_PATH_MAX + 16], hash[AUDIT_HASH_HEX_LEN + 1], sig[AUDIT_SIG_B64_LEN + 1];
    uint8_t *bundle = NULL, *sigs = NULL;
    size_t off[AUDIT_MERKLE_TILE_WIDTH], len[AUDIT_MERKLE_TILE_WIDTH];
    int n = -1, made = 0;
    t.width = audit_tile_width(AUDIT_TILE_ENTRIES, b, a->cp.size);
    if (t.width == 0 || audit_tile_format(&t, rel, sizeof(rel)) < 0)
        return -1;
    long blen = read_rel(a->dir, rel, &bundle);
    if (audit_archive_sig_path(b, t.width, rel, sizeof(rel)) < 0 ||
        read_rel(a->dir, rel, &sigs) != (long)t.width * CRYPTO_ED25519_SIG_LEN || blen < 0 ||
        audit_bundle_split(bundle, (size_t)blen, t.width, off, len) != 0)
        goto done;
    for (; made < t.width; made++) {
        audit_body_hash((const char *)bundle + off[made], len[made], hash, NULL);
        crypto_b64(sigs + (size_t)made * CRYPTO_ED25519_SIG_LEN, CRYPTO_ED25519_SIG_LEN, sig,
                   sizeof(sig));
        if (audit_entry_from_stored(&out[made], b * AUDIT_MERKLE_TILE_WIDTH + made + 1,
                                    (const char *)bundle + off[made], len[made], hash, sig) != 0)
            goto done;
    }
    n = made;
done:
    for (int i = 0; n < 0 && i < made; i++)
        audit_entry_clear(&out[i]);
    free(bundle);
    free(sigs);
    return n;
}

/* audit_tile_source's read over the archive: the full tile, or the partial one of the
 * archive's size, as long as it is at least width wide. */
static int tile_read(void *arg, int level, long long index, int width, uint8_t *out)
{
    struct audit_archive *a = arg;
    struct audit_tile_ref t = {level, index, audit_tile_width(level, index, a->cp.size)};
    char rel[AUDIT_TILE_PATH_MAX];
    uint8_t *data = NULL;
    if (t.width == 0 || t.width < width)
        return 0; /* past the archive's size: nothing of it to compare */
    if (audit_tile_format(&t, rel, sizeof(rel)) < 0)
        return -1;
    long n = read_rel(a->dir, rel, &data);
    int rc = data && n == (long)t.width * AUDIT_MERKLE_HASH_LEN ? 1 : -1;
    if (rc == 1)
        memcpy(out, data, (size_t)width * AUDIT_MERKLE_HASH_LEN);
    free(data);
    return rc;
}

struct audit_tile_source audit_archive_tiles(struct audit_archive *a)
{
    return (struct audit_tile_source){tile_read, a};
}

/* mkdir -p of the directories of DIR/rel. */
static int make_dirs(const char *dir, const char *rel)
{
    char path[4300];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= sizeof(path) || (mkdir(dir, 0755) != 0 && errno != EEXIST))
        return -1;
    for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

int audit_archive_has(const char *dir, const char *rel)
{
    char path[4300];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    return access(path, F_OK) == 0;
}

int audit_archive_put(const char *dir, const char *rel, const void *data, size_t len, int keep,
                      char *err, size_t errsize)
{
    char path[4300], tmp[4400];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    if (keep && access(path, F_OK) == 0)
        return 0;
    if (make_dirs(dir, rel) != 0) {
        snprintf(err, errsize, "%s: cannot make its directories: %s", path, strerror(errno));
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    int ok = fd >= 0 && write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
