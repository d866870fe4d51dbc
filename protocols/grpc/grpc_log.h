// Where gRPC's own log lines go, and how the TLS handshake failures that
// gRPC reports only in its log are counted.
//
// Why: gRPC 1.51 tells its user nothing about a failed TLS handshake except
// one ERROR line from its TSI layer (ssl_transport_security.cc):
//   Handshake failed with fatal error SSL_ERROR_SSL: error:0A0000C7:SSL
//   routines::peer did not return a certificate.
// printed in gRPC's own format on stderr, one per failed handshake: a client
// that keeps failing floods the log, outside -log-format=json. The sink
// counts such a line by the OpenSSL error code in it
// (Backend::CountTlsHandshakeError, katsubushi_tls_handshake_failures_total)
// instead of printing it, and passes every other line to the process's log
// (Backend::Log). Should a gRPC release word the line otherwise, the
// failures show in the log again rather than vanish, and the e2e tests of
// the failure counts fail.
//
// Not seen this way: failures gRPC logs at DEBUG only, which its default
// verbosity drops (a client that offers no ALPN "h2", a handshake that
// stalls after its first bytes until GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS).
//
// gpr_set_log_function is process-wide; this module is the only user of
// gRPC in the process. Thread safety: any thread; lines logged while no
// backend is attached go to stderr.
#pragma once

#include <string_view>

#include "grpc/backend.h"

namespace katsubushi::grpc_api {

// From GrpcServer::Start() until the backend may go away.
void AttachGrpcLog(Backend& backend);
void DetachGrpcLog(Backend& backend);

// Whether a line is a TSI handshake failure, and its OpenSSL error code
// (exposed for tests).
bool ParseHandshakeFailure(std::string_view file, std::string_view message, unsigned long* code);

}  // namespace katsubushi::grpc_api
