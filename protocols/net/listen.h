// Socket plumbing shared by the fronts that run on Asio (memcached, HTTP):
// one rule for where they listen and one way to run an io thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

namespace katsubushi::net {

// Opens, binds and listens `acceptor` (constructed, not open). An empty
// address means every address: one dual-stack [::] socket for IPv4 and IPv6,
// or 0.0.0.0 on a host without IPv6. Port 0 picks an ephemeral port.
boost::system::error_code ListenTcp(boost::asio::ip::tcp::acceptor& acceptor,
                                    const std::string& address, uint16_t port);

// Starts a thread that runs `io` until it runs out of work or is stopped,
// then calls `on_exit`. Handlers are written not to throw; if one ever does,
// the exception is logged (tagged `name`) and the loop resumes, so no
// exception ends the process from an io thread.
std::thread StartIoThread(boost::asio::io_context& io, std::string_view name,
                          std::function<void()> on_exit = {});

}  // namespace katsubushi::net
