#include "store/raft/sim/simulation.h"

#include <deque>
#include <memory>
#include <sstream>

#include "store/raft/sim/library_seed.h"
#include "store/raft/testing/kv_model.h"

namespace mentat::raft::sim {
namespace {

using testing::KvHistory;
using testing::KvOp;

constexpr uint64_t kUnitsPerTick = 10;  // a message takes 0.1 to 2.5 ticks by default
constexpr int kQuietTicks = 40;         // at the end: no new requests, so nodes can converge
// Then at most this long for the last of them to be applied everywhere: a proposal the network
// held back (NetworkFaults::max_long_delay) may still arrive and commit late.
constexpr int kSettleTicks = 100;
constexpr size_t kTraceLines = 80;

// A client: one request at a time, to a node drawn at random, given up after a timeout.
struct Client {
  int id = 0;
  bool busy = false;
  uint64_t request = 0;  // numbers requests; a write's number is its sequence in its session
  size_t op = 0;         // the history's
  uint64_t deadline = 0;
  std::map<std::string, uint64_t> versions;  // last seen, for compare-and-set
};

class Simulation {
 public:
  explicit Simulation(const SimOptions& o)
      : opts_(o), rng_(o.seed), network_(rng_, o.network), invariants_(o.nodes) {}
  SimResult Run();

 private:
  void Boot();
  void Deliver();
  void TickNodes();
  void Faults();
  void Crash(SimNode& n);
  void Restart(SimNode& n);
  void Partition();
  void Calm();
  void Clients();
  void Issue(Client& c);
  void OnReply(const ClientReply& r);
  bool Converged() const;
  void Finish();
  SimResult Report();
  SimNode* Leader();
  void Trace(const std::string& line);
  std::string TraceDump();

