#include "katsubushi/lease/redis_client.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>

#include <charconv>

namespace katsubushi::lease {
namespace {

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

RedisReply Convert(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STRING: out.type = RedisReply::Type::kString; break;
    case REDIS_REPLY_STATUS: out.type = RedisReply::Type::kStatus; break;
    case REDIS_REPLY_ERROR: out.type = RedisReply::Type::kError; break;
    case REDIS_REPLY_INTEGER: out.type = RedisReply::Type::kInteger; break;
    case REDIS_REPLY_ARRAY: out.type = RedisReply::Type::kArray; break;
    default: out.type = RedisReply::Type::kNil; break;
  }
  if (r.str != nullptr) out.str.assign(r.str, r.len);
  out.integer = r.integer;
  for (size_t i = 0; i < r.elements; ++i) out.elements.push_back(Convert(*r.element[i]));
  return out;
}

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 [::1]:6381" -> host and port.
bool ParseRedirect(std::string_view error, std::string* host, uint16_t* port, bool* ask) {
  *ask = error.starts_with("ASK ");
  if (!*ask && !error.starts_with("MOVED ")) return false;
  const size_t space = error.rfind(' ');
  std::string_view address = error.substr(space + 1);
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  std::string_view p = address.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || end != p.data() + p.size() || value == 0 || value > 65535) return false;
  *host = h.empty() ? std::string("127.0.0.1") : std::string(h);
  *port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace

RedisClient::RedisClient(RedisUrl url, RedisTimeouts timeouts)
    : url_(std::move(url)),
      timeouts_(timeouts),
      context_(nullptr, redisFree),
      host_(url_.host),
      port_(url_.port) {}

RedisClient::~RedisClient() = default;

void RedisClient::Disconnect() {
  context_.reset();
  host_ = url_.host;
  port_ = url_.port;
}

RedisClient::ContextPtr RedisClient::Open(const std::string& host, uint16_t port) {
  ContextPtr context(redisConnectWithTimeout(host.c_str(), port, ToTimeval(timeouts_.connect)),
                     redisFree);
  if (!context) {
    error_ = "cannot allocate a Redis context";
    return ContextPtr(nullptr, redisFree);
  }
  if (context->err != 0) {
    error_ = "connect to " + host + ":" + std::to_string(port) + ": " + context->errstr;
    return ContextPtr(nullptr, redisFree);
  }
  redisSetTimeout(context.get(), ToTimeval(timeouts_.command));
  redisEnableKeepAlive(context.get());

  RedisReply reply;
  if (url_.has_password || !url_.username.empty()) {
    const bool ok = url_.username.empty()
                        ? RunOn(context.get(), {"AUTH", url_.password}, &reply)
                        : RunOn(context.get(), {"AUTH", url_.username, url_.password}, &reply);
    if (!ok) return ContextPtr(nullptr, redisFree);
    if (reply.is_error()) {
      error_ = "AUTH: " + reply.str;
      return ContextPtr(nullptr, redisFree);
    }
  }
  if (!url_.cluster && url_.db != 0) {
    if (!RunOn(context.get(), {"SELECT", std::to_string(url_.db)}, &reply)) {
      return ContextPtr(nullptr, redisFree);
    }
    if (reply.is_error()) {
      error_ = "SELECT " + std::to_string(url_.db) + ": " + reply.str;
      return ContextPtr(nullptr, redisFree);
    }
  }
  return context;
}

bool RedisClient::RunOn(redisContext* context, std::initializer_list<std::string_view> args,
                        RedisReply* reply) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto* raw = static_cast<redisReply*>(
      redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data()));
  if (raw == nullptr) {
    error_ = context->err != 0 ? context->errstr : "no reply";
    if (error_.empty() || error_ == "Resource temporarily unavailable") {
      error_ = "timed out waiting for Redis";
    }
    return false;
  }
  *reply = Convert(*raw);
  freeReplyObject(raw);
  return true;
}

bool RedisClient::Run(std::initializer_list<std::string_view> args, RedisReply* reply) {
  for (int attempt = 0; attempt <= kMaxRedirects; ++attempt) {
    if (!context_) {
      context_ = Open(host_, port_);
      if (!context_) {
        host_ = url_.host;  // start over from the configured node
        port_ = url_.port;
        return false;
      }
    }
    if (!RunOn(context_.get(), args, reply)) {
      Disconnect();
      return false;
    }
    std::string host;
    uint16_t port = 0;
    bool ask = false;
    if (!url_.cluster || !reply->is_error() || !ParseRedirect(reply->str, &host, &port, &ask)) {
      return true;
    }
    if (ask) {
      // One command on the importing node, preceded by ASKING; the slot's
      // owner stays where it was.
      ContextPtr target = Open(host, port);
      if (!target) return false;
      RedisReply asking;
      if (!RunOn(target.get(), {"ASKING"}, &asking)) return false;
      return RunOn(target.get(), args, reply);
    }
    context_ = Open(host, port);
    host_ = host;
    port_ = port;
    if (!context_) return false;
  }
  error_ = "too many cluster redirects";
  return false;
}

bool RedisClient::Listen(std::string_view channel, std::chrono::milliseconds duration,
                         const std::function<void(std::string_view)>& on_message,
                         const std::function<bool()>& keep_going) {
  ContextPtr context = Open(url_.host, url_.port);
  if (!context) return false;
  RedisReply reply;
  if (!RunOn(context.get(), {"SUBSCRIBE", channel}, &reply)) return false;
  if (reply.is_error()) {
    error_ = "SUBSCRIBE: " + reply.str;
    return false;
  }
  // A read timeout would break a hiredis context, so wait with poll() and
  // read only what has arrived.
  const auto deadline = std::chrono::steady_clock::now() + duration;
  while (keep_going()) {
    void* raw = nullptr;
    if (redisGetReplyFromReader(context.get(), &raw) != REDIS_OK) break;
    if (raw != nullptr) {
      RedisReply message = Convert(*static_cast<redisReply*>(raw));
      freeReplyObject(raw);
      if (message.type == RedisReply::Type::kArray && message.elements.size() == 3 &&
          message.elements[0].str == "message") {
        on_message(message.elements[2].str);
      }
      continue;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{context->fd, POLLIN, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(std::min(left, kListenSlice).count()));
    if (ready < 0 && errno != EINTR) break;
    if (ready > 0 && redisBufferRead(context.get()) != REDIS_OK) break;
  }
  return true;
}

}  // namespace katsubushi::lease
