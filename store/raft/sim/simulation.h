// A deterministic simulation of a Mentat Raft cluster: 3 or 5 SimNodes (RaftCore over etcd's
// library, driven by production's Ready contract) in one process on one thread, on simulated
// time, over a simulated network that drops, duplicates, delays and reorders messages and is
// partitioned and healed, with nodes crashing (losing what their disks had not synced) and
// restarting. Clients put, compare-and-set, delete and get through random nodes, with timeouts.
// Invariants (invariants.h) are checked after every step; at the end the clients' history must
// be linearizable (testing/linearizability.h), and once faults stop, every node must converge.
//
// Everything, including the library's own election timeouts, is drawn from the seed: a seed
// replays the same run, to the byte.
#pragma once

#include <cstdint>
#include <string>

#include "store/raft/sim/sim_network.h"
#include "store/raft/sim/sim_node.h"

namespace mentat::raft::sim {

struct SimOptions {
  uint64_t seed = 1;
  int nodes = 3;
  int clients = 3;
  int keys = 3;
  Contract contract = Contract::kProduction;
  NetworkFaults network;
  int chaos_ticks = 300;  // faults happen in these
  int calm_ticks = 120;   // then the network heals, every node runs again, and clients stop
  double crash_per_tick = 0.012;
  double partition_per_tick = 0.012;
  double flush_per_tick = 0.05;  // a node's disk writes back what it had not synced
  int client_timeout_ticks = 40;
  bool compact = true;
};

struct SimStats {
  uint64_t ops = 0;        // recorded in the history
  uint64_t completed = 0;  // of those, answered
  uint64_t crashes = 0;
  uint64_t partitions = 0;
  uint64_t elections = 0;  // terms that had a leader
  uint64_t committed = 0;  // the last index known committed
  uint64_t snapshots_sent = 0;
};

struct SimResult {
  std::string failure;  // empty: every check passed
  SimStats stats;
  uint64_t fingerprint = 0;  // of the whole run (history, states): equal for equal runs
  std::string trace;         // on failure: the last events and the library's last log lines
};

SimResult RunSimulation(const SimOptions& options);

// The options the test suite runs `seed` with: 3 nodes, or 5 for one seed in three.
SimOptions SuiteOptions(uint64_t seed);

}  // namespace mentat::raft::sim
