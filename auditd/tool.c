/* SPDX-License-Identifier: Apache-2.0 */
/* tool: shared plumbing of audit-verify and audit-export. */
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/crypto.h"
#include "shared/log.h"

int audit_tool_init(const char *name)
{
    /* Tools print their own results on stdout; only critical pool lines may appear. */
    log_init(name, LOG_CRITICAL);
    return crypto_init();
}

struct audit_db *audit_tool_db(const char *url, char *err, size_t errsize)
{
    struct rcl_config rc = {.url = url,
                            .pool_size = 2,
                            .loops = 1,
                            .min_idle = 0,
                            .max_conn_age_ms = 0,
                            .pool_timeout_ms = 5000,
                            .connect_timeout_ms = 2000,
                            .command_timeout_ms = 10000};
    struct audit_db *db = calloc(1, sizeof(*db));
    if (!db) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    if (audit_db_open(db, &rc, err, errsize) != 0) {
        free(db);
        return NULL;
    }
    return db;
}

void audit_tool_db_close(struct audit_db *db)
{
    audit_db_close(db);
    free(db);
}

char *audit_tool_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || size > (64L << 20) ||
        fseek(f, 0, SEEK_SET) != 0)
        goto done;
    buf = malloc((size_t)size + 1);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    if (buf) {
        buf[size] = '\0';
        *len = (size_t)size;
    }
done:
    fclose(f);
    return buf;
}

struct audit_keyring *audit_tool_keyring(const char *path, char *err, size_t errsize)
{
    size_t len;
    json_error_t je;
    char *text = audit_tool_read_file(path, &len);
    if (!text) {
        snprintf(err, errsize, "cannot read keyring %s", path);
        return NULL;
    }
    json_t *doc = json_loadb(text, len, 0, &je);
    free(text);
    if (!doc) {
        snprintf(err, errsize, "keyring %s: %s (line %d)", path, je.text, je.line);
        return NULL;
    }
    struct audit_keyring *kr = audit_keyring_from_json(doc, err, errsize);
    json_decref(doc);
    return kr;
}

/* Append the keys of the document at path to merged, skipping a version already there
 * with the same public key; -1 with err set on a read error or a conflicting key. */
static int merge_keys(json_t *merged, const char *path, char *err, size_t errsize)
{
    size_t len, i, j;
    json_error_t je;
    json_t *k, *have;
    char *text = audit_tool_read_file(path, &len);
    if (!text) {
        snprintf(err, errsize, "cannot read keyring %s", path);
        return -1;
    }
    json_t *doc = json_loadb(text, len, 0, &je);
    free(text);
    json_t *keys = doc ? json_object_get(doc, "keys") : NULL;
    if (!json_is_array(keys)) {
        snprintf(err, errsize, "keyring %s: %s", path, doc ? "no \"keys\" array" : je.text);
        json_decref(doc);
        return -1;
    }
    json_array_foreach(keys, i, k)
    {
        const char *v = json_string_value(json_object_get(k, "version"));
        const char *pk = json_string_value(json_object_get(k, "public_key"));
        int dup = 0;
        json_array_foreach(merged, j, have)
        {
            const char *hv = json_string_value(json_object_get(have, "version"));
            const char *hpk = json_string_value(json_object_get(have, "public_key"));
            if (!v || !hv || strcmp(v, hv) != 0)
                continue;
            if (!pk || !hpk || strcmp(pk, hpk) != 0) {
                snprintf(err, errsize,
                         "keyring %s: version %s has another key than an earlier --keys", path, v);
                json_decref(doc);
                return -1;
            }
            dup = 1;
        }
        if (!dup)
            json_array_append(merged, k);
    }
    json_decref(doc);
    return 0;
}

struct audit_keyring *audit_tool_keyrings(const char *const *paths, int n, char *err,
                                          size_t errsize)
{
    if (n == 1)
        return audit_tool_keyring(paths[0], err, errsize);
    json_t *merged = json_array();
    struct audit_keyring *kr = NULL;
    for (int i = 0; merged && i < n; i++)
        if (merge_keys(merged, paths[i], err, errsize) != 0)
            goto done;
    json_t *doc = merged ? json_pack("{s:O}", "keys", merged) : NULL;
    if (doc)
        kr = audit_keyring_from_json(doc, err, errsize);
    else
        snprintf(err, errsize, "out of memory");
    json_decref(doc);
done:
    json_decref(merged);
    return kr;
}

const char *audit_tool_redis_url(const char *opt)
{
    const char *env = getenv("REDIS_URL");
    return opt ? opt : (env && *env ? env : NULL);
}

void audit_tool_print_url(const char *name, const char *url)
{
    const char *scheme = url ? strstr(url, "://") : NULL;
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
    const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;
    if (!url) {
        printf("%s=<unset>\n", name);
    } else if (at && (!slash || at < slash) && colon && colon < at) {
        printf("%s=%.*s:<secret>%s\n", name, (int)(colon - url), url, at);
    } else {
        printf("%s=%s\n", name, url);
    }
}

int audit_tool_num(const char *s, long long min, long long max, long long *out)
{
    char *end;
    /* strtoll would also take leading whitespace and a sign. */
    if (!s || *s < '0' || *s > '9')
        return -1;
    long long v = strtoll(s, &end, 10);
    if (*end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int audit_tool_expect_head(const char *s, long long *seq, char hash[AUDIT_HASH_HEX_LEN + 1])
{
    char num[24];
    const char *colon = strchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(num) || strlen(colon + 1) != AUDIT_HASH_HEX_LEN)
        return -1;
    memcpy(num, s, (size_t)(colon - s));
    num[colon - s] = '\0';
    if (audit_tool_num(num, 1, 1LL << 62, seq) != 0)
        return -1;
    /* The chain's hashes are lowercase hex: anything else could only ever mismatch. */
    for (size_t i = 0; i < AUDIT_HASH_HEX_LEN; i++) {
        char ch = colon[1 + i];
        if (ch >= 'A' && ch <= 'F')
            ch = (char)(ch - 'A' + 'a');
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return -1;
        hash[i] = ch;
    }
    hash[AUDIT_HASH_HEX_LEN] = '\0';
    return 0;
}
