/* SPDX-License-Identifier: Apache-2.0 */
/* audit-verify: the auditors' verify tool. Streams a chain and its Merkle tree from Redis,
 * an export file or an archive of tiles (followed by Redis, after a trim) through the
 * verifier and prints one summary line (or a JSON report); or checks one inclusion or
 * consistency proof offline against signed checkpoints.
 * Exit status: 0 verified, 1 tampered, 2 unverifiable or incomplete, 3 usage or I/O. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive.h"
#include "checkpoint.h"
#include "proof.h"
#include "scan.h"
#include "shared/app.h"
#include "store.h"
#include "tool.h"
#include "verify.h"

#define EXIT_USAGE 3
#define EXPECT_MAX 16
#define MAX_KEYRINGS 16

struct opts {
    const char *redis, *file, *tiles, *chain;
    const char *keys[MAX_KEYRINGS]; /* --keys, once or more: merged */
    int nkeys;
    const char *expect[EXPECT_MAX];
    int nexpect;
    char expect_head[96];
    const char *inclusion, *consistency, *entry;
    long long from_seq;
    int threads, json, check;
};

static const char USAGE[] =
    "usage: warden-audit-verify --redis redis://host:6379/0 [--chain default]\n"
    "                    --keys keyring.json [--keys keyring.json ...] [--from-seq N]\n"
    "                    [--expect checkpoint.txt ... | --expect-head SEQ:HASH]\n"
    "                    [--threads N] [--json]\n"
    "       warden-audit-verify --file export.jsonl --keys keyring.json [...]\n"
    "       warden-audit-verify --tiles DIR [--redis URL] --keys keyring.json [--expect ...]\n"
    "       warden-audit-verify --inclusion proof.json --entry entry.json\n"
    "                    --expect checkpoint.txt --keys keyring.json\n"
    "       warden-audit-verify --consistency proof.json --expect old.txt --expect new.txt\n"
    "                    --keys keyring.json\n"
    "       --keys more than once merges the keyrings; --redis may be left out when\n"
    "       REDIS_URL is set (keeps a password off the command line); --check-config\n"
    "       checks the options and files and prints them; --version; -h, --help\n"
    "exit: 0 verified, 1 tampered, 2 unverifiable or incomplete, 3 usage or I/O error\n";

static int check_opts(struct opts *o);

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"redis", 1, 0, 'r'},
                                          {"file", 1, 0, 'f'},
                                          {"tiles", 1, 0, 'T'},
                                          {"chain", 1, 0, 'c'},
                                          {"keys", 1, 0, 'k'},
                                          {"from-seq", 1, 0, 's'},
                                          {"expect", 1, 0, 'e'},
                                          {"expect-head", 1, 0, 'H'},
                                          {"threads", 1, 0, 't'},
                                          {"inclusion", 1, 0, 'I'},
                                          {"consistency", 1, 0, 'P'},
                                          {"entry", 1, 0, 'E'},
                                          {"json", 0, 0, 'j'},
                                          {"check-config", 0, 0, 'C'},
                                          {"version", 0, 0, 'V'},
                                          {"help", 0, 0, 'h'},
                                          {0, 0, 0, 0}};
    long long n;
    int c;
    *o = (struct opts){.chain = "default", .from_seq = 1, .threads = 1};
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
        case 'r': o->redis = optarg; break;
        case 'f': o->file = optarg; break;
        case 'T': o->tiles = optarg; break;
        case 'c': o->chain = optarg; break;
        case 'k':
            if (o->nkeys == MAX_KEYRINGS)
                return -1;
            o->keys[o->nkeys++] = optarg;
            break;
        case 'I': o->inclusion = optarg; break;
        case 'P': o->consistency = optarg; break;
        case 'E': o->entry = optarg; break;
        case 'j': o->json = 1; break;
        case 'C': o->check = 1; break;
        case 'V': puts("warden-audit-verify " WARDEN_VERSION); exit(0);
        case 'H': snprintf(o->expect_head, sizeof(o->expect_head), "%s", optarg); break;
        case 'e':
            if (o->nexpect == EXPECT_MAX)
                return -1;
            o->expect[o->nexpect++] = optarg;
            break;
        case 's':
            if (audit_tool_num(optarg, 1, 1LL << 62, &o->from_seq) != 0)
                return -1;
            break;
        case 't':
            if (audit_tool_num(optarg, 1, 256, &n) != 0)
                return -1;
            o->threads = (int)n;
            break;
        case 'h': fputs(USAGE, stdout); exit(0);
        default: return -1;
        }
    }
    return optind == argc ? check_opts(o) : -1;
}

/* Which options go together: a proof and its checkpoints, or one store (--tiles may have
 * --redis after it). */