  SimOptions opts_;
  SimRandom rng_;
  uint64_t now_ = 0;
  SimNetwork network_;
  Invariants invariants_;
  std::map<uint64_t, std::unique_ptr<SimNode>> nodes_;
  std::map<uint64_t, uint64_t> phase_;       // the unit of each tick at which a node ticks
  std::map<uint64_t, uint64_t> restart_at_;  // down nodes
  uint64_t heal_at_ = 0;
  std::vector<Client> clients_;
  KvHistory history_;
  SimStats stats_;
  std::deque<std::string> trace_;
};

// Each time unit: messages due arrive, nodes due tick, faults strike (once a tick, while the
// chaos lasts), clients ask and give up. Every step that touches a node drains its Readys, and
// the invariants are checked there.
SimResult Simulation::Run() {
  raftshim_seed_library_rand(opts_.seed);
  Boot();
  const uint64_t chaos_end = opts_.chaos_ticks * kUnitsPerTick;
  const uint64_t end = chaos_end + opts_.calm_ticks * kUnitsPerTick;
  for (now_ = 0; now_ < end && invariants_.ok(); ++now_) {
    if (now_ == chaos_end) Calm();
    Deliver();
    TickNodes();
    if (now_ % kUnitsPerTick == 0 && now_ < chaos_end) Faults();
    if (now_ + kQuietTicks * kUnitsPerTick < end) Clients();
    for (auto& c : clients_) {
      if (c.busy && c.deadline <= now_) c.busy = false;  // given up: the outcome stays unknown
    }
  }
  const uint64_t settled_by = end + kSettleTicks * kUnitsPerTick;
  for (; now_ < settled_by && invariants_.ok() && !Converged(); ++now_) {
    Deliver();
    TickNodes();
  }
  if (invariants_.ok()) Finish();
  return Report();
}

SimResult Simulation::Report() {
  SimResult result;
  result.failure = invariants_.violation();
  const auto ops = history_.ops();
  stats_.ops = ops.size();
  std::string run;  // everything a replay must reproduce
  for (const auto& op : ops) {
    stats_.completed += op.output ? 1 : 0;
    run += testing::DescribeKv(op.input, op.output) + "@" + std::to_string(op.call) + "\n";
  }
  for (auto& [id, n] : nodes_) {
    run += std::to_string(n->applied()) + ":" + std::to_string(n->state_fingerprint()) + "\n";
  }
  stats_.elections = invariants_.elections();
  stats_.committed = invariants_.committed();
  result.stats = stats_;
  result.fingerprint = Fnv1a(run);
  if (!result.failure.empty()) result.trace = TraceDump();
  return result;
}

void Simulation::Boot() {
  std::vector<uint64_t> peers;
  for (int i = 1; i <= opts_.nodes; ++i) peers.push_back(i);
  for (uint64_t id : peers) {
    SimNodeOptions o;
    o.id = id;
    o.peers = peers;
    o.contract = opts_.contract;
    o.compact_every = opts_.compact ? rng_.Between(8, 40) : 0;
    nodes_[id] = std::make_unique<SimNode>(
        o, network_, invariants_, now_, [this](const ClientReply& r) { OnReply(r); },
        [this](const std::string& line) { Trace(line); });
    phase_[id] = rng_.Below(kUnitsPerTick);
    if (auto st = nodes_[id]->Start(); !st) invariants_.Fail(st.error().message());
    nodes_[id]->Drain();
  }
  for (int i = 0; i < opts_.clients; ++i) clients_.push_back(Client{i});
}

void Simulation::Deliver() {
  while (invariants_.ok()) {
    auto arrival = network_.NextDue(now_);
    if (!arrival) return;
    const RaftMessage& m = arrival->in_flight.message;
    SimNode& from = *nodes_.at(arrival->in_flight.from);
    SimNode& to = *nodes_.at(m.to);
    const bool delivered = !arrival->lost && to.up();
    if (delivered) {
      to.Receive(m);
      to.Drain();
    }
    // The sender's transport hears how a snapshot went.
    if (m.type == kMsgSnap) {
      stats_.snapshots_sent += delivered ? 1 : 0;
      from.ReportSnapshot(m.to, !delivered);
      from.Drain();
    }
  }
}

void Simulation::TickNodes() {
  for (auto& [id, n] : nodes_) {
    if (now_ % kUnitsPerTick != phase_[id] || !n->up()) continue;
    n->Tick();
    n->Drain();
    // The OS writes a page cache back now and then, synced or not.
    if (rng_.Chance(opts_.flush_per_tick)) n->disk().Flush();
  }
}

SimNode* Simulation::Leader() {
  for (auto& [id, n] : nodes_) {
    if (n->is_leader()) return n.get();
  }
  return nullptr;
}

void Simulation::Faults() {
  for (auto it = restart_at_.begin(); it != restart_at_.end();) {
    if (it->second > now_) {
      ++it;
      continue;
    }
    Restart(*nodes_.at(it->first));
    it = restart_at_.erase(it);
  }
  if (network_.partitioned() && heal_at_ <= now_) {
    network_.Heal();
    Trace("heal");
  }
  if (rng_.Chance(opts_.crash_per_tick)) {
    std::vector<SimNode*> up;
    for (auto& [id, n] : nodes_) {
      if (n->up()) up.push_back(n.get());
    }
    SimNode* leader = Leader();
    if (!up.empty()) Crash(leader && rng_.Chance(0.5) ? *leader : *up[rng_.Below(up.size())]);
  }
  if (!network_.partitioned() && rng_.Chance(opts_.partition_per_tick)) Partition();
}

void Simulation::Crash(SimNode& n) {
  ++stats_.crashes;
  Trace("crash node " + std::to_string(n.id()) + " (" + std::to_string(n.disk().unsynced()) +
        " unsynced writes at risk)");
  const uint64_t acknowledged = n.acknowledged();
  n.Crash(rng_);
  invariants_.CheckAcknowledged(n.id(), acknowledged, n.disk().durable());
  restart_at_[n.id()] = now_ + rng_.Between(3, 60) * kUnitsPerTick;
  std::map<uint64_t, const LogImage*> durable;
  for (auto& [id, node] : nodes_) durable[id] = &node->disk().durable();
  invariants_.CheckDurable(durable);
}

void Simulation::Restart(SimNode& n) {
  Trace("restart node " + std::to_string(n.id()));
  if (auto st = n.Start(); !st) return invariants_.Fail(st.error().message());
  n.Drain();
}

// Cuts the leader off alone half the time, else a random side from the rest; one partition in
// four is one way.
void Simulation::Partition() {
  std::set<uint64_t> all, side;
  for (auto& [id, n] : nodes_) all.insert(id);
  SimNode* leader = Leader();
  if (leader && rng_.Chance(0.5)) {
    side.insert(leader->id());
  } else {
    for (uint64_t id : all) {
      if (rng_.Chance(0.5)) side.insert(id);
    }
    if (side.empty() || side.size() == all.size()) side = {1 + rng_.Below(all.size())};
  }
  const bool one_way = rng_.Chance(0.25);
  network_.Partition(side, all, one_way);
  heal_at_ = now_ + rng_.Between(5, 80) * kUnitsPerTick;
  ++stats_.partitions;
  std::string names;
  for (uint64_t id : side) names += " " + std::to_string(id);
  Trace("partition {" + names + " } from the rest" + (one_way ? ", one way (they hear it)" : ""));
}

void Simulation::Calm() {
  network_.Heal();
  for (auto& [id, at] : restart_at_) Restart(*nodes_.at(id));
  restart_at_.clear();
  Trace("calm: healed, every node up");
}

void Simulation::Clients() {
  for (auto& c : clients_) {
    if (!c.busy && rng_.Chance(0.04)) Issue(c);
  }
}

void Simulation::Issue(Client& c) {
  std::vector<SimNode*> up;
  for (auto& [id, n] : nodes_) {
    if (n->up()) up.push_back(n.get());
  }
  if (up.empty()) return;
  SimNode& node = *up[rng_.Below(up.size())];
  KvInput in;
  in.key = std::string(1, static_cast<char>('a' + rng_.Below(opts_.keys)));
  const uint64_t kind = rng_.Below(100);
  in.op = kind < 40 ? KvOp::kGet : kind < 65 ? KvOp::kPut : kind < 85 ? KvOp::kCas : KvOp::kDelete;
  if (in.op == KvOp::kPut || in.op == KvOp::kCas) {
    in.value = std::to_string(c.id) + "." + std::to_string(c.request + 1);
  }
  in.expected_version = rng_.Chance(0.8) ? c.versions[in.key] : rng_.Below(4);
  const uint64_t request = ++c.request;
  c.busy = true;  // before the call: a read may be answered at once
  c.deadline = now_ + opts_.client_timeout_ticks * kUnitsPerTick;
  Trace("client " + std::to_string(c.id) + " -> node " + std::to_string(node.id()) + ": " +
        testing::DescribeKv(in, std::nullopt));
  if (in.op == KvOp::kGet) {
    c.op = history_.Call(c.id, in);
    node.Read(c.id, request, in.key);
  } else {
    // Refused at once (no leader known): never proposed, so not part of the history. The call is
    // recorded after Propose, which is still before any effect (entries apply in Drain).
    if (!node.Write(KvCommand{c.id, request, in}, request)) {
      c.busy = false;
      return;
    }
    c.op = history_.Call(c.id, in);
  }
  node.Drain();
}

void Simulation::OnReply(const ClientReply& r) {
  Client& c = clients_.at(r.client);
  if (!c.busy || r.request != c.request) return;  // given up already
  const KvInput& in = history_.at(c.op).input;
  history_.Return(c.op, r.output);
  c.busy = false;
  c.versions[in.key] = r.output.version;
  Trace("client " + std::to_string(c.id) + " <- " + testing::DescribeKv(in, r.output));
}

bool Simulation::Converged() const {
  const SimNode& first = *nodes_.begin()->second;
  for (const auto& [id, n] : nodes_) {
    if (n->applied() != first.applied() || n->state_fingerprint() != first.state_fingerprint()) {
      return false;
    }
  }
  return true;
}

void Simulation::Finish() {
  // Liveness, once faults stopped: every node applied the same last index, to the same state.
  if (!Converged()) {
    std::string views;
    for (const auto& [id, n] : nodes_) {
      views += "\n  node " + std::to_string(id) + " applied " + std::to_string(n->applied()) +
               ": " + n->StatusJson().dump();
    }
    return invariants_.Fail("no convergence " + std::to_string(opts_.calm_ticks + kSettleTicks) +
                            " ticks after the faults stopped:" + views);
  }
  auto check =
      testing::CheckLinearizable(testing::KvModel(), history_.ops(), {.max_steps = 5'000'000});
  if (check.verdict != testing::Verdict::kLinearizable) {
    invariants_.Fail(std::string("the client history is ") + testing::VerdictName(check.verdict) +
                     " on key " + check.partition + ": " + check.explanation);
  }
}

void Simulation::Trace(const std::string& line) {
  trace_.push_back("t=" + std::to_string(now_ / kUnitsPerTick) + "." +
                   std::to_string(now_ % kUnitsPerTick) + " " + line);
  if (trace_.size() > kTraceLines) trace_.pop_front();
}

std::string Simulation::TraceDump() {
  std::string out = "last events:\n";
  for (const auto& l : trace_) out += "  " + l + "\n";
  for (auto& [id, n] : nodes_) {
    std::string logs = n->TakeLogs();
    std::istringstream in(logs);
    std::deque<std::string> tail;
    for (std::string line; std::getline(in, line);) {
      tail.push_back(line);
      if (tail.size() > 12) tail.pop_front();
    }
    out +=
        "node " + std::to_string(id) + (n->up() ? "" : " (down)") + ", its library's last lines:\n";
    for (const auto& l : tail) out += "  " + l + "\n";
  }
  return out;
}

}  // namespace

SimResult RunSimulation(const SimOptions& options) {
  struct Task {
    const SimOptions& options;
    SimResult result;
  } task{options, {}};
  raftshim_run_on_go_thread(
      [](void* t) {
        auto* task = static_cast<Task*>(t);
        task->result = Simulation(task->options).Run();
      },
      &task);
  return std::move(task.result);
}

SimOptions SuiteOptions(uint64_t seed) {
  SimOptions o;
  o.seed = seed;
  o.nodes = seed % 3 == 0 ? 5 : 3;
  o.clients = o.nodes == 5 ? 4 : 3;
  return o;
}

}  // namespace mentat::raft::sim
