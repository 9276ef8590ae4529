/* SPDX-License-Identifier: Apache-2.0 */
/* sdnotify: telling systemd (Type=notify) how the daemon is doing, through libsystemd's
 * sd_notify: READY=1 once it listens, STATUS= lines, RELOADING=1 / STOPPING=1, and
 * WATCHDOG=1 at half the WatchdogSec= period. Everything does nothing when NOTIFY_SOCKET
 * is unset (not started by systemd), so callers need not check. Thread-safe. */
#ifndef WARDEN_SDNOTIFY_H
#define WARDEN_SDNOTIFY_H

/* Send one notification ("READY=1\nSTATUS=..."), printf-style. */
void sdn_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct sdn_pulse;

/* When NOTIFY_SOCKET is set, start a thread that every period (half of WATCHDOG_USEC when
 * the watchdog is on, else 2 s) sends WATCHDOG=1 (watchdog on) and calls tick(arg), which
 * may send a STATUS= line. Returns NULL when there is nothing to do. */
struct sdn_pulse *sdn_pulse_start(void (*tick)(void *arg), void *arg);

/* Stop and join the thread; NULL does nothing. */
void sdn_pulse_stop(struct sdn_pulse *p);

#endif
