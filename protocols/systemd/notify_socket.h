// NotifySocket: sends sd_notify(3) datagrams to the service manager's socket
// ($NOTIFY_SOCKET), with no libsystemd: one unix datagram socket, one
// sendto() per message, never blocking (a manager that does not read must not
// stall the server; the datagram is then dropped and reported).
//
// Thread safety: Send() from one thread at a time.
#pragma once

#include <string>
#include <string_view>

#include "systemd/notify_protocol.h"

namespace katsubushi::systemd {

class NotifySocket {
 public:
  explicit NotifySocket(NotifyAddress address);
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  // Sends `message` as one datagram. False with `*error` set when it was not
  // sent.
  bool Send(std::string_view message, std::string* error);

 private:
  const NotifyAddress address_;
  int fd_ = -1;
  std::string socket_error_;  // why fd_ is -1
};

}  // namespace katsubushi::systemd
