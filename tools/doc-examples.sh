#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Run the examples of the API pages as a reader pastes them: every ```sh block of each page,
# in page order, in one shell session per page (`sh -e`, so a variable set by one example,
# $RT or $TOKEN, is there for the next), against the daemons `make run` started, and check
# the status of every HTTP answer against the one the page declares.
#   sh tools/doc-examples.sh [-v] [PAGE.md ...]     (default: docs/api/*.md)
# -v also shows what the examples printed when they pass.
# PORT_BASE (default 8080, as for make run): the pages name 127.0.0.1:8081..8084; with
# another base only those port numbers are rewritten (8080+N becomes PORT_BASE+N).
#
# The convention the pages follow (docs/api/*.md say so too):
#   - a ```sh block is an example and runs; a block that is not one (it starts a daemon
#     in the foreground) is fenced ```sh no-run and is skipped;
#   - each command that makes HTTP requests is followed by the status it expects, as a
#     comment line of its own starting with the code (`# 201 {"seq":42,...}`) or at the
#     end of a one-line command after two spaces or more (`curl -s $U/ready   # 200 ...`);
#     every answer received since the previous such comment must have that status;
#   - an answer with no status declared after it, a status that differs, a failing
#     command: the page fails, with the line of the page and what came back.
# Exit 0 when every page passed, 1 otherwise, 2 on bad usage. Needs curl (and jq, which
# the pages use).
set -u
cd "$(dirname "$0")/.." || exit 2
base=${PORT_BASE:-8080}
case $base in '' | *[!0-9]*) echo "doc-examples: PORT_BASE=$base is not a number" >&2; exit 2 ;; esac
verbose=0
[ "${1:-}" = -v ] && { verbose=1; shift; }
[ $# -gt 0 ] || set -- docs/api/*.md
command -v curl >/dev/null 2>&1 || { echo "doc-examples: curl is not installed" >&2; exit 2; }

# What every page's session starts with: curl records the status of each answer it gets
# (the last status line of its headers, after any 100 Continue; 000 for no answer), and
# __expect / __end check them. A failing command ends the session (sh -e); the EXIT trap
# then names the last line of the page that had passed.
prelude() {
    cat <<'EOF'
__answers=$__dir/answers; : >"$__answers"; __at="the top"
curl() {
    __h=$(mktemp "$__dir/headers.XXXXXX")
    __rc=0
    command curl -D "$__h" "$@" || __rc=$?
    __s=$(sed -n 's/^HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$__h" | tail -n 1)
    echo "${__s:-000}" >>"$__answers"
    rm -f "$__h"
    return "$__rc"
}
__fail() { printf '\n%s: %s\n' "$__page" "$*" >&2; trap - EXIT; exit 1; }
__expect() {
    __got=$(tr '\n' ' ' <"$__answers"); : >"$__answers"
    [ -n "$__got" ] || __fail "line $2: no HTTP answer before the status $1 declared there"
    for __s in $__got; do
        [ "$__s" = "$1" ] || __fail "line $2: expected status $1, got ${__got% }"
    done
    __at="line $2"
}
__end() {
    if [ -s "$__answers" ]; then
        __fail "the block ending at line $1: an answer without a declared status ($(tr '\n' ' ' <"$__answers"))"
    fi
    __at="line $1"
}
trap '__fail "a command failed after $__at (exit $?)"' EXIT
EOF
}

# The page's ```sh blocks as one script: the ports rewritten, each status comment turned
# into an __expect, each block's end into an __end.
extract() {
    awk -v base="$base" '
    function ports(s,   out, n) {
        out = ""
        while (match(s, /127\.0\.0\.1:808[1-4]/)) {
            n = substr(s, RSTART + RLENGTH - 1, 1) + 0
            out = out substr(s, 1, RSTART - 1) "127.0.0.1:" (base + n)
            s = substr(s, RSTART + RLENGTH)
        }
        return out s
    }
    !inblock && /^```sh[ \t]*$/ { inblock = 1; next }
    inblock && /^```/ { inblock = 0; print "__end " NR; next }
    !inblock { next }
    /^# [0-9][0-9][0-9]([^0-9]|$)/ { print "__expect " substr($0, 3, 3) " " NR; next }
    /[^ ]  +# [0-9][0-9][0-9]([^0-9]|$)/ && !/\\$/ {
        match($0, /  +# [0-9][0-9][0-9]([^0-9]|$)/)
        code = substr($0, RSTART)
        sub(/^ +# /, "", code)
        print ports(substr($0, 1, RSTART - 1))
        code = substr(code, 1, 3)
        print "__expect " code " " NR
        next
    }
    { print ports($0) }
    END { print "trap - EXIT" }
    ' "$1"
}

status=0
for page in "$@"; do
    [ -r "$page" ] || { echo "doc-examples: $page: cannot read it" >&2; exit 2; }
    dir=$(mktemp -d "${TMPDIR:-/tmp}/doc-examples.XXXXXX") || exit 2
    { prelude; extract "$page"; } >"$dir/page.sh"
    n=$(grep -c '^__expect ' "$dir/page.sh")
    # in the scratch dir, so that a file an example writes lands there
    if (cd "$dir" && __dir=$dir __page=$page sh -e ./page.sh >"$dir/log" 2>&1); then
        echo "$page: $n statuses declared, every answer as declared"
        [ "$verbose" = 0 ] || { cat "$dir/log"; echo; }
    else
        echo "$page: FAILED; what the examples printed:" >&2
        cat "$dir/log" >&2
        echo >&2
        status=1
    fi
    rm -rf "$dir"
done
exit "$status"
