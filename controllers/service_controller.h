// The Service controller: turns a Service's desired count into Allocation objects named
// <service>-<slot> (so a retried or crashed reconcile can never create duplicates), places
// unplaced ones on a Ready node, rolls spec changes out by the service's deploy policy
// (rollout.h), keeps its spec revisions (revisions.h), and rolls Allocation status up into
// Service status, with status.rollout saying how the current revision's rollout stands.
#pragma once

#include <chrono>
#include <map>
#include <mutex>

#include "controllers/cache.h"
#include "controllers/reconciler.h"
#include "controllers/scheduler.h"

namespace mentat {

class ServiceController : public Reconciler {
 public:
  // heartbeat_timeout: how recent a node's heartbeat must be for it to receive allocations.
  // `cache`, when given, is where it reads Services, Allocations and Nodes (the manager's
  // informer cache); without it, it reads the store.
  explicit ServiceController(Store* store,
                             std::chrono::milliseconds heartbeat_timeout = std::chrono::seconds(15),
                             const ObjectCache* cache = nullptr)
      : store_(store), heartbeat_timeout_(heartbeat_timeout), cache_(cache) {}

  std::string Name() const override { return "service-controller"; }
  Result<ReconcileResult> Reconcile(const std::string& key) override;
  std::vector<std::string> KeysFor(const WatchEvent& event) override;
  Result<std::vector<std::string>> AllKeys() override;

 private:
  // A scheduler over every node and placed allocation, as read now.
  Result<Scheduler> MakeScheduler();
  // What placing the service's allocations asks of a node (scheduler.h).
  Result<PlacementRequest> RequestFor(const std::string& key, const Json& tmpl);
  // The ServiceRevision of the service's current template, made if need be.
  Result<Json> CurrentRevision(const Json& svc, const Json& tmpl, const Json& rollout,
                               const std::string& stable);

  Store* store_;
  std::chrono::milliseconds heartbeat_timeout_;
  const ObjectCache* cache_;
  std::mutex nodes_mu_;
  std::map<std::string, bool> node_ready_;  // readiness last seen per node
};

}  // namespace mentat
