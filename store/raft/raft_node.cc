#include "store/raft/raft_node.h"

#include <algorithm>
#include <filesystem>
#include <random>

namespace mentat::raft {
namespace {

using Clock = std::chrono::steady_clock;

std::string BootNonce() {
  std::random_device rd;
  char buf[17];
  snprintf(buf, sizeof(buf), "%08x%08x", rd(), rd());
  return buf;
}

}  // namespace

Result<std::unique_ptr<RaftNode>> RaftNode::Start(const RaftNodeOptions& opts,
                                                  RocksStateMachine& state, RaftTransport& transport) {
  std::unique_ptr<RaftNode> node(new RaftNode(opts, state, transport));
  MT_ASSIGN_OR_RETURN(PersistedRaftState persisted, node->log_.Load());
  bool fresh = persisted.hard_state.empty() && persisted.snapshot.empty() && persisted.entries.empty();
  RaftConfig cfg;
  cfg.id = opts.id;
  cfg.election_tick = opts.election_ticks;
  cfg.heartbeat_tick = opts.heartbeat_ticks;
  // Config.applied stays 0: committed entries after the snapshot come again, so that their
  // configuration changes reach the core; the state machine skips the data it applied before.
  MT_ASSIGN_OR_RETURN(node->core_, RaftCore::Start(cfg, persisted,
                                                   fresh ? opts.bootstrap_peers : std::vector<uint64_t>{}));
  node->nonce_ = BootNonce();
  node->campaign_pending_ = opts.campaign_at_start;
  node->snapshot_index_ = static_cast<uint64_t>(state.AppliedIndex());
  if (!opts.snapshot_dir.empty()) {
    // What was staged before a restart is stale: the leader sends a newer one when needed.
    std::error_code ec;
    std::filesystem::remove_all(opts.snapshot_dir, ec);
    std::filesystem::create_directories(opts.snapshot_dir, ec);
    if (ec) return Internal("raft: cannot make " + opts.snapshot_dir + ": " + ec.message());
  }
  node->thread_ = std::thread([n = node.get()] { RaftCore::RunOnGoThread([n] { n->Loop(); }); });
  node->snapshot_thread_ = std::thread([n = node.get()] { n->SnapshotLoop(); });
  return node;
}

RaftNode::~RaftNode() { Stop(); }

void RaftNode::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  inbox_space_.notify_all();
  snapshot_wake_.notify_all();
  snapshot_stop_.request_stop();  // a peer that takes nothing does not hold the stop
  if (thread_.joinable()) thread_.join();
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
}

void RaftNode::Halt(std::string why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (halted_.empty()) halted_ = std::move(why);
    leader_ = 0;
    is_leader_ = false;
    status_["leader"] = 0;
  }
  Stop();
}

std::string RaftNode::Halted() {
  std::lock_guard<std::mutex> lock(mu_);
  return halted_;
}

std::unexpected<Error> RaftNode::Refusal() const {
  if (!halted_.empty()) return Unavailable(halted_);
  return Unavailable("raft: node " + std::to_string(opts_.id) + " is stopping");
}

void RaftNode::Propose(Proposal p, ProposalDone done) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) {
    auto refused = Refusal();
    lock.unlock();
    return done(refused);
  }
  proposals_.emplace_back(std::move(p), std::move(done));
  wake_.notify_all();
}

void RaftNode::ReadBarrier(ReadDone done) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) {
    auto refused = Refusal();
    lock.unlock();
    return done(refused);
  }
  reads_.push_back(std::move(done));
  wake_.notify_all();
}

void RaftNode::Receive(std::string message) {
  std::unique_lock<std::mutex> lock(mu_);
  inbox_space_.wait(lock, [&] { return stopping_ || inbox_bytes_ < opts_.max_inbox_bytes; });
  if (stopping_) return;
  inbox_bytes_ += message.size();
  inbox_.push_back(std::move(message));
  wake_.notify_all();
}

