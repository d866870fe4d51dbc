// The entry point of katsubushi-grpc.so (see grpc_front.h).
#include <new>

#include "grpc/grpc_server.h"

extern "C" __attribute__((visibility("default"))) katsubushi::grpc_api::GrpcFront*
katsubushi_grpc_front_new(katsubushi::grpc_api::Backend* backend,
                          const katsubushi::grpc_api::GrpcOptions* options) {
  // No exception may cross this boundary.
  try {
    return new katsubushi::grpc_api::GrpcServer(*backend, *options);
  } catch (...) {
    return nullptr;
  }
}
