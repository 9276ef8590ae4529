/* SPDX-License-Identifier: Apache-2.0 */
/* checkpoint: C2SP signed notes over a chain head. */
#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EM_DASH "\xe2\x80\x94"

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

int audit_checkpoint_make(const char *origin, long long seq, const char *hash,
                          const struct audit_key *k, char *out, size_t outsize)
{
    uint8_t raw[CRYPTO_SHA256_LEN], blob[4 + CRYPTO_ED25519_SIG_LEN];
    char hash64[48], blob64[128];
    if (!k->sk || crypto_unhex(hash, strlen(hash), raw, sizeof(raw)) != 0)
        return -1;
    crypto_b64(raw, sizeof(raw), hash64, sizeof(hash64));
    int text_len = snprintf(out, outsize, "%s\n%lld\n%s\n", origin, seq, hash64);
    if (text_len < 0 || (size_t)text_len >= outsize)
        return -1;
    audit_key_id(origin, k->pk, blob);
    crypto_ed25519_sign(k->sk, out, (size_t)text_len, blob + 4);
    crypto_b64(blob, sizeof(blob), blob64, sizeof(blob64));
    int n = snprintf(out + text_len, outsize - (size_t)text_len, "\n" EM_DASH " %s %s\n", origin,
                     blob64);
    if (n < 0 || (size_t)n >= outsize - (size_t)text_len)
        return -1;
    return text_len + n;
}

/* Split the note into its text (three lines) and the first signature line. */
static int split_note(const char *note, size_t len, size_t *text_len, const char **sig_line,
                      size_t *sig_len)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 1 < len; i++)
        if (note[i] == '\n' && note[i + 1] == '\n') {
            sep = note + i;
            break;
        }
    if (!sep)
        return -1;
    *text_len = (size_t)(sep - note) + 1;
    *sig_line = sep + 2;
    const char *end = memchr(*sig_line, '\n', len - (size_t)(*sig_line - note));
    if (!end)
        return -1;
    *sig_len = (size_t)(end - *sig_line);
    return 0;
}

static int parse_text(const char *text, size_t len, char *origin, size_t osize, long long *seq,
                      uint8_t hash[CRYPTO_SHA256_LEN])
{
    char buf[AUDIT_NOTE_MAX], *save = NULL, *line[3];
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    for (int i = 0; i < 3; i++)
        if (!(line[i] = strtok_r(i ? NULL : buf, "\n", &save)))
            return -1;
    if (strtok_r(NULL, "\n", &save) || !audit_origin_valid(line[0]))
        return -1;
    snprintf(origin, osize, "%s", line[0]);
    char *end;
    *seq = strtoll(line[1], &end, 10);
    if (*end || *seq < 0)
        return -1;
    return crypto_unb64(line[2], strlen(line[2]), hash, CRYPTO_SHA256_LEN) == CRYPTO_SHA256_LEN
               ? 0
               : -1;
}

int audit_checkpoint_open(const char *note, size_t len, const struct audit_keyring *kr,
                          long long *seq, char hash[AUDIT_HASH_HEX_LEN + 1], char *err,
                          size_t errsize)
{
    size_t text_len, sig_len, plen;
    const char *sig_line;
    char origin[160], line[256], prefix[200];
    uint8_t raw[CRYPTO_SHA256_LEN], blob[4 + CRYPTO_ED25519_SIG_LEN + 4], id[4];
    if (split_note(note, len, &text_len, &sig_line, &sig_len) != 0 ||
        parse_text(note, text_len, origin, sizeof(origin), seq, raw) != 0 ||
        sig_len >= sizeof(line)) {
        snprintf(err, errsize, "checkpoint: not a signed note of a chain head");
        return -1;
    }
    memcpy(line, sig_line, sig_len);
    line[sig_len] = '\0';
    snprintf(prefix, sizeof(prefix), EM_DASH " %s ", origin);
    plen = strlen(prefix);
    if (strncmp(line, prefix, plen) != 0 ||
        crypto_unb64(line + plen, strlen(line + plen), blob, sizeof(blob)) != 68) {
        snprintf(err, errsize, "checkpoint: no signature line for origin %s", origin);
        return -1;
    }
    for (size_t i = 0; kr && i < kr->n; i++) {
        audit_key_id(origin, kr->keys[i].pk, id);
        if (memcmp(id, blob, 4) == 0 &&
            crypto_ed25519_verify(kr->keys[i].pk, note, text_len, blob + 4)) {
            crypto_hex(raw, sizeof(raw), hash);
            return 0;
        }
    }
    snprintf(err, errsize, "checkpoint: not signed by any key of the keyring");
    return -1;
}
