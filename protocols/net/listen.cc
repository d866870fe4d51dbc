#include "net/listen.h"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/socket_base.hpp>
#include <exception>

#include <spdlog/spdlog.h>

namespace katsubushi::net {

using tcp = boost::asio::ip::tcp;

boost::system::error_code ListenTcp(tcp::acceptor& acceptor, const std::string& address,
                                    uint16_t port) {
  boost::system::error_code ec;
  const bool any = address.empty();
  tcp::endpoint endpoint;
  if (any) {
    endpoint = tcp::endpoint(tcp::v6(), port);
  } else {
    endpoint = tcp::endpoint(boost::asio::ip::make_address(address, ec), port);
    if (ec) return ec;
  }
  acceptor.open(endpoint.protocol(), ec);
  if (ec && any) {  // no IPv6 on this host
    endpoint = tcp::endpoint(tcp::v4(), port);
    ec.clear();
    acceptor.open(endpoint.protocol(), ec);
  }
  if (!ec && any && endpoint.protocol() == tcp::v6()) {
    acceptor.set_option(boost::asio::ip::v6_only(false), ec);
  }
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
  return ec;
}

std::thread StartIoThread(boost::asio::io_context& io, std::string_view name,
                          std::function<void()> on_exit) {
  return std::thread([&io, tag = std::string(name), on_exit = std::move(on_exit)] {
    for (;;) {
      try {
        io.run();
        break;
      } catch (const std::exception& e) {
        spdlog::error("{} io thread: {}", tag, e.what());
      }
    }
    if (on_exit) on_exit();
  });
}

}  // namespace katsubushi::net
