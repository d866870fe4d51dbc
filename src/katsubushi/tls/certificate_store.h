// CertificateStore: the server's certificate, key and client CA, loaded from
// their files and loaded again when they change, for every front that speaks
// TLS (memcached and HTTP build OpenSSL contexts from it, gRPC hands gRPC core
// the PEM text).
//
// Rotation: Reload() reads the three files and, when their bytes differ from
// the loaded set, checks the new set (the key matches the certificate, the
// client CA parses) and publishes it as the next generation. A set that does
// not load is logged and the old one kept: a half-written file or a key
// updated before its certificate is not an outage, and the next change that
// completes the pair loads. Reading the bytes (rather than comparing mtimes)
// also sees the atomic symlink swap of Kubernetes secrets and cert-manager,
// whose files keep their names while their targets change. Watch() polls every
// kPollInterval on its own thread; SIGUSR1 calls Reload() at once.
//
// New connections take current(); open ones keep the context they began with.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace katsubushi::tls {

struct TlsServerFiles {
  std::string cert_file;       // PEM: the certificate, then its chain
  std::string key_file;        // PEM private key of the certificate
  std::string client_ca_file;  // PEM bundle; when set, clients must present a certificate it signed
};

// One loaded generation: the files' text as read, and what logs and metrics
// say about it. Immutable once published.
struct CertificateSet {
  uint64_t generation = 0;  // 1 for the first load, +1 per reload that changed it
  std::string cert_chain_pem;
  std::string key_pem;
  std::string client_ca_pem;  // empty: no client certificate asked for
  std::string serial_hex;     // the leaf certificate's serial number, upper-case hex
  int64_t not_after_unix = 0; // the leaf certificate's expiry
};

class CertificateStore {
 public:
  // How often Watch() reads the files.
  static constexpr std::chrono::seconds kPollInterval{2};
  // A certificate, key or CA file larger than this is refused as not PEM.
  static constexpr size_t kMaxFileBytes = 1 << 20;

  enum class ReloadResult { kUnchanged, kLoaded, kFailed };
  // Told of every reload that loaded (with the new set) or failed (with null
  // and the reason), on the reloading thread.
  using Listener = std::function<void(const CertificateSet* loaded, const std::string& error)>;

  // Loads the files; null with *error when they do not load (a start-up error).
  static std::unique_ptr<CertificateStore> Open(TlsServerFiles files, std::string* error);
  ~CertificateStore();
  CertificateStore(const CertificateStore&) = delete;
  CertificateStore& operator=(const CertificateStore&) = delete;

  std::shared_ptr<const CertificateSet> current() const;
  // current()->generation, without taking the lock: a front compares it on
  // every accept to see whether its context is stale.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  const TlsServerFiles& files() const { return files_; }

  // Reads the files; loads them when their bytes changed (or always, with
  // `force`). Logs what happened.
  ReloadResult Reload(bool force = false);
  // Before Watch(). The listener hears of reloads, not of the first load
  // (the caller has current()).
  void SetListener(Listener listener);

  // Starts the polling thread; StopWatching() (or the destructor) joins it.
  void Watch(std::chrono::milliseconds interval = kPollInterval);
  void StopWatching();

 private:
  explicit CertificateStore(TlsServerFiles files) : files_(std::move(files)) {}

  const TlsServerFiles files_;
  mutable std::mutex mutex_;
  std::shared_ptr<const CertificateSet> current_;  // guarded by mutex_
  std::string last_failed_;  // guarded by reload_mutex_: the bytes that last failed, logged once
  std::mutex reload_mutex_;  // one Reload at a time (the watcher and SIGUSR1)
  Listener listener_;
  std::atomic<uint64_t> generation_{0};

  std::mutex watch_mutex_;
  std::condition_variable watch_cv_;
  bool stop_watching_ = false;  // guarded by watch_mutex_
  std::thread watcher_;
};

}  // namespace katsubushi::tls