static int check_opts(struct opts *o)
{
    if (!o->nkeys || !audit_chain_valid(o->chain) || (o->nexpect && o->expect_head[0]))
        return -1;
    if (o->inclusion || o->consistency) /* offline: a proof, checkpoints, no store */
        return !o->inclusion != !o->consistency && !o->redis && !o->file && !o->tiles &&
                       !o->expect_head[0] &&
                       (o->inclusion ? o->entry && o->nexpect == 1 : !o->entry && o->nexpect == 2)
                   ? 0
                   : -1;
    if (!o->file && !o->tiles)
        o->redis = audit_tool_redis_url(o->redis);
    if (o->entry || (o->tiles && (o->file || o->from_seq > 1)) ||
        !o->redis + !o->file + !o->tiles != 2 - (o->tiles && o->redis))
        return -1;
    return 0;
}

/* The --expect notes (checked against the keyring) or the --expect-head into cps. */
static int load_expectations(const struct opts *o, const struct audit_keyring *kr,
                             struct audit_cp *cps, size_t *n)
{
    char err[200];
    *n = 0;
    for (int i = 0; i < o->nexpect; i++) {
        size_t len;
        char *note = audit_tool_read_file(o->expect[i], &len);
        int rc = note ? audit_checkpoint_open(note, len, kr, &cps[i], err, sizeof(err)) : -1;
        free(note);
        if (rc != 0) {
            fprintf(stderr, "audit-verify: %s: %s\n", o->expect[i],
                    note ? err : "cannot read the checkpoint");
            return -1;
        }
        (*n)++;
    }
    if (o->expect_head[0]) {
        memset(&cps[0], 0, sizeof(cps[0]));
        *n = 1;
        return audit_tool_expect_head(o->expect_head, &cps[0].chain_seq, cps[0].chain_hash);
    }
    return 0;
}

static void progress(long long seq, long long target, void *arg)
{
    (void)arg;
    if (target > 0)
        fprintf(stderr, "\rverified %lld / %lld", seq, target);
    else
        fprintf(stderr, "\rverified %lld", seq);
}

static int report(const struct audit_vresult *res, int json)
{
    int code = res->ok ? 0 : audit_reason_tampered(res->reason) ? 1 : 2;
    if (json) {
        printf("{\"ok\":%s,\"checked\":%lld,\"first_bad_seq\":", res->ok ? "true" : "false",
               res->checked);
        if (res->ok)
            printf("null,\"reason\":null,\"head_seq\":%lld,\"head\":\"%s\"}\n", res->head_seq,
                   res->last_hash);
        else
            printf("%lld,\"reason\":\"%s\"}\n", res->first_bad_seq, audit_reason_name(res->reason));
    } else if (res->ok) {
        printf("OK: %lld entries, seq %lld..%lld, head %s\n", res->checked, res->first_seq,
               res->last_seq, res->last_hash);
    } else {
        printf("%s at seq %lld: %s\n", code == 1 ? "TAMPERED" : "UNVERIFIABLE", res->first_bad_seq,
               audit_reason_name(res->reason));
    }
    return code;
}

/* --file: the export, line by line. */
static int run_file(const struct opts *o, const struct audit_keyring *kr,
                    struct audit_scan_opts *so, struct audit_vresult *res)
{
    FILE *f = strcmp(o->file, "-") == 0 ? stdin : fopen(o->file, "r");
    int rc = f ? audit_scan_file(f, kr, so, res) : -1;
    if (f && f != stdin)
        fclose(f);
    if (rc != 0)
        fprintf(stderr, "audit-verify: cannot read %s\n", o->file);
    return rc;
}

/* --redis and/or --tiles. */
static int run_stores(const struct opts *o, const struct audit_keyring *kr,
                      struct audit_scan_opts *so, struct audit_vresult *res)
{
    char err[4400];
    struct audit_keys keys = {0};
    struct audit_db *p = NULL;
    struct audit_archive *a = NULL;
    enum rreply_class st = RREPLY_UNAVAILABLE;
    if (o->tiles && !(a = audit_archive_open(o->tiles, kr, err, sizeof(err)))) {
        fprintf(stderr, "audit-verify: --tiles: %s\n", err);
        return -1;
    }
    if (o->redis && !(p = audit_tool_db(o->redis, err, sizeof(err)))) {
        fprintf(stderr, "audit-verify: --redis: %s\n", err);
        audit_archive_close(a);
        return -1;
    }
    audit_keys_init(&keys, o->chain);
    st = a ? audit_scan_archive(a, p, &keys, kr, so, res) : audit_scan_redis(p, &keys, kr, so, res);
    if (st != RREPLY_OK)
        fprintf(stderr, "audit-verify: redis: %s\n",
                st == RREPLY_UNAVAILABLE ? "unavailable" : "error reply");
    audit_tool_db_close(p);
    audit_archive_close(a);
    return st == RREPLY_OK ? 0 : -1;
}

