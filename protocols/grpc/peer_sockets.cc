#include "grpc/peer_sockets.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>
#include <string>
#include <utility>

#include "katsubushi/hex.h"

namespace katsubushi::grpc_api {
namespace {

// gRPC %-encodes some characters of its peer URIs ("[" as "%5B").
std::string PercentDecoded(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const int high = text[i] == '%' && i + 2 < text.size() ? HexValue(text[i + 1]) : -1;
    const int low = high >= 0 ? HexValue(text[i + 2]) : -1;
    if (low >= 0) {
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

}  // namespace

std::optional<PeerSockets::Key> PeerSockets::KeyOf(const sockaddr_storage& peer) {
  Key key;
  if (peer.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(peer);
    key.address[10] = 0xff;
    key.address[11] = 0xff;
    std::memcpy(&key.address[12], &v4.sin_addr, 4);
    key.port = ntohs(v4.sin_port);
    return key;
  }
  if (peer.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(peer);
    std::memcpy(key.address.data(), &v6.sin6_addr, 16);
    key.port = ntohs(v6.sin6_port);
    return key;
  }
  return std::nullopt;
}

std::optional<PeerSockets::Key> PeerSockets::KeyOf(std::string_view grpc_peer) {
  const bool v4 = grpc_peer.starts_with("ipv4:");
  if (!v4 && !grpc_peer.starts_with("ipv6:")) return std::nullopt;
  const std::string rest = PercentDecoded(grpc_peer.substr(5));
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  unsigned port = 0;
  const char* port_end = rest.data() + rest.size();
  if (const auto [end, ec] = std::from_chars(rest.data() + colon + 1, port_end, port);
      ec != std::errc() || end != port_end || port > 0xffff) {
    return std::nullopt;
  }
  std::string host = rest.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (const size_t zone = host.find('%'); zone != std::string::npos) host.resize(zone);  // fe80::1%eth0
  sockaddr_storage address{};
  if (v4) {
    auto& sin = reinterpret_cast<sockaddr_in&>(address);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &sin.sin_addr) != 1) return std::nullopt;
  } else {
    auto& sin6 = reinterpret_cast<sockaddr_in6&>(address);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.c_str(), &sin6.sin6_addr) != 1) return std::nullopt;
  }
  return KeyOf(address);
}

size_t PeerSockets::KeyHash::operator()(const Key& key) const {
  uint64_t high = 0;
  uint64_t low = 0;
  std::memcpy(&high, key.address.data(), 8);
  std::memcpy(&low, key.address.data() + 8, 8);
  return std::hash<uint64_t>()(high ^ (low * 0x9e3779b97f4a7c15ULL) ^ key.port);
}

void PeerSockets::Add(int fd, const sockaddr_storage& peer) {
  const std::optional<Key> key = KeyOf(peer);
  std::lock_guard lock(mutex_);
  // Whatever had this descriptor number before is closed.
  if (auto old = by_fd_.find(fd); old != by_fd_.end()) {
    if (auto entry = by_peer_.find(old->second); entry != by_peer_.end() && entry->second.fd == fd) {
      by_peer_.erase(entry);
    }
    by_fd_.erase(old);
  }
  if (!key) return;
  by_peer_[*key] = Entry{fd, false};
  by_fd_[fd] = *key;
}

int PeerSockets::Find(std::string_view peer) {
  const std::optional<Key> key = KeyOf(peer);
  if (!key) return -1;
  bool first = false;
  int fd = -1;
  {
    std::lock_guard lock(mutex_);
    auto entry = by_peer_.find(*key);
    if (entry == by_peer_.end()) return -1;
    fd = entry->second.fd;
    first = !std::exchange(entry->second.used, true);
  }
  if (first) backend_.CountTlsHandshake();
  return fd;
}

}  // namespace katsubushi::grpc_api
