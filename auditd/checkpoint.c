/* SPDX-License-Identifier: Apache-2.0 */
/* checkpoint: C2SP checkpoints of the tree and the chain head, in signed notes. */
#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EM_DASH "\xe2\x80\x94"
#define MAX_LINES 16 /* lines of note text looked at: ours have 4 */

int audit_origin_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '/' || ch == '-'))
            return 0;
    }
    return 1;
}

int audit_checkpoint_make(const struct audit_cp *cp, const struct audit_key *k, char *out,
                          size_t outsize)
{
    uint8_t blob[4 + CRYPTO_ED25519_SIG_LEN], raw[CRYPTO_SHA256_LEN];
    char root64[48], blob64[128];
    if (!k->sk || !cp->has_tree ||
        crypto_unhex(cp->chain_hash, strlen(cp->chain_hash), raw, sizeof(raw)) != 0)
        return -1;
    crypto_b64(cp->root, sizeof(cp->root), root64, sizeof(root64));
    int text_len = snprintf(out, outsize, "%s\n%lld\n%s\nchain %lld %s\n", cp->origin, cp->size,
                            root64, cp->chain_seq, cp->chain_hash);
    if (text_len < 0 || (size_t)text_len >= outsize)
        return -1;
    audit_key_id(cp->origin, k->pk, blob);
    crypto_ed25519_sign(k->sk, out, (size_t)text_len, blob + 4);
    crypto_b64(blob, sizeof(blob), blob64, sizeof(blob64));
    int n = snprintf(out + text_len, outsize - (size_t)text_len, "\n" EM_DASH " %s %s\n",
                     cp->origin, blob64);
    if (n < 0 || (size_t)n >= outsize - (size_t)text_len)
        return -1;
    return text_len + n;
}

/* A tree size or seq: decimal, no sign, no leading zero, at most 2^62. */
static int parse_num(const char *s, long long *out)
{
    char *end;
    if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1]) || strlen(s) > 19)
        return -1;
    *out = strtoll(s, &end, 10);
    return *end == '\0' && *out <= AUDIT_MERKLE_MAX_SIZE ? 0 : -1;
}

static int is_lower_hex(const char *s, size_t len)
{
    return strlen(s) == len && strspn(s, "0123456789abcdef") == len;
}

/* "chain <seq> <64 hex>" into cp. */
static int parse_chain_line(char *line, struct audit_cp *cp)
{
    char *hash = strrchr(line, ' ');
    if (strncmp(line, "chain ", 6) != 0 || !hash || hash < line + 6)
        return -1;
    *hash++ = '\0';
    if (parse_num(line + 6, &cp->chain_seq) != 0 || !is_lower_hex(hash, AUDIT_HASH_HEX_LEN))
        return -1;
    memcpy(cp->chain_hash, hash, AUDIT_HASH_HEX_LEN + 1);
    return 0;
}

/* The note text (its lines, each newline-ended, in text[0..len)) into cp. */
static int parse_text(const char *text, size_t len, struct audit_cp *cp)
{
    char buf[AUDIT_NOTE_MAX], *line[MAX_LINES];
    int n = 0;
    if (len >= sizeof(buf) || len == 0 || text[len - 1] != '\n')
        return -1;
    memcpy(buf, text, len);
    buf[len - 1] = '\0';
    for (char *p = buf; p && n < MAX_LINES; n++) {
        line[n] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = '\0';
    }
    if (n < 3 || !audit_origin_valid(line[0]) || parse_num(line[1], &cp->size) != 0 ||
        crypto_unb64(line[2], strlen(line[2]), cp->root, AUDIT_MERKLE_HASH_LEN) !=
            AUDIT_MERKLE_HASH_LEN)
        return -1;
    snprintf(cp->origin, sizeof(cp->origin), "%s", line[0]);
    if (n == 3) { /* the earlier form: the third line is a chain head */
        cp->has_tree = 0;
        cp->chain_seq = cp->size;
        crypto_hex(cp->root, AUDIT_MERKLE_HASH_LEN, cp->chain_hash);
        return 0;
    }
    cp->has_tree = 1;
    int chains = 0;
    for (int i = 3; i < n; i++) {
        if (line[i][0] == '\0')
            return -1;
        if (strncmp(line[i], "chain ", 6) == 0 &&
            (chains++ > 0 || parse_chain_line(line[i], cp) != 0 || cp->chain_seq != cp->size))
            return -1;
    }
    return chains == 1 ? 0 : -1; /* a tree without our chain line is not one of ours */
}

/* Does signature line sig (without its newline) verify text under origin with a key of kr? */
static int line_verifies(const char *sig, size_t sig_len, const char *origin, const char *text,
                         size_t text_len, const struct audit_keyring *kr)
{
    char prefix[200];
    uint8_t blob[4 + CRYPTO_ED25519_SIG_LEN + 4], id[4];
    int plen = snprintf(prefix, sizeof(prefix), EM_DASH " %s ", origin);
    if (plen < 0 || sig_len <= (size_t)plen || strncmp(sig, prefix, (size_t)plen) != 0 ||
        crypto_unb64(sig + plen, sig_len - (size_t)plen, blob, sizeof(blob)) != 68)
        return 0;
    for (size_t i = 0; kr && i < kr->n; i++) {
        audit_key_id(origin, kr->keys[i].pk, id);
        if (memcmp(id, blob, 4) == 0 &&
            crypto_ed25519_verify(kr->keys[i].pk, text, text_len, blob + 4))
            return 1;
    }
    return 0;
}

/* The note's text into cp; *text_len is its length (the signature lines follow the blank
 * line after it). */
static int read_note(const char *note, size_t len, struct audit_cp *cp, size_t *text_len, char *err,
                     size_t errsize)
{
    const char *sep = NULL;
    memset(cp, 0, sizeof(*cp));
    for (size_t i = 0; i + 1 < len && !sep; i++)
        if (note[i] == '\n' && note[i + 1] == '\n')
            sep = note + i;
    *text_len = sep ? (size_t)(sep - note) + 1 : 0;
    if (!sep || *text_len + 1 >= len || memchr(note, '\0', len) ||
        parse_text(note, *text_len, cp) != 0) {
        snprintf(err, errsize, "checkpoint: not a signed checkpoint note");
        return -1;
    }
    return 0;
}

int audit_checkpoint_read(const char *note, size_t len, struct audit_cp *cp, char *err,
                          size_t errsize)
{
    size_t text_len;
    return read_note(note, len, cp, &text_len, err, errsize);
}

int audit_checkpoint_open(const char *note, size_t len, const struct audit_keyring *kr,
                          struct audit_cp *cp, char *err, size_t errsize)
{
    size_t text_len;
    if (read_note(note, len, cp, &text_len, err, errsize) != 0)
        return -1;
    const char *sep = note + text_len - 1;
    /* Signature lines follow the blank line, each ending in a newline; any one of them by
     * a key of the keyring will do (others may be witnesses'). */
    for (const char *line = sep + 2; line < note + len;) {
        const char *end = memchr(line, '\n', (size_t)(note + len - line));
        if (!end)
            break;
        if (line_verifies(line, (size_t)(end - line), cp->origin, note, text_len, kr))
            return 0;
        line = end + 1;
    }
    snprintf(err, errsize, "checkpoint: not signed by any key of the keyring for origin %s",
             cp->origin);
    return -1;
}
