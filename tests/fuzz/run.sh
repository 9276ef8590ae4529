#!/bin/sh
# make fuzz: build every tests/fuzz/fuzz_*.c as a libFuzzer binary (clang, ASan + UBSan)
# against libshared and the daemons' objects, then run each for FUZZ_SECONDS with its
# seed corpus (tests/fuzz/corpus/<name>/). New inputs found go to build/fuzz/corpus/.
set -eu
SECONDS_EACH=${1:-60}
out=build/fuzz
mkdir -p "$out/gen"
sh tools/embed-lua.sh "$out/gen/scripts.c" $(ls lua-scripts/*.lua 2>/dev/null | sort)
sh tools/embed-lua.sh "$out/gen/test_scripts.c" $(ls tests/lua/*.lua | sort)
daemon_src=""
for d in ratelimitd auditd idemd tokend; do
    [ -f "$d/main.c" ] || continue
    for f in "$d"/*.c; do
        case $(basename "$f") in main.c|cmd-*) ;; *) daemon_src="$daemon_src $f" ;; esac
    done
done
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Ilibshared/include -I$out/gen"
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
LIBS="-lhiredis -lmicrohttpd -lsodium -lcrypto -ljansson -lpthread -lm"
status=0
for h in tests/fuzz/fuzz_*.c; do
    [ -f "$h" ] || continue
    name=$(basename "$h" .c)
    echo "== $name: building"
    clang $CFLAGS $SAN -o "$out/$name" "$h" libshared/src/*.c $daemon_src \
        "$out/gen/scripts.c" $LIBS
    mkdir -p "$out/corpus/$name" "tests/fuzz/corpus/$name"
    echo "== $name: ${SECONDS_EACH}s"
    if ! "$out/$name" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        "$out/corpus/$name" "tests/fuzz/corpus/$name" 2>"$out/$name.log"; then
        echo "!! $name found a crash: see $out/$name.log"; status=1
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/$name.log" || true
done
exit $status
