// Spec revisions of a Service, for `mt rollout history|undo` and auto_revert (after Kubernetes'
// ControllerRevision). A ServiceRevision holds one task template: the Service spec less what
// concerns the whole service (count, scale, deploy), so scaling or retuning a rollout makes no
// revision. It is named "<service>-<hash of the template>", so a template has one revision
// whatever happens; spec.revision is its number, and returning to an old template (an undo, a
// revert) renumbers it as the newest, as `kubectl rollout undo` does.
//
//   kind: ServiceRevision
//   metadata: {name: web-3f9a1c2b7d, namespace: default, labels: {mentat.io/service: web}}
//   spec: {service: web, revision: 3, template: {driver: exec, command: ..., ...}}
//   status: {outcome: Complete|Failed, message, at}
#pragma once

#include <string>

#include "apis/error.h"
#include "apis/object.h"
#include "apis/service.h"
#include "store/store.h"

namespace mentat {

inline constexpr int kRevisionHistoryLimit = 10;

// "<service>-<10 hex digits of the template's hash>".
std::string RevisionName(const std::string& service, const Json& task_template);
// spec.revision of a ServiceRevision object (0 when absent).
int64_t RevisionNumber(const Json& revision);

// The revision for `task_template`, made the newest of the service's revisions: created, or
// renumbered when an older one holds the same template. Revisions beyond kRevisionHistoryLimit
// are deleted oldest first, never the new one nor `keep` (the last stable one).
Result<Json> EnsureRevision(Store* store, const Json& service, const Json& task_template,
                            const std::string& keep);

// Records how the rollout of a revision ended (status.outcome), for `mt rollout history`.
void RecordOutcome(Store* store, const Json& revision, const std::string& outcome,
                   const std::string& message);

// Deletes every revision of a service (when the service is gone).
Status DeleteRevisions(Store* store, const std::string& ns, const std::string& service);

}  // namespace mentat
