#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# tests/chaos/run.sh BUILDDIR — run the chaos program (faults under load, `make chaos`)
# inside a private temp dir that is removed at the end with every Redis and daemon it
# started (under $CHAOS_TMPDIR, default /dev/shm). The results table also goes to $CHAOS_OUT
# (default BUILDDIR/chaos-results.md).
# Exits with the program's status: 0 when every invariant held. POSIX sh.
set -u

if [ $# -ne 1 ] || [ ! -x "$1/tests/chaos/chaos" ]; then
    echo "usage: sh tests/chaos/run.sh BUILDDIR (with BUILDDIR/tests/chaos/chaos built)" >&2
    exit 2
fi
WARDEN_BUILD=$(cd "$1" && pwd) || exit 2
# Redis keeps its AOF in here. tmpfs by default: the fault is a process kill, which loses
# nothing written to the page cache on any file system, and a shared disk's fsync latency
# would otherwise be measured instead of the daemons (appendfsync always, see chaos.c).
base=${CHAOS_TMPDIR:-/dev/shm}
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
tmp=$(mktemp -d "$base/warden-chaos.XXXXXX") || exit 2
WARDEN_TEST_TMPDIR=$tmp
CHAOS_OUT=${CHAOS_OUT:-$WARDEN_BUILD/chaos-results.md}
export WARDEN_BUILD WARDEN_TEST_TMPDIR CHAOS_OUT

pid=
cleaned=
# The harness writes a pid file for each Redis and daemon and removes it once it has reaped
# the process, so every pid listed under $tmp is still one of ours.
cleanup() {
    [ -n "$cleaned" ] && return
    cleaned=1
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    find "$tmp" -name '*.pid' -type f 2>/dev/null | while read -r f; do
        p=$(cat "$f" 2>/dev/null) || continue
        case $p in '' | *[!0-9]*) continue ;; esac
        kill -KILL "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

"$WARDEN_BUILD/tests/chaos/chaos" &
pid=$!
wait "$pid"
status=$?
pid=
echo "chaos: table written to $CHAOS_OUT"
exit $status
