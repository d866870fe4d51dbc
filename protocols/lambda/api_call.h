// One blocking HTTP/1.1 exchange with a Lambda API endpoint (the Runtime API
// and the Extensions API live at the same AWS_LAMBDA_RUNTIME_API host:port),
// shared by RuntimeClient and ExtensionClient. No threads; the call returns
// when the whole reply has been read (event/next is a long poll).
//
// A call can be ended from a signal handler through an ApiInterrupter, so a
// loop waiting in a long poll notices a stop request at once.
#pragma once

#include <atomic>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lambda/event.h"

namespace katsubushi::lambda {

// Bodies the Lambda APIs send us are events (at most kMaxEventBytes) or small
// JSON documents; a reply above this is refused before it is buffered.
inline constexpr size_t kMaxApiReplyBytes = kMaxEventBytes + 1024;

struct ApiEndpoint {
  std::string host;
  std::string port;
  // "host:port" as AWS_LAMBDA_RUNTIME_API gives it (port 80 when absent).
  static ApiEndpoint Parse(std::string_view api);
};

struct ApiRequest;
struct ApiReply;

// Ends the call in progress (and every later one) from a signal handler:
// Interrupt() is async-signal-safe (lock-free atomics and shutdown(2)). The
// socket is published before the request is written and the flag checked
// after, so a signal at any point ends the call instead of being missed.
class ApiInterrupter {
 public:
  void Interrupt() noexcept;
  bool interrupted() const noexcept { return stop_.load(); }

 private:
  friend bool CallApi(const ApiEndpoint&, const ApiRequest&, ApiReply*, std::string*);
  std::atomic<bool> stop_{false};
  std::atomic<int> fd_{-1};
  static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free);
};

struct ApiRequest {
  ApiInterrupter* interrupter = nullptr;  // optional
  bool post = false;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // sent as application/json when post
};

struct ApiReply {
  unsigned status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool interrupted = false;  // the call was ended by its ApiInterrupter

  // The first header named `name` (case-insensitive); empty when absent.
  std::string Header(std::string_view name) const;
};

// False (and *error says why) when the endpoint cannot be reached, the
// exchange fails, or the status is not 2xx (the reply is still filled in).
bool CallApi(const ApiEndpoint& endpoint, const ApiRequest& request, ApiReply* reply,
             std::string* error);

}  // namespace katsubushi::lambda
