// JSON for the Lambda fronts (Runtime API events, Extensions API bodies), on
// nlohmann/json (Debian's nlohmann-json3-dev): parsing with a nesting limit
// and errors as values, lookups that never throw, and compact writing that
// never throws either (bytes that are not UTF-8 become U+FFFD).
//
// nlohmann/json reports errors by exception; they are caught here and never
// leave these functions. Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace katsubushi::lambda {

using Json = nlohmann::json;
// For documents we write: members stay in the order they were added.
using OrderedJson = nlohmann::ordered_json;

// Deeper nesting than this is refused (the parser keeps a stack per level).
inline constexpr int kMaxJsonDepth = 64;

// Parses a whole document (RFC 8259, UTF-8). nullopt on any error, with
// `*error` saying what and at which byte offset. A repeated member name keeps
// the last value.
std::optional<Json> ParseJson(std::string_view input, std::string* error);

// The member `key` of an object; nullptr when absent or `value` is no object.
const Json* FindMember(const Json& value, std::string_view key);

// The string member `key`, or `fallback` when absent or not a string.
std::string_view StringMember(const Json& value, std::string_view key, std::string_view fallback);

// Compact text of `value`; never throws (invalid UTF-8 is replaced by U+FFFD).
std::string DumpJson(const OrderedJson& value);

}  // namespace katsubushi::lambda
