#include "net/tls_acceptor.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

#include "katsubushi/limits.h"

namespace katsubushi::net {
namespace {

std::chrono::milliseconds HandshakeTimeout(std::chrono::milliseconds idle_timeout) {
  if (idle_timeout.count() <= 0) return kTlsHandshakeTimeout;  // no idle limit: the handshake's own
  return std::min(idle_timeout, kTlsHandshakeTimeout);
}

// Why a handshake that Asio ended with `ec` failed. Asio carries OpenSSL's
// error code in its SSL category and turns an EOF mid-handshake into
// stream_truncated; anything from the socket itself means the client went.
TlsHandshakeFailure Classify(const boost::system::error_code& ec, const ssl_st* ssl, bool timed_out) {
  if (timed_out) return TlsHandshakeFailure::kTimeout;
  if (ec.category() == boost::asio::error::get_ssl_category()) {
    return tls::ClassifyHandshakeError(ssl, static_cast<unsigned long>(ec.value()));
  }
  return TlsHandshakeFailure::kClosed;  // stream_truncated, eof, reset, broken pipe
}

}  // namespace

TlsAcceptor::TlsAcceptor(std::shared_ptr<tls::ServerContextSource> source, FrontLabel front, Stats& stats,
                         std::chrono::milliseconds idle_timeout)
    : source_(std::move(source)), front_(front), stats_(stats), handshake_timeout_(HandshakeTimeout(idle_timeout)) {}

boost::asio::ssl::context TlsAcceptor::CurrentContext() const {
  const tls::ServerContext current = source_->Current();
  SSL_CTX_up_ref(current.get());  // the wrapper frees one reference when it goes
  return boost::asio::ssl::context(current.get());
}

bool TlsAcceptor::Finished(const boost::system::error_code& ec, const ssl_st* ssl, bool timed_out) const {
  if (!ec && !timed_out) {
    stats_.CountTlsHandshake(front_);
    return true;
  }
  stats_.CountTlsHandshakeFailure(front_, Classify(ec, ssl, timed_out));
  return false;
}

}  // namespace katsubushi::net
