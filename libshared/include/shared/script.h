/* SPDX-License-Identifier: Apache-2.0 */
/* script: the Lua scripts embedded into the binaries at build time.
 *
 * tools/embed-lua.sh turns every lua-scripts/NAME.lua into `script_NAME` (declared in
 * the generated "scripts.h"). Running one goes through the Redis client: rcl_eval(). */
#ifndef WARDEN_SCRIPT_H
#define WARDEN_SCRIPT_H

struct script {
    const char *name;   /* file name without .lua */
    const char *sha1;   /* 40 lowercase hex chars: what EVALSHA names it by */
    const char *source; /* the Lua text, NUL-terminated */
};

#endif
