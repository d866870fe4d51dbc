// katsubushi-loadgen: a memcached-protocol load generator.
//
// One thread, one epoll loop, N connections, each keeping `pipeline` requests
// in flight: a reply frees a slot and the slot is refilled at once (closed
// loop). It speaks text `get` (1..K keys per request) and binary GET, so the
// same run can be pointed at katsubushi and at a real memcached serving a
// stored key, which is how bench/compare_memcached.py (and, over TLS,
// bench/compare_tls.py) uses it.
//
// Reports one line of JSON: requests/s, IDs (values) per second, latency
// percentiles in microseconds (log-linear histogram, <1% error), errors, and
// all_requests, the replies of the warm-up and the measured part together.
//
// `--idle-connections N` instead opens N connections, does one get on each,
// prints "ready" and holds them until stdin closes (to measure server RSS).
//
// `--tls` speaks TLS on every connection (OpenSSL; no certificate check
// unless `--tls-ca=FILE`); the pipelined run does its handshakes before the
// clock starts. `--new-connections` measures connection set-up instead: each
// of the N connections does connect, handshake (with --tls), one get and
// close, then starts over; requests/s is then new connections/s and the
// latency covers the whole set-up. Every handshake is a full one (no session
// is offered again).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>

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

#include "stream.h"

namespace {

using katsubushi::loadgen::Io;
using katsubushi::loadgen::IoResult;
using katsubushi::loadgen::Stream;
using katsubushi::loadgen::TlsContext;

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
  bool tls = false;
  std::string tls_ca;
  bool new_connections = false;
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
  uint64_t all_requests = 0;  // warm-up included: what the server's CPU time is divided by
  uint64_t requests = 0;
  uint64_t values = 0;
  uint64_t errors = 0;
  Histogram latency;
};

// One whole text get reply at the front of `in`: VALUE blocks then END, or an
// error line. Returns its length, 0 if incomplete.
size_t ParseTextReply(std::string_view in, uint64_t* values, bool* error) {
  size_t p = 0;
  for (;;) {
    const size_t eol = in.find("\r\n", p);
    if (eol == std::string_view::npos) return 0;
    const std::string_view line = in.substr(p, eol - p);
    if (line == "END") return eol + 2;
    if (line.starts_with("VALUE ")) {
      const size_t last_space = line.rfind(' ');
      size_t len = 0;
      std::from_chars(line.data() + last_space + 1, line.data() + line.size(), len);
      const size_t end = eol + 2 + len + 2;
      if (end > in.size()) return 0;
      ++*values;
      p = end;
      continue;
    }
    *error = true;  // ERROR, CLIENT_ERROR, SERVER_ERROR: one line
    return eol + 2;
  }
}

size_t ParseBinaryReply(std::string_view in, uint64_t* values, bool* error) {
  if (in.size() < 24) return 0;
  const auto* h = reinterpret_cast<const unsigned char*>(in.data());
  const uint32_t body = (uint32_t{h[8]} << 24) | (uint32_t{h[9]} << 16) | (uint32_t{h[10]} << 8) | h[11];
  if (in.size() < 24 + body) return 0;
  const uint16_t status = static_cast<uint16_t>((h[6] << 8) | h[7]);
  if (h[0] != 0x81 || status != 0) {
    *error = true;
  } else {
    ++*values;
  }
  return 24 + body;
}

size_t ParseReply(const Options& o, std::string_view in, uint64_t* values, bool* error) {
  return o.binary ? ParseBinaryReply(in, values, error) : ParseTextReply(in, values, error);
}

constexpr size_t kReadChunk = 64 * 1024;

// A connection of the pipelined run: keeps `pipeline` requests in flight.
class Connection {
 public:
  Connection(std::unique_ptr<Stream> stream, const Options& options, const std::string& request)
      : stream_(std::move(stream)), options_(options), request_(request) {}

  int fd() const { return stream_->fd(); }
  bool tls() const { return stream_->tls(); }
  const std::string& error() const { return stream_->error(); }

  // Queues requests until `pipeline` are in flight.
  void Fill(Clock::time_point now) {
    while (static_cast<int>(sent_at_.size()) < options_.pipeline) {
      out_ += request_;
      sent_at_.push_back(now);
    }
  }

  // Returns false when the connection must be closed.
  bool Flush() {
    while (out_pos_ < out_.size()) {
      const IoResult r = stream_->Write(out_.data() + out_pos_, out_.size() - out_pos_);
      if (r.status == Io::kWouldBlock) return true;
      if (r.status != Io::kOk) return false;
      out_pos_ += r.bytes;
    }
    out_.clear();
    out_pos_ = 0;
    return true;
  }

