// For tests: a cluster of RaftNode members in one process, each over its own RocksDB state
// machine on disk under the test's temporary directory, their messages passed in memory by
// Loopback (a stand-in for the peer transport) unless a subclass gives them another transport
// (peer_transport_test: real TCP). Members can be stopped and started again from their disks.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "store/raft/peer_transport.h"
#include "store/raft/raft_node.h"

namespace mentat::raft::testing {

// raftpb.MessageType of a follower's read request on its way to the leader.
inline constexpr uint32_t kMsgReadIndex = 15;

class Loopback : public RaftTransport {
 public:
  void Send(RaftMessage m) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++sent_[m.type];
    if (held_.count(m.to)) return held_[m.to].push_back(std::move(m.bytes));
    auto it = nodes_.find(m.to);
    if (it != nodes_.end()) it->second->Receive(std::move(m.bytes));
  }
  // Messages to `id` are kept, in order, until Release(id) delivers them: a member that lags.
  void Hold(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    held_[id];
  }
  void Release(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto held = std::move(held_[id]);
    held_.erase(id);
    auto it = nodes_.find(id);
    if (it == nodes_.end()) return;
    for (auto& bytes : held) it->second->Receive(std::move(bytes));
  }
  // A snapshot goes whole to the member's ReceiveSnapshot, unless its messages are held.
  Status SendSnapshot(uint64_t to, const std::function<Status(const FrameWriter&)>& write,
                      std::stop_token) override {
    std::vector<std::string> frames;
    MT_RETURN_IF_ERROR(write([&](std::string_view f) {
      frames.emplace_back(f);
      return true;
    }));
    std::lock_guard<std::mutex> lock(mu_);  // the member is not detached meanwhile
    auto it = nodes_.find(to);
    if (it == nodes_.end() || held_.count(to)) return Unavailable("member " + std::to_string(to) + " is away");
    size_t next = 0;
    return it->second->ReceiveSnapshot([&]() -> Result<std::optional<std::string>> {
      if (next == frames.size()) return std::optional<std::string>();
      return frames[next++];
    });
  }
  // How many messages of raftpb type `type` were sent (held ones included).
  int Sent(uint32_t type) {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_[type];
  }
  void Attach(uint64_t id, RaftNode* n) {
    std::lock_guard<std::mutex> lock(mu_);
    nodes_[id] = n;
  }
  void Detach(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    nodes_.erase(id);
  }

 private:
  std::mutex mu_;
  std::map<uint64_t, RaftNode*> nodes_;
  std::map<uint64_t, std::vector<std::string>> held_;
  std::map<uint32_t, int> sent_;
};

inline bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

class Members : public ::testing::Test {
 protected:
  // Members 1..n of a new cluster.
  void StartCluster(int n) {
    base_ = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") + "/members-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(base_);
    std::filesystem::create_directories(base_);
    for (int i = 1; i <= n; ++i) peers_.push_back(static_cast<uint64_t>(i));
    for (uint64_t id : peers_) {
      StateMachineOptions o;
      o.dir = base_ + "/n" + std::to_string(id);
      auto sm = RocksStateMachine::Open(o);
      ASSERT_TRUE(sm) << sm.error().message();
      states_[id] = std::move(*sm);
      StartNode(id);
    }
  }
  void TearDown() override {
    for (auto& [id, n] : nodes_) {
      if (!n) continue;
      Detached(id);
      n->Stop();
    }
    nodes_.clear();
  }
  // The transport member `id` sends through, asked at each start of the member; Attached and
  // Detached follow its start and precede its stop. Over TCP, each member has a PeerTransport
  // on 127.0.0.1; a stopped member's is stopped with it and started again on the same port.
  RaftTransport& TransportOf(uint64_t id) {
    if (!over_tcp_) return transport_;
    if (!tcp_.count(id) || stopped_.count(id)) StartTcp(id);
    return *tcp_[id];
  }
  void Attached(uint64_t id, RaftNode* n) {
    if (!over_tcp_) return transport_.Attach(id, n);
    PeerTransport::SnapshotFn snapshot = [n](uint64_t, const FrameReader& next) {
      return n->ReceiveSnapshot(next);
    };
    if (snapshot_handler_.count(id)) snapshot = snapshot_handler_[id];
    tcp_[id]->SetHandlers([n](std::string m) { n->Receive(std::move(m)); },
                          [n](uint64_t peer) { n->ReportUnreachable(peer); }, std::move(snapshot));
  }
  void Detached(uint64_t id) {
    if (!over_tcp_) return transport_.Detach(id);
    tcp_[id]->SetHandlers(nullptr, nullptr);
    tcp_[id]->Stop();
    stopped_.insert(id);
  }
  void StartTcp(uint64_t id) {
    PeerTransportOptions o;
    o.self = id;
    o.listen = "127.0.0.1:" + std::to_string(tcp_ports_[id]);  // 0 the first time
    auto t = PeerTransport::Start(o);
    ASSERT_TRUE(t) << t.error().message();
    tcp_ports_[id] = (*t)->port();
    tcp_[id] = std::move(*t);
    stopped_.erase(id);
    for (uint64_t peer : peers_) {
      if (peer == id || !tcp_ports_[peer]) continue;
      tcp_[id]->AddPeer(peer, "127.0.0.1:" + std::to_string(tcp_ports_[peer]));
      // A member started before this one learns its port now.
      if (tcp_.count(peer) && !stopped_.count(peer)) {
        tcp_[peer]->AddPeer(id, "127.0.0.1:" + std::to_string(tcp_ports_[id]));
      }
    }
  }

