#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "grpc/grpc_front.h"

namespace katsubushi::grpc_api {
namespace {

std::string ExecutableDir() {
  std::vector<char> path(4096);
  const ssize_t n = ::readlink("/proc/self/exe", path.data(), path.size() - 1);
  if (n <= 0) return ".";
  std::string exe(path.data(), static_cast<size_t>(n));
  const size_t slash = exe.rfind('/');
  return slash == std::string::npos ? "." : exe.substr(0, slash);
}

}  // namespace

std::unique_ptr<GrpcFront> LoadGrpcFront(Backend& backend, const GrpcOptions& options,
                                         std::string* error) {
  std::vector<std::string> candidates;
  if (const char* explicit_path = std::getenv("KATSUBUSHI_GRPC_MODULE");
      explicit_path != nullptr && *explicit_path != '\0') {
    candidates.emplace_back(explicit_path);
  } else {
    const std::string dir = ExecutableDir();
    candidates.push_back(dir + "/" + kGrpcModuleName);
    candidates.push_back(dir + "/../lib/katsubushi/" + kGrpcModuleName);
  }
  std::string tried;
  for (const std::string& path : candidates) {
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = ::dlerror();
      tried += (tried.empty() ? "" : "; ") + std::string(why != nullptr ? why : path.c_str());
      continue;
    }
    auto factory = reinterpret_cast<GrpcFrontFactory>(::dlsym(handle, kGrpcModuleFactory));
    if (factory == nullptr) {
      *error = path + " has no " + kGrpcModuleFactory;
      return nullptr;
    }
    GrpcFront* front = factory(&backend, &options);
    if (front == nullptr) {
      *error = "the gRPC module could not create its server";
      return nullptr;
    }
    return std::unique_ptr<GrpcFront>(front);
  }
  *error = "cannot load the gRPC module: " + tried;
  return nullptr;
}

}  // namespace katsubushi::grpc_api
