/* SPDX-License-Identifier: Apache-2.0 */
/* keyring: the versioned Ed25519 keys of a chain — loading them from the environment
 * (AUDIT_PRIVATE_KEY[_V<n>][_FILE], AUDIT_PUBLIC_KEY_V<n>, AUDIT_ACTIVE_KEY_VERSION) or
 * from a keyring file (the GET /v1/keys document), and rendering that document. */
#ifndef AUDIT_KEYRING_H
#define AUDIT_KEYRING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/config.h"
#include "shared/crypto.h"

#define AUDIT_KEY_VERSION_MAX 999

struct audit_key {
    int version;
    char name[8]; /* "v2" */
    uint8_t pk[CRYPTO_ED25519_PK_LEN];
    char pk_b64[48];
    char key_id[9]; /* checkpoint key id, hex of 4 bytes (depends on the origin) */
    uint8_t *sk;    /* 64 bytes in secret memory, or NULL for a public-only key */
};

struct audit_keyring {
    struct audit_key *keys; /* sorted by version */
    size_t n;
    int active; /* index into keys of the signing key, -1 if none */
    char origin[129];
};

/* Read every key variable from c; problems are recorded with cfg_fail (the daemon exits 2
 * in app_config_done). With require_signing, no private key at all is such a problem.
 * Returns a keyring (caller frees), or NULL when out of memory. */
struct audit_keyring *audit_keyring_from_env(struct cfg *c, const char *origin,
                                             int require_signing);

/* Parse a keyring document ({"keys":[{"version","public_key"},...]}). Returns a keyring
 * without private keys, or NULL with a reason in err. */
struct audit_keyring *audit_keyring_from_json(const json_t *doc, char *err, size_t errsize);

/* The key of version name ("v2"), or NULL. */
const struct audit_key *audit_keyring_find(const struct audit_keyring *kr, const char *name);

/* The checkpoint key id of pk under origin: first 4 bytes of
 * SHA-256(origin || 0x0A || 0x01 || pk). */
void audit_key_id(const char *origin, const uint8_t pk[CRYPTO_ED25519_PK_LEN], uint8_t id[4]);

/* The GET /v1/keys document. first_seq may be NULL (all null) or a JSON object
 * version -> first seq (as read from audit:{c}:keys). New reference. */
json_t *audit_keyring_json(const struct audit_keyring *kr, const json_t *first_seq);

/* Wipes and frees the private keys. NULL does nothing. */
void audit_keyring_free(struct audit_keyring *kr);

#endif
