#!/bin/sh
# The shared library exports exactly the functions include/meshlm.h declares: nothing
# internal (every internal function is also named meshlm_*), and nothing declared missing.
# A new public function needs its line in cmake/meshlm.map too.
# usage: exports.sh LIBMESHLM.so MESHLM_H
lib=$1
header=$2
command -v nm >/dev/null 2>&1 || { echo "SKIP: no nm"; exit 77; }
command -v perl >/dev/null 2>&1 || { echo "SKIP: no perl"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Declarations only: comments mention functions too.
perl -0777 -pe 's{/\*.*?\*/}{}gs; s{//[^\n]*}{}g' "$header" |
    grep -oE 'meshlm_[A-Za-z0-9_]+[[:space:]]*\(' | sed 's/[[:space:](]//g' | sort -u >"$work/declared"
# Defined dynamic symbols, less the linker's own markers.
nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' |
    grep -vxE '_init|_fini|_edata|_end|__bss_start' | sort -u >"$work/exported"

if [ ! -s "$work/declared" ]; then
    echo "FAIL: no function declarations found in $header"
    exit 1
fi
fail=0
extra=$(comm -13 "$work/declared" "$work/exported")
missing=$(comm -23 "$work/declared" "$work/exported")
if [ -n "$extra" ]; then
    echo "FAIL: $lib exports symbols that include/meshlm.h does not declare (internal ones leak;"
    echo "      check cmake/meshlm.map):"
    echo "$extra" | sed 's/^/    /'
    fail=1
fi
if [ -n "$missing" ]; then
    echo "FAIL: include/meshlm.h declares functions that $lib does not export (add them to"
    echo "      cmake/meshlm.map, or define them):"
    echo "$missing" | sed 's/^/    /'
    fail=1
fi
[ $fail = 0 ] && echo "exports: the $(wc -l <"$work/declared") functions of meshlm.h, nothing else"
exit $fail
