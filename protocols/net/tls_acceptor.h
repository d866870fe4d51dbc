// TlsAcceptor: TLS on a front that runs on net::IoServer (memcached, HTTP).
// The fronts keep their connection code and wrap the socket in a TlsStream
// (tls_stream.h); this class is the one place that decides what every TLS
// connection of such a front gets and how its handshake ends:
//
//   * the context (certificate, key, client CA, ALPN) current when the
//     connection arrives, from the front's tls::ServerContextSource, so a
//     rotated certificate reaches new connections while open ones go on;
//   * the handshake's time limit: kTlsHandshakeTimeout, or the idle timeout
//     when that is shorter (a stalled handshake is an idle connection);
//   * the count of handshakes done and failed, by reason, for /metrics.
//
// A connection that fails its handshake is closed without a reply: there is
// no TLS session to answer in, and a plaintext client on a TLS port gets
// nothing it could mistake for a reply.
//
// Thread safety: every method may be called from any io thread.
#pragma once

#include <boost/system/error_code.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <utility>

#include "katsubushi/stats.h"
#include "katsubushi/tls/tls_pipe.h"
#include "katsubushi/tls/tls_server.h"
#include "net/tls_stream.h"

namespace katsubushi::net {

class TlsAcceptor {
 public:
  TlsAcceptor(std::shared_ptr<tls::ServerContextSource> source, FrontLabel front, Stats& stats,
              std::chrono::milliseconds idle_timeout);

  // A server-side TLS stream over `next`, with the context current now;
  // none when OpenSSL cannot make a session (out of memory), logged.
  template <typename NextLayer>
  std::optional<TlsStream<NextLayer>> NewStream(NextLayer&& next) const {
    std::unique_ptr<tls::TlsPipe> pipe = NewPipe();
    if (!pipe) return std::nullopt;
    return TlsStream<NextLayer>(std::forward<NextLayer>(next), std::move(pipe));
  }

  std::chrono::milliseconds handshake_timeout() const { return handshake_timeout_; }

  // Counts a handshake that ended with `ec` on `pipe`; `timed_out` when it
  // was cut off at handshake_timeout(). True when the connection may go on.
  bool Finished(const boost::system::error_code& ec, const tls::TlsPipe& pipe, bool timed_out) const;

 private:
  std::unique_ptr<tls::TlsPipe> NewPipe() const;

  const std::shared_ptr<tls::ServerContextSource> source_;
  const FrontLabel front_;
  Stats& stats_;
  const std::chrono::milliseconds handshake_timeout_;
};

}  // namespace katsubushi::net
