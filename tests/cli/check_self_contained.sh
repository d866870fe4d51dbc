#!/bin/sh
# Checks that an ELF binary needs nothing but glibc, and no glibc symbol
# version newer than the oldest glibc it must run on.
#   check_self_contained.sh <binary> <max glibc version, e.g. 2.34>
# readelf reads any architecture's ELF, so this also checks cross builds.
set -eu
binary=$1
max=$2

# glibc's own libraries; everything else (libstdc++, libgcc_s, libhiredis,
# libspdlog, libfmt, ...) must be inside the binary.
allowed='^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1)$'
needed=$(readelf -d -W "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
echo "NEEDED: $(echo $needed)"
status=0
for lib in $needed; do
  if ! echo "$lib" | grep -Eq "$allowed"; then
    echo "not glibc: $lib"
    status=1
  fi
done

# The version-needs section names every version the binary asks for:
# GLIBC_x.y[.z] from glibc, and GLIBCXX_/CXXABI_/GCC_ when the C++ runtime is
# shared.
# The imported symbols name the same versions (name@VERSION); both are read
# so that neither listing can hide one.
versions=$({ readelf -V -W "$binary" | sed -n 's/.*Name: \([A-Z_]*[0-9][0-9.]*\).*/\1/p'
             readelf --dyn-syms -W "$binary" | sed -n 's/.* UND [^@]*@\([A-Z_]*[0-9][0-9.]*\).*/\1/p'; } | sort -u)
newest=""
for v in $versions; do
  case $v in
    GLIBC_PRIVATE) echo "private glibc symbol"; status=1 ;;
    GLIBC_[0-9]*)
      n=${v#GLIBC_}
      if [ "$(printf '%s\n%s\n' "$n" "$max" | sort -V | tail -n 1)" != "$max" ]; then
        echo "too new: $v (at most GLIBC_$max)"
        status=1
      fi
      newest=$(printf '%s\n%s\n' "$n" "${newest:-0}" | sort -V | tail -n 1) ;;
    *) echo "not a glibc symbol version: $v"; status=1 ;;
  esac
done
echo "newest glibc symbol version: GLIBC_$newest"
[ -n "$needed" ] || { echo "no NEEDED entries: not a dynamic binary?"; status=1; }
[ $status -eq 0 ] && echo "self-contained"
exit $status
