// Socket I/O bounded by a deadline: wait, send all, receive some, on a
// connected non-blocking socket. The plain byte moves under every client
// stream this process opens (the Redis transport, katsubushi::Client's
// connections), with TLS (client_stream.h) or without.
//
// Every wait is a poll(2) that ends by the deadline, so a silent peer costs
// the caller at most the time it allowed, and leaves the socket in a known
// state (a read that timed out may be tried again). Every send is
// send(MSG_NOSIGNAL): a peer that went away is an error, never a SIGPIPE in
// an embedding program.
//
// Thread safety: stateless functions; one socket is used by one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <string_view>

namespace katsubushi::tls {

using Deadline = std::chrono::steady_clock::time_point;

// What one socket operation came to.
enum class SocketResult {
  kOk,
  kTimeout,  // the deadline passed first
  kClosed,   // the peer closed (receive only)
  kError,    // a system error; its errno is given
};

// Milliseconds poll() may wait before `deadline`, rounded up so that a wait
// never ends just before the deadline and spins; 0 once it has passed.
int PollMillis(Deadline deadline);

// Waits until `fd` is ready for `events` (POLLIN/POLLOUT) or has an error
// the next call will report.
SocketResult WaitFor(int fd, short events, Deadline deadline, int* sys_errno);

// Sends all of `bytes`.
SocketResult SendAll(int fd, std::string_view bytes, Deadline deadline, int* sys_errno);

// Receives what has arrived (at most `capacity` bytes, waiting for at least
// one) into `buf`; *size is set with kOk. `wait_first` polls before the first
// recv(): right after a request the reply is almost never there yet, so a
// recv() first would only add an EAGAIN.
SocketResult ReceiveSome(int fd, char* buf, size_t capacity, size_t* size, Deadline deadline,
                         bool wait_first, int* sys_errno);

}  // namespace katsubushi::tls
