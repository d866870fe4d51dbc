#include "grpc/reply_coalescer.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <charconv>

#include "grpc/peer_sockets.h"

namespace katsubushi::grpc_api {
namespace {

// Errors are ignored: a socket that cannot be corked sends at once, which is
// today's behaviour, and uncorking a socket that is gone does nothing.
void SetCork(int fd, bool on) {
  const int value = on ? 1 : 0;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &value, sizeof value);
}

}  // namespace

int ReplyCoalescer::DescriptorOf(std::string_view peer) {
  constexpr std::string_view kPrefix = "fd:";
  if (!peer.starts_with(kPrefix)) return -1;
  peer.remove_prefix(kPrefix.size());
  int fd = -1;
  const auto [end, ec] = std::from_chars(peer.data(), peer.data() + peer.size(), fd);
  if (ec != std::errc() || end != peer.data() + peer.size() || fd < 0) return -1;
  return fd;
}

int ReplyCoalescer::Find(std::string_view peer) {
  const int fd = DescriptorOf(peer);
  if (fd >= 0 || peers_ == nullptr) return fd;
  if (last_peer_fd_ < 0 || peer != last_peer_) {
    last_peer_fd_ = peers_->Find(peer);
    last_peer_.assign(peer);
  }
  return last_peer_fd_;
}

void ReplyCoalescer::BeforeReply(std::string_view peer) {
  const int fd = Find(peer);
  if (fd < 0) {
    ++counts_.uncorkable;
    return;
  }
  for (Socket& s : sockets_) {
    if (s.fd != fd) continue;
    if (s.held == 0) {
      SetCork(fd, true);  // the second reply of the batch: hold from now on
    } else if (s.held == kRepliesPerFlush) {
      SetCork(fd, false);  // send what is held, and go on holding
      SetCork(fd, true);
      s.held = 0;
    }
    ++s.held;
    ++counts_.corked;
    return;
  }
  sockets_.push_back({fd, 0});  // the first reply leaves at once
}

void ReplyCoalescer::Flush() {
  for (const Socket& s : sockets_) {
    if (s.held > 0) SetCork(s.fd, false);
  }
  sockets_.clear();
  // The next batch may see a new connection from the same address.
  last_peer_fd_ = -1;
}

}  // namespace katsubushi::grpc_api
