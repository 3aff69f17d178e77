// RaftNode's read barriers (etcd's ReadIndex, ReadOnlySafe), on the node's thread.
//
// One confirmation is asked of the core at a time, as etcd's server does: each costs the leader
// a heartbeat to every member, and a member it is probing answers a heartbeat with a whole
// append message (up to max_size_per_msg), so one asked per barrier flooded a member coming back
// from a partition (found by e2e/cluster_partition_e2e_test). Barriers that come while one is
// asked wait for it and share the next: they cannot join the one asked, whose index may
// predate them.
#include <algorithm>
#include <iterator>

#include "store/raft/raft_node.h"

namespace mentat::raft {

using Clock = std::chrono::steady_clock;

ReadCounts RaftNode::Reads() {
  std::lock_guard<std::mutex> lock(mu_);
  return read_counts_;
}

void RaftNode::AskReads(std::vector<ReadDone> reads) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    read_counts_.barriers += reads.size();
  }
  const auto deadline = Clock::now() + opts_.proposal_timeout;
  for (auto& done : reads) unasked_reads_.push_back({std::move(done), deadline});
  AskNextReads();
}

void RaftNode::AskNextReads() {
  if (asked_read_ || unasked_reads_.empty()) return;
  const auto now = Clock::now();
  AskedRead asked{"read-" + nonce_ + "-" + std::to_string(++next_read_), {}, unasked_reads_.front().deadline,
                  now + opts_.read_retry};
  for (auto& r : unasked_reads_) asked.done.push_back(std::move(r.done));
  unasked_reads_.clear();
  core_->ReadIndex(asked.ctx);
  asked_read_ = std::move(asked);
  std::lock_guard<std::mutex> lock(mu_);
  ++read_counts_.rounds;
}

void RaftNode::ConfirmReads(const std::vector<ReadState>& states) {
  for (const auto& rs : states) {
    // Answered before (asked again), or not ours.
    if (!asked_read_ || rs.request_ctx != asked_read_->ctx) continue;
    confirmed_reads_.push_back(ConfirmedRead{rs.index, std::move(asked_read_->done), asked_read_->deadline});
    asked_read_.reset();
  }
  AskNextReads();
}

void RaftNode::ReleaseReads() {
  const auto applied = static_cast<uint64_t>(state_.AppliedIndex());
  auto first_waiting = std::partition(confirmed_reads_.begin(), confirmed_reads_.end(),
                                      [&](const ConfirmedRead& r) { return r.index <= applied; });
  std::vector<ConfirmedRead> released(std::make_move_iterator(confirmed_reads_.begin()),
                                      std::make_move_iterator(first_waiting));
  confirmed_reads_.erase(confirmed_reads_.begin(), first_waiting);
  for (auto& r : released) {
    for (auto& done : r.done) done(Status{});
  }
}

void RaftNode::RetryOrExpireReads() {
  const auto now = Clock::now();
  const std::string no_leader = "raft: no leader confirmed a read within " +
                                std::to_string(opts_.proposal_timeout.count()) + " ms (no leader, or no quorum)";
  if (asked_read_ && asked_read_->deadline <= now) {
    for (auto& done : asked_read_->done) done(Unavailable(no_leader));
    asked_read_.reset();
  }
  while (!unasked_reads_.empty() && unasked_reads_.front().deadline <= now) {
    auto done = std::move(unasked_reads_.front().done);
    unasked_reads_.pop_front();
    done(Unavailable(no_leader));
  }
  // The library drops a request when no leader is known or leadership moves: ask again.
  if (asked_read_ && asked_read_->ask_again <= now) {
    asked_read_->ask_again = now + opts_.read_retry;
    core_->ReadIndex(asked_read_->ctx);
  }
  AskNextReads();
  for (auto it = confirmed_reads_.begin(); it != confirmed_reads_.end();) {
    if (it->deadline > now) {
      ++it;
      continue;
    }
    for (auto& done : it->done) {
      done(Unavailable("raft: node " + std::to_string(opts_.id) + " did not apply index " + std::to_string(it->index) +
                       " within " + std::to_string(opts_.proposal_timeout.count()) + " ms"));
    }
    it = confirmed_reads_.erase(it);
  }
}

void RaftNode::FailReads(const Status& why) {
  if (asked_read_) {
    for (auto& done : asked_read_->done) done(why);
    asked_read_.reset();
  }
  for (auto& r : unasked_reads_) r.done(why);
  unasked_reads_.clear();
  for (auto& r : confirmed_reads_) {
    for (auto& done : r.done) done(why);
  }
  confirmed_reads_.clear();
}

}  // namespace mentat::raft