void RaftNode::ReportUnreachable(uint64_t peer) {
  std::lock_guard<std::mutex> lock(mu_);
  unreachable_.push_back(peer);
}

uint64_t RaftNode::Leader() {
  std::lock_guard<std::mutex> lock(mu_);
  return leader_;
}

uint64_t RaftNode::LastLeader() {
  std::lock_guard<std::mutex> lock(mu_);
  return last_leader_;
}

bool RaftNode::IsLeader() {
  std::lock_guard<std::mutex> lock(mu_);
  return is_leader_;
}

Json RaftNode::StatusJson() {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

std::string RaftNode::TakeLogs() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(logs_, "");
}

void RaftNode::Loop() {
  auto next_tick = Clock::now() + opts_.tick;
  {
    // A first pass at once: what the start committed is applied (and campaign_at_start leads)
    // without waiting for a tick.
    std::deque<std::string> none;
    std::deque<std::pair<Proposal, ProposalDone>> no_proposals;
    Step(none, no_proposals, {});
  }
  for (;;) {
    std::deque<std::string> messages;
    std::deque<std::pair<Proposal, ProposalDone>> proposals;
    std::vector<ReadDone> reads;
    std::vector<uint64_t> unreachable;
    std::vector<std::pair<uint64_t, bool>> snapshot_reports;
    std::vector<ConfChangeAsked> conf_changes;
    uint64_t transfer_to = 0, campaign_now = 0;
    bool campaign = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait_until(lock, next_tick, [&] {
        return stopping_ || !inbox_.empty() || !proposals_.empty() || !reads_.empty() ||
             !snapshot_reports_.empty() || !conf_changes_.empty() || transfer_to_ != 0 || campaign_now_ != 0 || campaign_;
      });
      if (stopping_) break;
      messages.swap(inbox_);
      if (std::exchange(inbox_bytes_, 0) >= opts_.max_inbox_bytes) inbox_space_.notify_all();
      proposals.swap(proposals_);
      reads.swap(reads_);
      unreachable.swap(unreachable_);
      snapshot_reports.swap(snapshot_reports_);
      conf_changes.swap(conf_changes_);
      transfer_to = std::exchange(transfer_to_, 0);
      campaign_now = std::exchange(campaign_now_, 0);
      campaign = std::exchange(campaign_, false);
    }
    if (transfer_to) core_->TransferLeader(transfer_to);
    if (campaign_now) (void)core_->CampaignNow(campaign_now);  // a no-op once another leads
    if (campaign && !is_leader_) (void)core_->Campaign();
    if (!conf_changes.empty()) AskConfChanges(std::move(conf_changes));
    for (uint64_t peer : unreachable) core_->ReportUnreachable(peer);
    for (auto [peer, failed] : snapshot_reports) core_->ReportSnapshot(peer, failed);
    for (auto& [p, done] : proposals) {
      p.id = std::to_string(opts_.id) + "-" + nonce_ + "-" + std::to_string(++next_proposal_);
    }
    if (Clock::now() >= next_tick) {
      core_->Tick();
      status_stale_ = true;
      next_tick += opts_.tick;
      if (next_tick < Clock::now()) next_tick = Clock::now() + opts_.tick;  // fell behind: no burst
      ExpireProposals();
      RetryOrExpireReads();
      ProposeWaitingConfChanges();
    }
    Step(messages, proposals, std::move(reads));
  }
  // Whatever waits hears that it will not be answered here (and why, when it stopped for good).
  std::unique_lock<std::mutex> lock(mu_);
  const auto why =
      halted_.empty() ? Unavailable("raft: node " + std::to_string(opts_.id) + " stopped") : Refusal();
  lock.unlock();
  auto stopped = [&] { return why; };
  for (auto& [id, p] : pending_) p.done(stopped());
  pending_.clear();
  for (auto& w : waiting_) w.done(stopped());
  waiting_.clear();
  for (auto& w : conf_waiting_) w.asked.done(stopped());
  conf_waiting_.clear();
  FailReads(stopped());
  lock.lock();
  auto proposals = std::move(proposals_);
  auto reads = std::move(reads_);
  auto conf_changes = std::move(conf_changes_);
  lock.unlock();
  for (auto& [p, done] : proposals) done(stopped());
  for (auto& done : reads) done(stopped());
  for (auto& c : conf_changes) c.done(stopped());
}

