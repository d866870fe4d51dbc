// The Lambda JSON reader and event codec, byte for byte.
#include <gtest/gtest.h>

#include "lambda/event.h"
#include "lambda/extension_client.h"
#include "lambda/json.h"

namespace katsubushi::lambda {
namespace {

TEST(JsonTest, ValuesEscapesAndLookups) {
  std::string error;
  auto v = ParseJson(R"( {"a": [1, -2.5e3, true, false, null], "s": "\u00e9\ud83d\ude00\n\"", "a": 2} )", &error);
  ASSERT_TRUE(v.has_value()) << error;
  ASSERT_TRUE(v->is_object());
  const Json* a = FindMember(*v, "a");  // a repeated name keeps the last value
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(*a, 2);
  EXPECT_EQ(StringMember(*v, "s", ""), "\xc3\xa9\xf0\x9f\x98\x80\n\"");
  EXPECT_EQ(StringMember(*v, "missing", "fallback"), "fallback");
  EXPECT_EQ(StringMember(*v, "a", "not a string"), "not a string");
  EXPECT_EQ(FindMember(Json::array(), "a"), nullptr);  // not an object: no member, no throw
}

TEST(JsonTest, ErrorsSayWhere) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "\"\\x\"", "\"\\ud800\"", "01x", "tru",
                          "\"a\nb\"", "{} extra", "-", "1.", "\"\xff\""}) {
    std::string error;
    EXPECT_FALSE(ParseJson(bad, &error).has_value()) << bad;
    EXPECT_NE(error.find("at offset"), std::string::npos) << bad;
  }
  std::string error;
  EXPECT_FALSE(ParseJson(std::string(kMaxJsonDepth + 1, '['), &error).has_value());
  EXPECT_NE(error.find("deeply"), std::string::npos);
  EXPECT_FALSE(ParseJson(std::string(1'000'000, '['), &error).has_value());
  EXPECT_NE(error.find("deeply"), std::string::npos);
  EXPECT_TRUE(ParseJson(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']'), &error));
}

TEST(JsonTest, DumpRoundTripsUtf8AndReplacesTheRest) {
  std::string ascii;
  for (int c = 0; c < 128; ++c) ascii.push_back(static_cast<char>(c));
  const std::string text = ascii + "\xc3\xa9\xf0\x9f\x98\x80";
  std::string error;
  auto v = ParseJson(DumpJson(OrderedJson(text)), &error);
  ASSERT_TRUE(v.has_value()) << error;
  EXPECT_EQ(v->get<std::string>(), text);
  // Not UTF-8: still valid JSON, with U+FFFD in place of the bad byte.
  v = ParseJson(DumpJson(OrderedJson(std::string("a\xff" "b"))), &error);
  ASSERT_TRUE(v.has_value()) << error;
  EXPECT_EQ(v->get<std::string>(), "a\xef\xbf\xbd" "b");
}

TEST(LambdaEventTest, ApiGatewayV1ReencodesDecodedQueryValues) {
  std::string error;
  auto e = DecodeHttpEvent(R"({"httpMethod":"GET","path":"/ids","queryStringParameters":{"n":"3","q":"a b&c"},
      "multiValueQueryStringParameters":null,"headers":{"Accept":"application/json"},"body":null,
      "requestContext":{"stage":"prod"}})", &error);
  ASSERT_TRUE(e.has_value()) << error;
  EXPECT_EQ(e->shape, HttpEvent::Shape::kApiGatewayV1);
  EXPECT_EQ(e->Target(), "/ids?n=3&q=a%20b%26c");
  EXPECT_EQ(e->headers, (HeaderList{{"Accept", "application/json"}}));
  EXPECT_FALSE(e->multi_value);
}

TEST(LambdaEventTest, AlbQueryValuesPassThroughStillEncoded) {
  std::string error;
  auto e = DecodeHttpEvent(R"({"requestContext":{"elb":{}},"httpMethod":"GET","path":"/ids",
      "multiValueQueryStringParameters":{"n":["%32"],"x":["a%20b","c"]},
      "multiValueHeaders":{"accept":["text/plain"]},"body":"","isBase64Encoded":false})", &error);
  ASSERT_TRUE(e.has_value()) << error;
  EXPECT_EQ(e->shape, HttpEvent::Shape::kAlb);
  EXPECT_EQ(e->query, "n=%32&x=a%20b&x=c");
  EXPECT_TRUE(e->multi_value);
  HttpReply reply{503, "Service Unavailable", {{"Content-Type", "text/plain"}}, "no worker id\n"};
  EXPECT_EQ(EncodeHttpReply(*e, reply),
            R"({"statusCode":503,"statusDescription":"503 Service Unavailable",)"
            R"("multiValueHeaders":{"Content-Type":["text/plain"]},"body":"no worker id\n","isBase64Encoded":false})");
}

