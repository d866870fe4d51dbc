// The C ABI over Generator. Every entry point catches everything: no
// exception crosses into C (std::bad_alloc is the one we could meet).
#include "katsubushi/c/katsubushi.h"

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "katsubushi/c/c_abi_errors.h"
#include "katsubushi/embedded/generator.h"

// A handle. kb_close() frees the generator (its Redis connection, lease and
// buffers) but keeps this small struct as a tombstone, so that a call on a
// closed handle (a finalizer after an explicit close, say) finds impl null
// and answers KB_CLOSED instead of reading freed memory.
struct kb_generator {
  std::unique_ptr<katsubushi::Generator> impl;
  katsubushi::IdLayout layout = katsubushi::IdLayout::Default();
};

// Shared with katsubushi_client_c.cc (c_abi_errors.h).
namespace katsubushi::c_abi {
thread_local std::string t_last_error;
}  // namespace katsubushi::c_abi

namespace {

// Closed handles, kept reachable (a tombstone is not a leak) and never
// reused: a stale pointer must never reach a newer generator.
std::mutex g_tombstones_mu;
std::vector<std::unique_ptr<kb_generator>>* g_tombstones = nullptr;  // never destroyed: see above

void Bury(kb_generator* gen) {
  std::lock_guard lock(g_tombstones_mu);
  if (g_tombstones == nullptr) g_tombstones = new std::vector<std::unique_ptr<kb_generator>>();
  g_tombstones->emplace_back(gen);
}

using katsubushi::Status;
using katsubushi::StatusCode;
using katsubushi::c_abi::Fail;
using katsubushi::c_abi::Guard;
using katsubushi::c_abi::t_last_error;

kb_status FromStatus(const Status& s) {
  if (s.ok()) return KB_OK;
  if (s == katsubushi::kForked) return Fail(KB_FORKED, s.message());
  if (s == katsubushi::kGeneratorClosed) return Fail(KB_CLOSED, s.message());
  switch (s.code()) {
    case StatusCode::kInvalidArgument: return Fail(KB_INVALID_ARGUMENT, s.message());
    case StatusCode::kOutOfRange: return Fail(KB_OUT_OF_RANGE, s.message());
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kFailedPrecondition: return Fail(KB_UNAVAILABLE, s.message());
    case StatusCode::kOk:
    case StatusCode::kInternal: break;
  }
  return Fail(KB_INTERNAL, s.message());
}

kb_status Closed() { return Fail(KB_CLOSED, "the generator is closed (kb_close was called)"); }

// The fields of `config` the caller's struct_size covers; defaults for the rest.
bool ReadConfig(const kb_config* config, kb_config* out) {
  kb_config_init(out);
  if (config->struct_size < offsetof(kb_config, worker_id) + sizeof(uint32_t)) return false;
  std::memcpy(reinterpret_cast<char*>(out) + sizeof(size_t),
              reinterpret_cast<const char*>(config) + sizeof(size_t),
              std::min(config->struct_size, sizeof(kb_config)) - sizeof(size_t));
  return true;
}

}  // namespace

