// Uses the installed client library: no server listens on the port, so the
// fetch fails, as a value, with the server's reason. A tls:// server makes
// Open build a TLS context: the installed libraries bring OpenSSL along.
#include <katsubushi/client/client.h>

#include <cstdio>
#include <string>

int main() {
  katsubushi::ClientOptions options;
  options.servers = {"127.0.0.1:1", "unix:/nonexistent/katsubushi.sock", "tls://127.0.0.1:1"};
  options.timeout = std::chrono::milliseconds(500);
  auto opened = katsubushi::Client::Open(options);
  if (!opened.ok()) return 1;
  std::string why;
  katsubushi::Result<uint64_t> id = opened.value()->Fetch(&why);
  if (id.ok() || id.status().code() != katsubushi::StatusCode::kUnavailable) return 2;
  if (why.find("127.0.0.1:1: connect failed") == std::string::npos) return 3;
  std::printf("client ok: %s\n", why.c_str());
  return 0;
}
