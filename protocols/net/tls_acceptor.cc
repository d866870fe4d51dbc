#include "net/tls_acceptor.h"

#include <algorithm>
#include <boost/system/error_code.hpp>

#include <spdlog/spdlog.h>

#include "katsubushi/limits.h"

namespace katsubushi::net {
namespace {

// Why a handshake that ended with `ec` failed: TLS said why (TlsStream's
// protocol_error), or the socket did, which means the client went.
TlsHandshakeFailure Classify(const boost::system::error_code& ec, const tls::TlsPipe& pipe, bool timed_out) {
  if (timed_out) return TlsHandshakeFailure::kTimeout;
  if (ec == boost::system::errc::protocol_error) {
    return tls::ClassifyHandshakeFailure(pipe.ssl(), pipe.failure().ssl_error, pipe.failure().code);
  }
  return TlsHandshakeFailure::kClosed;  // eof, reset, broken pipe
}

}  // namespace

TlsAcceptor::TlsAcceptor(std::shared_ptr<tls::ServerContextSource> source, FrontLabel front, Stats& stats,
                         std::chrono::milliseconds idle_timeout)
    : source_(std::move(source)), front_(front), stats_(stats), handshake_timeout_(TlsHandshakeTimeout(idle_timeout)) {}

std::unique_ptr<tls::TlsPipe> TlsAcceptor::NewPipe() const {
  // The session holds its own reference to the context: a rotation while
  // it lives does not pull it away.
  auto pipe = tls::TlsPipe::NewServer(source_->Current().get());
  if (!pipe) spdlog::error("TLS: cannot create a session; closing a new connection");
  return pipe;
}

bool TlsAcceptor::Finished(const boost::system::error_code& ec, const tls::TlsPipe& pipe, bool timed_out) const {
  if (!ec && !timed_out) {
    stats_.CountTlsHandshake(front_);
    return true;
  }
  stats_.CountTlsHandshakeFailure(front_, Classify(ec, pipe, timed_out));
  return false;
}

}  // namespace katsubushi::net
