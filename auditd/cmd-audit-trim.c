/* SPDX-License-Identifier: Apache-2.0 */
/* audit-trim: retention. Removes a chain's entries before --before-seq N, and the Merkle
 * tree's full tiles wholly before it, from Redis — only once the archive in --tiles DIR
 * (audit-export --tiles) holds them and verifies against its signed checkpoint, that
 * checkpoint is of the tree in Redis, and auditd has recorded the trim in the chain
 * (audit.trimmed). See trim.h. Exit 0 trimmed (or nothing to do), 1 refused, 2 a failure
 * of Redis or auditd (run again), 3 usage. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/app.h"
#include "store.h"
#include "tool.h"
#include "trim.h"

static const char USAGE[] =
    "usage: warden-audit-trim --redis redis://host:6379/0 [--chain default] --tiles DIR\n"
    "                         --keys keyring.json --before-seq N --auditd http://host:port\n"
    "                         [--admin-token-file FILE] [--threads N]\n"
    "       --redis may be left out when REDIS_URL is set; the admin token comes from\n"
    "       --admin-token-file or ADMIN_TOKEN_FILE (never the command line); --check-config;\n"
    "       --version\n"
    "exit: 0 trimmed or nothing to do, 1 refused, 2 Redis or auditd failed, 3 usage\n";

struct opts {
    const char *redis, *chain, *tiles, *keys, *auditd, *token_file;
    long long before_seq;
    int threads, check;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"redis", 1, 0, 'r'},
                                          {"chain", 1, 0, 'c'},
                                          {"tiles", 1, 0, 'T'},
                                          {"keys", 1, 0, 'k'},
                                          {"before-seq", 1, 0, 'b'},
                                          {"auditd", 1, 0, 'a'},
                                          {"admin-token-file", 1, 0, 'A'},
                                          {"threads", 1, 0, 't'},
                                          {"check-config", 0, 0, 'C'},
                                          {"version", 0, 0, 'V'},
                                          {"help", 0, 0, 'h'},
                                          {0, 0, 0, 0}};
    long long n;
    int c;
    *o = (struct opts){.chain = "default", .threads = 1};
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'r': o->redis = optarg; break;
        case 'c': o->chain = optarg; break;
        case 'T': o->tiles = optarg; break;
        case 'k': o->keys = optarg; break;
        case 'a': o->auditd = optarg; break;
        case 'A': o->token_file = optarg; break;
        case 'C': o->check = 1; break;
        case 'V': puts("warden-audit-trim " WARDEN_VERSION); exit(0);
        case 'h': fputs(USAGE, stdout); exit(0);
        case 'b':
            if (audit_tool_num(optarg, 2, 1LL << 62, &o->before_seq) != 0)
                return -1;
            break;
        case 't':
            if (audit_tool_num(optarg, 1, 256, &n) != 0)
                return -1;
            o->threads = (int)n;
            break;
        default: return -1;
        }
    }
    o->redis = audit_tool_redis_url(o->redis);
    const char *env_token = getenv("ADMIN_TOKEN_FILE");
    if (!o->token_file && env_token && *env_token)
        o->token_file = env_token;
    return optind == argc && o->redis && o->tiles && o->keys && o->auditd && o->before_seq &&
                   audit_chain_valid(o->chain)
               ? 0
               : -1;
}

/* The admin token from its file, its trailing newline dropped (caller frees); NULL none. */
static char *read_token(const char *path, int *bad)
{
    size_t len = 0;
    char *t = path ? audit_tool_read_file(path, &len) : NULL;
    *bad = path && (!t || len == 0);
    while (t && len > 0 && (t[len - 1] == '\n' || t[len - 1] == '\r'))
        t[--len] = '\0';
    return t;
}

int main(int argc, char **argv)
{
    struct opts o;
    char err[4400];
    int bad, rc = 3;
    if (audit_tool_init("audit-trim") != 0)
        return 3;
    if (parse_opts(argc, argv, &o) != 0) {
        fputs(USAGE, stderr);
        return 3;
    }
    char *token = read_token(o.token_file, &bad);
    struct audit_keyring *kr = bad ? NULL : audit_tool_keyring(o.keys, err, sizeof(err));
    struct audit_db *p = NULL;
    if (!kr) {
        fprintf(stderr, "audit-trim: %s\n", bad ? "cannot read the admin token file" : err);
        goto done;
    }
    if (o.check) {
        audit_tool_print_url("redis", o.redis);
        printf("chain=%s\ntiles=%s\nkeys=%s (%zu keys)\nbefore_seq=%lld\nauditd=%s\n"
               "admin_token=%s\nthreads=%d\n",
               o.chain, o.tiles, o.keys, kr->n, o.before_seq, o.auditd,
               token ? "<secret>" : "<unset>", o.threads);
        rc = 0;
        goto done;
    }
    if (!(p = audit_tool_db(o.redis, err, sizeof(err)))) {
        fprintf(stderr, "audit-trim: --redis: %s\n", err);
        goto done;
    }
    struct audit_keys keys = {0};
    struct audit_trim_result res;
    struct audit_trim_opts to = {.dir = o.tiles,
                                 .before_seq = o.before_seq,
                                 .auditd_url = o.auditd,
                                 .admin_token = token,
                                 .threads = o.threads};
    audit_keys_init(&keys, o.chain);
    rc = audit_trim(p, &keys, kr, &to, &res, err, sizeof(err));
    if (rc == AUDIT_TRIM_DONE && res.already)
        printf("nothing to trim: Redis holds chain %s from seq %lld\n", o.chain, res.first_seq);
    else if (rc == AUDIT_TRIM_DONE)
        printf("trimmed chain %s before seq %lld: %lld entries and %lld tiles removed, recorded "
               "at seq %lld\n",
               o.chain, o.before_seq, res.entries_removed, res.tiles_removed, res.record_seq);
    else
        fprintf(stderr, "audit-trim: %s: %s\n", rc == AUDIT_TRIM_REFUSED ? "refused" : "failed",
                err);
done:
    if (token)
        memset(token, 0, strlen(token));
    free(token);
    audit_tool_db_close(p);
    audit_keyring_free(kr);
    return rc;
}
