/* SPDX-License-Identifier: Apache-2.0 */
/* procstat: the standard process_* metrics every Prometheus client exports — CPU seconds,
 * resident and virtual memory, open and maximum file descriptors, start time — read from
 * the kernel (getrusage, /proc/self) when rendered, in the text format 0.0.4, without the
 * daemon's prefix (dashboards and alerts written for any exporter work unchanged). */
#ifndef WARDEN_PROCSTAT_H
#define WARDEN_PROCSTAT_H

#include <stddef.h>

/* Remember the process's start time (call once, early in main). Thread-unsafe; the rest
 * is thread-safe. */
void procstat_init(void);

/* The process_* families as text, HELP and TYPE lines included. Returns a malloc'd
 * NUL-terminated string (caller frees) and its length in *len, or NULL when out of
 * memory. A value the kernel does not give (no /proc) is left out with its family. */
char *procstat_render(size_t *len);

#endif
