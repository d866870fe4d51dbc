# Cross-compiling for arm64 (Graviton) on Debian with its own cross toolchain
# and multiarch packages, no sysroot (scripts/install-deps --arm64):
#   g++-aarch64-linux-gnu; libhiredis-dev:arm64, libspdlog-dev:arm64,
#   libfmt-dev:arm64, libgtest-dev:arm64 (after dpkg --add-architecture arm64).
# Header-only Boost comes from the build machine's /usr/include. gRPC is not
# cross-built (KATSUBUSHI_BUILD_GRPC=OFF). Tests run under qemu-user:
#   cmake -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DKATSUBUSHI_BUILD_GRPC=OFF
#   ctest --test-dir build-arm64 -L unit       (scripts/arm64-test does this)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Only the arm64 libraries and package files; programs (protoc, ...) are the
# build machine's.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")

# Runs the arm64 test binaries (gtest discovery, ctest) on the build machine
# without binfmt registration.
find_program(KATSUBUSHI_QEMU_AARCH64 qemu-aarch64-static)
if(KATSUBUSHI_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${KATSUBUSHI_QEMU_AARCH64}")
endif()
