/* scan: verify a chain stored in Redis — read the head first, stream the log up to it in
 * pages through the verifier, then check the head. Used by POST /v1/verify and
 * audit-verify --redis. */
#ifndef AUDIT_SCAN_H
#define AUDIT_SCAN_H

#include "keyring.h"
#include "shared/redis_pool.h"
#include "store.h"
#include "verify.h"

struct audit_scan_opts {
    long long from_seq; /* >= 1 */
    long long to_seq;   /* < 0: up to the head */
    int threads;
    long long expect_seq; /* 0: no expectation */
    char expect_hash[AUDIT_HASH_HEX_LEN + 1];
    /* Called after every page with the last seq checked and the target (may be NULL). */
    void (*progress)(long long seq, long long target, void *arg);
    void *progress_arg;
};

/* Returns RPOOL_OK with out filled, or the Redis failure. */
enum rpool_status audit_scan_redis(struct rpool *p, const struct audit_keys *k,
                                   const struct audit_keyring *kr,
                                   const struct audit_scan_opts *opts, struct audit_vresult *out);

#endif
