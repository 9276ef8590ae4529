#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# tests/run.sh [--large] BUILDDIR — run every test binary under BUILDDIR (unit, then
# integration, sorted; with --large the slow ones of tests/large instead, make test-large),
# each with a time limit, inside a private temp dir that is removed at the end with
# anything still running from it. Adds up cmocka's summary lines and ends with the line
# "N passed, N failed"; exits 0 only if nothing failed and something passed.
# Called by `make test`, `make asan` and `make valgrind`. POSIX sh.
# WARDEN_WRAP (see tests/lib/harness.h), if set, is put before each test binary too, with
# WARDEN_WRAP_TAG=<the binary's name> in its environment; WARDEN_TEST_TIMEOUT sets the limit.
set -u

large=
if [ "${1:-}" = --large ]; then
    large=1
    shift
fi
if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: sh tests/run.sh [--large] BUILDDIR" >&2
    exit 2
fi
LIMIT=${WARDEN_TEST_TIMEOUT:-${large:+3600}}   # seconds per binary
LIMIT=${LIMIT:-300}
LC_ALL=C                            # sorted globs, stable messages
export LC_ALL

tmp=$(mktemp -d "${TMPDIR:-/tmp}/warden-test.XXXXXX") || exit 2
WARDEN_TEST_TMPDIR=$tmp
WARDEN_BUILD=$(cd "$1" && pwd) || exit 2
CMOCKA_MESSAGE_OUTPUT=stdout
export WARDEN_TEST_TMPDIR WARDEN_BUILD CMOCKA_MESSAGE_OUTPUT

test_pid=
tee_pid=
cleaned=

# Kill every process the harness recorded under $tmp (it writes a pid file per Redis and
# per daemon and removes it when it reaps the child, so a listed pid is still ours).
kill_recorded() {
    find "$tmp" -name '*.pid' -type f 2>/dev/null | while read -r f; do
        pid=$(cat "$f" 2>/dev/null) || continue
        case $pid in '' | *[!0-9]*) continue ;; esac
        kill -KILL "$pid" 2>/dev/null
    done
}

# Stop whatever is still running — the harness's children first, while the test that
# started them is alive to vouch for their pids, then the test (its children also have
# PR_SET_PDEATHSIG), then anything naming the temp dir — and remove the dir.
cleanup() {
    [ -n "$cleaned" ] && return
    cleaned=1
    kill_recorded
    if [ -n "$test_pid" ]; then
        kill -TERM "$test_pid" 2>/dev/null   # timeout(1) passes it on, then SIGKILLs
        wait "$test_pid" 2>/dev/null
    fi
    kill_recorded
    if command -v pkill >/dev/null 2>&1; then   # procps; not in minimal images
        pkill -KILL -f "$tmp" 2>/dev/null
    fi
    [ -n "$tee_pid" ] && kill "$tee_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; cleanup; exit 130' INT
trap 'echo "run.sh: terminated" >&2; cleanup; exit 143' TERM

# The sum of the numbers a cmocka summary line carries in a file ("PASSED", "FAILED" or
# "SKIPPED").
count() {
    case $1 in
    PASSED) pattern='.*\[  PASSED  \] \([0-9][0-9]*\) test(s)\..*' ;;
    FAILED) pattern='.*\[  FAILED  \] \([0-9][0-9]*\) test(s), listed below:.*' ;;
    SKIPPED) pattern='.*\[  SKIPPED \] \([0-9][0-9]*\) test(s), listed below:.*' ;;
    esac
    sed -n "s/$pattern/\\1/p" "$2" | awk '{ n += $1 } END { print n + 0 }'
}

passed=0
failed=0
failed_list=
skipped=0
skipped_list=
ran=0
out=$tmp/output
fifo=$tmp/output.fifo

# Run one binary with a time limit, showing its output as it comes and keeping a copy in
# $out. Runs in the background so that INT/TERM reach the traps at once.
run_binary() {
    rm -f "$fifo"
    mkfifo "$fifo" || return 1
    tee "$out" <"$fifo" &
    tee_pid=$!
    # shellcheck disable=SC2086 # WARDEN_WRAP is a list of words
    WARDEN_WRAP_TAG=${1##*/} timeout -k 10 "$LIMIT" ${WARDEN_WRAP:-} "$1" >"$fifo" 2>&1 </dev/null &
    test_pid=$!
    wait "$test_pid"
    rc=$?
    test_pid=
    wait "$tee_pid"
    tee_pid=
    # PDEATHSIG has killed whatever it left running; its pid files are stale now.
    find "$tmp" -name '*.pid' -type f -exec rm -f {} + 2>/dev/null
    return "$rc"
}

if [ -n "$large" ]; then
    set -- "$WARDEN_BUILD"/tests/large/test_*
else
    set -- "$WARDEN_BUILD"/tests/unit/test_* "$WARDEN_BUILD"/tests/integration/test_*
fi
for bin in "$@"; do
    if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
        continue
    fi
    name=${bin#"$WARDEN_BUILD"/}
    ran=$((ran + 1))
    echo "==== $name"
    run_binary "$bin"
    rc=$?
    p=$(count PASSED "$out")
    f=$(count FAILED "$out")
    passed=$((passed + p))
    k=$(count SKIPPED "$out")
    if [ "$k" -gt 0 ]; then   # a skipped check is not a pass: say which ones
        skipped=$((skipped + k))
        skipped_list="$skipped_list$(awk -v b="$name" '
            /\[  SKIPPED \] [0-9]+ test\(s\), listed below:/ { on = 1; next }
            on && /^\[  SKIPPED \] / { sub(/^\[  SKIPPED \] /, ""); print "  " b ": " $0; next }
            on && !/^\[  SKIPPED \] / { on = 0 }' "$out")
"
    fi
    if [ "$f" -gt 0 ]; then
        failed=$((failed + f))
        failed_list="$failed_list  $name ($f failed)
"
    elif [ "$rc" -ne 0 ]; then
        if [ "$rc" -eq 124 ]; then
            why="timed out after ${LIMIT} s"
        elif [ "$rc" -gt 128 ]; then
            why="killed by signal $((rc - 128)) without a cmocka failure line"
        else
            why="exit status $rc without a cmocka failure line"
        fi
        echo "==== $name: $why; counted as 1 failure"
        failed=$((failed + 1))
        failed_list="$failed_list  $name ($why)
"
    fi
done

echo
if [ "$ran" -eq 0 ]; then
    echo "no test binaries under $WARDEN_BUILD/tests/{unit,integration} (build them first)"
fi
if [ "$skipped" -gt 0 ]; then
    echo "Skipped ($skipped, not counted as passed):"
    printf '%s' "$skipped_list"
fi
if [ -n "$failed_list" ]; then
    echo "Failed:"
    printf '%s' "$failed_list"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
