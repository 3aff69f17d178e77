// The Event kind (apis/event.h): what happened to an object, written by the control plane and
// the agents in canonical form; its spec is stored as written.
#include "apis/kind_registry.h"

namespace mentat {
namespace {

const KindRegistration kRegistered({
    .kind = "Event",
    .plural = "events",
    .namespaced = true,
    .rank = 60,
});

}  // namespace
}  // namespace mentat
