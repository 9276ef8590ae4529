/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for audit-verify's export reader (audit_scan_file: the JSON lines of
 * --file, each through audit_entry_from_line and the verifier): each input is an export
 * file. The verdict is consistent (ok counts every entry of the range, a failure names a
 * seq in it) and the same whether signatures are checked inline or on worker threads
 * (the head hash only counts when it verified). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../auditd/scan.h"
#include "fuzz.h"
#include "shared/crypto.h"

static struct audit_key key = {.version = 1, .name = "v1"};
static struct audit_keyring kr = {.keys = &key, .n = 1, .active = -1};

static void scan(const uint8_t *data, size_t size, long long from, int threads,
                 struct audit_vresult *res)
{
    struct audit_scan_opts o = {.from_seq = from, .to_seq = -1, .threads = threads};
    /* fmemopen refuses an empty buffer; an empty export is one holding only a newline. */
    static char newline[] = "\n";
    FILE *f = size ? fmemopen((void *)data, size, "r") : fmemopen(newline, 1, "r");
    if (!f || audit_scan_file(f, &kr, &o, res) != 0)
        abort(); /* a memory stream never fails to read */
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        uint8_t seed[CRYPTO_ED25519_SEED_LEN] = {1}, sk[CRYPTO_ED25519_SK_LEN];
        crypto_init();
        crypto_ed25519_from_seed(seed, key.pk, sk);
        ready = 1;
    }
    /* Most inputs verify from the start; some as --from-seq 2. */
    long long from = size % 4 == 3 ? 2 : 1;
    struct audit_vresult inline_res, threaded;
    scan(data, size, from, 0, &inline_res);
    if (inline_res.ok &&
        inline_res.checked != (inline_res.last_seq ? inline_res.last_seq - from + 1 : 0))
        abort();
    if (!inline_res.ok && (inline_res.first_bad_seq < from || inline_res.reason == AUDIT_OK))
        abort();
    /* Threads cost a lot per run: compare on the inputs that get past the first line. */
    if (inline_res.checked > 0 || inline_res.ok) {
        scan(data, size, from, 2, &threaded);
        if (threaded.ok != inline_res.ok || threaded.checked != inline_res.checked ||
            threaded.first_bad_seq != inline_res.first_bad_seq ||
            threaded.reason != inline_res.reason ||
            (threaded.ok && strcmp(threaded.last_hash, inline_res.last_hash) != 0))
            abort();
    }
    return 0;
}
