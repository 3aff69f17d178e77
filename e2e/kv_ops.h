// For the tests that check real servers' histories for linearizability: one key-value operation
// (testing/kv_model.h) as a Service through a member's API. The value is spec.env.V, the version
// metadata.generation (each put changes the spec, so the generation counts the writes).
#pragma once

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "store/raft/testing/kv_model.h"

namespace mentat::e2e {

using raft::testing::KvInput;
using raft::testing::KvOp;
using raft::testing::KvOutput;
using Json = nlohmann::json;

// What became of one operation: answered, its outcome unknown (no answer: a timeout, a cut
// connection, a 5xx), or never sent (the connection was refused: it cannot have happened).
struct KvOutcome {
  std::optional<KvOutput> answer;
  bool sent = true;
};

inline bool NotSent(const httplib::Result& r) { return !r && r.error() == httplib::Error::Connection; }

// One operation through member `api`.
inline KvOutcome RunKvOp(int api, const KvInput& in) {
  httplib::Client cli("127.0.0.1", api);
  cli.set_connection_timeout(1, 0);
  cli.set_read_timeout(4, 0);
  const std::string path = "/v1/services/" + in.key;
  if (in.op == KvOp::kPut) {
    std::string body = "name: " + in.key + "\ndriver: exec\ncount: 0\ncommand: /bin/true\nenv:\n  V: \"" + in.value + "\"\n";
    auto r = cli.Put(path, body, "application/yaml");
    if (NotSent(r)) return {std::nullopt, false};
    if (!r || (r->status != 200 && r->status != 201)) return {};
    Json obj = Json::parse(r->body, nullptr, false);
    return {KvOutput{true, "", obj["metadata"].value("generation", uint64_t{0})}};
  }
  auto r = cli.Get(path);
  if (NotSent(r)) return {std::nullopt, false};
  if (!r) return {};
  if (r->status == 404) return {KvOutput{false, "", 0}};
  if (r->status != 200) return {};
  Json obj = Json::parse(r->body, nullptr, false);
  std::string value;
  for (const auto& e : obj["spec"].value("env", Json::array())) {
    if (e.value("name", "") == "V") value = e.value("value", "");
  }
  return {KvOutput{true, value, obj["metadata"].value("generation", uint64_t{0})}};
}

}  // namespace mentat::e2e
