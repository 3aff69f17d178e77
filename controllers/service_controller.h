// The Service controller: turns a Service's desired count into Allocation objects named
// <service>-<slot> (so a retried or crashed reconcile can never create duplicates), places
// unplaced ones on a Ready node, rolls spec changes out by the service's deploy policy
// (rollout.h), keeps its spec revisions (revisions.h), and rolls Allocation status up into
// Service status, with status.rollout saying how the current revision's rollout stands.
// A reconcile is three steps: plan (service_plan.cc), apply (service_apply.cc) and status
// rollup (service_status.cc).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>

#include "controllers/cache.h"
#include "controllers/reconciler.h"
#include "controllers/scheduler.h"
#include "controllers/service_plan.h"

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
  WatchedKinds Kinds() const override { return {"Service", {"Allocation"}, {"Node"}}; }
  Result<ReconcileResult> Reconcile(const std::string& key) override;
  std::vector<std::string> KeysFor(const WatchEvent& event) override;
  Result<std::vector<std::string>> AllKeys() override;

 private:
  // Reads the service and its allocations and decides what to change. It records the spec's
  // revision (a write), since the rollout it plans is that revision's.
  Result<ServicePlan> Plan(const std::string& key);
  // Carries the plan out: deletes, replaces, creates and places allocations, and records the
  // events of each. Returns why allocations could not be placed ("" when all were).
  Result<std::string> Apply(ServicePlan& plan);
  // Settles the rollout's state, writes the Service's status from the allocations as they
  // are now, reverts a failed rollout, and says when to look again.
  Result<ReconcileResult> RollUpStatus(ServicePlan& plan, const std::string& placement_problem);
  // Ends a progressing rollout that failed or completed (recording its outcome); returns the
  // revision to revert to, when a failed one should.
  std::optional<Json> SettleRollout(ServicePlan& plan);
  // Placing one apply's allocations: the scheduler is made when the first slot needs it.
  struct Placement {
    std::optional<Scheduler> scheduler;
    PlacementRequest request;
    std::string problem;  // why the last slot that found no node found none
  };
  // Creates (or places) the allocation of one slot from the current template.
  Status FillSlot(ServicePlan& plan, int index, Placement& placement);
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
