#!/bin/sh
# Install the Debian packages warden needs, only those missing (make deps); further
# packages named as arguments are installed with them (.ci/run adds prometheus).
# python3, golang-go and golang-golang-x-mod-dev are for the tests: the independent checkers
# of auditd's Merkle tree (tests/tlog/).
set -eu
PKGS="build-essential pkg-config libhiredis-dev libsodium-dev libssl-dev
libjansson-dev libcmocka-dev redis-server redis-tools wrk clang openssl curl jq valgrind
python3 golang-go golang-golang-x-mod-dev $*"
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
