// The reconciler contract (controller-runtime): Reconcile(key) is level-triggered. It reads
// the current state for its key, acts idempotently and writes status; it never trusts the
// event that woke it. The ControllerManager feeds keys from the store's watch into a
// WorkQueue and runs the reconcilers.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "apis/error.h"
#include "controllers/cache.h"
#include "controllers/workqueue.h"
#include "store/store.h"

namespace mentat {

struct ReconcileResult {
  std::optional<std::chrono::milliseconds> requeue_after;
};

class Reconciler {
 public:
  virtual ~Reconciler() = default;
  virtual std::string Name() const = 0;
  // key: "ns/name" of the primary kind.
  virtual Result<ReconcileResult> Reconcile(const std::string& key) = 0;
  // Maps a store event to the primary keys it may affect.
  virtual std::vector<std::string> KeysFor(const WatchEvent& event) = 0;
  // Every primary key, for the initial sync and re-lists.
  virtual Result<std::vector<std::string>> AllKeys() = 0;
};
using ReconcilerPtr = std::unique_ptr<Reconciler>;

class ControllerManager {
 public:
  // The informer cache holds Services, Allocations and Nodes for the reconcilers to read.
  explicit ControllerManager(Store* store)
      : store_(store), cache_(std::vector<std::string>{"Service", "Allocation", "Node"}) {}
  ~ControllerManager();

  void Add(ReconcilerPtr r);
  // Filled by Start and kept current by the watch: each event is in it before any reconcile
  // it triggers runs.
  const ObjectCache* cache() const { return &cache_; }
  // Starts one watch feeding every reconciler's queue, and the workers.
  Status Start(int workers_per_controller = 2);
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
    uint64_t errors = 0;
    double seconds = 0;  // total time spent reconciling
  };
  // Reconciles done by each controller so far, for /metrics.
  std::vector<ReconcileStats> Stats();

 private:
  struct Controller {
    ReconcilerPtr reconciler;
    WorkQueue queue;
    std::mutex stats_mu;
    ReconcileStats stats;
  };
  void WatchLoop();
  void Worker(Controller* c);

  Store* store_;
  ObjectCache cache_;
  std::vector<std::unique_ptr<Controller>> controllers_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  WatcherPtr watcher_;
};

}  // namespace mentat
