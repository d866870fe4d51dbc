// katsubushi-loadgen: a memcached-protocol load generator.
//
// One thread, one epoll loop, N connections, each keeping `pipeline` requests
// in flight: a reply frees a slot and the slot is refilled at once (closed
// loop). It speaks text `get` (1..K keys per request) and binary GET, so the
// same run can be pointed at katsubushi and at a real memcached serving a
// stored key, which is how bench/compare_memcached.sh uses it.
//
// Reports one line of JSON: requests/s, IDs (values) per second, latency
// percentiles in microseconds (log-linear histogram, <1% error), errors.
//
// `--idle-connections N` instead opens N connections, does one get on each,
// prints "ready" and holds them until stdin closes (to measure server RSS).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  int port = 11212;
  std::string unix_socket;
  int connections = 1;
  int pipeline = 1;
  bool binary = false;
  int keys = 1;
  std::string key = "id";
  double duration_s = 5;
  double warmup_s = 1;
  int idle_connections = 0;
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "loadgen: %s\n", what.c_str());
  std::exit(1);
}

[[noreturn]] void DieErrno(const std::string& what) { Die(what + ": " + std::strerror(errno)); }

// Log-linear histogram: 128 sub-buckets per power of two (< 1% error).
class Histogram {
 public:
  void Record(uint64_t ns) {
    ++count_;
    buckets_[Index(ns)]++;
  }
  uint64_t count() const { return count_; }
  double PercentileMicros(double p) const {
    if (count_ == 0) return 0;
    const uint64_t rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
    uint64_t seen = 0;
    for (size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= rank) return static_cast<double>(UpperBound(i)) / 1000.0;
    }
    return static_cast<double>(UpperBound(buckets_.size() - 1)) / 1000.0;
  }

 private:
  static constexpr int kSubBits = 7;
  static constexpr size_t kSub = size_t{1} << kSubBits;
  static size_t Index(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    const int msb = 63 - __builtin_clzll(v);
    const int shift = msb - kSubBits;
    return static_cast<size_t>(shift + 1) * kSub + static_cast<size_t>((v >> shift) - kSub);
  }
  static uint64_t UpperBound(size_t index) {
    if (index < kSub) return index;
    const size_t shift = index / kSub - 1;
    const uint64_t mantissa = index % kSub + kSub;
    return ((mantissa + 1) << shift) - 1;
  }
  std::array<uint64_t, (64 - kSubBits + 1) * kSub> buckets_{};
  uint64_t count_ = 0;
};

struct Totals {
  uint64_t requests = 0;
  uint64_t values = 0;
  uint64_t errors = 0;
  Histogram latency;
};

class Connection {
 public:
  Connection(int fd, const Options& options, const std::string& request)
      : fd_(fd), options_(options), request_(request) {}

  int fd() const { return fd_; }

  // Queues requests until `pipeline` are in flight.
  void Fill(Clock::time_point now) {
    while (static_cast<int>(sent_at_.size()) < options_.pipeline) {
      out_ += request_;
      sent_at_.push_back(now);
    }
  }

  // Returns false when the socket must be closed.
  bool Flush() {
    while (out_pos_ < out_.size()) {
      const ssize_t n = ::send(fd_, out_.data() + out_pos_, out_.size() - out_pos_, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return true;
        return false;
      }
      out_pos_ += static_cast<size_t>(n);
    }
    out_.clear();
    out_pos_ = 0;
    return true;
  }

  bool wants_write() const { return out_pos_ < out_.size(); }

