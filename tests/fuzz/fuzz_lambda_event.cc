// Lambda event decoding: any bytes as a Runtime API event body. Invariants
// beyond "no crash": a decoded event's body is no larger than the input;
// its path starts with '/'; the reply we would send for it is valid JSON
// that parses back to the same status and body; and every JSON document that
// parses re-parses identically after quoting a string.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "lambda/event.h"
#include "lambda/json.h"

using katsubushi::lambda::DecodeHttpEvent;
using katsubushi::lambda::EncodeHttpReply;
using katsubushi::lambda::HttpReply;
using katsubushi::lambda::JsonQuote;
using katsubushi::lambda::JsonValue;
using katsubushi::lambda::ParseJson;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string error;

  // Quoting any bytes gives a JSON string that decodes back to them.
  std::optional<JsonValue> quoted = ParseJson(JsonQuote(input), &error);
  if (!quoted || !quoted->is_string() || quoted->text != input) std::abort();

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
  std::optional<JsonValue> encoded = ParseJson(EncodeHttpReply(*event, reply), &error);
  if (!encoded || !encoded->is_object()) std::abort();
  const JsonValue* status = encoded->Find("statusCode");
  if (status == nullptr || status->text != "200") std::abort();
  if (encoded->StringOr("body", "\x01") != event->body) std::abort();
  return 0;
}
