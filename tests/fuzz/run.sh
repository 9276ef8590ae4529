#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# make fuzz: build every tests/fuzz/fuzz_*.c as a libFuzzer binary (clang, ASan + UBSan)
# against libshared and the daemons' own objects, then run each, one after the other, for
# SECONDS with its seed corpus (tests/fuzz/corpus/<name>/).
#
#   sh tests/fuzz/run.sh [SECONDS] [fuzz_name ...]     (default 60 s, every harness)
#
# Everything goes under FUZZ_OUT (default build/fuzz; `make BUILD=x fuzz` uses x/fuzz):
# the binaries, <name>.log, the inputs found in corpus/<name>/, any crash or timeout
# input as <name>-crash-*, and summary.txt with one line per harness (seconds, total
# executions, final cov and ft, crashes). Exit status 1 if any harness crashed.
set -eu
SECONDS_EACH=${1:-60}
[ $# -gt 0 ] && shift
out=${FUZZ_OUT:-build/fuzz}
CC=${FUZZ_CC:-clang}
mkdir -p "$out/gen" "$out/obj"
sh tools/embed-lua.sh "$out/gen/scripts.c" $(ls lua-scripts/*.lua 2>/dev/null | sort)

CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Ilibshared/include -I$out/gen"
WARN="-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wwrite-strings -Wformat=2"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
LIBS="-lhiredis -lsodium -lssl -lcrypto -ljansson -lsystemd -lpthread -lm"

# The code under test, compiled once (with coverage for libFuzzer): libshared and every
# daemon's files except main.c and its command-line tools.
src="libshared/src/*.c $out/gen/scripts.c"
for d in ratelimitd auditd idemd tokend; do
    [ -f "$d/main.c" ] || continue
    for f in "$d"/*.c; do
        case $(basename "$f") in main.c | cmd-*) ;; *) src="$src $f" ;; esac
    done
done
objs=""
echo "== compiling the code under test"
for f in $src; do
    o="$out/obj/$(echo "$f" | tr / _).o"
    # Up to date: newer than its source and than every header it could include.
    if [ ! "$o" -nt "$f" ] || [ -n "$(find libshared/include ratelimitd auditd idemd tokend \
        -name '*.h' -newer "$o" 2>/dev/null | head -1)" ]; then
        $CC $CFLAGS $WARN $SAN -fsanitize=fuzzer-no-link -c "$f" -o "$o"
    fi
    objs="$objs $o"
done

if [ $# -gt 0 ]; then
    harnesses=""
    for n in "$@"; do harnesses="$harnesses tests/fuzz/$n.c"; done
else
    harnesses=$(ls tests/fuzz/fuzz_*.c)
fi

summary="$out/summary.txt"
: >"$summary"
status=0
for h in $harnesses; do
    name=$(basename "$h" .c)
    echo "== $name: building"
    $CC $CFLAGS $WARN $SAN -fsanitize=fuzzer -o "$out/$name" "$h" $objs $LIBS
    mkdir -p "$out/corpus/$name" "tests/fuzz/corpus/$name"
    rm -f "$out/$name"-crash-* "$out/$name"-leak-* "$out/$name"-timeout-* "$out/$name"-oom-*
    echo "== $name: ${SECONDS_EACH}s"
    # New inputs go to the first directory (build output); the seeds are only read.
    if ! "$out/$name" -max_total_time="$SECONDS_EACH" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$out/$name-" "$out/corpus/$name" "tests/fuzz/corpus/$name" \
        >"$out/$name.log" 2>&1; then
        echo "!! $name found a crash: see $out/$name.log"
        status=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$name.log")
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$out/$name.log" | tail -1)
    cov=$(echo "$done_line" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$done_line" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    crashes=$(ls "$out/$name"-crash-* "$out/$name"-leak-* "$out/$name"-timeout-* \
        "$out/$name"-oom-* 2>/dev/null | wc -l)
    line="$name seconds=$SECONDS_EACH execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} crashes=$crashes"
    echo "$line" | tee -a "$summary"
done
echo "== summary in $summary"
exit $status
