/* SPDX-License-Identifier: Apache-2.0 */
/* audit-export: write a chain from Redis as JSON lines, one entry each in the
 * GET /v1/events form — exactly what audit-verify --file reads; or, with --tiles DIR, its
 * Merkle tree and entries cut at a signed checkpoint as a static tlog-tiles archive
 * (archive.h) — what audit-verify --tiles and audit-trim read. Exit 0, or 3 on a usage or
 * I/O error. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "shared/app.h"
#include "store.h"
#include "tool.h"

#define PAGE 1000

static const char USAGE[] =
    "usage: warden-audit-export --redis redis://host:6379/0 [--chain default] [--from-seq N]\n"
    "                           [--to-seq N]   (JSON lines on stdout)\n"
    "       warden-audit-export --redis URL [--chain default] --tiles DIR [--checkpoint FILE]\n"
    "                           (the tree at the checkpoint, default the newest stored one)\n"
    "       --redis may be left out when REDIS_URL is set; --check-config; --version\n";

struct opts {
    const char *redis, *chain, *tiles, *checkpoint;
    long long from_seq, to_seq;
    int check;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"redis", 1, 0, 'r'},        {"chain", 1, 0, 'c'},
                                          {"from-seq", 1, 0, 's'},     {"to-seq", 1, 0, 't'},
                                          {"tiles", 1, 0, 'T'},        {"checkpoint", 1, 0, 'K'},
                                          {"help", 0, 0, 'h'},         {"version", 0, 0, 'V'},
                                          {"check-config", 0, 0, 'C'}, {0, 0, 0, 0}};
    int c;
    *o = (struct opts){.chain = "default", .from_seq = 1, .to_seq = -1};
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'r': o->redis = optarg; break;
        case 'c': o->chain = optarg; break;
        case 'T': o->tiles = optarg; break;
        case 'K': o->checkpoint = optarg; break;
        case 's':
            if (audit_tool_num(optarg, 1, 1LL << 62, &o->from_seq) != 0)
                return -1;
            break;
        case 't':
            if (audit_tool_num(optarg, 0, 1LL << 62, &o->to_seq) != 0)
                return -1;
            break;
        case 'h': fputs(USAGE, stdout); exit(0);
        case 'V': puts("warden-audit-export " WARDEN_VERSION); exit(0);
        case 'C': o->check = 1; break;
        default: return -1;
        }
    }
    o->redis = audit_tool_redis_url(o->redis);
    if (o->tiles ? o->from_seq != 1 || o->to_seq >= 0 : o->checkpoint != NULL)
        return -1;
    return (optind == argc && o->redis && audit_chain_valid(o->chain)) ? 0 : -1;
}

/* --tiles: the archive at the checkpoint given, or the newest stored one. */
static int export_tiles(const struct opts *o, struct audit_db *p, const struct audit_keys *k)
{
    char stored[AUDIT_NOTE_MAX], err[4400], *note = stored;
    size_t len = 0;
    struct audit_export_stats st;
    int n = 0;
    if (o->checkpoint)
        note = audit_tool_read_file(o->checkpoint, &len);
    else if ((n = audit_store_last_checkpoint(p, k, stored, sizeof(stored))) > 0)
        len = (size_t)n;
    if (!note || (!o->checkpoint && n <= 0)) {
        fprintf(stderr, "audit-export: %s\n",
                o->checkpoint ? "cannot read --checkpoint"
                : n < 0       ? "redis unavailable"
                              : "no checkpoint stored yet: give --checkpoint (GET /v1/checkpoint)");
        return -1;
    }
    int rc = audit_export_tiles(p, k, o->tiles, note, len, &st, err, sizeof(err));
    if (rc == 0)
        printf("exported to %s: %lld tiles and %lld bundles written, %lld kept\n", o->tiles,
               st.tiles_written, st.bundles_written, st.kept);
    else
        fprintf(stderr, "audit-export: %s\n", err);
    if (note != stored)
        free(note);
    return rc;
}

/* Stream entries from..upto to stdout a page at a time. Returns 0 or -1. */
static int export_range(struct audit_db *p, const struct audit_keys *k, long long from,
                        long long upto)
{
    struct audit_entry *page = calloc(PAGE, sizeof(*page));
    int rc = 0;
    if (!page)
        return -1;
    while (rc == 0 && from <= upto) {
        size_t n = 0;
        if (audit_store_range(p, k, from, upto, PAGE, page, &n) != RREPLY_OK) {
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            json_t *j = audit_entry_json(&page[i], 1);
            if (!j || json_dumpf(j, stdout, JSON_COMPACT) != 0 || fputc('\n', stdout) == EOF)
                rc = -1;
            json_decref(j);
            audit_entry_clear(&page[i]);
        }
        from = page[n - 1].seq + 1;
    }
    free(page);
    return rc == 0 && fflush(stdout) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct opts o;
    char err[160], hash[AUDIT_HASH_HEX_LEN + 1];
    struct audit_keys keys = {0};
    long long head_seq;
    int exists, rc = 3;
    if (audit_tool_init("audit-export") != 0)
        return 3;
    if (parse_opts(argc, argv, &o) != 0) {
        fputs(USAGE, stderr);
        return 3;
    }
    if (o.check) {
        audit_tool_print_url("redis", o.redis);
        printf("chain=%s\nfrom_seq=%lld\nto_seq=%lld\ntiles=%s\ncheckpoint=%s\n", o.chain,
               o.from_seq, o.to_seq, o.tiles ? o.tiles : "<unset>",
               o.checkpoint ? o.checkpoint : "<newest stored>");
        return 0;
    }
    struct audit_db *p = audit_tool_db(o.redis, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "audit-export: --redis: %s\n", err);
        return 3;
    }
    audit_keys_init(&keys, o.chain);
    if (o.tiles) {
        rc = export_tiles(&o, p, &keys) == 0 ? 0 : 3;
        goto done;
    }
    /* The head first: a chain that keeps growing is exported up to a consistent point. */
    if (audit_store_head(p, &keys, &head_seq, hash, &exists) != RREPLY_OK) {
        fprintf(stderr, "audit-export: redis unavailable\n");
        goto done;
    }
    if (!exists && audit_store_last_seq(p, &keys, &head_seq) != RREPLY_OK)
        goto done;
    if (o.to_seq >= 0 && o.to_seq < head_seq)
        head_seq = o.to_seq;
    if (export_range(p, &keys, o.from_seq, head_seq) == 0)
        rc = 0;
    else
        fprintf(stderr, "audit-export: redis or output error\n");
done:
    audit_tool_db_close(p);
    return rc;
}
