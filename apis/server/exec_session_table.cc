#include "apis/server/exec_session_table.h"

#include "apis/agent_key.h"

namespace mentat {

std::string ExecSessionTable::Add(ExecSessionEntry entry) {
  std::string id = RandomHex(16);  // 128 bits
  std::lock_guard<std::mutex> lock(mu_);
  auto now = Clock::now();
  SweepLocked(now);
  entries_[id] = Entry{std::move(entry), now, false};
  return id;
}

Result<ExecSessionEntry> ExecSessionTable::Find(const std::string& id,
                                                const std::string& principal) {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = Clock::now();
  SweepLocked(now);
  auto it = entries_.find(id);
  if (it == entries_.end()) return NotFound("no exec session " + id + " (it may have ended)");
  if (it->second.session.owner != principal) {
    return MakeError(Code::kForbidden, "exec session " + id + " belongs to another token");
  }
  it->second.last_used = now;
  return it->second.session;
}

void ExecSessionTable::SetReading(const std::string& id, bool reading) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  it->second.reading = reading;
  it->second.last_used = Clock::now();
}

void ExecSessionTable::Remove(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(id);
}

size_t ExecSessionTable::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

void ExecSessionTable::SweepLocked(Clock::time_point now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (!it->second.reading && now - it->second.last_used > idle_) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace mentat
