// One blocking HTTP/1.1 exchange with a Lambda API endpoint (the Runtime API
// and the Extensions API live at the same AWS_LAMBDA_RUNTIME_API host:port),
// shared by RuntimeClient and ExtensionClient. No threads; the call returns
// when the whole reply has been read (event/next is a long poll).
//
// A call interrupted by a signal (EINTR, with a handler installed without
// SA_RESTART) fails with `interrupted` set, so a loop can notice a stop
// request while it waits.
#pragma once

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

struct ApiRequest {
  bool post = false;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // sent as application/json when post
};

struct ApiReply {
  unsigned status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool interrupted = false;  // the call failed because a signal interrupted it

  // The first header named `name` (case-insensitive); empty when absent.
  std::string Header(std::string_view name) const;
};

// False (and *error says why) when the endpoint cannot be reached, the
// exchange fails, or the status is not 2xx (the reply is still filled in).
bool CallApi(const ApiEndpoint& endpoint, const ApiRequest& request, ApiReply* reply,
             std::string* error);

}  // namespace katsubushi::lambda
