/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for what audit-verify expects the chain and tree to hold: the signed
 * checkpoint file of --expect (audit_checkpoint_open) and the SEQ:HASH of --expect-head
 * (audit_tool_expect_head). The first byte picks how the rest is used:
 *   0: a checkpoint file as given — it opens only if our key signed exactly that note;
 *   1: the text of a note, which the harness signs with the key under the origin of its
 *      first line — what opens (a tree checkpoint with its chain line, or a chain head of
 *      the earlier form) says a size, root and head that a note made afresh by
 *      audit_checkpoint_make opens to again;
 *   2: an --expect-head value — what is accepted is a seq of 1..2^62 and 64 lowercase hex
 *      digits, spelled by the text. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../auditd/checkpoint.h"
#include "../../auditd/tool.h"
#include "fuzz.h"

static struct audit_key key = {.version = 1, .name = "v1"};
static struct audit_keyring kr = {.keys = &key, .n = 1, .active = 0};
static uint8_t sk[CRYPTO_ED25519_SK_LEN];

static int is_lower_hex(const char *h)
{
    return strlen(h) == AUDIT_HASH_HEX_LEN && strspn(h, "0123456789abcdef") == AUDIT_HASH_HEX_LEN;
}

static int same_cp(const struct audit_cp *a, const struct audit_cp *b)
{
    return a->size == b->size && a->chain_seq == b->chain_seq && a->has_tree == b->has_tree &&
           memcmp(a->root, b->root, sizeof(a->root)) == 0 &&
           strcmp(a->chain_hash, b->chain_hash) == 0 && strcmp(a->origin, b->origin) == 0;
}

/* An opened note: a tree note made afresh for what it says opens to the same. */
static void reopen(const struct audit_cp *cp)
{
    char note[AUDIT_NOTE_MAX], err[160];
    struct audit_cp again, tree = *cp;
    if (cp->chain_seq < 0 || !is_lower_hex(cp->chain_hash) || !audit_origin_valid(cp->origin) ||
        (cp->has_tree && cp->size != cp->chain_seq))
        abort();
    tree.has_tree = 1;
    tree.size = cp->chain_seq;
    int n = audit_checkpoint_make(&tree, &key, note, sizeof(note));
    if (n < 0 || audit_checkpoint_open(note, (size_t)n, &kr, &again, err, sizeof(err)) != 0 ||
        !same_cp(&again, &tree))
        abort();
}

static void as_file(const char *note, size_t len)
{
    char err[160];
    struct audit_cp cp, read;
    err[0] = '\0';
    if (audit_checkpoint_open(note, len, &kr, &cp, err, sizeof(err)) != 0) {
        if (!err[0])
            abort();
        return;
    }
    /* what opens also reads, the same, without its signature checked */
    if (audit_checkpoint_read(note, len, &read, err, sizeof(err)) != 0 || !same_cp(&read, &cp))
        abort();
    reopen(&cp);
}

/* Sign text as a note: text "\n" "— " origin " " base64(key id || signature) "\n". */
static void signed_text(const char *text, size_t len)
{
    char origin[160], note[AUDIT_NOTE_MAX * 2], b64[128];
    uint8_t blob[4 + CRYPTO_ED25519_SIG_LEN];
    size_t olen = strcspn(text, "\n");
    if (olen >= sizeof(origin) || len > AUDIT_NOTE_MAX)
        return;
    memcpy(origin, text, olen);
    origin[olen] = '\0';
    audit_key_id(origin, key.pk, blob);
    crypto_ed25519_sign(sk, text, len, blob + 4);
    crypto_b64(blob, sizeof(blob), b64, sizeof(b64));
    int n = snprintf(note, sizeof(note), "%.*s\n\xe2\x80\x94 %s %s\n", (int)len, text, origin, b64);
    if (n > 0 && (size_t)n < sizeof(note))
        as_file(note, (size_t)n);
}

static void expect_head(const char *s)
{
    long long seq;
    char hash[AUDIT_HASH_HEX_LEN + 1];
    if (audit_tool_expect_head(s, &seq, hash) != 0)
        return;
    const char *colon = strchr(s, ':');
    if (!colon || seq < 1 || seq > (1LL << 62) || strtoll(s, NULL, 10) != seq ||
        !is_lower_hex(hash) || strncasecmp(colon + 1, hash, AUDIT_HASH_HEX_LEN + 1) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        uint8_t seed[CRYPTO_ED25519_SEED_LEN] = {7};
        crypto_init();
        crypto_ed25519_from_seed(seed, key.pk, sk);
        key.sk = sk;
        ready = 1;
    }
    if (size < 1)
        return 0;
    char *s = fuzz_cstr(data + 1, size - 1);
    if (!s)
        return 0;
    if (data[0] == 0)
        as_file(s, size - 1);
    else if (data[0] == 1)
        signed_text(s, strlen(s));
    else if (data[0] == 2)
        expect_head(s);
    free(s);
    return 0;
}
