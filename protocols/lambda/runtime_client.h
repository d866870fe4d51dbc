// RuntimeClient: the AWS Lambda Runtime API (2018-06-01) from a custom
// runtime, over plain HTTP/1.1 with blocking Beast calls: no threads, no
// signal handlers, as a frozen Lambda environment requires.
//
//   GET  /2018-06-01/runtime/invocation/next           the next event (long poll)
//   POST /2018-06-01/runtime/invocation/{id}/response  the event's result
//   POST /2018-06-01/runtime/invocation/{id}/error     the event failed
//   POST /2018-06-01/runtime/init/error                the function cannot start
//
// Not thread-safe (Lambda hands one event at a time to one loop).
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace katsubushi::lambda {

class RuntimeClient {
 public:
  struct Invocation {
    std::string request_id;  // Lambda-Runtime-Aws-Request-Id
    std::string body;
  };

  // `api` is AWS_LAMBDA_RUNTIME_API: "host:port".
  explicit RuntimeClient(std::string api);
  ~RuntimeClient();
  RuntimeClient(const RuntimeClient&) = delete;
  RuntimeClient& operator=(const RuntimeClient&) = delete;

  // Each returns false (and says why in *error) when the Runtime API could not
  // be reached or did not accept the call.
  bool Next(Invocation* out, std::string* error);
  bool Respond(std::string_view request_id, std::string_view body, std::string* error);
  bool ReportError(std::string_view request_id, std::string_view type, std::string_view message,
                   std::string* error);
  bool ReportInitError(std::string_view type, std::string_view message, std::string* error);

 private:
  struct Reply;
  bool Call(bool post, const std::string& target, std::string_view body, std::string_view error_type,
            Reply* reply, std::string* error);

  std::string host_;
  std::string port_;
};

}  // namespace katsubushi::lambda
