/* SPDX-License-Identifier: Apache-2.0 */
/* keyring: versioned Ed25519 keys from the environment or a keyring document. */
#include "keyring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static struct audit_key *key_add(struct audit_keyring *kr, int version)
{
    for (size_t i = 0; i < kr->n; i++)
        if (kr->keys[i].version == version)
            return &kr->keys[i];
    struct audit_key *k = realloc(kr->keys, (kr->n + 1) * sizeof(*k));
    if (!k)
        return NULL;
    kr->keys = k;
    k = &kr->keys[kr->n++];
    memset(k, 0, sizeof(*k));
    k->version = version;
    snprintf(k->name, sizeof(k->name), "v%d", version);
    return k;
}

static void key_finish(const struct audit_keyring *kr, struct audit_key *k)
{
    uint8_t id[4];
    crypto_b64(k->pk, sizeof(k->pk), k->pk_b64, sizeof(k->pk_b64));
    audit_key_id(kr->origin, k->pk, id);
    crypto_hex(id, sizeof(id), k->key_id);
}

void audit_key_id(const char *origin, const uint8_t pk[CRYPTO_ED25519_PK_LEN], uint8_t id[4])
{
    size_t olen = strlen(origin);
    uint8_t buf[160 + CRYPTO_ED25519_PK_LEN], md[CRYPTO_SHA256_LEN];
    if (olen > 128)
        olen = 128;
    for (size_t i = 0; i < olen; i++)
        buf[i] = (uint8_t)origin[i];
    buf[olen] = 0x0A;
    buf[olen + 1] = 0x01;
    memcpy(buf + olen + 2, pk, CRYPTO_ED25519_PK_LEN);
    crypto_sha256(buf, olen + 2 + CRYPTO_ED25519_PK_LEN, md);
    memcpy(id, md, 4);
}

/* One private key variable: parse it into secret memory; the seed never leaves this
 * function except as the derived secret key. */
static int load_private(struct cfg *c, struct audit_keyring *kr, const char *var, int version)
{
    char err[128];
    uint8_t seed[CRYPTO_ED25519_SEED_LEN];
    const char *text = cfg_secret(c, var);
    if (!text)
        return 0;
    struct audit_key *k = key_add(kr, version);
    if (!k)
        return -1;
    if (k->sk) {
        cfg_fail(c, "%s: version v%d is given twice", var, version);
        return 0;
    }
    if (crypto_ed25519_seed_parse(text, seed, err, sizeof(err)) != 0) {
        cfg_fail(c, "%s: not an Ed25519 private key (%s); make one with `warden-auditd keygen`",
                 var, err);
        return 0;
    }
    k->sk = crypto_secret_alloc(CRYPTO_ED25519_SK_LEN);
    if (!k->sk) {
        crypto_wipe(seed, sizeof(seed));
        return -1;
    }
    crypto_ed25519_from_seed(seed, k->pk, k->sk);
    crypto_wipe(seed, sizeof(seed));
    return 0;
}

static int load_public(struct cfg *c, struct audit_keyring *kr, const char *var, int version)
{
    char err[128];
    uint8_t pk[CRYPTO_ED25519_PK_LEN];
    const char *text = getenv(var);
    if (!text)
        return 0;
    cfg_note(c, var, text, 0);
    if (crypto_ed25519_pk_parse(text, pk, err, sizeof(err)) != 0) {
        cfg_fail(c, "%s: not an Ed25519 public key (%s)", var, err);
        return 0;
    }
    struct audit_key *k = key_add(kr, version);
    if (!k)
        return -1;
    if (k->sk && memcmp(k->pk, pk, sizeof(pk)) != 0)
        cfg_fail(c, "%s does not match the public half of AUDIT_PRIVATE_KEY_V%d", var, version);
    memcpy(k->pk, pk, sizeof(pk));
    return 0;
}

static int cmp_version(const void *a, const void *b)
{
    return ((const struct audit_key *)a)->version - ((const struct audit_key *)b)->version;
}

/* Active: AUDIT_ACTIVE_KEY_VERSION, else the highest version holding a private key. */
static void pick_active(struct cfg *c, struct audit_keyring *kr, int require_signing)
{
    const char *want = cfg_str(c, "AUDIT_ACTIVE_KEY_VERSION", NULL, NULL, NULL);
    kr->active = -1;
    for (size_t i = 0; i < kr->n; i++) {
        if (!kr->keys[i].sk)
            continue;
        if (want ? strcmp(want, kr->keys[i].name) == 0 : 1)
            kr->active = (int)i;
    }
    if (want && kr->active < 0)
        cfg_fail(c, "AUDIT_ACTIVE_KEY_VERSION=%s: no AUDIT_PRIVATE_KEY for that version", want);
    else if (require_signing && kr->active < 0)
        cfg_fail(c, "no signing key: set AUDIT_PRIVATE_KEY_V1 (or AUDIT_PRIVATE_KEY_V1_FILE) to "
                    "a key made by `warden-auditd keygen`");
}

/* Is s[0..len) a version number in min..AUDIT_KEY_VERSION_MAX, without leading zeros? */
static int version_ok(const char *s, size_t len, int min)
{
    int v = 0;
    if (len < 1 || len > 3 || (s[0] == '0' && len > 1))
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v >= min && v <= AUDIT_KEY_VERSION_MAX;
}

/* A key variable whose version this does not read (V0 or V1000 for a private key, V01,
 * V2_FILE for a public key) would be ignored silently: refuse it, by name only. */
