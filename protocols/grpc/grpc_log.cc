#include "grpc/grpc_log.h"

#include <grpc/support/log.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace katsubushi::grpc_api {
namespace {

std::mutex g_mutex;
Backend* g_backend = nullptr;  // guarded by g_mutex

void Sink(gpr_log_func_args* args) {
  const std::string_view file = args->file != nullptr ? args->file : "";
  const std::string_view message = args->message != nullptr ? args->message : "";
  std::lock_guard lock(g_mutex);  // the lines come rarely: on errors only, at the default verbosity
  if (g_backend == nullptr) {
    std::fprintf(stderr, "gRPC: %.*s\n", static_cast<int>(message.size()), message.data());
    return;
  }
  if (unsigned long code = 0; ParseHandshakeFailure(file, message, &code)) {
    g_backend->CountTlsHandshakeError(code);
    return;
  }
  const Backend::LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR  ? Backend::LogLevel::kError
                                  : args->severity == GPR_LOG_SEVERITY_INFO ? Backend::LogLevel::kInfo
                                                                            : Backend::LogLevel::kDebug;
  g_backend->Log(level, message);
}

}  // namespace

bool ParseHandshakeFailure(std::string_view file, std::string_view message, unsigned long* code) {
  constexpr std::string_view kFile = "ssl_transport_security.cc";
  constexpr std::string_view kPrefix = "Handshake failed with fatal error ";
  constexpr std::string_view kError = "error:";
  if (!file.ends_with(kFile) || !message.starts_with(kPrefix)) return false;
  // "SSL_ERROR_SSL: error:0A0000C7:SSL routines::..." (ERR_error_string_n).
  const size_t at = message.find(kError, kPrefix.size());
  if (at == std::string_view::npos) return false;
  const std::string hex(message.substr(at + kError.size(), 8));
  char* end = nullptr;
  const unsigned long value = std::strtoul(hex.c_str(), &end, 16);
  if (hex.empty() || end != hex.c_str() + hex.size()) return false;
  *code = value;
  return true;
}

void AttachGrpcLog(Backend& backend) {
  static std::once_flag installed;
  std::call_once(installed, [] { gpr_set_log_function(&Sink); });
  std::lock_guard lock(g_mutex);
  g_backend = &backend;
}

void DetachGrpcLog(Backend& backend) {
  std::lock_guard lock(g_mutex);
  if (g_backend == &backend) g_backend = nullptr;
}

}  // namespace katsubushi::grpc_api
