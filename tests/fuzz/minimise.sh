#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# After a `make fuzz` run: replace each seed corpus (tests/fuzz/corpus/<name>/) by the
# smallest set libFuzzer finds that covers every edge the seeds and the inputs found
# (FUZZ_OUT/corpus/<name>/) cover. Seeds with a name of their own (not a 40-hex-digit
# hash) are always kept: they document the input format.
#
#   sh tests/fuzz/minimise.sh [fuzz_name ...]        (FUZZ_OUT as for run.sh)
set -eu
out=${FUZZ_OUT:-build/fuzz}
names=${*:-$(cd "$out" && ls fuzz_* | grep -v '[.-]')}
for name in $names; do
    [ -x "$out/$name" ] || { echo "no $out/$name: run make fuzz first" >&2; exit 1; }
    seeds=tests/fuzz/corpus/$name
    fresh=$out/minimised/$name
    rm -rf "$fresh"
    mkdir -p "$fresh" "$seeds" "$out/corpus/$name"
    for f in "$seeds"/*; do
        [ -f "$f" ] || continue
        basename "$f" | grep -qE '^[0-9a-f]{40}$' || cp "$f" "$fresh/"
    done
    "$out/$name" -set_cover_merge=1 -use_counters=0 "$fresh" "$seeds" "$out/corpus/$name" \
        >"$out/minimised/$name.log" 2>&1
    rm -f "$seeds"/*
    cp "$fresh"/* "$seeds/"
    echo "$name: $(ls "$seeds" | wc -l) inputs, $(du -sb "$seeds" | cut -f1) bytes"
done