static void check_key_names(struct cfg *c)
{
    static const char *const prefixes[] = {"AUDIT_PRIVATE_KEY_V", "AUDIT_PUBLIC_KEY_V"};
    for (char **e = environ; e && *e; e++)
        for (int p = 0; p < 2; p++) {
            size_t n = strlen(prefixes[p]);
            const char *eq = strchr(*e, '=');
            if (!eq || strncmp(*e, prefixes[p], n) != 0)
                continue;
            size_t len = (size_t)(eq - *e) - n;
            if (p == 0 && len > 5 && memcmp(eq - 5, "_FILE", 5) == 0)
                len -= 5;
            if (!version_ok(*e + n, len, p == 0 ? 1 : 0))
                cfg_fail(c,
                         "%.*s: not a key version (allowed: %s<n>%s, n in %d..%d without leading "
                         "zeros%s)",
                         (int)(eq - *e), *e, prefixes[p], p == 0 ? "[_FILE]" : "", p == 0 ? 1 : 0,
                         AUDIT_KEY_VERSION_MAX, p == 0 ? "; v0 is AUDIT_PRIVATE_KEY" : "");
        }
}

struct audit_keyring *audit_keyring_from_env(struct cfg *c, const char *origin, int require_signing)
{
    char var[48];
    struct audit_keyring *kr = calloc(1, sizeof(*kr));
    if (!kr)
        return NULL;
    snprintf(kr->origin, sizeof(kr->origin), "%s", origin);
    check_key_names(c);
    if (load_private(c, kr, "AUDIT_PRIVATE_KEY", 0) != 0)
        goto fail;
    for (int v = 1; v <= AUDIT_KEY_VERSION_MAX; v++) {
        snprintf(var, sizeof(var), "AUDIT_PRIVATE_KEY_V%d", v);
        if (cfg_isset(var) && load_private(c, kr, var, v) != 0)
            goto fail;
    }
    for (int v = 0; v <= AUDIT_KEY_VERSION_MAX; v++) {
        snprintf(var, sizeof(var), "AUDIT_PUBLIC_KEY_V%d", v);
        if (load_public(c, kr, var, v) != 0)
            goto fail;
    }
    if (kr->n > 1)
        qsort(kr->keys, kr->n, sizeof(*kr->keys), cmp_version);
    for (size_t i = 0; i < kr->n; i++)
        key_finish(kr, &kr->keys[i]);
    pick_active(c, kr, require_signing);
    return kr;
fail:
    audit_keyring_free(kr);
    return NULL;
}

static int parse_version(const char *s)
{
    char *end;
    /* "v" and a decimal without leading zeros: one spelling per version. */
    if (!s || s[0] != 'v' || s[1] < '0' || s[1] > '9' || (s[1] == '0' && s[2] != '\0'))
        return -1;
    long v = strtol(s + 1, &end, 10);
    if (*end || v < 0 || v > AUDIT_KEY_VERSION_MAX)
        return -1;
    return (int)v;
}

struct audit_keyring *audit_keyring_from_json(const json_t *doc, char *err, size_t errsize)
{
    json_t *keys = json_object_get(doc, "keys"), *k;
    size_t i;
    char why[128];
    struct audit_keyring *kr = calloc(1, sizeof(*kr));
    if (!kr)
        return NULL;
    kr->active = -1;
    if (!json_is_array(keys)) {
        snprintf(err, errsize, "keyring: no \"keys\" array");
        goto fail;
    }
    json_array_foreach(keys, i, k)
    {
        int v = parse_version(json_string_value(json_object_get(k, "version")));
        const char *pk = json_string_value(json_object_get(k, "public_key"));
        struct audit_key *key;
        if (v < 0 || !pk) {
            snprintf(err, errsize, "keyring: key %zu lacks a valid version or public_key", i);
            goto fail;
        }
        size_t had = kr->n;
        if (!(key = key_add(kr, v)))
            goto fail;
        /* Two keys for one version: which one signed would be anyone's guess. */
        if (kr->n == had) {
            snprintf(err, errsize, "keyring: version v%d is given twice", v);
            goto fail;
        }
        if (crypto_ed25519_pk_parse(pk, key->pk, why, sizeof(why)) != 0) {
            snprintf(err, errsize, "keyring: key v%d: %s", v, why);
            goto fail;
        }
    }
    if (kr->n > 1)
        qsort(kr->keys, kr->n, sizeof(*kr->keys), cmp_version);
    for (i = 0; i < kr->n; i++)
        key_finish(kr, &kr->keys[i]);
    return kr;
fail:
    audit_keyring_free(kr);
    return NULL;
}

const struct audit_key *audit_keyring_find(const struct audit_keyring *kr, const char *name)
{
    for (size_t i = 0; kr && i < kr->n; i++)
        if (strcmp(kr->keys[i].name, name) == 0)
            return &kr->keys[i];
    return NULL;
}

json_t *audit_keyring_json(const struct audit_keyring *kr, const json_t *first_seq)
{
    json_t *keys = json_array();
    for (size_t i = 0; i < kr->n; i++) {
        const struct audit_key *k = &kr->keys[i];
        json_t *fs = json_object_get(first_seq, k->name);
        json_array_append_new(keys, json_pack("{s:s, s:s, s:s, s:s, s:b, s:O}", "version", k->name,
                                              "algorithm", "Ed25519", "public_key", k->pk_b64,
                                              "key_id", k->key_id, "signing", k->sk != NULL,
                                              "first_seq", fs ? fs : json_null()));
    }
    return json_pack("{s:s?, s:o}", "active", kr->active >= 0 ? kr->keys[kr->active].name : NULL,
                     "keys", keys);
}

void audit_keyring_free(struct audit_keyring *kr)
{
    if (!kr)
        return;
    for (size_t i = 0; i < kr->n; i++)
        crypto_secret_free(kr->keys[i].sk);
    free(kr->keys);
    free(kr);
}
