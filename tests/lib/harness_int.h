/* SPDX-License-Identifier: Apache-2.0 */
/* harness_int: what harness.c shares with harness_redis.c — sleeping, temp dirs, pid files
 * and starting and reaping programs. Internal to the harness (tests include harness.h
 * only); each function is described where harness.c defines it. */
#ifndef WARDEN_TESTS_HARNESS_INT_H
#define WARDEN_TESTS_HARNESS_INT_H

#include <stddef.h>
#include <sys/types.h>

#define TH_READY_WAIT_MS 5000 /* Redis PING / daemon /health after a start */

void thi_sleep_ms(int ms);
void thi_dump_tail(const char *path);
void thi_remove_tree(const char *dir);
int thi_make_tmpdir(const char *prefix, char *out, size_t size);
void thi_write_pidfile(const char *dir, const char *name, pid_t pid);
void thi_remove_pidfile(const char *dir, const char *name);
int thi_resolve_path(const char *name, char *out, size_t size);
char **thi_make_env(const char *const *env, const char *tag);
pid_t thi_spawn(const char *path, char *const argv[], char *const envp[], int out_fd, int err_fd);
int thi_reap(pid_t pid, int timeout_ms, int *forced);

#endif
