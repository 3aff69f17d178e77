// The sequential specification of a versioned key-value store, for the linearizability checker
// (linearizability.h): get, put, compare-and-set on a key's version, delete. A key's version
// counts its writes since it was created (0: absent), as etcd's "version" does; a delete
// resets it. Histories are partitioned by key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "store/raft/testing/linearizability.h"

namespace mentat::raft::testing {

enum class KvOp { kGet, kPut, kCas, kDelete };

struct KvInput {
  KvOp op = KvOp::kGet;
  std::string key;
  std::string value;              // put, cas
  uint64_t expected_version = 0;  // cas: writes only if the key's version is this (0: absent)
};

struct KvOutput {
  // get: the key exists; cas: it wrote; delete: the key existed; put: always true.
  bool ok = false;
  std::string value;     // get: the value read
  uint64_t version = 0;  // get, put, cas: the key's version after the operation (0: absent)
};

struct KvState {
  bool exists = false;
  std::string value;
  uint64_t version = 0;
  bool operator==(const KvState&) const = default;
};

// What the operation does to `state`, with the answer a correct store gives.
std::pair<KvState, KvOutput> ApplyKv(const KvState& state, const KvInput& input);

using KvOperation = Operation<KvInput, KvOutput>;
using KvHistory = History<KvInput, KvOutput>;
Model<KvState, KvInput, KvOutput> KvModel();

std::string DescribeKv(const KvInput& input, const std::optional<KvOutput>& output);

}  // namespace mentat::raft::testing
