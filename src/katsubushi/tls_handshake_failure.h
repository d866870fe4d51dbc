// Why a TLS handshake on a front failed: the label of
// katsubushi_tls_handshake_failures_total{front,reason}. In the core (no
// OpenSSL) so that Stats counts them; tls/tls_server.h classifies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace katsubushi {

enum class TlsHandshakeFailure : uint8_t {
  kNotTls,             // the first bytes were not a TLS record: a plaintext client
  kClientCertificate,  // mutual TLS: no client certificate, or one the client CA did not sign
  kRejectedByClient,   // the client sent an alert: it did not trust our certificate
  kUnsupported,        // no common protocol version, cipher or signature algorithm
  kTimeout,            // not finished within the handshake deadline
  kClosed,             // the client closed or reset the connection during the handshake
  kOther,              // anything else OpenSSL refused (malformed handshake messages)
  kCount,
};
inline constexpr size_t kTlsHandshakeFailureCount = static_cast<size_t>(TlsHandshakeFailure::kCount);

// The first byte of every TLS connection: the content type of the record
// that carries its ClientHello (handshake, RFC 8446 5.1). A front tells a
// plaintext client on a TLS port, or a TLS client on a plaintext one, by it.
inline constexpr uint8_t kTlsHandshakeRecordType = 0x16;

inline std::string_view TlsHandshakeFailureName(TlsHandshakeFailure reason) {
  switch (reason) {
    case TlsHandshakeFailure::kNotTls: return "not_tls";
    case TlsHandshakeFailure::kClientCertificate: return "client_certificate";
    case TlsHandshakeFailure::kRejectedByClient: return "rejected_by_client";
    case TlsHandshakeFailure::kUnsupported: return "unsupported";
    case TlsHandshakeFailure::kTimeout: return "timeout";
    case TlsHandshakeFailure::kClosed: return "closed";
    case TlsHandshakeFailure::kOther: return "other";
    case TlsHandshakeFailure::kCount: break;
  }
  return "unknown";
}

}  // namespace katsubushi
