/* SPDX-License-Identifier: Apache-2.0 */
/* app: the life of a daemon — flags, common configuration, logging, a Redis client per worker, the
 * HTTP server with /health, /ready and /metrics, signals and graceful shutdown.
 *
 * A daemon's main() reads like a table of contents:
 *
 *     struct app *a = app_create(&(struct app_spec){.name = "idemd", .port = 8083, ...},
 *                                argc, argv);
 *     idem_config_load(&conf, app_cfg(a));     // the daemon's own variables
 *     app_config_done(a);                      // exit(2) on a bad value; --check-config
 *     ... create the pieces, app_route(a, "POST", "/v1/claim", handle_claim, ctx, 0) ...
 *     int rc = app_run(a);                     // serve until SIGTERM/SIGINT, drain, stop
 *     ... free the pieces ...
 *     app_free(a);
 *     return rc;
 *
 * Common variables read by app_create(): LOG_LEVEL, SHUTDOWN_TIMEOUT, the REDIS_* pool
 * settings and the HTTP_* / LISTEN_ADDR / API_TOKEN / ADMIN_TOKEN settings. */
#ifndef WARDEN_APP_H
#define WARDEN_APP_H

#include <stdint.h>

#include "shared/config.h"
#include "shared/http.h"
#include "shared/loop.h"
#include "shared/metrics.h"
#include "shared/redis_client.h"
#include "shared/script.h"
#include "shared/version.h"

struct app;

struct app_spec {
    const char *name;                    /* daemon name: logs, metrics prefix */
    int port;                            /* default port on 127.0.0.1 */
    uint64_t max_body;                   /* default HTTP_MAX_BODY (0: 64KiB) */
    int64_t command_timeout_ms;          /* default REDIS_COMMAND_TIMEOUT (0: 1s) */
    int64_t pool_timeout_ms;             /* default REDIS_POOL_TIMEOUT (0: 1s) */
    int64_t connect_timeout_ms;          /* default REDIS_CONNECT_TIMEOUT (0: 1s) */
    const char *summary;                 /* one line for --help */
    const char *env_help;                /* the daemon's own variables, for --help */
    const struct script *const *scripts; /* NULL-terminated: loaded at start, checked by /ready */
    const char *const *flags;            /* NULL-terminated: the daemon's own flags ("--x"),
                                            accepted and left in app_args; NULL: none */
    int redis_max_in_flight;             /* commands per Redis connection (0: the client's
                                            default); small only in tests of a full pool */
};

/* Parse flags (--help and --version print and exit 0; an unknown flag exits 2), read the
 * common configuration, start logging. Non-flag arguments are left for the daemon
 * (app_args). Never returns NULL. */
struct app *app_create(const struct app_spec *spec, int argc, char **argv);

/* After the daemon has read its own variables from app_cfg(): a bad value prints its
 * line to stderr and exits 2; --check-config prints the effective configuration and
 * exits 0. Then creates the server (exit 2 if that fails); every worker gets its Redis
 * client when it starts. */
void app_config_done(struct app *a);

struct cfg *app_cfg(struct app *a);
struct metrics *app_metrics(struct app *a);
/* The Redis client of the worker loop serving r: handlers issue their commands there and
 * continue in the reply's callback, on the same thread. */
struct rclient *app_rclient(const struct http_req *r);
/* The Redis settings (REDIS_URL, pool, timeouts, TLS), for a client on a loop of the
 * daemon's own (a background committer). */
const struct rcl_config *app_rcl_config(struct app *a);
/* Per-worker state of the daemon: start(loop, arg) runs on each worker thread before it
 * serves, and what it returns is app_worker_data() in that worker's handlers; stop(data,
 * arg) runs on the thread when the worker ends. Before app_run. */
void app_on_worker(struct app *a, void *(*start)(struct loop *l, void *arg),
                   void (*stop)(void *data, void *arg), void *arg);
void *app_worker_data(const struct http_req *r);
/* Positional arguments left after the flags (e.g. "keygen"), and their count. */
char **app_args(struct app *a, int *count);

/* Register a daemon's route (http_route). */
void app_route(struct app *a, const char *method, const char *pattern, http_handler h, void *ctx,
               unsigned flags);

/* Called (on the main thread) on SIGHUP. */
void app_on_reload(struct app *a, void (*fn)(void *arg), void *arg);
/* Called (on the main thread) when shutdown begins, once listening has stopped and before
 * in-flight requests are waited for: answer requests parked with http_suspend() now. */
void app_on_drain(struct app *a, void (*fn)(void *arg), void *arg);
/* Called once in-flight requests have drained and the server has stopped, so no handler
 * runs or can start any more; before the workers' Redis clients close (flush batches, stop what
 * handlers use). */
void app_on_shutdown(struct app *a, void (*fn)(void *arg), void *arg);
/* A daemon's own readiness, asked by GET /ready once Redis answers (on a request thread):
 * return 0 when ready, else non-zero with a short reason (e.g. "chain_broken"), answered
 * as 503 {"status":"not_ready","redis":"ok","reason":"<reason>"}. */
void app_on_ready(struct app *a, int (*fn)(void *arg, char *reason, size_t size), void *arg);

/* Serve until SIGTERM/SIGINT; then /ready turns 503, the server quiesces (no new
 * connection; a request arriving on an open one gets 503 `shutting_down` with Retry-After:
 * 1 and Connection: close, its handler never run), run the drain hook, let in-flight
 * requests finish within SHUTDOWN_TIMEOUT (counted from the signal), stop the server, run
 * the shutdown hook.
 * If requests are still in flight at the deadline, the process ends there with status 0
 * (they are cut off unanswered; nothing is freed under them) and app_run does not return.
 * Returns the process exit status (0, or 1 if the server could not start). */
int app_run(struct app *a);

void app_free(struct app *a); /* NULL does nothing */

#endif
