// Placement (after Nomad's scheduler: feasibility, then ranking). Each node's fingerprint
// (status.capacity and status.drivers, posted by its agent) and the requests of what already
// runs there decide where an allocation fits:
//   1. feasibility, each node rejected for the first reason that applies: not ready, outside
//      the security profile's allowed_nodes, lacks the driver, not enough memory, CPU or disk;
//   2. ranking: fewest allocations of the same service first (spread), then the fullest node
//      that fits (bin-packing), then the name.
// When nothing fits, the reasons are counted per kind of node: "0/3 nodes available: 2 lack
// driver firecracker, 1 insufficient memory".
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "apis/object.h"

namespace mentat {

struct Resources {
  int64_t memory_mb = 0;
  int64_t cpu_mhz = 0;
  int64_t disk_mb = 0;
};

struct NodeInfo {
  std::string name;
  Json labels = Json::object();
  bool ready = false;
  std::map<std::string, bool> drivers;  // name -> healthy
  Resources capacity;                   // 0: unknown, not enforced
  Resources used;                       // requests of the allocations placed there
  std::map<std::string, int> per_service;  // "ns/service" -> allocations placed there
};

struct PlacementRequest {
  std::string service;  // "ns/name"
  std::string driver;
  Resources resources;
  std::vector<std::string> allowed_nodes;  // node labels, any of which admits a node
  std::string profile;                     // for messages
};

// What a task template asks for. cpu_percent is converted with the node's MHz per core, so it
// is resolved per node: see Fits.
Resources RequestedResources(const Json& task_template, int64_t mhz_per_core);

class Scheduler {
 public:
  // `nodes` from Node objects, `allocations` the placed ones (their requests count as used).
  // A node is ready when NodeIsReady says so with this heartbeat timeout.
  Scheduler(const std::vector<const Json*>& nodes, const std::vector<const Json*>& allocations,
            std::chrono::milliseconds heartbeat_timeout);

  // The node to place on, or "" with `why_not` saying why no node fits.
  std::string Place(const PlacementRequest& req, const Json& task_template, std::string* why_not);

  // Records a placement made outside Place (kept consistent for the next call).
  void Commit(const std::string& node, const std::string& service, const Json& task_template);

  const std::vector<NodeInfo>& nodes() const { return nodes_; }

 private:
  std::vector<NodeInfo> nodes_;
  std::map<std::string, int64_t> mhz_;  // node -> MHz per core
};

}  // namespace mentat
