#include "apis/server/connection_limits.h"

#include <algorithm>

namespace mentat {

size_t AutoMaxConnections(uint64_t open_file_limit) {
  uint64_t reserve = std::max<uint64_t>(64, open_file_limit / 8);
  if (open_file_limit <= reserve + 64) return 64;
  return static_cast<size_t>(open_file_limit - reserve);
}

ConnectionLimits::Verdict ConnectionLimits::Admit(const std::string& client) {
  if (open_ >= max_total_) return Verdict::kTooManyInAll;
  size_t& mine = by_client_[client];
  if (max_per_client_ > 0 && mine >= max_per_client_) return Verdict::kTooManyFromClient;
  ++mine;
  ++open_;
  return Verdict::kAdmit;
}

void ConnectionLimits::Release(const std::string& client) {
  auto it = by_client_.find(client);
  if (it == by_client_.end()) return;
  if (--it->second == 0) by_client_.erase(it);
  --open_;
}

}  // namespace mentat
