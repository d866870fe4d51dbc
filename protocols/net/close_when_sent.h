// CloseWhenSent: the end of a connection that was answering when the server
// stopped. Its last reply is in the kernel's send queue, and the client may
// have sent more that will never be read; closing now would make the close a
// reset, and a reset throws away the queued reply. So: FIN after the reply,
// then close once the peer has acknowledged every byte (SIOCOUTQ reads 0),
// polling on the connection's own io thread. The wait keeps the worker busy,
// so it is bounded by the drain's deadline like any request in flight.
//
// A peer that has gone is not waited for: a client that sent a request and
// closed without reading answers the reply with a reset, and a reset TCP
// socket keeps reporting the bytes it never got acknowledged (SIOCOUTQ is
// write_seq - snd_una, which the reset leaves as it was), so polling the
// queue alone would hold the stop until the deadline. Nothing queued on a
// reset connection can ever be delivered.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>

namespace katsubushi::net {

// How often the send queue is looked at; a reply on loopback is acknowledged
// within microseconds, one to a slow reader takes what it takes.
inline constexpr std::chrono::milliseconds kSendQueuePollInterval{2};

// Whether what was written to `fd` is either acknowledged or undeliverable:
// the send queue is empty, or the connection is reset (a TCP socket in
// TCP_CLOSE; a unix socket's queue empties when its peer closes).
inline bool SendQueueSettled(int fd) {
  int queued = 0;
  if (::ioctl(fd, SIOCOUTQ, &queued) != 0 || queued <= 0) return true;
  tcp_info info{};
  socklen_t length = sizeof info;
  return ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) == 0 && info.tcpi_state == TCP_CLOSE;
}

template <typename Socket>
void CloseWhenSent(Socket socket) {
  class Closer : public std::enable_shared_from_this<Closer> {
   public:
    explicit Closer(Socket s) : socket_(std::move(s)), timer_(socket_.get_executor()) {}
    void Poll() {
      if (SendQueueSettled(socket_.native_handle())) {
        boost::system::error_code ignored;
        socket_.close(ignored);
        return;
      }
      timer_.expires_after(kSendQueuePollInterval);
      timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
        if (ec) return;  // the worker is being stopped: the socket closes with us
        self->Poll();
      });
    }

   private:
    Socket socket_;
    boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                      boost::asio::wait_traits<std::chrono::steady_clock>,
                                      typename Socket::executor_type>
        timer_;
  };
  boost::system::error_code ignored;
  socket.shutdown(Socket::shutdown_send, ignored);
  std::make_shared<Closer>(std::move(socket))->Poll();
}

}  // namespace katsubushi::net
