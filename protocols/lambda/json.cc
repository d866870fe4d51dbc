#include "lambda/json.h"

namespace katsubushi::lambda {
namespace {

// Thrown by the parser callback to stop at the nesting limit; caught below.
struct TooDeep {};

}  // namespace

std::optional<Json> ParseJson(std::string_view input, std::string* error) {
  const Json::parser_callback_t limit_depth = [](int depth, Json::parse_event_t event, Json&) {
    const bool opens = event == Json::parse_event_t::object_start ||
                       event == Json::parse_event_t::array_start;
    if (opens && depth >= kMaxJsonDepth) throw TooDeep{};
    return true;
  };
  try {
    return Json::parse(input.begin(), input.end(), limit_depth);
  } catch (const TooDeep&) {
    *error = "JSON nested too deeply (more than " + std::to_string(kMaxJsonDepth) + " levels)";
  } catch (const Json::parse_error& e) {
    // e.what() repeats the offset in nlohmann's own words; keep ours first.
    *error = "invalid JSON at offset " + std::to_string(e.byte) + ": " + e.what();
  } catch (const std::exception& e) {
    *error = std::string("invalid JSON: ") + e.what();
  }
  return std::nullopt;
}

const Json* FindMember(const Json& value, std::string_view key) {
  if (!value.is_object()) return nullptr;
  const auto it = value.find(key);
  return it == value.end() ? nullptr : &*it;
}

std::string_view StringMember(const Json& value, std::string_view key, std::string_view fallback) {
  const Json* member = FindMember(value, key);
  return member != nullptr && member->is_string() ? std::string_view(member->get_ref<const std::string&>())
                                                  : fallback;
}

std::string DumpJson(const OrderedJson& value) {
  return value.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
}

}  // namespace katsubushi::lambda
