// For the tests that check real servers' histories for linearizability: one key-value operation
// (testing/kv_model.h) as a Service through a member's API. The value is spec.env.V, the version
// metadata.generation (each put changes the spec, so the generation counts the writes).
#pragma once

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2e/harness.h"
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

// A client load on a cluster: `clients` threads, each running random puts and gets on `keys`
// keys until Stop(), every call and answer recorded for the linearizability check.
class KvLoad {
 public:
  struct Options {
    int clients = 3;
    int keys = 4;
    uint32_t seed = 1;
    // The API port for client c's next operation (any member's).
    std::function<int(int c, std::mt19937& rng)> api;
    // Runs first on client c's thread (say, to enter a member's network namespace); false
    // ends that client.
    std::function<bool(int c)> on_start;
  };

  explicit KvLoad(Options opts) : opts_(std::move(opts)) {
    for (int c = 0; c < opts_.clients; ++c) threads_.emplace_back([this, c] { Client(c); });
  }
  ~KvLoad() { Stop(); }
  KvLoad(const KvLoad&) = delete;
  KvLoad& operator=(const KvLoad&) = delete;

  // Waits until `more` operations more than now were answered; false after `within`.
  bool Progress(int more, std::chrono::milliseconds within = std::chrono::seconds(60)) {
    const int target = answered_ + more;
    return WaitFor([&] { return answered_ >= target; }, within);
  }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  // Once stopped: every operation recorded, and those to check. Left out are those that cannot
  // have had an effect: never sent, and reads without an answer. A write without one stays, of
  // unknown outcome (it may have happened or not, which the checker allows).
  std::vector<raft::testing::KvOperation> All() const { return history_.ops(); }
  std::vector<raft::testing::KvOperation> Checkable() const {
    std::vector<raft::testing::KvOperation> ops;
    auto all = history_.ops();
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < all.size(); ++i) {
      if (!dropped_.count(i)) ops.push_back(all[i]);
    }
    return ops;
  }

 private:
  void Client(int c) {
    if (opts_.on_start && !opts_.on_start(c)) return;
    std::mt19937 rng(opts_.seed + c);
    for (int seq = 0; !stop_; ++seq) {
      KvInput in;
      in.key = "k" + std::to_string(rng() % opts_.keys);
      in.op = rng() % 2 ? KvOp::kPut : KvOp::kGet;
      in.value = std::to_string(c) + "-" + std::to_string(seq);
      const int api = opts_.api(c, rng);
      size_t id = history_.Call(c, in);
      KvOutcome out = RunKvOp(api, in);
      if (out.answer) {
        history_.Return(id, *out.answer);
        ++answered_;
      } else if (!out.sent || in.op == KvOp::kGet) {
        std::lock_guard<std::mutex> lock(mu_);
        dropped_.insert(id);
      }
    }
  }

  Options opts_;
  raft::testing::KvHistory history_;
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  mutable std::mutex mu_;
  std::set<size_t> dropped_;
  std::vector<std::thread> threads_;
};

}  // namespace mentat::e2e
