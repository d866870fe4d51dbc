#include "katsubushi/redis/topology.h"

#include <algorithm>
#include <map>
#include <vector>

namespace katsubushi::redis {
namespace {

constexpr int kSlots = 16384;

void Log(const lease::LogFunction& log, lease::LogLevel level, const std::string& message) {
  if (log) log(level, message);
}

// Opens a data-node connection and runs the owner's check on it.
std::unique_ptr<Connection> OpenDataNode(const NodeAddress& address, const ConnectOptions& options,
                                         const Topology::OnConnect& on_connect, std::string* error) {
  std::unique_ptr<Connection> connection = Connection::Open(address, options, error);
  if (connection && on_connect && !on_connect(*connection, error)) return nullptr;
  return connection;
}

// The URL's one host, found again by name at each connect.
class StandaloneTopology final : public Topology {
 public:
  StandaloneTopology(NodeAddress address, ConnectOptions options, OnConnect on_connect)
      : address_(std::move(address)), options_(std::move(options)), on_connect_(std::move(on_connect)) {}

  Connection* Get(std::string_view, std::string* error) override {
    if (!connection_) connection_ = OpenDataNode(address_, options_, on_connect_, error);
    return connection_.get();
  }
  std::unique_ptr<Connection> OpenSubscriber(std::string* error) override {
    return Connection::Open(address_, options_, error);
  }
  void Drop(Connection*) override { connection_.reset(); }

 private:
  const NodeAddress address_;
  const ConnectOptions options_;
  const OnConnect on_connect_;
  std::unique_ptr<Connection> connection_;
};

class SentinelTopology final : public Topology {
 public:
  SentinelTopology(std::vector<NodeAddress> sentinels, std::string primary_name, ConnectOptions data_nodes,
                   OnConnect on_connect, lease::LogFunction log)
      : sentinels_(std::move(sentinels)),
        primary_name_(std::move(primary_name)),
        data_nodes_(std::move(data_nodes)),
        on_connect_(std::move(on_connect)),
        log_(std::move(log)) {
    // Sentinels take no AUTH and no SELECT of the data nodes'.
    sentinel_options_.tls = data_nodes_.tls;
    sentinel_options_.verify_peer = data_nodes_.verify_peer;
    sentinel_options_.timeouts = data_nodes_.timeouts;
  }

  Connection* Get(std::string_view, std::string* error) override {
    if (!connection_) connection_ = OpenPrimary(error);
    return connection_.get();
  }
  std::unique_ptr<Connection> OpenSubscriber(std::string* error) override {
    NodeAddress primary;
    if (!AskSentinels(&primary, error)) return nullptr;
    return Connection::Open(primary, data_nodes_, error);
  }
  void Drop(Connection*) override { connection_.reset(); }

