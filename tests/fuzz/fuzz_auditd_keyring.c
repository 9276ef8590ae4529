/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the keyring file audit-verify and audit-export take with --keys
 * (audit_tool_keyring: the file is read and parsed by audit_keyring_from_json). Each
 * input is the file's content, written to a memory file. A keyring accepted holds one key
 * per entry of its "keys" array, sorted by distinct version, each public key as given,
 * and renders (audit_keyring_json, the GET /v1/keys form) into a document that loads back
 * to the same keys. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../auditd/tool.h"
#include "fuzz.h"
#include "shared/crypto.h"

static void check_keys(const struct audit_keyring *kr)
{
    for (size_t i = 0; i < kr->n; i++) {
        const struct audit_key *k = &kr->keys[i];
        char name[8], b64[48];
        snprintf(name, sizeof(name), "v%d", k->version);
        crypto_b64(k->pk, sizeof(k->pk), b64, sizeof(b64));
        if (k->version < 0 || k->version > AUDIT_KEY_VERSION_MAX || strcmp(k->name, name) != 0 ||
            strcmp(k->pk_b64, b64) != 0 || k->sk || strlen(k->key_id) != 8 ||
            (i > 0 && kr->keys[i - 1].version >= k->version))
            abort();
    }
}

/* The GET /v1/keys rendering loads back to the same keys. */
static void round_trip(const struct audit_keyring *kr)
{
    char err[256];
    json_t *doc = audit_keyring_json(kr, NULL);
    struct audit_keyring *again = doc ? audit_keyring_from_json(doc, err, sizeof(err)) : NULL;
    if (!again || again->n != kr->n)
        abort();
    for (size_t i = 0; i < kr->n; i++)
        if (again->keys[i].version != kr->keys[i].version ||
            memcmp(again->keys[i].pk, kr->keys[i].pk, sizeof(kr->keys[i].pk)) != 0)
            abort();
    audit_keyring_free(again);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    char err[256];
    if (fd < 0) {
        crypto_init();
        fd = memfd_create("keyring", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    err[0] = '\0';
    struct audit_keyring *kr = audit_tool_keyring(path, err, sizeof(err));
    if (!kr) {
        if (!err[0])
            abort(); /* a refusal says why */
        return 0;
    }
    json_t *doc = json_loadb((const char *)data, size, 0, NULL);
    if (!doc || json_array_size(json_object_get(doc, "keys")) != kr->n)
        abort();
    json_decref(doc);
    check_keys(kr);
    round_trip(kr);
    audit_keyring_free(kr);
    return 0;
}
