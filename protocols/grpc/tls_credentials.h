// TLS credentials for the gRPC front, from the core's CertificateStore
// (through Backend::Certificates()), for the connections ChannelAcceptor
// hands to gRPC.
//
// Why gRPC core's SSL credentials with a certificate config fetcher: gRPC
// (1.51) runs the TLS handshake itself only on connections that enter through
// a listener it knows, and the one that takes descriptors accepted elsewhere
// with credentials is ServerBuilder's ExternalConnectionAcceptor
// (grpc_server_add_channel_from_fd takes insecure credentials only). Its
// credentials are fixed when the server is built, so rotation goes through
// the fetcher, which gRPC asks before every handshake: it answers "unchanged"
// while the store's generation is the one it served, else the new PEM set,
// so new connections get the new certificate and open ones go on. gRPC's SSL
// security connector sets the rest: TLS 1.2 minimum (1.3 preferred), ECDHE
// with AES-GCM, ALPN "h2" required, and no renegotiation.
//
// Mutual TLS: when the set has a client CA at start, a client must present a
// certificate that CA signed (gRPC's REQUEST_AND_REQUIRE_..._AND_VERIFY). The
// mode is fixed at start, as gRPC's is; a later set's CA replaces the old one.
#pragma once

#include <memory>
#include <string>

#include "grpc/backend.h"

namespace grpc {
class ServerCredentials;
}

namespace katsubushi::grpc_api {

// Null with *error when the backend has no certificate set.
std::shared_ptr<grpc::ServerCredentials> MakeTlsCredentials(Backend& backend, std::string* error);

}  // namespace katsubushi::grpc_api