TEST(LambdaEventTest, HttpApiV2UsesTheRawQueryCookiesAndBase64) {
  std::string error;
  auto e = DecodeHttpEvent(R"({"version":"2.0","rawPath":"/decode","rawQueryString":"id=1&x=%41",
      "cookies":["a=1","b=2"],"headers":{"accept":"*/*"},"requestContext":{"http":{"method":"GET"}},
      "body":"aGk=","isBase64Encoded":true})", &error);
  ASSERT_TRUE(e.has_value()) << error;
  EXPECT_EQ(e->shape, HttpEvent::Shape::kHttpApiV2);
  EXPECT_EQ(e->method, "GET");
  EXPECT_EQ(e->Target(), "/decode?id=1&x=%41");
  EXPECT_EQ(e->body, "hi");
  EXPECT_EQ(e->headers.back(), (std::pair<std::string, std::string>{"cookie", "a=1; b=2"}));
  HttpReply reply{200, "OK", {{"Content-Type", "text/plain"}}, "1\n"};
  EXPECT_EQ(EncodeHttpReply(*e, reply),
            R"({"statusCode":200,"headers":{"Content-Type":"text/plain"},"body":"1\n","isBase64Encoded":false})");
}

TEST(LambdaEventTest, RefusesWhatIsNotAnHttpEvent) {
  for (const char* bad : {R"([])", R"({"Records":[]})", R"({"httpMethod":"GET"})",
                          R"({"version":"2.0","rawPath":"x","requestContext":{"http":{"method":"GET"}}})",
                          R"({"httpMethod":"GET","path":"/id","body":"***","isBase64Encoded":true})"}) {
    std::string error;
    EXPECT_FALSE(DecodeHttpEvent(bad, &error).has_value()) << bad;
    EXPECT_FALSE(error.empty());
  }
  std::string error;
  EXPECT_FALSE(DecodeHttpEvent(std::string(kMaxEventBytes + 1, ' '), &error).has_value());
}

TEST(LambdaEventTest, Base64AndUrlEncoding) {
  EXPECT_EQ(Base64Decode("aGVsbG8gd29ybGQ="), "hello world");
  EXPECT_EQ(Base64Decode("aGVsbG8gd29ybGQ"), "hello world");
  EXPECT_EQ(Base64Decode("-_8="), std::string("\xfb\xff", 2));
  EXPECT_FALSE(Base64Decode("a").has_value());
  EXPECT_FALSE(Base64Decode("a!==").has_value());
  EXPECT_EQ(UrlEncode("a-z_0.9~ /?é"), "a-z_0.9~%20%2F%3F%C3%A9");
}

TEST(ExtensionEventTest, InvokeAndShutdownAsAwsSendsThem) {
  std::string error;
  auto invoke = DecodeExtensionEvent(R"({"eventType":"INVOKE","deadlineMs":1596036820000,
      "requestId":"3da1f2dc-3222-475e-9205-e2e6c6318895",
      "invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:f",
      "tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-5f35ae12-0c0fec141ab77a00bc047aa2"}})", &error);
  ASSERT_TRUE(invoke.has_value()) << error;
  EXPECT_EQ(invoke->type, ExtensionEvent::Type::kInvoke);
  EXPECT_EQ(invoke->deadline_ms, 1596036820000);
  EXPECT_EQ(invoke->request_id, "3da1f2dc-3222-475e-9205-e2e6c6318895");
  auto shutdown = DecodeExtensionEvent(
      R"({"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":1596036822000})", &error);
  ASSERT_TRUE(shutdown.has_value()) << error;
  EXPECT_EQ(shutdown->type, ExtensionEvent::Type::kShutdown);
  EXPECT_EQ(shutdown->shutdown_reason, "spindown");
  EXPECT_EQ(shutdown->deadline_ms, 1596036822000);
  for (const char* bad : {R"({"eventType":"RESTORE"})", R"([])", "{", R"({"deadlineMs":1})"}) {
    EXPECT_FALSE(DecodeExtensionEvent(bad, &error).has_value()) << bad;
    EXPECT_FALSE(error.empty());
  }
}

}  // namespace
}  // namespace katsubushi::lambda