  // Reads what is there and completes replies. Returns false on EOF/error.
  bool Read(Clock::time_point now, bool measuring, Totals* totals) {
    char buf[64 * 1024];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return false;
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        return false;
      }
      in_.append(buf, static_cast<size_t>(n));
      if (static_cast<size_t>(n) < sizeof buf) break;
    }
    size_t pos = 0;
    for (;;) {
      uint64_t values = 0;
      bool error = false;
      const size_t used = options_.binary ? ParseBinary(pos, &values, &error)
                                          : ParseText(pos, &values, &error);
      if (used == 0) break;
      pos += used;
      if (sent_at_.empty()) Die("reply without a request");
      if (measuring) {
        ++totals->requests;
        totals->values += values;
        if (error) ++totals->errors;
        totals->latency.Record(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent_at_.front()).count()));
      }
      sent_at_.pop_front();
    }
    in_.erase(0, pos);
    return true;
  }

  size_t in_flight() const { return sent_at_.size(); }

 private:
  // One whole text get reply starting at `pos`: VALUE blocks then END, or an
  // error line. Returns its length, 0 if incomplete.
  size_t ParseText(size_t pos, uint64_t* values, bool* error) const {
    size_t p = pos;
    for (;;) {
      const size_t eol = in_.find("\r\n", p);
      if (eol == std::string::npos) return 0;
      const std::string_view line(in_.data() + p, eol - p);
      if (line == "END") return eol + 2 - pos;
      if (line.starts_with("VALUE ")) {
        const size_t last_space = line.rfind(' ');
        size_t len = 0;
        std::from_chars(line.data() + last_space + 1, line.data() + line.size(), len);
        const size_t end = eol + 2 + len + 2;
        if (end > in_.size()) return 0;
        ++*values;
        p = end;
        continue;
      }
      *error = true;  // ERROR, CLIENT_ERROR, SERVER_ERROR: one line
      return eol + 2 - pos;
    }
  }

  size_t ParseBinary(size_t pos, uint64_t* values, bool* error) const {
    if (in_.size() - pos < 24) return 0;
    const auto* h = reinterpret_cast<const unsigned char*>(in_.data() + pos);
    const uint32_t body = (uint32_t{h[8]} << 24) | (uint32_t{h[9]} << 16) | (uint32_t{h[10]} << 8) | h[11];
    if (in_.size() - pos < 24 + body) return 0;
    const uint16_t status = static_cast<uint16_t>((h[6] << 8) | h[7]);
    if (h[0] != 0x81 || status != 0) {
      *error = true;
    } else {
      ++*values;
    }
    return 24 + body;
  }

  int fd_;
  const Options& options_;
  const std::string& request_;
  std::string out_;
  size_t out_pos_ = 0;
  std::string in_;
  std::deque<Clock::time_point> sent_at_;
};

std::string BuildRequest(const Options& o) {
  if (!o.binary) {
    std::string r = "get";
    for (int i = 0; i < o.keys; ++i) r += " " + o.key;
    return r + "\r\n";
  }
  if (o.keys != 1) Die("--binary supports --keys=1 only");
  std::string r(24, '\0');
  r[0] = static_cast<char>(0x80);
  r[1] = 0x00;  // GET
  r[3] = static_cast<char>(o.key.size());
  r[11] = static_cast<char>(o.key.size());
  return r + o.key;
}

int Connect(const Options& o) {
  int fd;
  if (!o.unix_socket.empty()) {
    fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, o.unix_socket.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) DieErrno("connect");
  } else {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(o.port));
    if (::inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr) != 1) Die("bad --host " + o.host);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) DieErrno("connect");
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

void RaiseFileLimit(int needed) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < static_cast<rlim_t>(needed)) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, static_cast<rlim_t>(needed));
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
}

void SetNonBlocking(int fd) {
  const int one = 1;
  if (::ioctl(fd, FIONBIO, &one) != 0) DieErrno("FIONBIO");
}

