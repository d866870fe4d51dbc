#include "lambda/runtime_client.h"

#include "lambda/json.h"

namespace katsubushi::lambda {
namespace {

constexpr std::string_view kBase = "/2018-06-01/runtime";

std::string ErrorJson(std::string_view type, std::string_view message) {
  OrderedJson body = OrderedJson::object();
  body["errorMessage"] = std::string(message);
  body["errorType"] = std::string(type);
  return DumpJson(body);
}

ApiRequest Post(std::string target, std::string body, std::string_view error_type = {}) {
  ApiRequest request;
  request.post = true;
  request.target = std::move(target);
  request.body = std::move(body);
  if (!error_type.empty()) {
    request.headers.emplace_back("Lambda-Runtime-Function-Error-Type", std::string(error_type));
  }
  return request;
}

}  // namespace

RuntimeClient::RuntimeClient(std::string_view api) : endpoint_(ApiEndpoint::Parse(api)) {}

bool RuntimeClient::Next(Invocation* out, std::string* error, ApiInterrupter* interrupter) {
  ApiRequest request;
  request.interrupter = interrupter;
  request.target = std::string(kBase) + "/invocation/next";
  ApiReply reply;
  if (!CallApi(endpoint_, request, &reply, error)) {
    out->interrupted = reply.interrupted;
    return false;
  }
  out->request_id = reply.Header("Lambda-Runtime-Aws-Request-Id");
  if (out->request_id.empty()) {
    *error = "Lambda Runtime API gave an event without Lambda-Runtime-Aws-Request-Id";
    return false;
  }
  out->body = std::move(reply.body);
  return true;
}

bool RuntimeClient::Respond(std::string_view request_id, std::string_view body, std::string* error) {
  ApiReply reply;
  return CallApi(endpoint_,
                 Post(std::string(kBase) + "/invocation/" + std::string(request_id) + "/response",
                      std::string(body)),
                 &reply, error);
}

bool RuntimeClient::ReportError(std::string_view request_id, std::string_view type,
                                std::string_view message, std::string* error) {
  ApiReply reply;
  return CallApi(endpoint_,
                 Post(std::string(kBase) + "/invocation/" + std::string(request_id) + "/error",
                      ErrorJson(type, message), type),
                 &reply, error);
}

bool RuntimeClient::ReportInitError(std::string_view type, std::string_view message,
                                    std::string* error) {
  ApiReply reply;
  return CallApi(endpoint_, Post(std::string(kBase) + "/init/error", ErrorJson(type, message), type),
                 &reply, error);
}

}  // namespace katsubushi::lambda
