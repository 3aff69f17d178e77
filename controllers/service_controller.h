// The Service controller: turns a Service's desired count into Allocation objects named
// <service>-<slot> (so a retried or crashed reconcile can never create duplicates), places
// unplaced ones on a Ready node, replaces allocations whose spec is outdated one at a time,
// and rolls Allocation status up into Service status.
#pragma once

#include <map>
#include <mutex>

#include "controllers/reconciler.h"

namespace mentat {

class ServiceController : public Reconciler {
 public:
  explicit ServiceController(Store* store) : store_(store) {}

  std::string Name() const override { return "service-controller"; }
  Result<ReconcileResult> Reconcile(const std::string& key) override;
  std::vector<std::string> KeysFor(const WatchEvent& event) override;
  Result<std::vector<std::string>> AllKeys() override;

 private:
  // Picks a node for a new allocation: a Ready node with the driver, fewest allocations first.
  Result<std::string> PickNode(const std::string& driver, std::string* why_not);

  Store* store_;
  std::mutex nodes_mu_;
  std::map<std::string, bool> node_ready_;  // readiness last seen per node
};

}  // namespace mentat
