// The reconciler contract (controller-runtime): Reconcile(key) is level-triggered. It reads
// the current state for its key, acts idempotently and writes status; it never trusts the
// event that woke it. Each reconciler declares the kinds it reconciles, owns and watches; the
// ControllerManager (manager.h) caches those kinds, feeds it the keys their events map to and
// retries by the error code its Reconcile returns (retry_policy.h).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apis/error.h"
#include "store/store.h"

namespace mentat {

struct ReconcileResult {
  std::optional<std::chrono::milliseconds> requeue_after;
};

// The kinds a reconciler works on. The manager keeps each of them in its informer cache and
// hands the reconciler only the events of these kinds.
struct WatchedKinds {
  std::string primary;               // the kind its keys name
  std::vector<std::string> owns;     // kinds it creates and deletes for a primary object
  std::vector<std::string> watches;  // other kinds whose changes may affect a primary object

  // primary, then owns, then watches.
  std::vector<std::string> All() const;
  bool Contains(const std::string& kind) const;
};

class Reconciler {
 public:
  virtual ~Reconciler() = default;
  virtual std::string Name() const = 0;
  virtual WatchedKinds Kinds() const = 0;
  // key: "ns/name" of the primary kind ("name" for a kind without namespaces).
  virtual Result<ReconcileResult> Reconcile(const std::string& key) = 0;
  // Maps a store event of one of Kinds() to the primary keys it may affect.
  virtual std::vector<std::string> KeysFor(const WatchEvent& event) = 0;
  // Every primary key, for the initial sync and re-lists.
  virtual Result<std::vector<std::string>> AllKeys() = 0;
};
using ReconcilerPtr = std::unique_ptr<Reconciler>;

}  // namespace mentat
