#include "store/raft/sim/sim_disk.h"

namespace mentat::raft::sim {

std::optional<uint64_t> LogImage::TermAt(uint64_t index) const {
  if (index == 0) return 0;
  if (snapshot && snapshot->index == index) return snapshot->term;
  auto it = entries.find(index);
  if (it == entries.end()) return std::nullopt;
  return it->second.term;
}

bool LogImage::Holds(uint64_t index, const std::string& raw) const {
  if (snapshot && snapshot->index >= index) return true;
  auto it = entries.find(index);
  return it != entries.end() && it->second.raw == raw;
}

uint64_t LogImage::LastIndex() const {
  if (!entries.empty()) return entries.rbegin()->first;
  return snapshot ? snapshot->index : 0;
}

PersistedRaftState LogImage::ToPersisted() const {
  PersistedRaftState s;
  s.hard_state = hard_state;
  if (snapshot) s.snapshot = snapshot->raw;
  for (const auto& [index, e] : entries) s.entries.push_back(e.raw);
  return s;
}

void DiskBatch::ApplyTo(LogImage& log) const {
  if (!hard_state.empty()) log.hard_state = hard_state;
  if (snapshot) {
    log.snapshot = snapshot;
    log.entries.erase(log.entries.begin(), log.entries.upper_bound(snapshot->index));
  }
  // A follower's new entries replace whatever it had from the first one's index on.
  if (!entries.empty())
    log.entries.erase(log.entries.lower_bound(entries.front().index), log.entries.end());
  for (const auto& e : entries) log.entries[e.index] = e;
}

void SimDisk::Save(DiskBatch batch, bool sync) {
  batch.ApplyTo(written_);
  unsynced_.push_back(std::move(batch));
  if (sync) Flush();
}

void SimDisk::Flush() {
  for (const auto& b : unsynced_) b.ApplyTo(durable_);
  unsynced_.clear();
}

void SimDisk::Crash(SimRandom& rng) {
  const size_t kept = rng.Below(unsynced_.size() + 1);
  for (size_t i = 0; i < kept; ++i) unsynced_[i].ApplyTo(durable_);
  unsynced_.clear();
  written_ = durable_;
}

}  // namespace mentat::raft::sim
