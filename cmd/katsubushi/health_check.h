// katsubushi -health-check: asks the server running beside it (same host,
// same configuration) whether it is issuing IDs, for images that have no
// shell or curl (Dockerfile HEALTHCHECK, docker-compose, ECS task health).
//
//   -http-port set:     GET /healthz on 127.0.0.1:<http-port>, healthy on 200
//   else -sock set:     memcached "get id" on the unix socket
//   else -port set:     memcached "get id" on 127.0.0.1:<port>, healthy on a VALUE
//
// Over TLS when the server's own settings (-tls-cert-file, -tls) say that
// front speaks it: the check reads the same KATSUBUSHI_* environment as the
// server. The certificate is verified only with -tls-ca-file, and then its
// chain, not its name (the check dials 127.0.0.1); with -tls-client-ca-file
// (mutual TLS) the check needs -tls-client-cert-file and -tls-client-key-file.
//
// Prints one line saying why, and returns the exit code: 0 healthy, 1 not.
#pragma once

#include <chrono>

#include "katsubushi/config.h"

namespace katsubushi {

// The whole check (connect, request, reply) ends within this; a server that
// cannot answer a loopback request in it is not healthy.
inline constexpr std::chrono::milliseconds kHealthCheckTimeout{2'000};
// Replies longer than this are not a healthy server's answer.
inline constexpr size_t kHealthCheckMaxReply = 4096;

int RunHealthCheck(const Config& config);

}  // namespace katsubushi
