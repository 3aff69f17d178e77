// The simulated nodes' state machine: a versioned key-value map (the semantics of
// testing/kv_model.h) that committed writes are applied to in log order. Each write carries its
// client and a per-client sequence number; as in the Raft dissertation (6.3), a write applied
// before (the network duplicated a forwarded proposal, so the log holds it twice) changes nothing
// the second time and answers as the first time did. Its whole state, sessions included, is what
// a snapshot carries.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "store/raft/testing/kv_model.h"

namespace mentat::raft::sim {

using testing::KvInput;
using testing::KvOutput;
using testing::KvState;

// A client's write as an entry's data.
struct KvCommand {
  int client = 0;
  uint64_t seq = 0;
  KvInput input;
};
std::string EncodeCommand(const KvCommand& c);
std::optional<KvCommand> DecodeCommand(std::string_view data);

class KvStateMachine {
 public:
  // `deduplicate` false only for the test that shows why it is needed.
  explicit KvStateMachine(bool deduplicate = true) : deduplicate_(deduplicate) {}

  KvOutput Apply(const KvCommand& c);
  KvOutput Read(const std::string& key) const;

  std::string Serialize() const;
  // nullopt when `bytes` is not what Serialize wrote.
  static std::optional<KvStateMachine> Restore(std::string_view bytes, bool deduplicate);
  uint64_t Fingerprint() const;

 private:
  struct Session {
    uint64_t seq = 0;
    KvOutput answer;
  };
  std::map<std::string, KvState> keys_;  // existing keys only
  std::map<int, Session> sessions_;      // each client's last write
  bool deduplicate_;
};

// FNV-1a, for fingerprints of entries and states.
uint64_t Fnv1a(std::string_view bytes);

}  // namespace mentat::raft::sim
