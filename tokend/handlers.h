/* SPDX-License-Identifier: Apache-2.0 */
/* handlers: tokend's HTTP API (tokend.md "API"). Handlers validate the request, call the
 * service and render its answer; they never touch Redis on bad input. */
#ifndef TOKEND_HANDLERS_H
#define TOKEND_HANDLERS_H

#include "service.h"
#include "shared/app.h"

/* Register every /v1 route of tokend on a, with svc as their context. */
void tok_routes(struct app *a, struct tok_service *svc);

#endif