 private:
  // The primary's address from the first sentinel that knows it.
  bool AskSentinels(NodeAddress* primary, std::string* error) {
    std::string failures;
    for (size_t i = 0; i < sentinels_.size(); ++i) {
      std::string why;
      std::unique_ptr<Connection> sentinel = Connection::Open(sentinels_[i], sentinel_options_, &why);
      RedisReply reply;
      if (sentinel && sentinel->Run({"SENTINEL", "get-master-addr-by-name", primary_name_}, &reply, &why)) {
        if (reply.type == RedisReply::Type::kArray && reply.elements.size() == 2) {
          const int64_t port = std::atoll(reply.elements[1].str.c_str());
          if (!reply.elements[0].str.empty() && port > 0 && port <= 65535) {
            primary->host = reply.elements[0].str;
            primary->port = static_cast<uint16_t>(port);
            // The guidelines: the sentinel that answered goes first next time.
            std::rotate(sentinels_.begin(), sentinels_.begin() + static_cast<std::ptrdiff_t>(i),
                        sentinels_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
            return true;
          }
        }
        why = sentinels_[i].ToString() + ": " +
              (reply.is_error() ? reply.str : "does not know a primary named " + primary_name_);
      }
      if (!failures.empty()) failures.append("; ");
      failures.append(why);
    }
    *error = "no sentinel named the primary: " + failures;
    return false;
  }

  std::unique_ptr<Connection> OpenPrimary(std::string* error) {
    NodeAddress address;
    if (!AskSentinels(&address, error)) return nullptr;
    std::unique_ptr<Connection> connection = Connection::Open(address, data_nodes_, error);
    if (!connection) return nullptr;
    // A sentinel may name a node that is not the primary yet (or any more).
    RedisReply role;
    if (!connection->Run({"ROLE"}, &role, error)) return nullptr;
    if (role.type != RedisReply::Type::kArray || role.elements.empty() || role.elements[0].str != "master") {
      *error = "the sentinels name " + address.ToString() + " as the primary, but it is " +
               (role.is_error() ? "answering " + role.str
                                : (role.elements.empty() ? std::string("unknown") : role.elements[0].str)) +
               "; asking again";
      return nullptr;
    }
    if (address != last_primary_) {
      if (!last_primary_.host.empty()) {
        Log(log_, lease::LogLevel::kWarning,
            "Redis failover: the sentinels now name " + address.ToString() + " as the primary " +
                primary_name_ + " (was " + last_primary_.ToString() + ")");
      }
      last_primary_ = address;
    }
    if (on_connect_ && !on_connect_(*connection, error)) return nullptr;
    return connection;
  }

  std::vector<NodeAddress> sentinels_;
  const std::string primary_name_;
  const ConnectOptions data_nodes_;
  ConnectOptions sentinel_options_;
  const OnConnect on_connect_;
  const lease::LogFunction log_;
  NodeAddress last_primary_;
  std::unique_ptr<Connection> connection_;
};

class ClusterTopology final : public Topology {
 public:
  ClusterTopology(std::vector<NodeAddress> seeds, ConnectOptions options, OnConnect on_connect)
      : seeds_(std::move(seeds)), options_(std::move(options)), on_connect_(std::move(on_connect)) {
    options_.db = 0;  // a cluster has only db 0
  }

  Connection* Get(std::string_view key, std::string* error) override {
    if (ranges_.empty() && !Refresh(error)) return nullptr;
    const NodeAddress* owner = nullptr;
    if (key.empty()) {
      owner = &ranges_.front().owner;
    } else {
      const int slot = HashSlot(key);
      for (const SlotRange& range : ranges_) {
        if (slot >= range.first && slot <= range.last) owner = &range.owner;
      }
    }
    if (owner == nullptr) {
      *error = "no node of the cluster serves the key's slot (the cluster is not fully covered)";
      ranges_.clear();
      return nullptr;
    }
    // A map may still name a master that died (its replica not yet
    // promoted): learn the map again at the next attempt rather than knock
    // on the dead node for ever.
    Connection* connection = Connect(*owner, error);
    if (connection == nullptr) ranges_.clear();
    return connection;
  }

  std::unique_ptr<Connection> OpenSubscriber(std::string* error) override {
    // Cluster pub/sub reaches every node; any one that answers will do.
    std::string failures;
    for (const NodeAddress& node : KnownNodes()) {
      std::string why;
      if (std::unique_ptr<Connection> c = Connection::Open(node, options_, &why)) return c;
      if (!failures.empty()) failures.append("; ");
      failures.append(why);
    }
    *error = "no node of the cluster answers: " + failures;
    return nullptr;
  }

  void Drop(Connection* connection) override {
    for (auto it = pool_.begin(); it != pool_.end(); ++it) {
      if (it->second.get() == connection) {
        pool_.erase(it);
        break;
      }
    }
    ranges_.clear();  // learn the map again before the next command
  }
  void SlotMoved() override { ranges_.clear(); }

 private:
  struct SlotRange {
    int first = 0;
    int last = 0;
    NodeAddress owner;
  };

  Connection* Connect(const NodeAddress& node, std::string* error) {
    const std::string key = node.ToString();
    auto it = pool_.find(key);
    if (it != pool_.end()) return it->second.get();
    std::unique_ptr<Connection> connection = OpenDataNode(node, options_, on_connect_, error);
    if (!connection) return nullptr;
    return pool_.emplace(key, std::move(connection)).first->second.get();
  }

  // The nodes of the last map first (they are the current cluster), then
  // the seeds; each once.
  std::vector<NodeAddress> KnownNodes() const {
    std::vector<NodeAddress> nodes = known_;
    for (const NodeAddress& seed : seeds_) {
      if (std::find(nodes.begin(), nodes.end(), seed) == nodes.end()) nodes.push_back(seed);
    }
    return nodes;
  }

