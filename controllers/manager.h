// The ControllerManager (after controller-runtime's): it builds one informer cache for the
// kinds its reconcilers declare (reconciler.h), feeds each reconciler's work queue from one
// store watch, runs the queues' workers, retries failed keys by their error code
// (retry_policy.h), and runs periodic maintenance (periodic.h). It reconciles and runs
// maintenance only while the LeaderGate says this server may write.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controllers/cache.h"
#include "controllers/leader_gate.h"
#include "controllers/periodic.h"
#include "controllers/reconciler.h"
#include "controllers/workqueue.h"
#include "store/store.h"

namespace mentat {

struct ControllerManagerOptions {
  int workers_per_controller = 2;
  // How soon a key, or a periodic runnable, that came up while this server might not write is
  // looked at again.
  std::chrono::milliseconds leader_recheck{1000};
};

class ControllerManager {
 public:
  explicit ControllerManager(Store* store, LeaderGatePtr gate = std::make_shared<SingleNodeGate>(),
                             ControllerManagerOptions opts = {});
  ~ControllerManager();

  // Before Start. The reconciler's kinds join the cache.
  void Add(ReconcilerPtr r);
  // Before Start.
  void AddPeriodic(PeriodicRunnable p);
  // Filled by Start and kept current by the watch: each event is in it before any reconcile
  // it triggers runs. It holds the kinds the reconcilers added so far declare.
  const ObjectCache* cache() const { return &cache_; }
  // Starts one watch feeding every reconciler's queue, the workers and the periodic runner.
  Status Start();
  // Stops the periodic runner (letting a run under way finish), then the watch and workers.
  void Stop();

  struct QueueDepth {
    std::string controller;
    size_t depth;
  };
  // Keys waiting in each controller's queue, for /metrics.
  std::vector<QueueDepth> QueueDepths();

  struct ReconcileStats {
    std::string controller;
    uint64_t successes = 0;
    uint64_t errors = 0;       // retried or not
    uint64_t not_retried = 0;  // errors whose code says another try cannot help
    double seconds = 0;        // total time spent reconciling
  };
  // Reconciles done by each controller so far, for /metrics.
  std::vector<ReconcileStats> Stats();

 private:
  struct Controller {
    ReconcilerPtr reconciler;
    WatchedKinds kinds;
    WorkQueue queue;
    std::mutex stats_mu;
    ReconcileStats stats;
  };
  void WatchLoop();
  void Resync();
  void Worker(Controller* c);
  // Reconciles one key and queues it again as its result or error says.
  void ReconcileOne(Controller* c, const std::string& key);
  void RunPeriodic();

  Store* store_;
  const LeaderGatePtr gate_;
  const ControllerManagerOptions opts_;
  ObjectCache cache_;
  std::vector<std::unique_ptr<Controller>> controllers_;
  std::vector<PeriodicRunnable> periodic_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  WatcherPtr watcher_;
  std::mutex periodic_mu_;
  std::condition_variable periodic_cv_;
  bool periodic_stop_ = false;
  std::thread periodic_thread_;
};

}  // namespace mentat
