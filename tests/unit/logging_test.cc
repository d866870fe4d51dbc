#include "logging.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include "lambda/json.h"

namespace katsubushi {
namespace {

std::string Escaped(std::string_view text) {
  std::string out;
  AppendJsonEscaped(text, &out);
  return out;
}

TEST(JsonLogTest, EscapesWhatWouldEndOrForgeTheString) {
  EXPECT_EQ(Escaped(R"(ERR "x" \ y)"), R"(ERR \"x\" \\ y)");
  EXPECT_EQ(Escaped("a\nb\rc\td"), R"(a\nb\rc\td)");
  EXPECT_EQ(Escaped(std::string("\0\x01\x1f\x7f", 4)), R"(\u0000\u0001\u001f\u007f)");
  EXPECT_EQ(Escaped(R"(","level":"error)"), R"(\",\"level\":\"error)");
}

TEST(JsonLogTest, KeepsValidUtf8AndReplacesEveryInvalidByte) {
  EXPECT_EQ(Escaped("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x8D\xA3"), "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x8D\xA3");
  EXPECT_EQ(Escaped("\xFF"), R"(\ufffd)");
  EXPECT_EQ(Escaped("a\xC3"), R"(a\ufffd)");                 // truncated sequence
  EXPECT_EQ(Escaped("\xC0\xAF"), R"(\ufffd\ufffd)");         // overlong '/'
  EXPECT_EQ(Escaped("\xED\xA0\x80"), R"(\ufffd\ufffd\ufffd)");  // a surrogate
  EXPECT_EQ(Escaped("\xF4\x90\x80\x80"), R"(\ufffd\ufffd\ufffd\ufffd)");  // above U+10FFFF
  EXPECT_EQ(Escaped("\x80\"x"), R"(\ufffd\"x)");
}

// Every byte string, logged through the JSON formatter, is one line that
// parses as a JSON object whose message is the input (valid UTF-8 kept).
TEST(JsonLogTest, FormatterLinesParseWhateverTheMessage) {
  std::ostringstream sink_out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(sink_out);
  spdlog::logger logger("katsubushi", sink);
  logger.set_formatter(NewJsonFormatter());
  const std::string hostile[] = {
      "plain",
      "quote \" backslash \\ newline \n tab \t cr \r",
      std::string("nul ") + '\0' + " bell \x07 esc \x1b del \x7f",
      "redis: -ERR \xff\xfe invalid utf-8 \xc3",
      "}\n{\"level\":\"error\",\"message\":\"forged\"}",
  };
  for (const std::string& message : hostile) logger.info("{}", message);

  std::istringstream lines(sink_out.str());
  std::string line;
  size_t count = 0;
  while (std::getline(lines, line)) {
    std::string error;
    const auto value = lambda::ParseJson(line, &error);
    ASSERT_TRUE(value && value->is_object()) << line << ": " << error;
    EXPECT_EQ(lambda::StringMember(*value, "level", ""), "info");
    EXPECT_EQ(lambda::StringMember(*value, "logger", ""), "katsubushi");
    ASSERT_LT(count, std::size(hostile));
    std::string expected = hostile[count];
    if (count == 3) expected = "redis: -ERR \uFFFD\uFFFD invalid utf-8 \uFFFD";  // U+FFFD each
    EXPECT_EQ(lambda::StringMember(*value, "message", ""), expected);
    ++count;
  }
  EXPECT_EQ(count, std::size(hostile));
}

}  // namespace
}  // namespace katsubushi
