/* SPDX-License-Identifier: Apache-2.0 */
/* proof: parsing the proofs of the API and checking them against checkpoints. */
#include "proof.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* A whole number member 0..2^62, or absent (-1). Returns 0, or -1 if it is something else. */
static int number(const json_t *doc, const char *name, long long *out)
{
    const json_t *v = json_object_get(doc, name);
    *out = -1;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > AUDIT_MERKLE_MAX_SIZE)
        return -1;
    *out = (long long)json_integer_value(v);
    return 0;
}

int audit_proof_parse(const char *text, size_t len, struct audit_proof *p, char *err,
                      size_t errsize)
{
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL), *h, *hashes;
    const char *name, *why = NULL;
    size_t i;
    memset(p, 0, sizeof(*p));
    if (!json_is_object(doc)) {
        why = "not a JSON object";
        goto done;
    }
    json_object_foreach(doc, name, h)
    {
        if (strcmp(name, "hashes") != 0 && strcmp(name, "leaf_index") != 0 &&
            strcmp(name, "tree_size") != 0)
            why = "a member other than hashes, leaf_index and tree_size";
    }
    hashes = json_object_get(doc, "hashes");
    if (!why && (number(doc, "leaf_index", &p->leaf_index) != 0 ||
                 number(doc, "tree_size", &p->tree_size) != 0))
        why = "leaf_index or tree_size is not a whole number from 0 to 2^62";
    else if (!why && (!json_is_array(hashes) || json_array_size(hashes) > AUDIT_MERKLE_PROOF_MAX))
        why = "hashes is not an array of at most 128 hashes";
    json_array_foreach(why ? NULL : hashes, i, h)
    {
        const char *s = json_string_value(h);
        if (!why && (!s || crypto_unb64(s, strlen(s), p->hashes[i], AUDIT_MERKLE_HASH_LEN) !=
                               AUDIT_MERKLE_HASH_LEN))
            why = "a hash is not the standard base64 of 32 bytes";
    }
    p->count = why ? 0 : (int)json_array_size(hashes);
done:
    json_decref(doc);
    if (why)
        snprintf(err, errsize, "proof: %s", why);
    return why ? -1 : 0;
}

/* The entry is what its signer wrote: its body hashes to its hash, signed by its key. */
static int entry_signed(const struct audit_entry *e, const struct audit_keyring *kr, char *why,
                        size_t whysize)
{
    uint8_t md[CRYPTO_SHA256_LEN], sig[CRYPTO_ED25519_SIG_LEN];
    char hex[AUDIT_HASH_HEX_LEN + 1];
    const struct audit_key *k = audit_keyring_find(kr, e->kv);
    audit_body_hash(e->body, e->body_len, hex, md);
    if (strcmp(hex, e->hash) != 0) {
        snprintf(why, whysize, "the entry's body does not hash to its hash");
        return 1;
    }
    if (!k) {
        snprintf(why, whysize, "the entry is signed by key %s, not in the keyring", e->kv);
        return 2;
    }
    if (crypto_unb64(e->sig, strlen(e->sig), sig, sizeof(sig)) != CRYPTO_ED25519_SIG_LEN ||
        !crypto_ed25519_verify(k->pk, md, sizeof(md), sig)) {
        snprintf(why, whysize, "the entry's signature does not verify");
        return 1;
    }
    return 0;
}

int audit_proof_inclusion(const struct audit_proof *p, const struct audit_entry *e,
                          const struct audit_cp *cp, const struct audit_keyring *kr, char *why,
                          size_t whysize)
{
    uint8_t leaf[AUDIT_MERKLE_HASH_LEN];
    if (!cp->has_tree || p->leaf_index < 0 || p->tree_size < 0) {
        snprintf(why, whysize, "%s",
                 !cp->has_tree ? "the checkpoint is a chain head, not a tree"
                               : "the proof has no leaf_index or tree_size");
        return -1;
    }
    int rc = entry_signed(e, kr, why, whysize);
    if (rc != 0)
        return rc;
    if (p->leaf_index != e->seq - 1 || p->tree_size != cp->size) {
        snprintf(why, whysize, "the proof is for leaf %lld of %lld, not seq %lld in size %lld",
                 p->leaf_index, p->tree_size, e->seq, cp->size);
        return 1;
    }
    audit_merkle_leaf_hash(e->body, e->body_len, leaf);
    if (audit_merkle_check_inclusion(p->leaf_index, cp->size, leaf,
                                     (const uint8_t(*)[AUDIT_MERKLE_HASH_LEN])p->hashes, p->count,
                                     cp->root) != 0) {
        snprintf(why, whysize, "the proof does not lead from the entry to the checkpoint's root");
        return 1;
    }
    return 0;
}

int audit_proof_consistency(const struct audit_proof *p, const struct audit_cp *a,
                            const struct audit_cp *b, char *why, size_t whysize)
{
    if (!a->has_tree || !b->has_tree || strcmp(a->origin, b->origin) != 0) {
        snprintf(why, whysize, "both checkpoints must be tree checkpoints of one log");
        return -1;
    }
    if (a->size > b->size) {
        const struct audit_cp *t = a;
        a = b;
        b = t;
    }
    if (a->size < 1 || audit_merkle_check_consistency(
                           a->size, b->size, a->root, b->root,
                           (const uint8_t(*)[AUDIT_MERKLE_HASH_LEN])p->hashes, p->count) != 0) {
        snprintf(why, whysize, "the proof does not show the tree of size %lld in that of %lld",
                 a->size, b->size);
        return 1;
    }
    return 0;
}
