#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make valgrind: the whole suite (tests/run.sh) with every test binary, and every daemon and
# tool the tests start, under valgrind's memcheck — one log per process — then a summary:
# processes checked, errors, bytes definitely / indirectly / possibly lost. Exits 0 only if
# the suite passed, every log is there, and no log shows an error or a definitely lost byte.
#   sh tests/valgrind/run.sh BUILDDIR
# WARDEN_TIME_SCALE (default 10): how much slower the tests may be (tests/lib/harness.h).
# VALGRIND_EXTRA: more valgrind options, e.g. --track-origins=yes to find an uninitialised
# value's source. The logs stay in BUILDDIR/memcheck/ for reading. POSIX sh.
set -u
cd "$(dirname "$0")/../.." || exit 2
if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: sh tests/valgrind/run.sh BUILDDIR" >&2
    exit 2
fi
command -v valgrind >/dev/null 2>&1 || { echo "valgrind is not installed (make deps)" >&2; exit 2; }
build=$(cd "$1" && pwd) || exit 2
logs=$build/memcheck
case $logs in *[!A-Za-z0-9._/-]*)
    echo "valgrind/run.sh: $logs: the log path must not need quoting" >&2
    exit 2 ;;
esac
rm -rf "$logs" && mkdir -p "$logs" || exit 2

# Debian's valgrind is a shell script in front of valgrind.bin, and a shell keeps only the last
# of two variables with one name, where getenv — and the tests' overrides — take the first.
vg=$(command -v valgrind)
[ -x "$vg.bin" ] && vg=$vg.bin

WARDEN_TIME_SCALE=${WARDEN_TIME_SCALE:-10}
WARDEN_TEST_TIMEOUT=${WARDEN_TEST_TIMEOUT:-$((300 * WARDEN_TIME_SCALE))}
# Every error counts, and so does a definitely lost block (--errors-for-leak-kinds);
# a process with either exits 97, which the tests see too. A fork that only prepares an
# exec stays silent. %q{WARDEN_WRAP_TAG}: the harness names each process.
WARDEN_WRAP="$vg --tool=memcheck --leak-check=full --show-leak-kinds=definite,possible \
--errors-for-leak-kinds=definite --error-exitcode=97 --child-silent-after-fork=yes \
--num-callers=30 --suppressions=$PWD/tests/valgrind/warden.supp ${VALGRIND_EXTRA:-} \
--log-file=$logs/%q{WARDEN_WRAP_TAG}.%p.log"
export WARDEN_WRAP WARDEN_TIME_SCALE WARDEN_TEST_TIMEOUT

start=$(date +%s)
sh tests/run.sh "$build"
suite=$?
secs=$(($(date +%s) - start))

# One line per log: name, complete (has an exit summary), errors, definitely, indirectly,
# possibly lost bytes. A process killed by SIGKILL writes no summary: its errors are counted
# from the reports in its log (a description line followed by a stack).
summarise() {
    for f in "$logs"/*.log; do
        [ -f "$f" ] || continue
        awk -v name="${f##*/}" '
            function bytes(s) { sub(/^.*lost: /, "", s); sub(/ bytes.*/, "", s); gsub(/,/, "", s); return s + 0 }
            /== ERROR SUMMARY: / { done = 1; s = $0; sub(/^.*ERROR SUMMARY: /, "", s); errors = s + 0 }
            /==    definitely lost: / { dl = bytes($0) }
            /==    indirectly lost: / { il = bytes($0) }
            /==      possibly lost: / { pl = bytes($0) }
            /^==[0-9]+==    at 0x/ && prev ~ /^==[0-9]+== [^ ]/ { reports++ }
            { prev = $0 }
            END { printf "%s %d %d %d %d %d\n", name, done, done ? errors : reports, dl, il, pl }
        ' "$f"
    done
}
summarise >"$logs/summary.txt"
tests_run=$(find "$build/tests/unit" "$build/tests/integration" -name 'test_*' -type f -perm -u+x | wc -l)
awk -v suite="$suite" -v secs="$secs" -v tests_run="$tests_run" -v logs="$logs" '
    { n++; prog = $1; sub(/\..*/, "", prog)
      if ($1 ~ /^test_[^.]*\.[0-9]+\.log$/) tlogs++; else started[prog]++
      if (!$2) incomplete++; errors += $3; dl += $4; il += $5; pl += $6
      if ($3 > 0 || $4 > 0) bad = bad "  " logs "/" $1 ": " $3 " errors, " $4 " bytes definitely lost\n"
      if (!$2) killed = killed "  " $1 "\n" }
    END {
        printf "\nvalgrind: %d processes checked (%d test binaries, %d programs they started), %d s\n",
            n, tlogs, n - tlogs, secs
        line = ""
        for (p in started) line = line " " p " " started[p] ","
        sub(/,$/, "", line)
        if (line != "") print "valgrind: started by the tests:" line
        printf "valgrind: %d errors; lost bytes: %d definitely, %d indirectly, %d possibly\n",
            errors, dl, il, pl
        if (incomplete)
            printf "valgrind: %d ended without an exit summary (killed; leaks not checked):\n%s",
                incomplete, killed
        if (bad != "") printf "valgrind: problems in:\n%s", bad
        ok = suite == 0 && errors == 0 && dl == 0 && n > 0 && tlogs == tests_run
        if (tlogs != tests_run)
            printf "valgrind: %d test binaries but %d test logs\n", tests_run, tlogs
        if (suite != 0) print "valgrind: the suite failed (see above)"
        print ok ? "valgrind: OK" : "valgrind: FAILED"
        exit !ok
    }' "$logs/summary.txt"