/* --inclusion / --consistency: a proof against the checkpoint(s). */
static int run_proof(const struct opts *o, const struct audit_keyring *kr,
                     const struct audit_cp *cps)
{
    struct audit_proof pr;
    struct audit_entry e = {0};
    char err[200], *text = NULL, *entry = NULL;
    size_t len, elen;
    long long body_seq;
    int rc = -1;
    const char *path = o->inclusion ? o->inclusion : o->consistency;
    if (!(text = audit_tool_read_file(path, &len)) ||
        audit_proof_parse(text, len, &pr, err, sizeof(err)) != 0) {
        fprintf(stderr, "audit-verify: %s: %s\n", path, text ? err : "cannot be read");
        goto done;
    }
    if (o->inclusion &&
        (!(entry = audit_tool_read_file(o->entry, &elen)) ||
         audit_entry_from_line(&e, entry, elen) != 0 ||
         audit_body_parse(e.body, e.body_len, &body_seq, e.prev, e.ts, e.kv, NULL) != 0)) {
        fprintf(stderr, "audit-verify: %s: not an entry as GET /v1/events/<seq> gives it\n",
                o->entry);
        goto done;
    }
    rc = o->inclusion ? audit_proof_inclusion(&pr, &e, &cps[0], kr, err, sizeof(err))
                      : audit_proof_consistency(&pr, &cps[0], &cps[1], err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "audit-verify: %s\n", err);
    else if (rc == 0 && o->inclusion)
        printf("OK: seq %lld is in the tree of size %lld\n", e.seq, cps[0].size);
    else if (rc == 0)
        printf("OK: the tree of size %lld is a prefix of the tree of size %lld\n",
               cps[0].size < cps[1].size ? cps[0].size : cps[1].size,
               cps[0].size < cps[1].size ? cps[1].size : cps[0].size);
    else
        printf("%s: %s\n", rc == 1 ? "TAMPERED" : "UNVERIFIABLE", err);
done:
    audit_entry_clear(&e);
    free(text);
    free(entry);
    return rc < 0 ? EXIT_USAGE : rc;
}

static void print_config(const struct opts *o, const struct audit_keyring *kr, size_t nexpect)
{
    audit_tool_print_url("redis", o->redis);
    printf("file=%s\ntiles=%s\nchain=%s\n", o->file ? o->file : "<unset>",
           o->tiles ? o->tiles : "<unset>", o->chain);
    for (int i = 0; i < o->nkeys; i++)
        printf("keys=%s\n", o->keys[i]);
    printf("keyring=%zu keys\nfrom_seq=%lld\nexpect=%zu\nthreads=%d\njson=%d\n", kr->n, o->from_seq,
           nexpect, o->threads, o->json);
}

static int verify(const struct opts *o, const struct audit_keyring *kr, struct audit_cp *cps,
                  size_t ncps)
{
    struct audit_vresult res;
    struct audit_scan_opts so = {.from_seq = o->from_seq,
                                 .to_seq = -1,
                                 .threads = o->threads,
                                 .expect = cps,
                                 .nexpect = ncps,
                                 .tree = 1};
    for (size_t i = 0; i < ncps; i++)
        if (cps[i].chain_seq < so.from_seq - 1) {
            fprintf(stderr,
                    "audit-verify: the expected head (seq %lld) lies before --from-seq %lld "
                    "and its link: it cannot be checked\n",
                    cps[i].chain_seq, so.from_seq);
            return EXIT_USAGE;
        }
    if (isatty(2))
        so.progress = progress;
    int rc = o->file ? run_file(o, kr, &so, &res) : run_stores(o, kr, &so, &res);
    if (so.progress)
        fputc('\n', stderr);
    return rc == 0 ? report(&res, o->json) : EXIT_USAGE;
}

int main(int argc, char **argv)
{
    struct opts o;
    char err[160];
    struct audit_cp cps[EXPECT_MAX] = {0};
    size_t ncps = 0;
    int code = EXIT_USAGE;
    if (audit_tool_init("audit-verify") != 0)
        return EXIT_USAGE;
    if (parse_opts(argc, argv, &o) != 0) {
        fputs(USAGE, stderr);
        return EXIT_USAGE;
    }
    struct audit_keyring *kr = audit_tool_keyrings(o.keys, o.nkeys, err, sizeof(err));
    if (!kr) {
        fprintf(stderr, "audit-verify: %s\n", err);
        return EXIT_USAGE;
    }
    if (load_expectations(&o, kr, cps, &ncps) != 0)
        fprintf(stderr, "audit-verify: bad --expect / --expect-head\n");
    else if (o.check) {
        print_config(&o, kr, ncps);
        code = 0;
    } else if (o.inclusion || o.consistency)
        code = run_proof(&o, kr, cps);
    else
        code = verify(&o, kr, cps, ncps);
    audit_keyring_free(kr);
    return code;
}
