// The Node lifecycle controller (after Kubernetes' node lifecycle controller and Nomad's
// heartbeat TTLs). Agents post a heartbeat into their Node's status every few seconds. A node
// whose last heartbeat is older than heartbeat_timeout is marked NotReady (nothing new is
// placed there); one silent for longer than lost_after has its allocations marked Lost, and
// the Service controller replaces them on other nodes. An agent that comes back finds its
// allocations placed elsewhere and stops them.
#pragma once

#include <chrono>

#include "controllers/reconciler.h"
#include "controllers/registry.h"  // NodeLifecycleOptions

namespace mentat {

// Whether a node may receive allocations: its agent said Ready, and its heartbeat is recent.
bool NodeIsReady(const Json& node, std::chrono::milliseconds heartbeat_timeout,
                 std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

class NodeController : public Reconciler {
 public:
  NodeController(Store* store, NodeLifecycleOptions opts) : store_(store), opts_(opts) {}

  std::string Name() const override { return "node-controller"; }
  // It marks the status of Allocations on a lost node, but reads them from the store.
  WatchedKinds Kinds() const override { return {"Node", {}, {}}; }
  Result<ReconcileResult> Reconcile(const std::string& key) override;
  std::vector<std::string> KeysFor(const WatchEvent& event) override;
  Result<std::vector<std::string>> AllKeys() override;

 private:
  Store* store_;
  NodeLifecycleOptions opts_;
};

}  // namespace mentat
