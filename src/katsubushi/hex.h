// One hexadecimal digit's value, for the percent-decoding of URLs (HTTP
// query strings, Redis URLs): one definition for every parser that needs it.
#pragma once

namespace katsubushi {

// 0..15 for 0-9, a-f, A-F; -1 for any other character.
constexpr int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace katsubushi
