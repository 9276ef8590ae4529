/* SPDX-License-Identifier: Apache-2.0 */
/* procstat: the process_* metrics, read from getrusage, getrlimit and /proc/self at each
 * render. */
#include "shared/procstat.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double start_time_s;

void procstat_init(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    start_time_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Descriptors open now: the entries of /proc/self/fd, less the one reading it. -1 without
 * /proc. */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (!d)
        return -1;
    for (const struct dirent *e = readdir(d); e; e = readdir(d))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

/* Virtual and resident size in bytes from /proc/self/statm (in pages). -1 without /proc. */
static int memory(double *virt, double *rss)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages_virt = 0, pages_rss = 0;
    int ok = f && fscanf(f, "%lu %lu", &pages_virt, &pages_rss) == 2;
    if (f)
        fclose(f);
    if (!ok)
        return -1;
    long page = sysconf(_SC_PAGESIZE);
    *virt = (double)pages_virt * (double)page;
    *rss = (double)pages_rss * (double)page;
    return 0;
}

struct out {
    char *buf;
    size_t len, cap;
    int oom;
};

static void family(struct out *o, const char *name, const char *type, const char *help,
                   double value)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name,
                     type, name, value);
    if (o->oom || n < 0 || (size_t)n >= sizeof(line))
        return;
    if (o->len + (size_t)n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 1024;
        char *nb = realloc(o->buf, cap);
        if (!nb) {
            o->oom = 1;
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, line, (size_t)n + 1);
    o->len += (size_t)n;
}

char *procstat_render(size_t *len)
{
    struct out o = {0};
    struct rusage ru;
    struct rlimit rl;
    double virt, rss;
    long fds = open_fds();

    if (getrusage(RUSAGE_SELF, &ru) == 0)
        family(&o, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.",
               (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    if (fds >= 0)
        family(&o, "process_open_fds", "gauge", "Number of open file descriptors.", (double)fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        family(&o, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
               rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur);
    if (memory(&virt, &rss) == 0) {
        family(&o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", virt);
        family(&o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss);
    }
    family(&o, "process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.", start_time_s);
    if (o.oom || !o.buf) {
        free(o.buf);
        return NULL;
    }
    *len = o.len;
    return o.buf;
}
