// Status and Result<T>: errors as values for the core and its callers.
//
// A Status is a code (named like gRPC's, so every front can map it to its own
// protocol) plus a message with static storage duration. Keeping the message a
// `const char*` makes Status trivially copyable and free to construct, so the
// ID hot path can return one without allocating. Detail that varies (how far
// the clock went back, ...) belongs in counters and logs, not in the Status.
//
// Thread safety: immutable values; safe to copy anywhere.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

namespace katsubushi {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kFailedPrecondition = 9,
  kOutOfRange = 11,
  kInternal = 13,
  kUnavailable = 14,
};

// The code's name as gRPC spells it ("UNAVAILABLE"), for logs and JSON;
// "UNKNOWN" for a value that is not one of the above.
constexpr std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
  }
  return "UNKNOWN";
}

class Status {
 public:
  constexpr Status() = default;
  // `message` must outlive every copy of the Status: pass a string literal.
  constexpr Status(StatusCode code, const char* message)
      : code_(code), message_(message) {}

  static constexpr Status Ok() { return Status(); }

  constexpr bool ok() const { return code_ == StatusCode::kOk; }
  constexpr StatusCode code() const { return code_; }
  constexpr std::string_view message() const { return message_; }

  friend constexpr bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message() == b.message();
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  const char* message_ = "";
};

// A value or a non-OK Status. Small and trivially copyable for trivial T.
template <typename T>
class Result {
 public:
  constexpr Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  constexpr Result(Status status) : status_(status) {}     // NOLINT: implicit by design

  constexpr bool ok() const { return status_.ok(); }
  constexpr const Status& status() const { return status_; }
  // Precondition: ok().
  constexpr const T& value() const& { return value_; }
  constexpr T& value() & { return value_; }
  constexpr T&& value() && { return std::move(value_); }
  constexpr const T& operator*() const& { return value_; }
  constexpr const T* operator->() const { return &value_; }

 private:
  T value_{};
  Status status_;
};

}  // namespace katsubushi
