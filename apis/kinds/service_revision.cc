// The ServiceRevision kind: a Service's task template as it was at one generation, kept by the
// service controller for rollbacks (`mt rollout undo`); written in canonical form.
#include "apis/kind_registry.h"

namespace mentat {
namespace {

constexpr std::string_view kShortNames[] = {"rev", "revision", "revisions"};

const KindRegistration kRegistered({
    .kind = "ServiceRevision",
    .plural = "servicerevisions",
    .namespaced = true,
    .rank = 70,
    .short_names = kShortNames,
});

}  // namespace
}  // namespace mentat
