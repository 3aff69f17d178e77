// The catalog of controllers: each registers itself, from its own file, with a factory that
// makes its reconciler from the server's context. The server adds every registered controller
// to its ControllerManager, so adding a controller is one new .cc file that ends with
//
//   MENTAT_REGISTER_CONTROLLER(my_controller, [](const ControllerContext& ctx) -> ReconcilerPtr {
//     return std::make_unique<MyController>(ctx.store, ctx.cache);
//   });
//
// in a library linked with alwayslink = 1 (the registration is a static initializer that
// nothing else references, so without it the linker drops the file).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "controllers/cache.h"
#include "controllers/reconciler.h"
#include "store/store.h"

namespace mentat {

// When a node stops heartbeating counts as NotReady, and when as lost (node_controller.h).
struct NodeLifecycleOptions {
  std::chrono::milliseconds heartbeat_timeout{15000};
  std::chrono::milliseconds lost_after{60000};
};

// What a controller may be made with.
struct ControllerContext {
  Store* store = nullptr;
  // The manager's informer cache; it holds the kinds the reconciler declares.
  const ObjectCache* cache = nullptr;
  NodeLifecycleOptions node_lifecycle;
};

using ControllerFactory = std::function<ReconcilerPtr(const ControllerContext&)>;

class ControllerRegistry {
 public:
  // The one the registration macro fills.
  static ControllerRegistry& Global();

  // Returns true, so that a registration can initialize a static. A name registered twice is
  // a bug: it aborts at startup.
  bool Register(const std::string& name, ControllerFactory factory);
  // The registered names, in order.
  std::vector<std::string> Names() const;
  // One reconciler from each registered factory, in name order.
  std::vector<ReconcilerPtr> MakeAll(const ControllerContext& ctx) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, ControllerFactory> factories_;
};

}  // namespace mentat

#define MENTAT_REGISTER_CONTROLLER(name, factory)                          \
  [[maybe_unused]] static const bool mentat_controller_registered_##name = \
      ::mentat::ControllerRegistry::Global().Register(#name, factory)
