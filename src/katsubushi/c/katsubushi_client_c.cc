// The C ABI over katsubushi::Client (kb_client_*). Every entry point catches
// everything: no exception crosses into C.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <span>
#include <string>

#include "katsubushi/c/c_abi_errors.h"
#include "katsubushi/c/katsubushi.h"
#include "katsubushi/client/client.h"

struct kb_client {
  std::unique_ptr<katsubushi::Client> impl;
};

namespace {

using katsubushi::c_abi::Fail;
using katsubushi::c_abi::Guard;

// The client's failures: a caller's mistake, or no server gave IDs.
kb_status FromStatus(const katsubushi::Status& s, const std::string& why) {
  if (s.ok()) return KB_OK;
  const std::string detail = why.empty() ? std::string(s.message()) : why;
  switch (s.code()) {
    case katsubushi::StatusCode::kInvalidArgument: return Fail(KB_INVALID_ARGUMENT, detail);
    case katsubushi::StatusCode::kUnavailable:
    case katsubushi::StatusCode::kDeadlineExceeded: return Fail(KB_UNAVAILABLE, detail);
    default: return Fail(KB_INTERNAL, detail);
  }
}

}  // namespace

extern "C" {

void kb_client_config_init(kb_client_config* config) {
  if (config == nullptr) return;
  std::memset(config, 0, sizeof(*config));
  config->struct_size = sizeof(kb_client_config);
}

kb_status kb_client_open(const kb_client_config* config, kb_client** out) {
  return Guard([&] {
    if (config == nullptr || out == nullptr) return Fail(KB_INVALID_ARGUMENT, "null argument");
    *out = nullptr;
    // The fields the caller's struct_size covers; defaults for the rest.
    kb_client_config c;
    kb_client_config_init(&c);
    if (config->struct_size < offsetof(kb_client_config, server_count) + sizeof(size_t)) {
      return Fail(KB_INVALID_ARGUMENT, "config.struct_size is too small");
    }
    std::memcpy(reinterpret_cast<char*>(&c) + sizeof(size_t),
                reinterpret_cast<const char*>(config) + sizeof(size_t),
                std::min(config->struct_size, sizeof(kb_client_config)) - sizeof(size_t));
    if (c.servers == nullptr && c.server_count != 0) return Fail(KB_INVALID_ARGUMENT, "null servers");
    katsubushi::ClientOptions options;
    for (size_t i = 0; i < c.server_count; ++i) {
      if (c.servers[i] == nullptr) return Fail(KB_INVALID_ARGUMENT, "null server address");
      options.servers.emplace_back(c.servers[i]);
    }
    if (c.timeout_ms != 0) options.timeout = std::chrono::milliseconds(c.timeout_ms);
    if (c.attempt_timeout_ms != 0) options.attempt_timeout = std::chrono::milliseconds(c.attempt_timeout_ms);
    options.random_start = c.random_start != 0;
    auto text = [](const char* s) { return s != nullptr ? std::string(s) : std::string(); };
    options.tls.ca_file = text(c.tls_ca_file);
    options.tls.cert_file = text(c.tls_cert_file);
    options.tls.key_file = text(c.tls_key_file);
    options.tls.server_name = text(c.tls_server_name);
    options.tls.skip_verify = c.tls_skip_verify != 0;
    std::string detail;
    auto opened = katsubushi::Client::Open(options, &detail);
    if (!opened.ok()) {
      std::string why(opened.status().message());
      if (!detail.empty()) why += ": " + detail;  // the address, or the file and OpenSSL's reason
      return FromStatus(opened.status(), why);
    }
    auto handle = std::make_unique<kb_client>();
    handle->impl = std::move(opened).value();
    *out = handle.release();
    return KB_OK;
  });
}

kb_status kb_client_fetch(kb_client* client, uint64_t* out) {
  return kb_client_fetch_multi(client, out, 1);
}

kb_status kb_client_fetch_multi(kb_client* client, uint64_t* out, size_t n) {
  return Guard([&] {
    if (client == nullptr || out == nullptr) return Fail(KB_INVALID_ARGUMENT, "null argument");
    thread_local std::string why;
    return FromStatus(client->impl->FetchMulti(std::span<uint64_t>(out, n), &why), why);
  });
}

kb_status kb_client_close(kb_client* client) {
  return Guard([&] {
    delete client;
    return KB_OK;
  });
}

}  // extern "C"
