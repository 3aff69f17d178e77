// NamespacePolicy: which security profiles the Services of a namespace may use, and which one a
// Service that names none gets, per driver (as Kubernetes' Pod Security Admission sets an
// enforce level per namespace). Cluster-scoped; only admins write them.
//
//   apiVersion: mentat.io/v1
//   kind: NamespacePolicy
//   metadata: {name: payments}
//   spec:
//     namespaces: [payments, payments-staging]     # or ["*"]: every namespace no other names
//     allowedProfiles: [docker-hardened, sandbox]  # or ["*"]: any profile, or none at all
//     defaultProfiles: {docker: docker-hardened, sandbox: sandbox}
//     hostSystemPaths: forbidden                   # the default; or allowed
//
// The policy of a namespace is the stored one that names it; else the one that names "*"; else
// the server's fallback (mentat-server --default-policy): `restricted` outside --dev, where every
// driver has a hardened default and host root, privileged containers, host system paths and the
// Docker socket are refused, or `permissive` (--dev), which admits what the profiles do today.
// The policy binds every role, admins included: an admin changes it, not around it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"
#include "apis/yaml.h"

namespace mentat {

inline constexpr const char* kNamespacePolicyKind = "NamespacePolicy";

// The built-in fallbacks, by name: "restricted" or "permissive". Canonical NamespacePolicy
// objects naming "*", labelled mentat.io/builtin=true.
const Json& BuiltinRestrictedPolicy();
const Json& BuiltinPermissivePolicy();
// "restricted" -> BuiltinRestrictedPolicy(), "permissive" -> ...; else an error naming the flag.
Result<Json> BuiltinPolicy(const std::string& name);

// A NamespacePolicy's spec -> canonical spec. Each problem goes to `fail(path, message)`, path
// as the input names it ("spec.allowedProfiles[1]").
using FailFn = std::function<void(const std::string& path, const std::string& message)>;
Json NormalizeNamespacePolicySpec(const Json& spec, const FailFn& fail);

// The policy that governs namespace `ns` among `stored` (canonical NamespacePolicies): the one
// naming `ns`, else the one naming "*", else `fallback`. When two name the same namespace (the
// server refuses that, but a store restored from elsewhere might hold it), the first by name.
const Json& PolicyFor(const std::string& ns, const std::vector<Json>& stored, const Json& fallback);

// A policy other than `self` among `stored` that already names one of `self`'s namespaces:
// its name and the namespace, or empty strings. The server refuses such a write (409).
std::pair<std::string, std::string> OverlappingPolicy(const Json& self, const std::vector<Json>& stored);

// Applies `policy` to a canonical Service: a Service naming no security.profile gets the
// policy's default for its driver written into spec.security.profile; a named profile must be
// allowed; volumes from host system paths or the Docker socket are refused unless the policy
// says hostSystemPaths: allowed. kForbidden naming the field (with the line from `marks`)
// otherwise. The profile's own rules are checked after this, by AdmitService.
Status ApplyNamespacePolicy(Json& service, const Json& policy, const SourceMap& marks = {});

}  // namespace mentat
