#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Lint every C file of the project: clang-format (check only), cppcheck, clang-tidy.
# Usage: sh tools/lint.sh [file.c|file.h ...]   (default: every *.c/*.h in the source
# folders; build/ and generated files are never linted). Exits non-zero on any finding.
# LINT_JOBS sets clang-tidy's parallelism (default 2); LINT_SKIP="tidy cppcheck format"
# skips tools by name.
set -u
cd "$(dirname "$0")/.." || exit 2

DIRS="libshared ratelimitd auditd idemd tokend tests"
JOBS=${LINT_JOBS:-2}
SKIP=${LINT_SKIP:-}
STD_FLAGS="-std=c11 -D_GNU_SOURCE -Ilibshared/include -Ibuild/gen"
status=0

if [ $# -gt 0 ]; then
    files=$(printf '%s\n' "$@")
else
    # shellcheck disable=SC2086
    files=$(find $DIRS -path '*/build' -prune -o -type f \( -name '*.c' -o -name '*.h' \) \
        -print 2>/dev/null | grep -v '/build/' | sort)
fi
if [ -z "$files" ]; then
    echo "lint: no C files"
    exit 0
fi
cfiles=$(printf '%s\n' "$files" | grep '\.c$' || true)

need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "lint: $1 not found (make deps, or apt-get install $2)" >&2
    status=1
    return 1
}
skipped() {
    case " $SKIP " in *" $1 "*) return 0 ;; esac
    return 1
}

# Generated headers (build/gen/scripts.h, test_scripts.h) are included by some files;
# create them if missing so the analysers can resolve includes. They are not linted.
gen_headers() {
    mkdir -p build/gen
    if [ ! -f build/gen/scripts.h ]; then
        # shellcheck disable=SC2046 # one argument per script; names have no spaces
        sh tools/embed-lua.sh build/gen/scripts.c $(ls lua-scripts/*.lua 2>/dev/null)
    fi
    if [ ! -f build/gen/test_scripts.h ]; then
        # shellcheck disable=SC2046
        sh tools/embed-lua.sh build/gen/test_scripts.c $(ls tests/lua/*.lua 2>/dev/null)
    fi
}

if ! skipped format && need clang-format clang-format; then
    echo "lint: clang-format"
    printf '%s\n' "$files" |
        xargs clang-format --style=file:.clang-format --dry-run --Werror || status=1
fi

if [ -n "$cfiles" ] && ! skipped cppcheck && need cppcheck cppcheck; then
    echo "lint: cppcheck"
    printf '%s\n' "$cfiles" | xargs cppcheck --enable=warning,performance,portability \
        --error-exitcode=1 --inline-suppr -q --suppress=missingIncludeSystem \
        -D_GNU_SOURCE -Ilibshared/include -Ibuild/gen --std=c11 || status=1
fi

if [ -n "$cfiles" ] && ! skipped tidy && need clang-tidy clang-tidy; then
    echo "lint: clang-tidy (-P$JOBS)"
    # One file per run: clang-tidy 14's analyser leaks state between the files of one
    # invocation (a false valist.Uninitialized in the second file).
    gen_headers
    # stderr only carries clang-tidy's "N warnings generated" chatter; findings are on stdout.
    printf '%s\n' "$cfiles" | xargs -P "$JOBS" -n 1 sh -c \
        'clang-tidy --quiet --config-file=.clang-tidy "$@" -- '"$STD_FLAGS"' 2>/dev/null' sh ||
        status=1
fi

if [ $status -eq 0 ]; then echo "lint: ok"; else echo "lint: FAILED" >&2; fi
exit $status
