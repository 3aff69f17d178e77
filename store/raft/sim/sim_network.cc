#include "store/raft/sim/sim_network.h"

namespace mentat::raft::sim {

bool SimNetwork::Send(uint64_t from, RaftMessage message, uint64_t now) {
  if (!Connected(from, message.to) || rng_.Chance(faults_.drop)) return false;
  const int copies = rng_.Chance(faults_.duplicate) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    uint64_t at = now + rng_.Between(faults_.min_delay, faults_.max_delay);
    if (rng_.Chance(faults_.long_delay))
      at = now + rng_.Between(faults_.min_delay, faults_.max_long_delay);
    queue_.emplace(std::make_pair(at, ++sent_), InFlight{from, message});
  }
  return true;
}

std::optional<SimNetwork::Arrival> SimNetwork::NextDue(uint64_t now) {
  if (queue_.empty() || queue_.begin()->first.first > now) return std::nullopt;
  Arrival a{std::move(queue_.begin()->second), false};
  queue_.erase(queue_.begin());
  a.lost = !Connected(a.in_flight.from, a.in_flight.message.to);
  return a;
}

void SimNetwork::Partition(const std::set<uint64_t>& side, const std::set<uint64_t>& all,
                           bool one_way) {
  for (uint64_t a : side) {
    for (uint64_t b : all) {
      if (side.count(b)) continue;
      cut_.insert({a, b});
      if (!one_way) cut_.insert({b, a});
    }
  }
}

}  // namespace mentat::raft::sim