int HoldIdle(const Options& o, const std::string& request) {
  RaiseFileLimit(o.idle_connections + 64);
  std::vector<int> fds;
  fds.reserve(static_cast<size_t>(o.idle_connections));
  std::string reply;
  for (int i = 0; i < o.idle_connections; ++i) {
    const int fd = Connect(o);
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
      DieErrno("send");
    }
    // Wait for the whole reply so the server really did the work.
    char buf[256];
    reply.clear();
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) DieErrno("recv");
      reply.append(buf, static_cast<size_t>(n));
      if (o.binary ? reply.size() >= 24 : reply.ends_with("END\r\n")) break;
    }
    fds.push_back(fd);
  }
  std::printf("ready %d\n", o.idle_connections);
  std::fflush(stdout);
  char c;
  while (::read(0, &c, 1) > 0) {
  }
  for (int fd : fds) ::close(fd);
  return 0;
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    const size_t eq = a.find('=');
    if (!a.starts_with("--") || eq == std::string_view::npos) {
      if (a == "--binary") { o.binary = true; continue; }
      Die("arguments are --name=value; got " + std::string(a));
    }
    const std::string_view name = a.substr(2, eq - 2);
    const std::string value(a.substr(eq + 1));
    if (name == "host") o.host = value;
    else if (name == "port") o.port = std::atoi(value.c_str());
    else if (name == "unix-socket") o.unix_socket = value;
    else if (name == "connections") o.connections = std::atoi(value.c_str());
    else if (name == "pipeline") o.pipeline = std::atoi(value.c_str());
    else if (name == "keys") o.keys = std::atoi(value.c_str());
    else if (name == "key") o.key = value;
    else if (name == "duration") o.duration_s = std::atof(value.c_str());
    else if (name == "warmup") o.warmup_s = std::atof(value.c_str());
    else if (name == "idle-connections") o.idle_connections = std::atoi(value.c_str());
    else if (name == "protocol") o.binary = value == "binary";
    else Die("unknown option --" + std::string(name));
  }
  if (o.connections < 1 || o.pipeline < 1 || o.keys < 1 || o.duration_s <= 0) Die("bad option values");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseArgs(argc, argv);
  const std::string request = BuildRequest(o);
  if (o.idle_connections > 0) return HoldIdle(o, request);

  RaiseFileLimit(o.connections + 64);
  const int ep = ::epoll_create1(0);
  std::vector<std::unique_ptr<Connection>> conns;
  for (int i = 0; i < o.connections; ++i) {
    const int fd = Connect(o);
    SetNonBlocking(fd);
    conns.push_back(std::make_unique<Connection>(fd, o, request));
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.u32 = static_cast<uint32_t>(i);
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) DieErrno("epoll_ctl");
  }

  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::duration<double>(o.warmup_s);
  const auto stop_at = measure_from + std::chrono::duration<double>(o.duration_s);
  Totals totals;
  for (auto& c : conns) {
    c->Fill(start);
    if (!c->Flush()) Die("send failed");
  }

  std::vector<epoll_event> events(static_cast<size_t>(o.connections));
  auto now = Clock::now();
  while (now < stop_at) {
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    if (n < 0 && errno != EINTR) DieErrno("epoll_wait");
    now = Clock::now();
    const bool measuring = now >= measure_from;
    for (int i = 0; i < n; ++i) {
      Connection& c = *conns[events[static_cast<size_t>(i)].data.u32];
      if (events[static_cast<size_t>(i)].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (!c.Read(now, measuring, &totals)) Die("server closed a connection");
        c.Fill(now);
      }
      if (!c.Flush()) Die("send failed");
    }
  }
  const double seconds =
      std::chrono::duration<double>(now - measure_from).count();
  std::printf(
      "{\"protocol\":\"%s\",\"connections\":%d,\"pipeline\":%d,\"keys\":%d,\"seconds\":%.3f,"
      "\"requests\":%llu,\"requests_per_second\":%.0f,\"values_per_second\":%.0f,\"errors\":%llu,"
      "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f}\n",
      o.binary ? "binary" : "text", o.connections, o.pipeline, o.keys, seconds,
      static_cast<unsigned long long>(totals.requests),
      static_cast<double>(totals.requests) / seconds, static_cast<double>(totals.values) / seconds,
      static_cast<unsigned long long>(totals.errors), totals.latency.PercentileMicros(50),
      totals.latency.PercentileMicros(99), totals.latency.PercentileMicros(99.9));
  for (auto& c : conns) ::close(c->fd());
  return totals.errors == 0 ? 0 : 3;
}
