#include "store/raft/sim/sim_node.h"

namespace mentat::raft::sim {

Status SimNode::Start() {
  const LogImage& disk = disk_.durable();
  const bool fresh = disk.hard_state.empty() && !disk.snapshot && disk.entries.empty();
  RaftConfig config;  // production's: 10 ticks to an election, heartbeat every tick
  config.id = opts_.id;
  // Config.applied stays 0, as in RaftNode: entries after the snapshot are applied again.
  MT_ASSIGN_OR_RETURN(core_, RaftCore::Start(config, disk.ToPersisted(),
                                             fresh ? opts_.peers : std::vector<uint64_t>{}));
  role_ = RaftRole::kFollower;
  kv_ = KvStateMachine(opts_.contract != Contract::kNoDeduplication);
  applied_ = 0;
  acknowledged_ = 0;
  if (disk.snapshot) {
    auto restored =
        KvStateMachine::Restore(disk.snapshot->data, opts_.contract != Contract::kNoDeduplication);
    if (!restored)
      return Internal("node " + std::to_string(opts_.id) + ": its snapshot is unreadable");
    kv_ = std::move(*restored);
    applied_ = disk.snapshot->index;
  }
  invariants_.OnRestart(opts_.id, applied_);
  return {};
}

void SimNode::Crash(SimRandom& rng) {
  core_.reset();
  unsynced_ready_.reset();
  writes_.clear();
  reads_.clear();
  disk_.Crash(rng);
}

bool SimNode::Write(const KvCommand& command, uint64_t request) {
  FinishUnsyncedReady();
  if (!up() || !core_->Propose(EncodeCommand(command))) return false;
  writes_[{command.client, command.seq}] = request;
  return true;
}

void SimNode::Read(int client, uint64_t request, const std::string& key) {
  FinishUnsyncedReady();
  if (!up()) return;
  if (opts_.contract == Contract::kReadWithoutReadIndex) {
    return reply_({client, request, kv_.Read(key)});
  }
  std::string ctx = "read-" + std::to_string(opts_.id) + "-" + std::to_string(++next_read_);
  reads_[ctx] = PendingRead{client, request, key};
  core_->ReadIndex(ctx);
}

void SimNode::Tick() {
  FinishUnsyncedReady();
  if (!up()) return;
  core_->Tick();
  // The library drops a read request while it knows no leader, or leadership moves: ask again.
  for (auto& [ctx, r] : reads_) {
    if (r.confirmed || ++r.ticks < opts_.read_retry_ticks) continue;
    r.ticks = 0;
    core_->ReadIndex(ctx);
  }
}

void SimNode::Receive(const RaftMessage& m) {
  FinishUnsyncedReady();
  if (!up()) return;
  // A forwarded proposal reaching a node that knows no leader is dropped (kUnavailable): the
  // proposer's client times out. Anything else refused is a bug.
  auto st = core_->Step(m.bytes);
  if (!st && st.error().code() != Code::kUnavailable)
    Fail("refused a peer's message: " + st.error().message());
}

void SimNode::ReportSnapshot(uint64_t to, bool failed) {
  FinishUnsyncedReady();
  if (up()) core_->ReportSnapshot(to, failed);
}

void SimNode::Fail(const std::string& what) {
  invariants_.Fail("node " + std::to_string(opts_.id) + ": " + what);
}

void SimNode::Drain() {
  while (up() && invariants_.ok() && !unsynced_ready_) {
    auto rd = core_->Ready();
    if (!rd) break;
    if (auto st = HandleReady(*rd); !st) return Fail(st.error().message());
  }
  if (up() && invariants_.ok() && !unsynced_ready_) MaybeCompact();
}

// etcd's Ready contract, in production's order (raft_node.cc, HandleReady). A leader's appends
// go out before its write is synced; the sync and the rest of the Ready then wait until the node
// next does anything (FinishUnsyncedReady), so that a crash can strike in between, while the
// appends are on their way, as it can in production during the leader's fsync.
Status SimNode::HandleReady(RaftReady& rd) {
  const bool became_leader =
      rd.soft_state && rd.soft_state->second == RaftRole::kLeader && role_ != RaftRole::kLeader;
  if (rd.soft_state) role_ = rd.soft_state->second;
  std::vector<RaftMessage> early = TakeSendableBeforeSync(rd, role_ == RaftRole::kLeader);
  // 1. Persist; synced when the Ready says so, or when it carries a snapshot (see
  // Contract::kMustSyncOnly for why), never under the broken kAckBeforeSync.
  bool sync = rd.must_sync || (rd.snapshot && opts_.contract != Contract::kMustSyncOnly);
  if (opts_.contract == Contract::kAckBeforeSync) sync = false;
  disk_.Save(DiskBatch{rd.hard_state, rd.snapshot, rd.entries}, sync && early.empty());
  invariants_.OnWritten(opts_.id, rd.entries, disk_.written());
  if (became_leader) {
    const uint64_t term = core_->StatusJson().value("term", uint64_t{0});
    trace_("node " + std::to_string(opts_.id) + " is leader of term " + std::to_string(term));
    invariants_.OnLeader(opts_.id, term, disk_.written());
  }
  if (rd.snapshot) {
    trace_("node " + std::to_string(opts_.id) + " installs a snapshot at index " +
           std::to_string(rd.snapshot->index) + (sync ? ", synced" : ", not synced"));
    Install(*rd.snapshot);
  }
  if (early.empty()) return SendApplyAdvance(rd);
  for (auto& m : early) network_.Send(opts_.id, std::move(m), now_);
  unsynced_ready_ = UnsyncedReady{std::move(rd), sync};
  return {};
}

void SimNode::FinishUnsyncedReady() {
  if (!unsynced_ready_ || !up()) return;
  UnsyncedReady owed = std::move(*unsynced_ready_);
  unsynced_ready_.reset();
  if (owed.sync) disk_.Flush();
  if (auto st = SendApplyAdvance(owed.ready); !st) Fail(st.error().message());
}

Status SimNode::SendApplyAdvance(RaftReady& rd) {
  // 2. Send. A snapshot lost on the way is reported, as a transport that saw the stream fail.
  std::vector<uint64_t> snapshot_lost;
  for (auto& m : rd.messages) {
    const bool snap = m.type == kMsgSnap;
    if (m.type == kMsgAppResp) acknowledged_ = disk_.written().LastIndex();
    const uint64_t to = m.to;
    if (!network_.Send(opts_.id, std::move(m), now_) && snap) snapshot_lost.push_back(to);
  }
  // 3. Apply, and answer the reads whose index is applied.
  ConfirmReads(rd.read_states);
  for (const auto& e : rd.committed) Apply(e);
  ReleaseReads();
  // 4. Advance.
  MT_RETURN_IF_ERROR(core_->Advance());
  for (uint64_t to : snapshot_lost) core_->ReportSnapshot(to, true);
  return {};
}

void SimNode::Apply(const RaftEntry& e) {
  if (e.index <= applied_) return;  // under the snapshot the state came from
  if (e.type == EntryType::kConfChange) {
    if (auto cc = core_->ApplyConfChange(e.data); !cc) Fail(cc.error().message());
  } else if (!e.data.empty()) {
    auto command = DecodeCommand(e.data);
    if (!command)
      return Fail("applied an entry that is no command at index " + std::to_string(e.index));
    KvOutput out = kv_.Apply(*command);
    auto it = writes_.find({command->client, command->seq});
    if (it != writes_.end()) {
      uint64_t request = it->second;
      writes_.erase(it);
      reply_({command->client, request, out});
    }
  }
  applied_ = e.index;
  invariants_.OnApplied(opts_.id, e, kv_.Fingerprint());
}

void SimNode::Install(const RaftSnapshotInfo& snapshot) {
  auto restored =
      KvStateMachine::Restore(snapshot.data, opts_.contract != Contract::kNoDeduplication);
  if (!restored)
    return Fail("was sent an unreadable snapshot at index " + std::to_string(snapshot.index));
  kv_ = std::move(*restored);
  applied_ = snapshot.index;
  invariants_.OnRestored(opts_.id, snapshot.index, kv_.Fingerprint());
}

void SimNode::ConfirmReads(const std::vector<ReadState>& states) {
  for (const auto& rs : states) {
    auto it = reads_.find(rs.request_ctx);
    if (it == reads_.end() || it->second.confirmed) continue;  // a duplicate answer
    it->second.confirmed = true;
    it->second.index = rs.index;
  }
}

void SimNode::ReleaseReads() {
  for (auto it = reads_.begin(); it != reads_.end();) {
    const PendingRead& r = it->second;
    if (!r.confirmed || r.index > applied_) {
      ++it;
      continue;
    }
    reply_({r.client, r.request, kv_.Read(r.key)});
    it = reads_.erase(it);
  }
}

// A snapshot of the state machine every `compact_every` applied entries, written the way
// RocksRaftLog::Compact writes it (one batch, not synced: a WAL keeps a prefix, so the hard state
// written before it survives whenever it does).
void SimNode::MaybeCompact() {
  const LogImage& log = disk_.written();
  const uint64_t last = log.snapshot ? log.snapshot->index : 0;
  if (opts_.compact_every == 0 || applied_ < last + opts_.compact_every) return;
  auto term = log.TermAt(applied_);
  if (!term) return Fail("applied index " + std::to_string(applied_) + " is not in its log");
  auto snap = core_->Compact(applied_, kv_.Serialize());
  if (!snap) return Fail(snap.error().message());
  snap->term = *term;  // RaftCore::Compact leaves it 0
  disk_.Save(DiskBatch{"", std::move(*snap), {}}, /*sync=*/false);
}

}  // namespace mentat::raft::sim