  // Reads what is there and completes replies. Returns false on EOF/error.
  bool Read(Clock::time_point now, bool measuring, Totals* totals) {
    char buf[kReadChunk];
    for (;;) {
      const IoResult r = stream_->Read(buf, sizeof buf);
      if (r.status == Io::kWouldBlock) break;
      if (r.status != Io::kOk) return false;
      in_.append(buf, r.bytes);
      // Edge-triggered: a short recv drained the socket. Not so with TLS,
      // whose reads end at a record: it reads on until OpenSSL would block.
      if (!stream_->tls() && r.bytes < sizeof buf) break;
    }
    size_t pos = 0;
    for (;;) {
      uint64_t values = 0;
      bool error = false;
      const size_t used = ParseReply(options_, std::string_view(in_).substr(pos), &values, &error);
      if (used == 0) break;
      pos += used;
      if (sent_at_.empty()) Die("reply without a request");
      ++totals->all_requests;
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

 private:
  std::unique_ptr<Stream> stream_;
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

// A socket connecting (non_blocking) or connected to the server; -1 with
// errno set when the kernel refuses.
int ConnectSocket(const Options& o, bool non_blocking) {
  const int flags = SOCK_STREAM | SOCK_CLOEXEC | (non_blocking ? SOCK_NONBLOCK : 0);
  int fd;
  int rc;
  if (!o.unix_socket.empty()) {
    fd = ::socket(AF_UNIX, flags, 0);
    if (fd < 0) return -1;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, o.unix_socket.c_str(), sizeof addr.sun_path - 1);
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else {
    fd = ::socket(AF_INET, flags, 0);
    if (fd < 0) return -1;
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(o.port));
    if (::inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr) != 1) Die("bad --host " + o.host);
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  if (rc != 0 && !(non_blocking && errno == EINPROGRESS)) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

// A blocking connection with its handshake done; exits on failure.
std::unique_ptr<Stream> OpenBlocking(const Options& o, const TlsContext* tls) {
  const int fd = ConnectSocket(o, false);
  if (fd < 0) DieErrno("connect");
  auto stream = std::make_unique<Stream>(fd, tls);
  IoResult r;
  while ((r = stream->Handshake()).status == Io::kWouldBlock) {
  }
  if (r.status != Io::kOk) Die(stream->error().empty() ? "closed during the TLS handshake" : stream->error());
  return stream;
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

void AddToEpoll(int ep, int fd, uint32_t index) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
  ev.data.u32 = index;
  if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) DieErrno("epoll_ctl");
}

int HoldIdle(const Options& o, const std::string& request) {
  RaiseFileLimit(o.idle_connections + 64);
  std::string error;
  std::unique_ptr<TlsContext> tls;
  if (o.tls && !(tls = TlsContext::Create(o.tls_ca, /*lean=*/true, &error))) Die(error);
  std::vector<std::unique_ptr<Stream>> streams;
  streams.reserve(static_cast<size_t>(o.idle_connections));
  std::string reply;
  for (int i = 0; i < o.idle_connections; ++i) {
    auto stream = OpenBlocking(o, tls.get());
    for (size_t sent = 0; sent < request.size();) {
      const IoResult r = stream->Write(request.data() + sent, request.size() - sent);
      if (r.status != Io::kOk) Die("send: " + stream->error());
      sent += r.bytes;
    }
    // Wait for the whole reply so the server really did the work.
    char buf[256];
    reply.clear();
    uint64_t values = 0;
    bool failed = false;
    while (ParseReply(o, reply, &values, &failed) == 0) {
      const IoResult r = stream->Read(buf, sizeof buf);
      if (r.status != Io::kOk) Die("recv: " + (stream->error().empty() ? "closed" : stream->error()));
      reply.append(buf, r.bytes);
    }
    streams.push_back(std::move(stream));
  }
  std::printf("ready %d\n", o.idle_connections);
  std::fflush(stdout);
  char c;
  while (::read(0, &c, 1) > 0) {
  }
  return 0;
}

// One slot of the --new-connections run: connect, handshake, one request,
// close, and again, for as long as the run lasts.
class Churn {
 public:
  Churn(const Options& o, const std::string& request, const TlsContext* tls, int epoll_fd, uint32_t index)
      : options_(o), request_(request), tls_(tls), epoll_fd_(epoll_fd), index_(index) {}

  // Starts the next connection; epoll reports it when it is connected.
  void Start(Clock::time_point now) {
    const int fd = ConnectSocket(options_, true);
    if (fd < 0) {
      if (errno == EADDRNOTAVAIL) Die("connect: no local port left (connections in TIME_WAIT)");
      DieErrno("connect");
    }
    stream_ = std::make_unique<Stream>(fd, tls_);
    state_ = State::kConnecting;
    started_ = now;
    sent_ = 0;
    in_.clear();
    AddToEpoll(epoll_fd_, fd, index_);
  }

  // Moves the connection on as far as the socket lets it; a connection that
  // got its reply or failed is counted and replaced.
  void OnReady(Clock::time_point now, bool measuring, Totals* totals) {
    for (;;) {
      switch (state_) {
        case State::kConnecting: {
          // Only a finished connect is reported by epoll: writable or failed.
          int err = 0;
          socklen_t len = sizeof err;
          ::getsockopt(stream_->fd(), SOL_SOCKET, SO_ERROR, &err, &len);
          if (err != 0) return Fail(now, measuring, totals, std::string("connect: ") + std::strerror(err));
          state_ = State::kSending;
          break;
        }
        case State::kSending: {  // Write does the TLS handshake first
          const IoResult r = stream_->Write(request_.data() + sent_, request_.size() - sent_);
          if (r.status == Io::kWouldBlock) return;
          if (r.status != Io::kOk) return Fail(now, measuring, totals, stream_->error());
          sent_ += r.bytes;
          if (sent_ == request_.size()) state_ = State::kReceiving;
          break;
        }
        case State::kReceiving: {
          char buf[4096];
          const IoResult r = stream_->Read(buf, sizeof buf);
          if (r.status == Io::kWouldBlock) return;
          if (r.status != Io::kOk) return Fail(now, measuring, totals, stream_->error());
          in_.append(buf, r.bytes);
          uint64_t values = 0;
          bool error = false;
          if (ParseReply(options_, in_, &values, &error) == 0) break;
          ++totals->all_requests;
          if (measuring) {
            ++totals->requests;
            totals->values += values;
            if (error) ++totals->errors;
            totals->latency.Record(static_cast<uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(now - started_).count()));
          }
          stream_.reset();  // close_notify and close; leaves epoll with the fd
          return Start(now);
        }
      }
    }
  }

  const std::string& first_error() const { return first_error_; }

 private:
  enum class State { kConnecting, kSending, kReceiving };

  void Fail(Clock::time_point now, bool measuring, Totals* totals, const std::string& why) {
    if (measuring) ++totals->errors;
    if (first_error_.empty()) first_error_ = why.empty() ? "closed by the server" : why;
    stream_.reset();
    Start(now);
  }

  const Options& options_;
  const std::string& request_;
  const TlsContext* tls_;
  int epoll_fd_;
  uint32_t index_;
  std::unique_ptr<Stream> stream_;
  State state_ = State::kConnecting;
  Clock::time_point started_;
  size_t sent_ = 0;
  std::string in_;
  std::string first_error_;
};

struct Run {
  Totals totals;
  double seconds = 0;
};

Run RunPipelined(const Options& o, const std::string& request, const TlsContext* tls) {
  RaiseFileLimit(o.connections + 64);
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<std::unique_ptr<Connection>> conns;
  for (int i = 0; i < o.connections; ++i) {  // handshakes before the clock
    auto stream = OpenBlocking(o, tls);
    SetNonBlocking(stream->fd());
    AddToEpoll(ep, stream->fd(), static_cast<uint32_t>(i));
    conns.push_back(std::make_unique<Connection>(std::move(stream), o, request));
  }

  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::duration<double>(o.warmup_s);
  const auto stop_at = measure_from + std::chrono::duration<double>(o.duration_s);
  Run run;
  for (auto& c : conns) {
    c->Fill(start);
    if (!c->Flush()) Die("send failed: " + c->error());
  }

  std::vector<epoll_event> events(static_cast<size_t>(o.connections));
  auto now = Clock::now();
  while (now < stop_at) {
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    if (n < 0 && errno != EINTR) DieErrno("epoll_wait");
    now = Clock::now();
    const bool measuring = now >= measure_from;
    for (int i = 0; i < n; ++i) {
      const epoll_event& ev = events[static_cast<size_t>(i)];
      Connection& c = *conns[ev.data.u32];
      // TLS reads on any readiness: OpenSSL may have waited to write.
      if (c.tls() || (ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        if (!c.Read(now, measuring, &run.totals)) {
          Die("the server closed a connection" + (c.error().empty() ? "" : ": " + c.error()));
        }
        c.Fill(now);
      }
      if (!c.Flush()) Die("send failed: " + c.error());
    }
  }
  run.seconds = std::chrono::duration<double>(now - measure_from).count();
  conns.clear();
  ::close(ep);
  return run;
}

Run RunNewConnections(const Options& o, const std::string& request, const TlsContext* tls) {
  RaiseFileLimit(o.connections + 64);
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  const auto start = Clock::now();
  std::vector<std::unique_ptr<Churn>> slots;
  for (int i = 0; i < o.connections; ++i) {
    slots.push_back(std::make_unique<Churn>(o, request, tls, ep, static_cast<uint32_t>(i)));
    slots.back()->Start(start);
  }
  const auto measure_from = start + std::chrono::duration<double>(o.warmup_s);
  const auto stop_at = measure_from + std::chrono::duration<double>(o.duration_s);
  Run run;
  std::vector<epoll_event> events(static_cast<size_t>(o.connections));
  auto now = Clock::now();
  while (now < stop_at) {
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    if (n < 0 && errno != EINTR) DieErrno("epoll_wait");
    now = Clock::now();
    const bool measuring = now >= measure_from;
    for (int i = 0; i < n; ++i) {
      slots[events[static_cast<size_t>(i)].data.u32]->OnReady(now, measuring, &run.totals);
    }
  }
  run.seconds = std::chrono::duration<double>(now - measure_from).count();
  for (const auto& slot : slots) {
    if (!slot->first_error().empty()) {
      std::fprintf(stderr, "loadgen: first failure: %s\n", slot->first_error().c_str());
      break;
    }
  }
  slots.clear();
  ::close(ep);
  return run;
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    const size_t eq = a.find('=');
    if (!a.starts_with("--") || eq == std::string_view::npos) {
      if (a == "--binary") { o.binary = true; continue; }
      if (a == "--tls") { o.tls = true; continue; }
      if (a == "--new-connections") { o.new_connections = true; continue; }
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
    else if (name == "tls-ca") { o.tls_ca = value; o.tls = true; }
    else Die("unknown option --" + std::string(name));
  }
  if (o.connections < 1 || o.pipeline < 1 || o.keys < 1 || o.duration_s <= 0) Die("bad option values");
  if (o.new_connections && o.pipeline != 1) Die("--new-connections makes one request per connection");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenSSL writes with write(2): a server gone away must be an error, not a signal.
  std::signal(SIGPIPE, SIG_IGN);
  const Options o = ParseArgs(argc, argv);
  const std::string request = BuildRequest(o);
  if (o.idle_connections > 0) return HoldIdle(o, request);

  std::string error;
  std::unique_ptr<TlsContext> tls;
  if (o.tls && !(tls = TlsContext::Create(o.tls_ca, /*lean=*/false, &error))) Die(error);
  const Run run = o.new_connections ? RunNewConnections(o, request, tls.get()) : RunPipelined(o, request, tls.get());
  const Totals& totals = run.totals;
  std::printf(
      "{\"protocol\":\"%s\",\"tls\":%s,\"mode\":\"%s\",\"connections\":%d,\"pipeline\":%d,\"keys\":%d,"
      "\"seconds\":%.3f,\"all_requests\":%llu,\"requests\":%llu,\"requests_per_second\":%.0f,\"values_per_second\":%.0f,"
      "\"errors\":%llu,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f}\n",
      o.binary ? "binary" : "text", o.tls ? "true" : "false", o.new_connections ? "new-connections" : "pipelined",
      o.connections, o.pipeline, o.keys, run.seconds, static_cast<unsigned long long>(totals.all_requests),
      static_cast<unsigned long long>(totals.requests),
      static_cast<double>(totals.requests) / run.seconds, static_cast<double>(totals.values) / run.seconds,
      static_cast<unsigned long long>(totals.errors), totals.latency.PercentileMicros(50),
      totals.latency.PercentileMicros(99), totals.latency.PercentileMicros(99.9));
  // No reply at all is a failed run too (a stalled connection, seen when a
  // TLS read stopped at a record's end with the next record still unread).
  return totals.errors == 0 && totals.requests > 0 ? 0 : 3;
}