  void StartNode(uint64_t id) {
    RaftNodeOptions o;
    o.id = id;
    o.bootstrap_peers = peers_;
    // Elections after 0.5 to 1 s without a leader: a loaded machine does not start them.
    o.tick = std::chrono::milliseconds(50);
    o.proposal_timeout = std::chrono::seconds(5);
    o.snapshot_entries = snapshot_entries_;
    o.catch_up_entries = catch_up_entries_;
    o.snapshot_chunk = 4096;  // a state of a few objects still goes in several pieces
    o.snapshot_dir = base_ + "/n" + std::to_string(id) + "-snapshots";
    auto n = RaftNode::Start(o, *states_[id], TransportOf(id));
    ASSERT_TRUE(n) << n.error().message();
    nodes_[id] = std::move(*n);
    Attached(id, nodes_[id].get());
  }
  void StopNode(uint64_t id) {
    Detached(id);
    nodes_[id]->Stop();
    nodes_[id].reset();
  }
  // The leader among `among` (all members when empty), once there is one; 0 after 10 s.
  uint64_t WaitLeader(std::set<uint64_t> among = {}) {
    if (among.empty()) among = std::set<uint64_t>(peers_.begin(), peers_.end());
    uint64_t leader = 0;
    WaitFor([&] {
      for (uint64_t id : among) {
        if (nodes_[id] && nodes_[id]->IsLeader()) leader = id;
      }
      return leader != 0;
    }, std::chrono::seconds(10));
    return leader;
  }
  // Waits until every running member applied all that any member had applied when called.
  bool Settled() {
    int64_t most = 0;
    std::set<uint64_t> running;
    for (auto& [id, n] : nodes_) {
      if (!n) continue;
      running.insert(id);
      most = std::max(most, states_[id]->AppliedIndex());
    }
    return AllApplied(running, most);
  }
  bool AllApplied(std::set<uint64_t> ids, int64_t at_least) {
    return WaitFor([&] {
      for (uint64_t id : ids) {
        if (states_[id]->AppliedIndex() < at_least) return false;
      }
      return true;
    }, std::chrono::seconds(10));
  }

  std::string base_;
  std::vector<uint64_t> peers_;
  Loopback transport_;
  bool over_tcp_ = false;  // set before StartCluster
  uint64_t snapshot_entries_ = 10000;  // log compaction, as RaftNodeOptions says; before StartNode
  uint64_t catch_up_entries_ = 5000;
  std::map<uint64_t, int> tcp_ports_;
  std::map<uint64_t, std::unique_ptr<PeerTransport>> tcp_;
  // Over TCP: member id's snapshots go here rather than to its node (a receiver that stalls).
  std::map<uint64_t, PeerTransport::SnapshotFn> snapshot_handler_;
  std::set<uint64_t> stopped_;
  std::map<uint64_t, std::unique_ptr<RocksStateMachine>> states_;
  std::map<uint64_t, std::unique_ptr<RaftNode>> nodes_;
};

}  // namespace mentat::raft::testing
