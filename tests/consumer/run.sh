#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds and runs the
# consumer project against it with CMake, and a C program with pkg-config.
#   run.sh <build dir>
# SANITIZER_FLAGS (e.g. -fsanitize=address,undefined): for a sanitizer build,
# whose installed static libraries need the same runtime in the consumer.
set -euo pipefail
build_dir=$1
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build_dir" --prefix "$prefix" >/dev/null
flags=${SANITIZER_FLAGS:-}
cmake -S "$here" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
cmake --build "$work/build" >/dev/null
export LD_LIBRARY_PATH=$prefix/lib
"$work/build/consumer_core"
"$work/build/consumer_shared"
"$work/build/consumer_embedded"
"$work/build/consumer_client"
"$work/build/consumer_c"
# Not `| grep -q`: under pipefail, grep leaving at the first match can make
# ldd die of SIGPIPE and the pipeline fail (an ASan build lists more lines).
ldd "$work/build/consumer_shared" | grep -F "$prefix/lib/libkatsubushi_core.so" >/dev/null

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
cc $flags -o "$work/pkgconfig_c" "$here/consumer_c.c" $(pkg-config --cflags --libs katsubushi)
"$work/pkgconfig_c"
c++ $flags -o "$work/pkgconfig_core" "$here/consumer_core.cc" $(pkg-config --cflags --libs katsubushi-core)
"$work/pkgconfig_core"
c++ $flags -o "$work/pkgconfig_client" "$here/consumer_client.cc" $(pkg-config --cflags --libs katsubushi-client)
"$work/pkgconfig_client"
echo "consumer: all ok"
