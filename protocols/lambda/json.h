// A small JSON reader and string escaper for Lambda events: enough of RFC 8259
// to read what the Runtime API delivers, with limits instead of trust.
// Boost 1.74 (Debian 12) has no Boost.JSON, and PropertyTree loses types and
// throws; this parser returns errors as values and is fuzzed.
//
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace katsubushi::lambda {

// Deeper nesting than this is refused (recursion is bounded by it).
inline constexpr int kMaxJsonDepth = 64;

struct JsonMember;

struct JsonValue {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  std::string text;  // a string's decoded value, or a number's literal text
  std::vector<JsonValue> items;
  std::vector<JsonMember> members;  // in document order

  bool is_null() const { return type == Type::kNull; }
  bool is_string() const { return type == Type::kString; }
  bool is_object() const { return type == Type::kObject; }
  bool is_array() const { return type == Type::kArray; }
  // The first member named `key` of an object; nullptr when absent or not an object.
  const JsonValue* Find(std::string_view key) const;
  // Find(key)'s string, or `fallback` when it is absent or not a string.
  std::string_view StringOr(std::string_view key, std::string_view fallback) const;
};

struct JsonMember {
  std::string name;
  JsonValue value;
};

// Parses a whole document. nullopt on any error, with `*error` saying where.
std::optional<JsonValue> ParseJson(std::string_view input, std::string* error);

// `s` as a JSON string literal, quotes included; control characters escaped.
std::string JsonQuote(std::string_view s);

}  // namespace katsubushi::lambda
