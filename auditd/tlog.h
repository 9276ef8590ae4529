/* SPDX-License-Identifier: Apache-2.0 */
/* tlog: the transparency log's reads over HTTP — inclusion and consistency proofs, and the
 * tlog-tiles hash tiles and entry bundles — all computed from the stored tiles, never by
 * scanning the log, each waiting for Redis without holding a thread (pending.h). The
 * routes are registered in handlers.c; ctx is the struct audit_ctx. */
#ifndef AUDIT_TLOG_H
#define AUDIT_TLOG_H

#include "shared/http.h"

/* GET /v1/proofs/inclusion?seq=&tree_size= */
void audit_tlog_inclusion(struct http_req *r, void *ctx);
/* GET /v1/proofs/consistency?from=&to= */
void audit_tlog_consistency(struct http_req *r, void *ctx);
/* GET /tile/<L>/<N>[.p/<W>] and /tile/entries/... */
void audit_tlog_tile(struct http_req *r, void *ctx);

#endif
