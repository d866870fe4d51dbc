// Lambda event decoding: any bytes as a Runtime API event body. Invariants
// beyond "no crash": a decoded event's body is no larger than the input;
// its path starts with '/'; the reply we would send for it is valid JSON
// that parses back to the same status and body; and any bytes written as a
// JSON string parse back: to themselves when they are UTF-8. The Extensions
// API event decoder gets the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lambda/event.h"
#include "lambda/extension_client.h"
#include "lambda/json.h"

using katsubushi::lambda::DecodeHttpEvent;
using katsubushi::lambda::EncodeHttpReply;
using katsubushi::lambda::HttpReply;
using katsubushi::lambda::DumpJson;
using katsubushi::lambda::FindMember;
using katsubushi::lambda::Json;
using katsubushi::lambda::OrderedJson;
using katsubushi::lambda::ParseJson;
using katsubushi::lambda::StringMember;

// nlohmann's strict writer is the UTF-8 check (it throws on anything else).
static bool IsUtf8(std::string_view s) {
  try {
    (void)Json(std::string(s)).dump();
    return true;
  } catch (const Json::type_error&) {
    return false;
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string error;

  // Writing any bytes gives a JSON string that parses, back to themselves
  // when they are UTF-8.
  std::optional<Json> quoted = ParseJson(DumpJson(OrderedJson(std::string(input))), &error);
  if (!quoted || !quoted->is_string()) std::abort();
  if (IsUtf8(input) && quoted->get_ref<const std::string&>() != input) std::abort();

  // The same bytes as an Extensions API event: refused with a reason, or an
  // INVOKE/SHUTDOWN.
  error.clear();
  if (!katsubushi::lambda::DecodeExtensionEvent(input, &error) && error.empty()) std::abort();

  error.clear();
  std::optional<katsubushi::lambda::HttpEvent> event = DecodeHttpEvent(input, &error);
  if (!event) {
    if (error.empty()) std::abort();  // every refusal says why
    return 0;
  }
  if (event->body.size() > size || event->path.empty() || event->path.front() != '/') std::abort();

  HttpReply reply;
  reply.status = 200;
  reply.reason = "OK";
  reply.headers = event->headers;  // arbitrary names and values, echoed
  reply.body = event->body;
  std::optional<Json> encoded = ParseJson(EncodeHttpReply(*event, reply), &error);
  if (!encoded || !encoded->is_object()) std::abort();
  const Json* status = FindMember(*encoded, "statusCode");
  if (status == nullptr || *status != 200) std::abort();
  if (IsUtf8(event->body) && StringMember(*encoded, "body", "\x01") != event->body) std::abort();
  return 0;
}
