/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the proof files audit-verify --inclusion and --consistency read
 * (audit_proof_parse), and for the checks they feed (audit_merkle_check_inclusion and
 * audit_merkle_check_consistency, through audit_proof_*). What parses holds at most 128 hashes of
 * 32 bytes and prints back (standard base64) to a document that parses to the same; no
 * parsed proof checks against a tree unless it is that tree's real proof: here the trees of
 * 1..64 leaves the harness builds, whose real proofs it knows. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../auditd/merkle.h"
#include "../../auditd/proof.h"
#include "fuzz.h"

#define LEAVES 64
static uint8_t leaf[LEAVES][AUDIT_MERKLE_HASH_LEN];

static int read_leaves(void *arg, int level, long long index, int count, uint8_t *out)
{
    (void)arg;
    if (level != 0 || index + count > LEAVES)
        return -1;
    memcpy(out, leaf[index], (size_t)count * AUDIT_MERKLE_HASH_LEN);
    return 0;
}

/* Print p back as a document and parse it again: the same proof. */
static void round_trip(const struct audit_proof *p)
{
    char b64[48], err[160];
    struct audit_proof again;
    json_t *hashes = json_array();
    for (int i = 0; i < p->count; i++) {
        crypto_b64(p->hashes[i], AUDIT_MERKLE_HASH_LEN, b64, sizeof(b64));
        json_array_append_new(hashes, json_string(b64));
    }
    json_t *doc = json_pack("{s:o}", "hashes", hashes);
    if (p->leaf_index >= 0)
        json_object_set_new(doc, "leaf_index", json_integer(p->leaf_index));
    if (p->tree_size >= 0)
        json_object_set_new(doc, "tree_size", json_integer(p->tree_size));
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text || audit_proof_parse(text, strlen(text), &again, err, sizeof(err)) != 0 ||
        again.count != p->count || again.leaf_index != p->leaf_index ||
        again.tree_size != p->tree_size ||
        memcmp(again.hashes, p->hashes, (size_t)p->count * AUDIT_MERKLE_HASH_LEN) != 0)
        abort();
    free(text);
    json_decref(doc);
}

/* A parsed proof checks for (m, n) only if it is the real one. */
static void against_trees(const struct audit_proof *p)
{
    uint8_t real[AUDIT_MERKLE_PROOF_MAX][AUDIT_MERKLE_HASH_LEN], root_m[AUDIT_MERKLE_HASH_LEN],
        root_n[AUDIT_MERKLE_HASH_LEN];
    const uint8_t(*h)[AUDIT_MERKLE_HASH_LEN] = (const uint8_t(*)[AUDIT_MERKLE_HASH_LEN])p->hashes;
    long long n = p->tree_size > 0 && p->tree_size <= LEAVES ? p->tree_size : 1 + p->count % LEAVES;
    long long m = p->leaf_index >= 0 ? p->leaf_index % n : 0;
    int count;
    audit_merkle_tree_hash(n, read_leaves, NULL, root_n);
    if (audit_merkle_check_inclusion(m, n, leaf[m], h, p->count, root_n) == 0) {
        if (audit_merkle_prove_inclusion(m, n, read_leaves, NULL, real, &count) != 0 ||
            count != p->count ||
            memcmp(real, p->hashes, (size_t)count * AUDIT_MERKLE_HASH_LEN) != 0)
            abort();
    }
    audit_merkle_tree_hash(m + 1, read_leaves, NULL, root_m);
    if (audit_merkle_check_consistency(m + 1, n, root_m, root_n, h, p->count) == 0) {
        if (audit_merkle_prove_consistency(m + 1, n, read_leaves, NULL, real, &count) != 0 ||
            count != p->count ||
            memcmp(real, p->hashes, (size_t)count * AUDIT_MERKLE_HASH_LEN) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct audit_proof p;
    char err[160];
    if (!ready) {
        crypto_init();
        for (int i = 0; i < LEAVES; i++)
            audit_merkle_leaf_hash(&i, sizeof(i), leaf[i]);
        ready = 1;
    }
    err[0] = '\0';
    if (audit_proof_parse((const char *)data, size, &p, err, sizeof(err)) != 0) {
        if (!err[0])
            abort();
        return 0;
    }
    if (p.count < 0 || p.count > AUDIT_MERKLE_PROOF_MAX)
        abort();
    round_trip(&p);
    against_trees(&p);
    return 0;
}
