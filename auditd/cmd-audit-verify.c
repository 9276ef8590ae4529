/* audit-verify: the auditors' chain-verify tool. Streams a chain from Redis or an export
 * file through the verifier and prints one summary line (or a JSON report).
 * Exit status: 0 verified, 1 tampered, 2 unverifiable or incomplete, 3 usage or I/O. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "scan.h"
#include "shared/app.h"
#include "store.h"
#include "tool.h"
#include "verify.h"

#define EXIT_USAGE 3

struct opts {
    const char *redis, *file, *chain, *keys, *expect;
    char expect_head[96];
    long long from_seq;
    int threads, json, check;
};

static const char USAGE[] =
    "usage: audit-verify --redis redis://host:6379/0 [--chain default] --keys keyring.json\n"
    "                    [--from-seq N] [--expect checkpoint.txt | --expect-head SEQ:HASH]\n"
    "                    [--threads N] [--json]\n"
    "       audit-verify --file export.jsonl --keys keyring.json [...]\n"
    "       --redis may be left out when REDIS_URL is set (keeps a password off the command\n"
    "       line); --check-config checks the options and files and prints them; --version\n"
    "exit: 0 verified, 1 tampered, 2 unverifiable or incomplete, 3 usage or I/O error\n";

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"redis", 1, 0, 'r'},
                                          {"file", 1, 0, 'f'},
                                          {"chain", 1, 0, 'c'},
                                          {"keys", 1, 0, 'k'},
                                          {"from-seq", 1, 0, 's'},
                                          {"expect", 1, 0, 'e'},
                                          {"expect-head", 1, 0, 'H'},
                                          {"threads", 1, 0, 't'},
                                          {"json", 0, 0, 'j'},
                                          {"check-config", 0, 0, 'C'},
                                          {"version", 0, 0, 'V'},
                                          {"help", 0, 0, 'h'},
                                          {0, 0, 0, 0}};
    long long n;
    int c;
    *o = (struct opts){.chain = "default", .from_seq = 1, .threads = 1};
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'r': o->redis = optarg; break;
        case 'f': o->file = optarg; break;
        case 'c': o->chain = optarg; break;
        case 'k': o->keys = optarg; break;
        case 'e': o->expect = optarg; break;
        case 'j': o->json = 1; break;
        case 'C': o->check = 1; break;
        case 'V': puts("audit-verify " WARDEN_VERSION); exit(0);
        case 'H': snprintf(o->expect_head, sizeof(o->expect_head), "%s", optarg); break;
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
    if (!o->file)
        o->redis = audit_tool_redis_url(o->redis);
    if (optind != argc || !o->keys || !o->redis == !o->file || !audit_chain_valid(o->chain) ||
        (o->expect && o->expect_head[0]))
        return -1;
    return 0;
}

/* --expect (a signed checkpoint, checked against the keyring) or --expect-head. */
static int load_expectation(const struct opts *o, const struct audit_keyring *kr,
                            struct audit_scan_opts *so)
{
    char err[160];
    if (o->expect) {
        size_t len;
        struct audit_cp cp;
        char *note = audit_tool_read_file(o->expect, &len);
        int rc = note ? audit_checkpoint_open(note, len, kr, &cp, err, sizeof(err)) : -1;
        if (rc == 0) {
            so->expect_seq = cp.chain_seq;
            memcpy(so->expect_hash, cp.chain_hash, sizeof(so->expect_hash));
        }
        free(note);
        if (rc != 0)
            fprintf(stderr, "audit-verify: %s: %s\n", o->expect,
                    note ? err : "cannot read the checkpoint");
        return rc;
    }
    if (o->expect_head[0])
        return audit_tool_expect_head(o->expect_head, &so->expect_seq, so->expect_hash);
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

static int run(const struct opts *o, const struct audit_keyring *kr, struct audit_scan_opts *so,
               struct audit_vresult *res)
{
    char err[160];
    if (isatty(2))
        so->progress = progress;
    if (o->file) {
        FILE *f = strcmp(o->file, "-") == 0 ? stdin : fopen(o->file, "r");
        int rc = f ? audit_scan_file(f, kr, so, res) : -1;
        if (f && f != stdin)
            fclose(f);
        if (so->progress)
            fputc('\n', stderr);
        if (rc != 0) {
            fprintf(stderr, "audit-verify: cannot read %s\n", o->file);
            return -1;
        }
        return 0;
    }
    struct audit_keys keys = {0};
    struct rpool *p = audit_tool_pool(o->redis, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "audit-verify: --redis: %s\n", err);
        return -1;
    }
    audit_keys_init(&keys, o->chain);
    enum rpool_status st = audit_scan_redis(p, &keys, kr, so, res);
    if (so->progress)
        fputc('\n', stderr);
    rpool_free(p);
    if (st != RPOOL_OK)
        fprintf(stderr, "audit-verify: redis: %s\n", rpool_status_name(st));
    return st == RPOOL_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct opts o;
    char err[160];
    struct audit_vresult res;
    int code = EXIT_USAGE;
    if (audit_tool_init("audit-verify") != 0)
        return EXIT_USAGE;
    if (parse_opts(argc, argv, &o) != 0) {
        fputs(USAGE, stderr);
        return EXIT_USAGE;
    }
    struct audit_keyring *kr = audit_tool_keyring(o.keys, err, sizeof(err));
    if (!kr) {
        fprintf(stderr, "audit-verify: %s\n", err);
        return EXIT_USAGE;
    }
    struct audit_scan_opts so = {.from_seq = o.from_seq, .to_seq = -1, .threads = o.threads};
    if (load_expectation(&o, kr, &so) != 0) {
        fprintf(stderr, "audit-verify: bad --expect / --expect-head\n");
        goto done;
    }
    if (so.expect_seq > 0 && so.expect_seq < so.from_seq - 1) {
        fprintf(stderr,
                "audit-verify: the expected head (seq %lld) lies before --from-seq %lld "
                "and its link: it cannot be checked\n",
                so.expect_seq, so.from_seq);
        goto done;
    }
    if (o.check) {
        audit_tool_print_url("redis", o.redis);
        printf("file=%s\nchain=%s\nkeys=%s (%zu keys)\nfrom_seq=%lld\nexpect_seq=%lld\n"
               "threads=%d\njson=%d\n",
               o.file ? o.file : "<unset>", o.chain, o.keys, kr->n, o.from_seq, so.expect_seq,
               o.threads, o.json);
        code = 0;
        goto done;
    }
    if (run(&o, kr, &so, &res) == 0)
        code = report(&res, o.json);
done:
    audit_keyring_free(kr);
    return code;
}
