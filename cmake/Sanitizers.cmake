# Sanitizers apply to the whole build (every object must be instrumented for
# TSan to be sound). ASan and TSan cannot be combined.
if(KATSUBUSHI_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  # GCC's flow analysis gives false -Wmaybe-uninitialized on instrumented code
  # (seen inside Boost.Beast's parser, boost::optional storage); the sanitizer
  # itself is the better check for uninitialized use in this build.
  add_compile_options($<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)
  add_link_options(-fsanitize=address,undefined)
elseif(KATSUBUSHI_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  # Asio's headers use std::atomic_thread_fence, which GCC warns TSan does not
  # model (-Wtsan). Our code uses no fences; the warning is about Asio's.
  add_compile_options($<$<CXX_COMPILER_ID:GNU>:-Wno-tsan>)
  add_link_options(-fsanitize=thread)
elseif(NOT KATSUBUSHI_SANITIZE STREQUAL "")
  message(FATAL_ERROR "KATSUBUSHI_SANITIZE must be empty, 'address' or 'thread', not '${KATSUBUSHI_SANITIZE}'")
endif()

# Fuzzing builds instrument every library for coverage (the fuzz targets
# themselves link -fsanitize=fuzzer) and check with ASan+UBSan.
if(KATSUBUSHI_BUILD_FUZZERS)
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
