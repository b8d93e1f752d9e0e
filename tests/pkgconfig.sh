#!/bin/sh
# An install used as a client would: `cmake --install` into a temporary prefix, then a small
# program built with `pkg-config --cflags --libs meshlm` against the shared library, and
# with `pkg-config --static` against libmeshlm.a (which needs every private dependency:
# pcre2, jansson, pthread, m, and MPI in an MPI build). Both run and print meshlm_version().
# usage: pkgconfig.sh CMAKE BUILD_DIR CC "EXTRA_CFLAGS" VERSION mpi|nompi
cmake=$1
build=$2
cc=$3
extra=$4
version=$5
mpi=$6
command -v pkg-config >/dev/null 2>&1 || { echo "SKIP: no pkg-config"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

"$cmake" --install "$build" --prefix "$work/prefix" >"$work/install.log" 2>&1 || {
    cat "$work/install.log"
    echo "FAIL: cmake --install"
    exit 1
}
pc=$(find "$work/prefix" -name meshlm.pc | head -n 1)
[ -n "$pc" ] || { echo "FAIL: no meshlm.pc installed under $work/prefix"; exit 1; }
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
libdir=$(pkg-config --variable=libdir meshlm)

cat >"$work/hello.c" <<'SRC'
#include <stdio.h>
#include <string.h>

#include <meshlm.h>

int main(void) {
    const char *v = meshlm_version();
    printf("meshlm %s\n", v);
    return v && strlen(v) > 0 && meshlm_status_name(MESHLM_ERR_IO) != NULL ? 0 : 1;
}
SRC

static_libs=$(pkg-config --static --libs meshlm) || { echo "FAIL: pkg-config --static --libs meshlm"; exit 1; }
echo "pkg-config --static --libs meshlm: $static_libs"
for want in -lmeshlm -lpcre2-8 -ljansson -lpthread -lm; do
    case " $static_libs " in
    *" $want "*) ;;
    *) echo "FAIL: --static --libs lacks $want"; fail=1 ;;
    esac
done
if [ "$mpi" = mpi ]; then
    case " $static_libs " in
    *mpi*) ;;
    *) echo "FAIL: an MPI build's --static --libs names no MPI library"; fail=1 ;;
    esac
fi

# shellcheck disable=SC2046,SC2086
$cc $extra $(pkg-config --cflags meshlm) "$work/hello.c" -o "$work/hello_dynamic" $(pkg-config --libs meshlm) ||
    { echo "FAIL: dynamic link"; fail=1; }
# The archive by name (beside libmeshlm.so, -lmeshlm would pick the shared library), and all
# of it: every object's dependencies must be on the line, not only those hello.c pulls in.
static_archive=$(echo "$static_libs" |
    sed 's/-lmeshlm\([[:space:]]\|$\)/-Wl,--whole-archive -l:libmeshlm.a -Wl,--no-whole-archive\1/')
# shellcheck disable=SC2046,SC2086
$cc $extra $(pkg-config --cflags meshlm) "$work/hello.c" -o "$work/hello_static" $static_archive ||
    { echo "FAIL: static link with pkg-config --static"; fail=1; }

want="meshlm $version"
if [ -x "$work/hello_dynamic" ]; then
    readelf -d "$work/hello_dynamic" | grep -q 'NEEDED.*libmeshlm\.so' ||
        { echo "FAIL: hello_dynamic does not load libmeshlm.so"; fail=1; }
    out=$(LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$work/hello_dynamic") ||
        { echo "FAIL: hello_dynamic exited non-zero"; fail=1; }
    [ "$out" = "$want" ] || { echo "FAIL: hello_dynamic printed '$out', not '$want'"; fail=1; }
fi
if [ -x "$work/hello_static" ]; then
    if readelf -d "$work/hello_static" | grep -q 'NEEDED.*libmeshlm'; then
        echo "FAIL: hello_static loads libmeshlm.so"
        fail=1
    fi
    out=$("$work/hello_static") || { echo "FAIL: hello_static exited non-zero"; fail=1; }
    [ "$out" = "$want" ] || { echo "FAIL: hello_static printed '$out', not '$want'"; fail=1; }
fi
[ $fail = 0 ] && echo "pkgconfig: static and dynamic links of an install print '$want'"
exit $fail
