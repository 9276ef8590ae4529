/* SPDX-License-Identifier: Apache-2.0 */
/* redis_reply: the classification of Redis outcomes and typed reads of array replies. */
#include "shared/redis_reply.h"

#include <string.h>

/* Error replies that mean "not now", not "not ever". Redis 7.0 words an ACL refusal
 * inside a script as an ERR naming the user executing the script. */
static int says_unavailable(const char *err)
{
    static const char *const prefixes[] = {
        "LOADING ",
        "BUSY ",
        "OOM ",
        "READONLY ",
        "MASTERDOWN ",
        "TRYAGAIN ",
        "CLUSTERDOWN ",
        "NOPERM ",
        "NOAUTH ",
        "WRONGPASS ",
        "ERR max number of clients reached",
        NULL,
    };
    for (int i = 0; prefixes[i]; i++)
        if (strncmp(err, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return strstr(err, "user executing the script can't run") != NULL;
}

enum rreply_class rreply_classify(enum rcl_status status, const redisReply *reply)
{
    if (status != RCL_OK && status != RCL_REPLY_ERROR)
        return RREPLY_UNAVAILABLE;
    /* An error reply counts whatever status came with it. */
    if (!reply || reply->type != REDIS_REPLY_ERROR)
        return status == RCL_OK ? RREPLY_OK : RREPLY_INTERNAL;
    return reply->str && says_unavailable(reply->str) ? RREPLY_UNAVAILABLE : RREPLY_INTERNAL;
}

static const redisReply *element(const redisReply *r, size_t i)
{
    return r && r->type == REDIS_REPLY_ARRAY && i < r->elements ? r->element[i] : NULL;
}

const char *rreply_str(const redisReply *r, size_t i, size_t *len)
{
    const redisReply *e = element(r, i);
    if (!e || e->type != REDIS_REPLY_STRING)
        return NULL;
    if (len)
        *len = e->len;
    return e->str;
}

int rreply_int(const redisReply *r, size_t i, long long *out)
{
    const redisReply *e = element(r, i);
    if (!e || e->type != REDIS_REPLY_INTEGER)
        return -1;
    *out = e->integer;
    return 0;
}
