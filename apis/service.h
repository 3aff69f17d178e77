// The Service kind: its typed spec, and the normalization of every manifest shape the seeds use
// (flat seed form, config.* form, canonical {kind, metadata, spec}) into one canonical object.
#pragma once

#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"
#include "apis/yaml.h"

namespace mentat {

struct EnvVar {
  std::string name;
  std::string value;
  bool operator==(const EnvVar&) const = default;
};

// A typed view of the canonical spec, for the agent. Fields it does not use travel in `extra`.
struct ServiceSpec {
  std::string driver;
  int count = 1;
  std::string command;
  std::vector<std::string> args;
  std::vector<EnvVar> env;
  std::string cwd;
  int port = 0;                     // TCP port the workload serves; readiness probes it
  std::string restart = "always";  // always | on-failure | never
  Json extra = Json::object();

  static Result<ServiceSpec> FromJson(const Json& spec);
};

inline constexpr int kMaxCount = 1000;

// A Service spec's task template: the spec less what concerns the whole service (count, scale,
// deploy). Allocations run it; a change to it is a new revision and rolls out.
Json TaskTemplate(const Json& spec);
// `spec` with its task template replaced by `task_template` (count, scale and deploy kept):
// an undo or a revert.
Json WithTaskTemplate(const Json& spec, const Json& task_template);

// Canonical drivers.
const std::vector<std::string>& KnownDrivers();

// Any accepted form -> canonical object of its kind, validated. `marks` gives lines for errors.
// Errors: kInvalidArgument with one FieldError per problem (all problems at once).
Result<Json> NormalizeObject(const Json& input, const SourceMap& marks = {});

// One YAML document -> the objects it declares. Usually one; the seed-001 `security: profiles:`
// document declares several SecurityProfiles, and a bare hull manifest becomes a Service.
// `default_name` names a manifest that has none (from the URL or the file name).
Result<std::vector<Json>> NormalizeDocument(const Json& input, const SourceMap& marks = {},
                                           const std::string& default_name = "");

// A bare hull manifest (seed 003): hull's own JSON file ({name, rootfs, argv, ...}), no Mentat
// object. Applied on its own it runs as a one-replica hull Service; a directory walk of `mt
// apply -R` skips it (it is usually the file a hull Service's `manifest:` names).
bool IsBareHullManifest(const Json& document);

// The seed-001 document `security: {profiles: {NAME: {...}}}`: cluster-scoped SecurityProfiles.
bool IsProfilesDocument(const Json& document);

// `mt -n NS apply`'s rule, the same in the server and in mt: a document that names no
// namespace of its own is placed in `ns` (a flat manifest gets `namespace`, a canonical one
// metadata.namespace; a bare hull manifest's goes to the Service it becomes). The profiles
// document is left alone: SecurityProfiles have no namespace.
void DefaultNamespace(Json& document, const std::string& ns);

// Convenience: decode one document of text and normalize it.
Result<Json> NormalizeManifestText(const std::string& text);

// "did you mean" helper: the closest candidate within edit distance 2, or "".
std::string ClosestMatch(const std::string& word, const std::vector<std::string>& candidates);

// A content-addressed artifact (an app rootfs uploaded by `mt apply`): "sha256:" and 64
// lower-case hex digits. A canonical rootfs is this or an absolute path on the node.
inline constexpr char kArtifactDigestPrefix[] = "sha256:";
bool IsArtifactDigest(const std::string& s);

// True when a path has a ".." segment.
bool HasDotDot(const std::string& path);

// DNS label: 1-63 chars of [a-z0-9-], starting and ending alphanumeric.
bool IsDnsLabel(const std::string& name);

// The first label of a host name, in lower case, made a DNS label (any other character becomes
// '-', at most 63): "My_Box.example" gives "my-box". A name with no label left ("_", "...")
// gives "localhost". Without --name, an agent's node and a cluster of one's member are named
// so after this host (ThisHostLabel), alike.
std::string HostLabel(std::string host);
std::string ThisHostLabel();

// What is wrong with a label key or value, or "" when nothing is (Kubernetes' rules): a key is
// NAME or PREFIX/NAME, NAME 1-63 letters, digits, '-', '_' or '.', starting and ending with a
// letter or digit, PREFIX a DNS subdomain of at most 253; a value is empty or like NAME.
// Annotation keys follow the key rule.
std::string LabelKeyProblem(const std::string& key);
std::string LabelValueProblem(const std::string& value);

}  // namespace mentat