void RaftNode::Step(std::deque<std::string>& messages,
                    std::deque<std::pair<Proposal, ProposalDone>>& proposals, std::vector<ReadDone> reads) {
  for (const auto& m : messages) {
    // A proposal forwarded here while no leader is known comes back kUnavailable: the
    // proposer's timeout answers it, nothing to log.
    if (auto st = core_->Step(m); !st && st.error().code() != Code::kUnavailable) {
      std::lock_guard<std::mutex> lock(mu_);
      logs_ += "warning a peer's message was refused: " + st.error().message() + "\n";
    }
  }
  for (auto& [p, done] : proposals) {
    std::string bytes = EncodeProposal(p);
    waiting_.push_back({std::move(p.id), std::move(bytes), std::move(done),
                        Clock::now() + opts_.proposal_timeout});
  }
  ProposeWaiting();
  if (!reads.empty()) AskReads(std::move(reads));
  // A campaign at start (a cluster of one) wins at once: its Readys go out in this same pass.
  for (bool again = true; again; again = MaybeCampaign()) {
    while (auto rd = core_->Ready()) {
      if (auto st = HandleReady(*rd); !st) return StopUnsaved(st.error());
    }
  }
  MaybeCompact();
  // The library's status and log lines cost a call into Go each: read once a tick, and when
  // the leadership changed, not on every pass.
  if (!std::exchange(status_stale_, false)) return;
  std::lock_guard<std::mutex> lock(mu_);
  status_ = core_->StatusJson();
  status_["leader"] = leader_;
  status_["snapshots"] = {{"taken", snapshot_counts_.taken},
                          {"sent", snapshot_counts_.sent},
                          {"failed", snapshot_counts_.failed},
                          {"installed", snapshot_counts_.installed}};
  logs_ += core_->TakeLogs();
}

void RaftNode::StopUnsaved(const Error& e) {
  // The log could not be saved: going on would acknowledge what is not durable. A stopped node
  // leads nothing and knows no leader: its status says so, and its controllers stop (they would
  // only fail), while the others elect a leader without it. What is asked of it from now on is
  // refused with the reason (Halted), which the server's /healthz answers too.
  {
    std::lock_guard<std::mutex> lock(mu_);
    logs_ += "error " + e.message() + "; the node stops (restart the server)\n";
    halted_ = "raft: this member's log could not be saved (" + e.message() +
              "); it stopped taking part in the cluster: free its disk and restart the server";
    stopping_ = true;
    leader_ = 0;
    is_leader_ = false;
    status_["leader"] = 0;
    inbox_space_.notify_all();
  }
  if (opts_.on_leader_change) opts_.on_leader_change();
}

Status RaftNode::HandleReady(RaftReady& rd) {
  if (rd.soft_state) {
    status_stale_ = true;
    bool moved;
    {
      std::lock_guard<std::mutex> lock(mu_);
      moved = leader_ != 0 && leader_ != rd.soft_state->first;
      leader_ = rd.soft_state->first;
      if (leader_ != 0) last_leader_ = leader_;
      is_leader_ = rd.soft_state->second == RaftRole::kLeader;
    }
    leading_ = rd.soft_state->second == RaftRole::kLeader;
    if (moved) FailPendingOnLeaderChange();
  }
  if (rd.soft_state && opts_.on_leader_change) opts_.on_leader_change();
  // A leader's appends go out while it writes its own log: the followers' writes and its own
  // overlap. Safe because nothing is stepped before this Ready is durable (raft_core.h).
  for (auto& m : TakeSendableBeforeSync(rd, leading_)) transport_.Send(std::move(m));
  // The leader's state goes in before the log says it is there: a crash between the two
  // restarts with the state ahead of the log, and entries it holds already are skipped.
  if (rd.snapshot) MT_RETURN_IF_ERROR(InstallSnapshot(*rd.snapshot));
  // A snapshot is synced too, though the library's must_sync does not ask for it: this Ready's
  // messages acknowledge it, and a leader that counts it replicated must find it after a crash
  // (found by the simulation: store/raft/sim).
  MT_RETURN_IF_ERROR(log_.Save(rd, opts_.sync && (rd.must_sync || rd.snapshot.has_value())));
  for (auto& m : rd.messages) {
    if (m.type == kMsgSnap) {
      QueueSnapshot(std::move(m));
    } else {
      transport_.Send(std::move(m));
    }
  }
  ConfirmReads(rd.read_states);
  for (const auto& e : rd.committed) ApplyEntry(e);
  if (!rd.committed.empty()) state_.PublishApplied();
  ReleaseReads();
  return core_->Advance();
}

