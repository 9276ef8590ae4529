/* SPDX-License-Identifier: Apache-2.0 */
/* sdnotify: sd_notify wrappers and the watchdog/status thread. */
#include "shared/sdnotify.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#define SDN_STATUS_PERIOD_US 2000000ull

struct sdn_pulse {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int stop;
    uint64_t period_us;
    int watchdog;
    void (*tick)(void *arg);
    void *arg;
};

void sdn_send(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    if (!getenv("NOTIFY_SOCKET"))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sd_notify(0, msg);
}

static void *pulse_main(void *arg)
{
    struct sdn_pulse *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        pthread_mutex_unlock(&p->mu);
        if (p->watchdog)
            sd_notify(0, "WATCHDOG=1");
        if (p->tick)
            p->tick(p->arg);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + (p->period_us % 1000000) * 1000;
        until.tv_sec += (time_t)(p->period_us / 1000000 + ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        pthread_mutex_lock(&p->mu);
        while (!p->stop && pthread_cond_timedwait(&p->wake, &p->mu, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct sdn_pulse *sdn_pulse_start(void (*tick)(void *arg), void *arg)
{
    uint64_t usec = 0;
    if (!getenv("NOTIFY_SOCKET"))
        return NULL;
    struct sdn_pulse *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->watchdog = sd_watchdog_enabled(0, &usec) > 0 && usec > 0;
    p->period_us = p->watchdog ? usec / 2 : SDN_STATUS_PERIOD_US;
    if (p->period_us > SDN_STATUS_PERIOD_US)
        p->period_us = SDN_STATUS_PERIOD_US; /* Redis state changes show within 2 s */
    if (p->period_us == 0)
        p->period_us = 1;
    p->tick = tick;
    p->arg = arg;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (pthread_create(&p->thread, NULL, pulse_main, p) != 0) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->wake);
        free(p);
        return NULL;
    }
    return p;
}

void sdn_pulse_stop(struct sdn_pulse *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p);
}
