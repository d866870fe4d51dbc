#include "katsubushi/status.h"

#include <gtest/gtest.h>

namespace katsubushi {
namespace {

TEST(StatusCodeName, EveryCodeHasGrpcsName) {
  EXPECT_EQ(StatusCodeName(StatusCode::kOk), "OK");
  EXPECT_EQ(StatusCodeName(StatusCode::kInvalidArgument), "INVALID_ARGUMENT");
  EXPECT_EQ(StatusCodeName(StatusCode::kDeadlineExceeded), "DEADLINE_EXCEEDED");
  EXPECT_EQ(StatusCodeName(StatusCode::kFailedPrecondition), "FAILED_PRECONDITION");
  EXPECT_EQ(StatusCodeName(StatusCode::kOutOfRange), "OUT_OF_RANGE");
  EXPECT_EQ(StatusCodeName(StatusCode::kInternal), "INTERNAL");
  EXPECT_EQ(StatusCodeName(StatusCode::kUnavailable), "UNAVAILABLE");
}

TEST(StatusCodeName, AValueOutsideTheEnumIsUnknown) {
  EXPECT_EQ(StatusCodeName(static_cast<StatusCode>(2)), "UNKNOWN");
  EXPECT_EQ(StatusCodeName(static_cast<StatusCode>(-1)), "UNKNOWN");
}

// Usable where the gRPC module sees only the headers: no definition to link.
static_assert(StatusCodeName(StatusCode::kUnavailable) == "UNAVAILABLE");

}  // namespace
}  // namespace katsubushi