  bool Refresh(std::string* error) {
    std::string failures;
    for (const NodeAddress& node : KnownNodes()) {
      std::string why;
      Connection* connection = Connect(node, &why);
      RedisReply reply;
      if (connection != nullptr && connection->Run({"CLUSTER", "SLOTS"}, &reply, &why)) {
        if (std::vector<SlotRange> ranges = ParseSlots(reply, node); !ranges.empty()) {
          Install(std::move(ranges));
          return true;
        }
        why = node.ToString() + ": CLUSTER SLOTS: " + (reply.is_error() ? reply.str : "no slots");
      } else if (connection != nullptr) {
        pool_.erase(node.ToString());
      }
      if (!failures.empty()) failures.append("; ");
      failures.append(why);
    }
    *error = "cannot learn the cluster's slots from any known node: " + failures;
    return false;
  }

  // [[first, last, [host, port, ...], replicas...], ...]; an empty host is
  // the node that answered.
  static std::vector<SlotRange> ParseSlots(const RedisReply& reply, const NodeAddress& asked) {
    std::vector<SlotRange> ranges;
    if (reply.type != RedisReply::Type::kArray) return ranges;
    for (const RedisReply& entry : reply.elements) {
      if (entry.type != RedisReply::Type::kArray || entry.elements.size() < 3) continue;
      const RedisReply& master = entry.elements[2];
      if (master.type != RedisReply::Type::kArray || master.elements.size() < 2) continue;
      SlotRange range;
      range.first = static_cast<int>(entry.elements[0].integer);
      range.last = static_cast<int>(entry.elements[1].integer);
      const std::string& host = master.elements[0].str;
      range.owner.host = host.empty() || host == "?" ? asked.host : host;
      const int64_t port = master.elements[1].integer;
      if (range.first < 0 || range.last >= kSlots || range.first > range.last || port <= 0 || port > 65535) {
        continue;
      }
      range.owner.port = static_cast<uint16_t>(port);
      ranges.push_back(std::move(range));
    }
    return ranges;
  }

  void Install(std::vector<SlotRange> ranges) {
    known_.clear();
    for (const SlotRange& range : ranges) {
      if (std::find(known_.begin(), known_.end(), range.owner) == known_.end()) known_.push_back(range.owner);
    }
    // Connections to nodes that no longer own slots (a demoted master) go.
    for (auto it = pool_.begin(); it != pool_.end();) {
      const bool owner = std::any_of(known_.begin(), known_.end(),
                                     [&](const NodeAddress& n) { return n.ToString() == it->first; });
      it = owner ? std::next(it) : pool_.erase(it);
    }
    ranges_ = std::move(ranges);
  }

  const std::vector<NodeAddress> seeds_;
  ConnectOptions options_;
  const OnConnect on_connect_;
  std::vector<SlotRange> ranges_;  // empty: to be learned
  std::vector<NodeAddress> known_;  // the masters of the last map
  std::map<std::string, std::unique_ptr<Connection>> pool_;
};

}  // namespace

int HashSlot(std::string_view key) {
  if (const size_t open = key.find('{'); open != std::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  uint16_t crc = 0;
  for (const char c : key) {
    crc = static_cast<uint16_t>(crc ^ (static_cast<uint8_t>(c) << 8));
    for (int bit = 0; bit < 8; ++bit) {
      crc = static_cast<uint16_t>((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
  }
  return crc % kSlots;
}

std::unique_ptr<Topology> MakeTopology(const RedisUrl& url, const ConnectOptions& data_nodes,
                                       Topology::OnConnect on_connect, lease::LogFunction log) {
  switch (url.mode) {
    case RedisUrl::Mode::kStandalone:
      return std::make_unique<StandaloneTopology>(url.nodes.front(), data_nodes, std::move(on_connect));
    case RedisUrl::Mode::kSentinel:
      return std::make_unique<SentinelTopology>(url.nodes, url.primary_name, data_nodes,
                                                std::move(on_connect), std::move(log));
    case RedisUrl::Mode::kCluster:
      return std::make_unique<ClusterTopology>(url.nodes, data_nodes, std::move(on_connect));
  }
  return nullptr;
}

}  // namespace katsubushi::redis
