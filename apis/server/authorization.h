// What a node token may see and do, beyond the role checks of each route: only what its own
// node runs (as Kubernetes' Node authorizer and NodeRestriction admission do for kubelets).
//
//   reads   its own Node; the Allocations placed on it (lists and watches are narrowed to
//           them); the Events about those; SecurityProfiles; the artifacts those Allocations
//           name. Nothing else: no Services (their env holds other nodes' secrets), no
//           ServiceRevisions, no other Node, no NamespacePolicy.
//   writes  its own Node, but not the labels a SecurityProfile's allowed_nodes names (an
//           agent labelling itself internal-only would draw exec-internal workloads to it);
//           Events about itself and its Allocations, on every route (PUT and POST /v1/apply).
//
// Every function is a no-op (success) for the other roles.
#pragma once

#include <optional>
#include <string>

#include "apis/error.h"
#include "apis/object.h"
#include "apis/server/auth.h"
#include "store/store.h"

namespace mentat {

// "token "x" (role r) may not ACTION; that needs NEEDS" (403).
std::unexpected<Error> Forbidden(const Principal& who, const std::string& action,
                                 const std::string& needs);

class NodeAuthorizer {
 public:
  explicit NodeAuthorizer(Store* store) : store_(store) {}

  // A list or watch of `kind`: refused for kinds a node does not read; for Allocations the
  // selector comes back narrowed to the node's own (its text, for LabelSelector::Parse).
  Result<std::string> ListSelector(const Principal& who, const std::string& kind,
                                   const std::string& selector) const;
  // One object read by GET.
  Status CanRead(const Principal& who, const Json& object) const;
  // An artifact download.
  Status CanReadArtifact(const Principal& who, const std::string& digest) const;
  // A write of a whole object (PUT /v1/:kind/:name, or one object of POST /v1/apply), after
  // CanWrite allowed the kind: Events about its own objects only; its Node without touching
  // the labels placement depends on.
  Status CanWriteObject(const Principal& who, const Json& object) const;
  // Is `key` (a Node or an Allocation) this node's own?
  Status Owns(const Principal& who, const ObjectKey& key) const;

 private:
  Status CanWriteNode(const Principal& who, const Json& node) const;

  Store* store_;
};

}  // namespace mentat
