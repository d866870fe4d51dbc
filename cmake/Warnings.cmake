# katsubushi_warnings: the warning set every target of ours builds with.
# Generated code (protobuf/gRPC) does not link it.
add_library(katsubushi_warnings INTERFACE)
target_compile_options(katsubushi_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wimplicit-fallthrough
  $<$<BOOL:${KATSUBUSHI_WERROR}>:-Werror>)
