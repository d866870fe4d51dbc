#include "lambda/extension_client.h"

#include "lambda/json.h"

namespace katsubushi::lambda {
namespace {

constexpr std::string_view kBase = "/2020-01-01/extension";
constexpr std::string_view kIdentifierHeader = "Lambda-Extension-Identifier";

}  // namespace

std::optional<ExtensionEvent> DecodeExtensionEvent(std::string_view json, std::string* error) {
  std::optional<Json> doc = ParseJson(json, error);
  if (!doc) return std::nullopt;
  ExtensionEvent event;
  const std::string_view type = StringMember(*doc, "eventType", "");
  if (type == "INVOKE") {
    event.type = ExtensionEvent::Type::kInvoke;
  } else if (type == "SHUTDOWN") {
    event.type = ExtensionEvent::Type::kShutdown;
  } else {
    *error = "not an INVOKE or SHUTDOWN event: eventType \"" + std::string(type.substr(0, 64)) + "\"";
    return std::nullopt;
  }
  if (const Json* deadline = FindMember(*doc, "deadlineMs");
      deadline != nullptr && deadline->is_number_integer()) {
    event.deadline_ms = deadline->get<int64_t>();
  }
  event.request_id = StringMember(*doc, "requestId", "");
  event.shutdown_reason = StringMember(*doc, "shutdownReason", "");
  return event;
}

ExtensionClient::ExtensionClient(std::string_view api) : endpoint_(ApiEndpoint::Parse(api)) {}

bool ExtensionClient::Register(std::string_view name, std::string* error) {
  ApiRequest request;
  request.post = true;
  request.target = std::string(kBase) + "/register";
  request.headers.emplace_back("Lambda-Extension-Name", std::string(name));
  OrderedJson body = OrderedJson::object();
  body["events"] = {"INVOKE", "SHUTDOWN"};
  request.body = DumpJson(body);
  ApiReply reply;
  if (!CallApi(endpoint_, request, &reply, error)) return false;
  identifier_ = reply.Header(kIdentifierHeader);
  if (identifier_.empty()) {
    *error = "the Extensions API registered us without a Lambda-Extension-Identifier";
    return false;
  }
  return true;
}

bool ExtensionClient::Next(ExtensionEvent* out, std::string* error) {
  ApiRequest request;
  request.target = std::string(kBase) + "/event/next";
  request.headers.emplace_back(std::string(kIdentifierHeader), identifier_);
  ApiReply reply;
  if (!CallApi(endpoint_, request, &reply, error)) return false;
  std::optional<ExtensionEvent> event = DecodeExtensionEvent(reply.body, error);
  if (!event) return false;
  *out = std::move(*event);
  return true;
}

bool ExtensionClient::ReportError(std::string_view path, std::string_view reason,
                                  std::string_view message, std::string* error) {
  const std::string type = "Extension." + std::string(reason);
  ApiRequest request;
  request.post = true;
  request.target = std::string(kBase) + std::string(path);
  request.headers.emplace_back(std::string(kIdentifierHeader), identifier_);
  request.headers.emplace_back("Lambda-Extension-Function-Error-Type", type);
  OrderedJson body = OrderedJson::object();
  body["errorMessage"] = std::string(message);
  body["errorType"] = type;
  body["stackTrace"] = OrderedJson::array();
  request.body = DumpJson(body);
  ApiReply reply;
  return CallApi(endpoint_, request, &reply, error);
}

bool ExtensionClient::ReportInitError(std::string_view reason, std::string_view message,
                                      std::string* error) {
  return ReportError("/init/error", reason, message, error);
}

bool ExtensionClient::ReportExitError(std::string_view reason, std::string_view message,
                                      std::string* error) {
  return ReportError("/exit/error", reason, message, error);
}

}  // namespace katsubushi::lambda
