#include "katsubushi/tls/certificate_store.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ctime>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "katsubushi/tls/tls_client.h"

namespace katsubushi::tls {
namespace {

struct FileText {
  std::string cert, key, client_ca;
  bool operator==(const FileText&) const = default;
};

bool ReadFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path;
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > CertificateStore::kMaxFileBytes) {
    *error = path + " is larger than " + std::to_string(CertificateStore::kMaxFileBytes) + " bytes";
    return false;
  }
  *out = std::move(text).str();
  return true;
}

bool ReadAll(const TlsServerFiles& files, FileText* out, std::string* error) {
  return ReadFile(files.cert_file, &out->cert, error) && ReadFile(files.key_file, &out->key, error) &&
         (files.client_ca_file.empty() || ReadFile(files.client_ca_file, &out->client_ca, error));
}

using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

Bio MemoryBio(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), BIO_free);
}

// Checks that the text is a usable set and fills in what logs say about it.
bool Check(const FileText& text, const TlsServerFiles& files, CertificateSet* set, std::string* error) {
  ERR_clear_error();
  Bio cert_bio = MemoryBio(text.cert);
  X509Ptr leaf(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (!leaf) {
    *error = SslFailure("no PEM certificate in " + files.cert_file);
    return false;
  }
  Bio key_bio = MemoryBio(text.key);
  KeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!key) {
    *error = SslFailure("no PEM private key in " + files.key_file);
    return false;
  }
  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    *error = SslFailure(files.key_file + " is not the key of the certificate in " + files.cert_file);
    return false;
  }
  if (!files.client_ca_file.empty()) {
    Bio ca_bio = MemoryBio(text.client_ca);
    X509Ptr ca(PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr), X509_free);
    if (!ca) {
      *error = SslFailure("no PEM certificate in " + files.client_ca_file);
      return false;
    }
  }
  ERR_clear_error();
  set->cert_chain_pem = text.cert;
  set->key_pem = text.key;
  set->client_ca_pem = text.client_ca;
  if (BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf.get()), nullptr)) {
    if (char* hex = BN_bn2hex(serial)) {
      set->serial_hex = hex;
      OPENSSL_free(hex);
    }
    BN_free(serial);
  }
  tm expiry{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf.get()), &expiry) == 1) set->not_after_unix = timegm(&expiry);
  return true;
}

}  // namespace

std::unique_ptr<CertificateStore> CertificateStore::Open(TlsServerFiles files, std::string* error) {
  if (files.cert_file.empty() || files.key_file.empty()) {
    *error = "TLS needs both a certificate file and a key file";
    return nullptr;
  }
  std::unique_ptr<CertificateStore> store(new CertificateStore(std::move(files)));
  FileText text;
  auto set = std::make_shared<CertificateSet>();
  if (!ReadAll(store->files_, &text, error) || !Check(text, store->files_, set.get(), error)) return nullptr;
  set->generation = 1;
  store->current_ = std::move(set);
  store->generation_.store(1, std::memory_order_release);
  return store;
}

CertificateStore::~CertificateStore() { StopWatching(); }

std::shared_ptr<const CertificateSet> CertificateStore::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

void CertificateStore::SetListener(Listener listener) {
  std::lock_guard lock(reload_mutex_);
  listener_ = std::move(listener);
}

CertificateStore::ReloadResult CertificateStore::Reload(bool force) {
  std::lock_guard reload_lock(reload_mutex_);
  const std::shared_ptr<const CertificateSet> old = current();
  FileText text;
  std::string error;
  if (!ReadAll(files_, &text, &error)) {
    // A file missing for a moment (a swap done as delete + create) is the
    // same as one that does not load: keep serving with what we have.
    if (last_failed_ != error) {
      spdlog::error("TLS: {}; keeping the certificate loaded (serial {})", error, old->serial_hex);
      last_failed_ = error;
      if (listener_) listener_(nullptr, error);
    }
    return ReloadResult::kFailed;
  }
  const FileText loaded{old->cert_chain_pem, old->key_pem, old->client_ca_pem};
  if (!force && text == loaded) {
    last_failed_.clear();
    return ReloadResult::kUnchanged;
  }
  auto set = std::make_shared<CertificateSet>();
  if (!Check(text, files_, set.get(), &error)) {
    const std::string seen = text.cert + text.key + text.client_ca;
    if (last_failed_ != seen) {  // logged once per content, not every poll
      spdlog::error("TLS: the new certificate files do not load: {}; keeping the certificate loaded (serial {})",
                    error, old->serial_hex);
      last_failed_ = seen;
      if (listener_) listener_(nullptr, error);
    }
    return ReloadResult::kFailed;
  }
  last_failed_.clear();
  set->generation = old->generation + 1;
  {
    std::lock_guard lock(mutex_);
    current_ = set;
  }
  generation_.store(set->generation, std::memory_order_release);
  spdlog::info("TLS: loaded the certificate from {} (serial {}, expires {}), for new connections",
               files_.cert_file, set->serial_hex, set->not_after_unix);
  if (listener_) listener_(set.get(), {});
  return ReloadResult::kLoaded;
}

void CertificateStore::Watch(std::chrono::milliseconds interval) {
  if (watcher_.joinable()) return;
  {
    std::lock_guard lock(watch_mutex_);
    stop_watching_ = false;
  }
  watcher_ = std::thread([this, interval] {
    std::unique_lock lock(watch_mutex_);
    while (!watch_cv_.wait_for(lock, interval, [this] { return stop_watching_; })) {
      lock.unlock();
      Reload();
      lock.lock();
    }
  });
}

void CertificateStore::StopWatching() {
  {
    std::lock_guard lock(watch_mutex_);
    stop_watching_ = true;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

}  // namespace katsubushi::tls
