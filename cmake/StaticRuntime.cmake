# KATSUBUSHI_STATIC_RUNTIME: the server binary carries its own C++ runtime
# and libraries, so that only glibc stays dynamic and the file runs as it is
# on any distribution with glibc >= 2.34 (Amazon Linux 2023, Debian 12,
# Ubuntu 22.04), in a `FROM scratch` image, or as a Lambda bootstrap.
#
#   libstdc++, libgcc   -static-libstdc++ -static-libgcc (server binaries only)
#   hiredis             libhiredis.a (server binaries only: Debian's archive is
#                       not built for shared objects, so libkatsubushi.so
#                       keeps the shared hiredis)
#   OpenSSL             libssl.a, libcrypto.a (server binaries only, for the
#                       same reason; rediss:// and, later, TLS fronts)
#   spdlog, fmt         header-only, for every target (one way per build: a
#                       binary never mixes the compiled and the header-only
#                       spdlog)
#   Boost               header-only already (Asio, Beast)
#   glibc               dynamic, symbol versions <= KATSUBUSHI_MAX_GLIBC
#                       (cmd/glibc_compat/glibc_compat.cc)
#
# The gRPC front stays the loadable module katsubushi-grpc.so: Debian ships
# no static gRPC. It links the shared libstdc++; nothing crossing the module
# boundary depends on sharing one runtime (grpc_front.h: one extern "C"
# factory, no exceptions across it, plain virtual calls).
#
# Sanitizer and fuzzing builds turn it off: their runtimes intercept the
# shared C++ runtime and expect to be the ones linking it.
#
# Provides:
#   katsubushi_spdlog              link target for spdlog (+ fmt)
#   katsubushi_hiredis             link target for hiredis
#   katsubushi_openssl             link target for OpenSSL (libssl + libcrypto)
#   katsubushi_static_runtime(tgt) marks an executable as self-contained
option(KATSUBUSHI_STATIC_RUNTIME
  "Link the server with a static libstdc++/libgcc, libhiredis.a and header-only spdlog/fmt (only glibc stays dynamic)"
  ON)
if(KATSUBUSHI_STATIC_RUNTIME AND (NOT KATSUBUSHI_SANITIZE STREQUAL "" OR KATSUBUSHI_BUILD_FUZZERS))
  message(STATUS "KATSUBUSHI_STATIC_RUNTIME is off in sanitizer and fuzzing builds")
  set(KATSUBUSHI_STATIC_RUNTIME OFF)
endif()

# The oldest glibc the self-contained binaries must run on (Amazon Linux 2023
# and Ubuntu 22.04 ship 2.34); tests/cli checks the symbol versions against it.
set(KATSUBUSHI_MAX_GLIBC 2.34)

find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)

add_library(katsubushi_spdlog INTERFACE)
if(KATSUBUSHI_STATIC_RUNTIME)
  # Debian's spdlog::spdlog_header_only still links the shared libfmt; this
  # is spdlog header-only on top of fmt header-only.
  get_target_property(spdlog_includes spdlog::spdlog_header_only INTERFACE_INCLUDE_DIRECTORIES)
  target_include_directories(katsubushi_spdlog INTERFACE ${spdlog_includes})
  target_compile_definitions(katsubushi_spdlog INTERFACE SPDLOG_FMT_EXTERNAL)
  target_link_libraries(katsubushi_spdlog INTERFACE fmt::fmt-header-only Threads::Threads)
else()
  target_link_libraries(katsubushi_spdlog INTERFACE spdlog::spdlog)
endif()

# hiredis: static for the targets katsubushi_static_runtime() marks (the
# property is read on the target being linked), shared for everything else.
add_library(katsubushi_hiredis INTERFACE)
if(KATSUBUSHI_STATIC_RUNTIME)
  find_library(KATSUBUSHI_HIREDIS_ARCHIVE NAMES libhiredis.a HINTS ${HIREDIS_LIBRARY_DIRS} REQUIRED)
  target_include_directories(katsubushi_hiredis INTERFACE ${HIREDIS_INCLUDE_DIRS})
  target_link_libraries(katsubushi_hiredis INTERFACE
    "$<IF:$<BOOL:$<TARGET_PROPERTY:KATSUBUSHI_SELF_CONTAINED>>,${KATSUBUSHI_HIREDIS_ARCHIVE},PkgConfig::HIREDIS>")
else()
  target_link_libraries(katsubushi_hiredis INTERFACE PkgConfig::HIREDIS)
endif()

# OpenSSL the same way: static for the self-contained targets, shared for
# everything else (libkatsubushi.so, the tests, installed consumers).
find_package(OpenSSL 3 REQUIRED)
add_library(katsubushi_openssl INTERFACE)
if(KATSUBUSHI_STATIC_RUNTIME)
  get_filename_component(openssl_libdir "${OPENSSL_CRYPTO_LIBRARY}" DIRECTORY)
  find_library(KATSUBUSHI_SSL_ARCHIVE NAMES libssl.a HINTS ${openssl_libdir} REQUIRED)
  find_library(KATSUBUSHI_CRYPTO_ARCHIVE NAMES libcrypto.a HINTS ${openssl_libdir} REQUIRED)
  target_include_directories(katsubushi_openssl INTERFACE ${OPENSSL_INCLUDE_DIR})
  target_link_libraries(katsubushi_openssl INTERFACE
    "$<IF:$<BOOL:$<TARGET_PROPERTY:KATSUBUSHI_SELF_CONTAINED>>,${KATSUBUSHI_SSL_ARCHIVE};${KATSUBUSHI_CRYPTO_ARCHIVE};${CMAKE_DL_LIBS};Threads::Threads,OpenSSL::SSL;OpenSSL::Crypto>")
else()
  target_link_libraries(katsubushi_openssl INTERFACE OpenSSL::SSL OpenSSL::Crypto)
endif()

# Definitions of the two newer glibc functions the static C++ runtime calls
# (glibc_compat.cc says why). An object library, not an archive: the linker
# must see these before it meets the references in libstdc++.a/libgcc_eh.a.
if(KATSUBUSHI_STATIC_RUNTIME)
  add_library(katsubushi_glibc_compat OBJECT ${PROJECT_SOURCE_DIR}/cmd/glibc_compat/glibc_compat.cc)
  target_link_libraries(katsubushi_glibc_compat PRIVATE katsubushi_warnings ${CMAKE_DL_LIBS})
endif()

function(katsubushi_static_runtime target)
  if(KATSUBUSHI_STATIC_RUNTIME)
    set_target_properties(${target} PROPERTIES KATSUBUSHI_SELF_CONTAINED ON)
    target_sources(${target} PRIVATE $<TARGET_OBJECTS:katsubushi_glibc_compat>)
    target_link_options(${target} PRIVATE -static-libstdc++ -static-libgcc)
  endif()
endfunction()
