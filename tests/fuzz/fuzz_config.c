/* libFuzzer harness for libshared's value parsers: durations, sizes and REDIS_URL. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/config.h"
#include "shared/redis_pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t ms;
    uint64_t bytes;
    struct rpool_url url;
    char err[128];
    if (cfg_parse_duration_ms(s, &ms) == 0 && ms < 0)
        abort(); /* durations are never negative */
    (void)cfg_parse_size(s, &bytes);
    if (rpool_url_parse(s, &url, err, sizeof(err)) == 0 && url.path[0] == '\0' &&
        (url.port < 1 || url.port > 65535))
        abort(); /* a parsed TCP URL always has a valid port */
    free(s);
    return 0;
}
