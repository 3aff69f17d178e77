// SimNetwork: the links between simulated nodes. Each message sent is dropped, delivered once
// or delivered twice, each copy after its own random delay (so messages are reordered), all
// drawn from the run's generator. A partition cuts links, both ways or one way: what is sent
// across it, or in flight across it when it arrives, is lost. Time is the simulation's (units,
// not ticks).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>

#include "store/raft/raft_core.h"
#include "store/raft/sim/sim_random.h"

namespace mentat::raft::sim {

struct NetworkFaults {
  double drop = 0.03;
  double duplicate = 0.02;
  uint64_t min_delay = 1;  // time units
  uint64_t max_delay = 25;
  double long_delay = 0.005;  // a copy held far longer: a stale message arriving late
  uint64_t max_long_delay = 400;
};

struct InFlight {
  uint64_t from = 0;
  RaftMessage message;
};

class SimNetwork {
 public:
  SimNetwork(SimRandom& rng, NetworkFaults faults) : rng_(rng), faults_(faults) {}

  // Returns false when the message is lost at once (dropped, or the link is cut).
  bool Send(uint64_t from, RaftMessage message, uint64_t now);
  // The next message due at or before `now`, in arrival order; a copy whose link was cut while it
  // was in flight comes back with `lost` set, for the sender to hear of (snapshots).
  struct Arrival {
    InFlight in_flight;
    bool lost = false;
  };
  std::optional<Arrival> NextDue(uint64_t now);

  // Cuts every link between `side` and the other nodes; with `one_way`, only those from `side`
  // (it still hears the others, they do not hear it).
  void Partition(const std::set<uint64_t>& side, const std::set<uint64_t>& all, bool one_way);
  void Heal() { cut_.clear(); }
  bool Connected(uint64_t a, uint64_t b) const { return !cut_.count({a, b}); }
  bool partitioned() const { return !cut_.empty(); }
  size_t in_flight() const { return queue_.size(); }

 private:
  SimRandom& rng_;
  NetworkFaults faults_;
  std::set<std::pair<uint64_t, uint64_t>> cut_;  // (from, to)
  // By (arrival time, send order): equal times keep the order they were sent in.
  std::map<std::pair<uint64_t, uint64_t>, InFlight> queue_;
  uint64_t sent_ = 0;
};

}  // namespace mentat::raft::sim