void RaftNode::ApplyEntry(const RaftEntry& e) {
  const auto index = static_cast<int64_t>(e.index);
  // An entry with nothing to write still moves the applied index (once).
  auto advance_only = [&] {
    std::vector<Change> none;
    if (index > state_.AppliedIndex()) (void)state_.ApplyAt(index, none);
  };
  if (e.type == EntryType::kConfChange) return ApplyConfChange(e);
  if (e.data.empty()) return advance_only();  // a new leader's empty entry
  auto p = DecodeProposal(e.data);
  if (!p) return advance_only();  // every node refuses the same bytes alike
  auto applied = ApplyProposal(state_, index, *p);
  auto it = pending_.find(p->id);
  if (it == pending_.end()) return;
  ProposalDone done = std::move(it->second.done);
  pending_.erase(it);
  if (!applied) return done(std::unexpected(applied.error()));
  done(std::move(p->changes));
}

bool RaftNode::MaybeCampaign() {
  if (!campaign_pending_) return false;
  Json status = core_->StatusJson();
  if (status.value("applied", uint64_t{0}) < status.value("commit", uint64_t{0})) return false;
  campaign_pending_ = false;
  if (auto st = core_->Campaign(); !st) {
    std::lock_guard<std::mutex> lock(mu_);
    logs_ += "warning campaigning at start: " + st.error().message() + "\n";
  }
  status_stale_ = true;
  return true;
}

void RaftNode::FailPendingOnLeaderChange() {
  // A write in flight when the leadership moved may be lost with the old leader or committed by
  // the new one: its outcome is unknown, and the caller hears so now rather than at the
  // timeout (it may retry on the new leader).
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, p] : pending) {
    p.done(Unavailable("raft: the leader changed while the write was in flight; it may still be applied "
                       "(its outcome is unknown)"));
  }
}

void RaftNode::ProposeWaiting() {
  while (!waiting_.empty()) {
    auto st = core_->Propose(waiting_.front().bytes);
    if (!st && st.error().code() == Code::kUnavailable) return;  // no leader known yet: later
    Waiting taken = std::move(waiting_.front());
    waiting_.pop_front();
    if (!st) {
      taken.done(std::unexpected(st.error()));
      continue;
    }
    pending_[taken.id] = Pending{std::move(taken.done), taken.deadline};
  }
}

void RaftNode::ExpireProposals() {
  const auto now = Clock::now();
  while (!waiting_.empty() && waiting_.front().deadline <= now) {
    auto done = std::move(waiting_.front().done);
    waiting_.pop_front();
    done(Unavailable("raft: node " + std::to_string(opts_.id) + " knew no leader for " +
                     std::to_string(opts_.proposal_timeout.count()) + " ms; the write was not made"));
  }
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    auto done = std::move(it->second.done);
    it = pending_.erase(it);
    done(Unavailable("raft: the write was not committed within " +
                     std::to_string(opts_.proposal_timeout.count()) +
                     " ms (no leader, or no quorum); it may still be applied later"));
  }
}

}  // namespace mentat::raft
