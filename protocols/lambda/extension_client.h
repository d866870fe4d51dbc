// ExtensionClient: the AWS Lambda Extensions API (2020-01-01) for an external
// extension, over plain HTTP/1.1 with blocking calls (CallApi).
//
//   POST /2020-01-01/extension/register     Lambda-Extension-Name: <file name>
//        {"events":["INVOKE","SHUTDOWN"]}   -> Lambda-Extension-Identifier
//   GET  /2020-01-01/extension/event/next   (long poll; the environment is
//        frozen while every extension and the runtime wait here)
//   POST /2020-01-01/extension/init/error   before the first event/next
//   POST /2020-01-01/extension/exit/error   a fatal error later
// The calls after register carry Lambda-Extension-Identifier; the error
// calls carry Lambda-Extension-Function-Error-Type: Extension.<Reason>.
//
// Not thread-safe (one event loop).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "lambda/api_call.h"

namespace katsubushi::lambda {

struct ExtensionEvent {
  enum class Type { kInvoke, kShutdown };
  Type type = Type::kInvoke;
  int64_t deadline_ms = 0;       // Unix ms by which the event must be handled
  std::string request_id;        // INVOKE
  std::string shutdown_reason;   // SHUTDOWN: spindown, timeout, failure
};

// Decodes an event/next body. Pure; nullopt (and *error) when it is not one.
std::optional<ExtensionEvent> DecodeExtensionEvent(std::string_view json, std::string* error);

class ExtensionClient {
 public:
  // `api` is AWS_LAMBDA_RUNTIME_API: "host:port".
  explicit ExtensionClient(std::string_view api);
  ExtensionClient(const ExtensionClient&) = delete;
  ExtensionClient& operator=(const ExtensionClient&) = delete;

  // Registers for INVOKE and SHUTDOWN under `name` (the executable's file
  // name, as Lambda requires) and keeps the identifier for the other calls.
  bool Register(std::string_view name, std::string* error);
  bool Next(ExtensionEvent* out, std::string* error);
  // `reason` becomes the error type "Extension.<reason>".
  bool ReportInitError(std::string_view reason, std::string_view message, std::string* error);
  bool ReportExitError(std::string_view reason, std::string_view message, std::string* error);

  const std::string& identifier() const { return identifier_; }

 private:
  bool ReportError(std::string_view path, std::string_view reason, std::string_view message,
                   std::string* error);

  ApiEndpoint endpoint_;
  std::string identifier_;
};

}  // namespace katsubushi::lambda