extern "C" {

void kb_config_init(kb_config* config) {
  if (config == nullptr) return;
  std::memset(config, 0, sizeof(*config));
  config->struct_size = sizeof(kb_config);
}

kb_status kb_open(const kb_config* config, kb_generator** out) {
  return Guard([&] {
    if (config == nullptr || out == nullptr) return Fail(KB_INVALID_ARGUMENT, "null argument");
    *out = nullptr;
    kb_config c;
    if (!ReadConfig(config, &c)) return Fail(KB_INVALID_ARGUMENT, "config.struct_size is too small");
    katsubushi::GeneratorConfig options;
    options.js_safe_id = c.js_safe_id != 0;
    options.worker_id = c.worker_id;
    if (c.redis_url != nullptr) options.redis_url = c.redis_url;
    options.min_worker_id = c.min_worker_id;
    options.max_worker_id = c.max_worker_id;
    if (c.lease_ttl_ms != 0) options.lease_ttl = std::chrono::milliseconds(c.lease_ttl_ms);
    if (c.redis_tls_ca_file != nullptr) options.redis_tls_ca_file = c.redis_tls_ca_file;
    if (c.redis_tls_cert_file != nullptr) options.redis_tls_cert_file = c.redis_tls_cert_file;
    if (c.redis_tls_key_file != nullptr) options.redis_tls_key_file = c.redis_tls_key_file;
    options.redis_tls_skip_verify = c.redis_tls_skip_verify != 0;
    options.redis_min_replicas = c.redis_min_replicas;
    if (c.redis_replica_timeout_ms != 0) {
      options.redis_replica_timeout = std::chrono::milliseconds(std::max(c.redis_replica_timeout_ms, 0));
    }
    auto opened = katsubushi::Generator::Open(options);
    if (!opened.ok()) return FromStatus(opened.status());
    auto handle = std::make_unique<kb_generator>();
    handle->layout = options.js_safe_id ? katsubushi::IdLayout::JsSafe() : katsubushi::IdLayout::Default();
    handle->impl = std::move(opened).value();
    *out = handle.release();
    return KB_OK;
  });
}

kb_status kb_next_id(kb_generator* gen, uint64_t* out) {
  return Guard([&] {
    if (gen == nullptr || out == nullptr) return Fail(KB_INVALID_ARGUMENT, "null argument");
    if (!gen->impl) return Closed();
    katsubushi::Result<uint64_t> id = gen->impl->Next();
    if (!id.ok()) return FromStatus(id.status());
    *out = *id;
    return KB_OK;
  });
}

kb_status kb_next_ids(kb_generator* gen, uint64_t* out, size_t n) {
  return Guard([&] {
    if (gen == nullptr || out == nullptr) return Fail(KB_INVALID_ARGUMENT, "null argument");
    if (!gen->impl) return Closed();
    return FromStatus(gen->impl->NextN(std::span<uint64_t>(out, n)));
  });
}

kb_status kb_worker_id(kb_generator* gen, uint32_t* out) {
  return Guard([&] {
    if (gen == nullptr || out == nullptr) return Fail(KB_INVALID_ARGUMENT, "null argument");
    if (!gen->impl) return Closed();
    katsubushi::Result<uint32_t> id = gen->impl->WorkerId();
    if (!id.ok()) return FromStatus(id.status());
    *out = *id;
    return KB_OK;
  });
}

kb_status kb_decode(const kb_generator* gen, uint64_t id, kb_id_parts* out) {
  if (out == nullptr) return Fail(KB_INVALID_ARGUMENT, "null argument");
  if (gen != nullptr && !gen->impl) return Closed();
  const katsubushi::IdLayout layout = gen != nullptr ? gen->layout : katsubushi::IdLayout::Default();
  if (id > layout.max_id()) return Fail(KB_INVALID_ARGUMENT, "not an ID of this layout");
  const katsubushi::IdParts parts = layout.Decode(id);
  out->unix_millis = parts.unix_millis;
  out->worker_id = parts.worker_id;
  out->sequence = parts.sequence;
  return KB_OK;
}

kb_status kb_invocation_begin(kb_generator* gen) {
  return Guard([&] {
    if (gen == nullptr) return Fail(KB_INVALID_ARGUMENT, "null argument");
    if (!gen->impl) return Closed();
    return FromStatus(gen->impl->InvocationBegin());
  });
}

kb_status kb_close(kb_generator* gen) {
  return Guard([&] {
    if (gen == nullptr) return KB_OK;
    if (!gen->impl) return Closed();
    const Status closed = gen->impl->Close();
    gen->impl.reset();  // the generator and its connection go; the tombstone stays
    Bury(gen);
    return FromStatus(closed);
  });
}

const char* kb_strerror(int status) {
  switch (status) {
    case KB_OK: return "ok";
    case KB_INVALID_ARGUMENT: return "invalid argument";
    case KB_UNAVAILABLE: return "no worker id can be confirmed now; retry later";
    case KB_OUT_OF_RANGE: return "the clock is outside the ID layout";
    case KB_FORKED: return "the process forked; open a new generator in the child";
    case KB_CLOSED: return "the generator is closed";
    case KB_INTERNAL: return "internal error";
    default: return "unknown status";
  }
}

const char* kb_last_error(void) { return t_last_error.c_str(); }

uint32_t kb_abi_version(void) { return KB_ABI_VERSION; }

}  // extern "C"
