#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Install the Debian packages warden needs, only those missing (make deps); further
# packages named as arguments are installed with them (.ci/run adds prometheus and the
# Debian packaging tools). Building: compiler, libraries, libsystemd-dev (sd_notify).
# Testing: redis, curl, jq, valgrind, wrk, mandoc (man pages), python3-yaml (test_openapi
# reads docs/openapi with it), python3, golang-go and golang-golang-x-mod-dev (the
# independent checkers of auditd's Merkle tree, tests/tlog/). Linting (make lint):
# clang-format, clang-tidy, cppcheck.
set -eu
PKGS="build-essential pkg-config libhiredis-dev libsodium-dev libssl-dev
libjansson-dev libcmocka-dev libsystemd-dev redis-server redis-tools wrk clang openssl
curl jq python3 python3-yaml golang-go golang-golang-x-mod-dev valgrind mandoc
clang-format clang-tidy cppcheck $*"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
