/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by ratelimitd's integration tests (header-only: each test binary is one
 * source file): a private Redis with one ratelimitd on a rules file, reading the Redis
 * clock and the keys' fields, and requests on one keep-alive connection. */
#ifndef TEST_RATELIMITD_UTIL_H
#define TEST_RATELIMITD_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/harness.h"

/* Start a private Redis, write rules into a new temp dir (its path into rules_path) and
 * start ratelimitd on them in region, with a 1 s command timeout (the machine may be
 * loaded; these tests are not about timeouts). Returns 0 or -1. */
static inline int rlt_start(struct th_redis *redis, struct th_proc *p, const char *rules,
                            const char *region, char *rules_path, size_t size)
{
    char dir[256], file_env[340], region_env[96];
    if (th_redis_start(redis, NULL) != 0 || th_tmpdir(dir, sizeof(dir)) != 0)
        return -1;
    snprintf(rules_path, size, "%s/rules.json", dir);
    if (th_write_file(rules_path, rules) != 0)
        return -1;
    snprintf(file_env, sizeof(file_env), "RATELIMIT_RULES_FILE=%s", rules_path);
    snprintf(region_env, sizeof(region_env), "CLOUD_RUN_REGION=%s", region);
    const char *env[] = {file_env, region_env, "REDIS_COMMAND_TIMEOUT=1s", NULL};
    return th_daemon_start(p, "bin/ratelimitd", redis->url, env);
}

/* Redis TIME in microseconds, or -1 if Redis did not answer. */
static inline long long rlt_now_us(struct th_redis *redis)
{
    redisReply *r = th_redis_cmd(redis, "TIME");
    long long us = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        us = atoll(r->element[0]->str) * 1000000LL + atoll(r->element[1]->str);
    freeReplyObject(r);
    return us;
}

/* An integer field of a hash, or -1 when the key or the field is absent. */
static inline long long rlt_hash_int(struct th_redis *redis, const char *key, const char *field)
{
    redisReply *r = th_redis_cmd(redis, "HGET %s %s", key, field);
    long long v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

/* POST json on fd, an open connection (th_connect), leaving it open for the next request.
 * The requests of one connection are all served by one HTTP worker, and so see one deny
 * cache (each worker has its own). Returns 0 (out filled, free with th_resp_free) or -1. */
static inline int rlt_post_on(int fd, const char *path, const char *json, struct th_resp *out)
{
    char head[256];
    size_t len = strlen(json);
    memset(out, 0, sizeof(*out));
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     path, len);
    if (n < 0 || (size_t)n >= sizeof(head) || th_send_all(fd, head, (size_t)n) != 0 ||
        th_send_all(fd, json, len) != 0)
        return -1;
    return th_read_response(fd, out, th_ms(10000));
}

#endif
