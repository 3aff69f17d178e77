// RaftNode's configuration changes: proposed one at a time, applied in log order on every
// member, and recorded with the members they make (raft_node.h).
#include "store/raft/raft_node.h"

namespace mentat::raft {

void RaftNode::ProposeConfChange(ConfChangeType type, uint64_t node, Json context,
                                 std::function<void(Status)> done) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) {
    auto refused = Refusal();
    lock.unlock();
    return done(refused);
  }
  conf_changes_.push_back(ConfChangeAsked{type, node, std::move(context), std::move(done)});
  wake_.notify_all();
}

void RaftNode::TransferLeader(uint64_t to) {
  std::lock_guard<std::mutex> lock(mu_);
  transfer_to_ = to;
  wake_.notify_all();
}

void RaftNode::CampaignNow(uint64_t lead) {
  std::lock_guard<std::mutex> lock(mu_);
  campaign_now_ = lead;
  wake_.notify_all();
}

void RaftNode::Campaign() {
  std::lock_guard<std::mutex> lock(mu_);
  campaign_ = true;
  wake_.notify_all();
}

void RaftNode::AskConfChanges(std::vector<ConfChangeAsked> asked) {
  const auto deadline = std::chrono::steady_clock::now() + opts_.proposal_timeout;
  for (auto& c : asked) {
    // The proposal's id travels in its context: the member that proposed it hears when it is
    // applied.
    const std::string id = "cc-" + std::to_string(opts_.id) + "-" + nonce_ + "-" + std::to_string(++next_proposal_);
    if (!c.context.is_object()) c.context = Json::object();
    c.context["proposal"] = id;
    conf_waiting_.push_back(WaitingConfChange{std::move(c), id, deadline});
  }
  ProposeWaitingConfChanges();
}

void RaftNode::ProposeWaitingConfChanges() {
  const auto now = std::chrono::steady_clock::now();
  while (!conf_waiting_.empty()) {
    auto& w = conf_waiting_.front();
    auto st = core_->ProposeConfChange(w.asked.type, w.asked.node, w.asked.context.dump());
    if (!st && st.error().code() == Code::kUnavailable && w.deadline > now) return;  // no leader yet
    WaitingConfChange taken = std::move(w);
    conf_waiting_.pop_front();
    if (!st) {
      taken.asked.done(st);
      continue;
    }
    pending_[taken.id] = Pending{[done = std::move(taken.asked.done)](Result<std::vector<Change>> r) {
                                   done(r ? Status{} : Status(std::unexpected(r.error())));
                                 },
                                 taken.deadline};
  }
}

void RaftNode::ApplyConfChange(const RaftEntry& e) {
  const auto index = static_cast<int64_t>(e.index);
  auto cc = core_->ApplyConfChange(e.data);
  if (!cc) {
    std::lock_guard<std::mutex> lock(mu_);
    logs_ += "error the configuration change at index " + std::to_string(index) +
             " could not be applied: " + cc.error().message() + "\n";
    return;
  }
  if (index > state_.AppliedIndex()) {
    Status st;
    if (opts_.members_after) {
      st = state_.ApplyMembersAt(index, opts_.members_after(*cc, e.index));
    } else {
      std::vector<Change> none;
      if (auto applied = state_.ApplyAt(index, none); !applied) st = std::unexpected(applied.error());
    }
    if (!st) {
      std::lock_guard<std::mutex> lock(mu_);
      logs_ += "error recording the members at index " + std::to_string(index) + ": " + st.error().message() + "\n";
    }
    if (opts_.on_members_changed) opts_.on_members_changed();
  }
  Json context = Json::parse(cc->context, nullptr, false);
  if (!context.is_object() || !context.contains("proposal")) return;
  auto it = pending_.find(context.value("proposal", ""));
  if (it == pending_.end()) return;
  ProposalDone done = std::move(it->second.done);
  pending_.erase(it);
  done(std::vector<Change>{});
}

}  // namespace mentat::raft
