// GrpcFront: the gRPC front as the server process sees it, and the loader
// that brings it in only when -grpc-port is set.
//
// Why a loadable module: gRPC, protobuf and OpenSSL add megabytes of
// resident pages to every process that links them, used or not (README,
// gRPC, has the figure), and the
// memcached sidecar is judged on its idle RSS and cold start. The server
// binary therefore does not link gRPC; `katsubushi-grpc.so` does, and is
// dlopen()ed at start-up only when a gRPC port is configured. Everything
// crossing the boundary is C++ built by this project with one compiler;
// the one exported symbol is extern "C" and never throws.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include "grpc/backend.h"
#include "katsubushi/limits.h"
#include "net/front.h"

namespace katsubushi::grpc_api {

struct GrpcOptions {
  // How often the health service re-reads Backend::Health().
  static constexpr std::chrono::milliseconds kHealthPollInterval{500};
  // The largest request message accepted (RESOURCE_EXHAUSTED beyond): ours
  // are a few bytes, reflection's a symbol or file name.
  static constexpr int kMaxRequestBytes = 64 * 1024;
  std::string address;  // empty: every IPv4 and IPv6 address; else a literal
  uint16_t port = 0;     // 0: an ephemeral port (see port())
  size_t threads = 0;    // threads serving calls, each with its queue; 0: one per core
  // TLS with Backend::Certificates() (tls_credentials.h); plaintext when false.
  bool tls = false;
  // A TLS client's time to send its first byte, and then gRPC's to finish
  // the handshake (channel_acceptor.h): TlsHandshakeTimeout(-idle-timeout),
  // as on the other fronts. Longer, and the connection is closed.
  std::chrono::milliseconds handshake_timeout = kTlsHandshakeTimeout;
};

// The gRPC front stops like every other (net::Front); only the port is its own.
class GrpcFront : public net::Front {
 public:
  virtual uint16_t port() const = 0;
};

// The module's file name, and the one symbol it exports:
//   GrpcFront* katsubushi_grpc_front_new(Backend*, const GrpcOptions*)
inline constexpr char kGrpcModuleName[] = "katsubushi-grpc.so";
inline constexpr char kGrpcModuleFactory[] = "katsubushi_grpc_front_new";
using GrpcFrontFactory = GrpcFront* (*)(Backend*, const GrpcOptions*);

// Finds and loads the module ($KATSUBUSHI_GRPC_MODULE, else next to the
// executable, else <exe dir>/../lib/katsubushi/) and creates the front.
// Returns null and sets *error when it cannot. The module stays loaded for
// the life of the process (gRPC does not support being unloaded).
std::unique_ptr<GrpcFront> LoadGrpcFront(Backend& backend, const GrpcOptions& options,
                                         std::string* error);

}  // namespace katsubushi::grpc_api
