// SendGoaways: the first step of the gRPC front's stop. Every channel gets a
// graceful GOAWAY while the server goes on serving, so that a call its client
// sent before it saw the GOAWAY is answered instead of cancelled.
//
// Why not grpc::Server::Shutdown() at once: gRPC core (1.51, surface/server.cc)
// marks the server shut down first (Server::ShutdownAndNotify) and only then
// sends the GOAWAYs. Until a client has the final GOAWAY (chttp2's graceful
// GOAWAY waits a ping's round trip before it names the last stream) it keeps
// opening streams, and every one that reaches the server in that window is
// ended by core itself (CallData::StartNewRpc and PublishNewRpc see
// ShutdownCalled() and KillZombie() the call: the client reads CANCELLED).
// grpc/grpc#41785 is that bug. Sent while the server still serves, the same
// GOAWAY lets those streams find a waiting call as usual; streams after the
// final GOAWAY are never accepted, and the client sees them as not processed
// (UNAVAILABLE, or a retry elsewhere).
//
// How: core's Server::SendGoaways() does exactly that, but no public API
// reaches it. The module calls the exported symbol through a declaration of
// its own (goaway.cc); CMake checks at configure time that the installed gRPC
// has it (KATSUBUSHI_GRPC_SEND_GOAWAYS), and without it SendGoaways() does
// nothing and returns false: the stop then is Shutdown() at once, as before.
#pragma once

#include <grpcpp/server.h>

namespace katsubushi::grpc_api {

// Starts a graceful GOAWAY on every channel of `server` (started, not shut
// down) and returns true once core has been asked; the GOAWAYs themselves are
// written by gRPC's threads. False when this gRPC build cannot.
// Thread-safe; blocks for a hop onto one of gRPC's threads.
bool SendGoaways(grpc::Server& server);

}  // namespace katsubushi::grpc_api
