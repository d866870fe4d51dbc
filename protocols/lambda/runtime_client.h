// RuntimeClient: the AWS Lambda Runtime API (2018-06-01) from a custom
// runtime, over plain HTTP/1.1 with blocking calls (CallApi): no threads, as
// a frozen Lambda environment requires.
//
//   GET  /2018-06-01/runtime/invocation/next           the next event (long poll)
//   POST /2018-06-01/runtime/invocation/{id}/response  the event's result
//   POST /2018-06-01/runtime/invocation/{id}/error     the event failed
//   POST /2018-06-01/runtime/init/error                the function cannot start
//
// Not thread-safe (Lambda hands one event at a time to one loop).
#pragma once

#include <string>
#include <string_view>

#include "lambda/api_call.h"

namespace katsubushi::lambda {

class RuntimeClient {
 public:
  struct Invocation {
    std::string request_id;  // Lambda-Runtime-Aws-Request-Id
    std::string body;
    bool interrupted = false;  // Next() was ended by the interrupter
  };

  // `api` is AWS_LAMBDA_RUNTIME_API: "host:port".
  explicit RuntimeClient(std::string_view api);
  RuntimeClient(const RuntimeClient&) = delete;
  RuntimeClient& operator=(const RuntimeClient&) = delete;

  // Each returns false (and says why in *error) when the Runtime API could not
  // be reached or did not accept the call.
  // `interrupter` (optional, not owned) can end the wait for the next event.
  bool Next(Invocation* out, std::string* error, ApiInterrupter* interrupter = nullptr);
  bool Respond(std::string_view request_id, std::string_view body, std::string* error);
  bool ReportError(std::string_view request_id, std::string_view type, std::string_view message,
                   std::string* error);
  bool ReportInitError(std::string_view type, std::string_view message, std::string* error);

 private:
  ApiEndpoint endpoint_;
};

}  // namespace katsubushi::lambda
