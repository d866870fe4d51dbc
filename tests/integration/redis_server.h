// A redis-server of its own for a test, on a free 127.0.0.1 port, started
// with fork/exec and stopped by its PID (SIGKILL) when the object goes.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "katsubushi/redis/redis_client.h"
#include "katsubushi/redis/redis_url.h"

namespace katsubushi::lease {

inline uint16_t FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A redis-server of its own on a free loopback port, stopped by PID.
class RedisServer {
 public:
  RedisServer() : port_(FreePort()) {
    pid_ = fork();
    if (pid_ == 0) {
      const std::string port = std::to_string(port_);
      execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--loglevel", "warning",
             static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~RedisServer() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::string UrlText(const std::string& ns) const {
    return "redis://127.0.0.1:" + std::to_string(port_) + "/0?ns=" + ns;
  }
  redis::RedisClientOptions ClientOptions(const std::string& ns) const {
    redis::RedisClientOptions options;
    options.url = *redis::ParseRedisUrl(UrlText(ns));
    return options;
  }
  // Waits (bounded) until the server answers PING.
  bool Ready() const {
    redis::RedisClient client(ClientOptions("x"));
    for (int i = 0; i < 100; ++i) {
      redis::RedisReply reply;
      if (client.Run({}, {"PING"}, &reply) && !reply.is_error()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
};

}  // namespace katsubushi::lease
