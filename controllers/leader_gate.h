// Whether this server may write now: the seam for leader election. The ControllerManager asks
// before every reconcile and every periodic run, and does neither while the answer is no (keys
// wait, and are tried again, until it is yes). One server alone always may: SingleNodeGate.
// Several servers sharing a replicated store would answer from a lease they hold and renew
// (Kubernetes' leaderelection, etcd's election API), so that only the holder writes.
#pragma once

#include <memory>

namespace mentat {

class LeaderGate {
 public:
  virtual ~LeaderGate() = default;
  // Cheap and non-blocking: asked on every reconcile.
  virtual bool MayWrite() const = 0;
};
using LeaderGatePtr = std::shared_ptr<const LeaderGate>;

// Today's deployment: one server, always the writer.
class SingleNodeGate : public LeaderGate {
 public:
  bool MayWrite() const override { return true; }
};

}  // namespace mentat
