/* SPDX-License-Identifier: Apache-2.0 */
/* version: the release of warden every binary reports (--version, build_info, the startup
 * log line). The one place the number lives: the Makefile reads it for `make deb`, and
 * CHANGELOG.md's newest entry and debian/changelog must name the same one (a test checks). */
#ifndef WARDEN_VERSION_H
#define WARDEN_VERSION_H

#define WARDEN_VERSION "0.1.0"

#endif
