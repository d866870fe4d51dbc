#include "systemd/notify_socket.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace katsubushi::systemd {

NotifySocket::NotifySocket(NotifyAddress address) : address_(std::move(address)) {
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) socket_error_ = std::strerror(errno);
}

NotifySocket::~NotifySocket() {
  if (fd_ >= 0) ::close(fd_);
}

bool NotifySocket::Send(std::string_view message, std::string* error) {
  if (fd_ < 0) {
    *error = "cannot create a unix datagram socket: " + socket_error_;
    return false;
  }
  sockaddr_un addr;
  const socklen_t length = ToSockaddr(address_, &addr);
  ssize_t sent;
  do {
    sent = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                    reinterpret_cast<const sockaddr*>(&addr), length);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    *error = std::string("sendto ") + (address_.abstract ? "@" : "") + address_.name + ": " +
             std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace katsubushi::systemd
