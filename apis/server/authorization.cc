#include "apis/server/authorization.h"

#include <set>

#include "apis/security_profile.h"
#include "apis/server/artifact_references.h"

namespace mentat {
namespace {

std::string NodeLabelTerm(const Principal& who) { return std::string(kLabelNode) + "=" + who.node; }

// Label keys some SecurityProfile's allowed_nodes names: built in or stored.
Result<std::set<std::string>> PlacementLabels(Store& store) {
  std::set<std::string> keys;
  auto collect = [&](const Json& profile) {
    for (const auto& l : profile.value("spec", Json::object()).value("allowed_nodes", Json::array())) {
      if (l.is_string()) keys.insert(l.get<std::string>());
    }
  };
  for (const auto& p : BuiltinProfiles()) collect(p);
  MT_ASSIGN_OR_RETURN(auto stored, store.List("SecurityProfile", {}));
  for (const auto& p : stored.items) collect(p);
  return keys;
}

}  // namespace

std::unexpected<Error> Forbidden(const Principal& who, const std::string& action,
                                 const std::string& needs) {
  return MakeError(Code::kForbidden, "token \"" + who.name + "\" (role " + RoleName(who.role) +
                                         ") may not " + action + "; that needs " + needs);
}

Result<std::string> NodeAuthorizer::ListSelector(const Principal& who, const std::string& kind,
                                                 const std::string& selector) const {
  if (who.role != Role::kNode || kind == "SecurityProfile") return selector;
  if (kind != "Allocation") {
    return Forbidden(who, "list or watch " + kind + " objects",
                     "a role other than node: a node reads only what it runs");
  }
  return selector.empty() ? NodeLabelTerm(who) : selector + "," + NodeLabelTerm(who);
}

Status NodeAuthorizer::Owns(const Principal& who, const ObjectKey& key) const {
  if (who.role != Role::kNode) return {};
  if (key.kind == "Node" && key.name == who.node) return {};
  if (key.kind == "Allocation") {
    auto alloc = store_->Get(key);
    if (!alloc) return std::unexpected(alloc.error());
    std::string placed = LabelOf(*alloc, kLabelNode);
    if (placed == who.node) return {};
    return Forbidden(who, "touch allocation " + key.name + ", placed on node \"" + placed +
                              "\", not on " + who.node,
                     "a token of that node");
  }
  return Forbidden(who, "touch " + key.kind + " " + key.name,
                   key.kind == "Node" ? "that node's own token" : "the admin role");
}

Status NodeAuthorizer::CanRead(const Principal& who, const Json& object) const {
  if (who.role != Role::kNode) return {};
  std::string kind = object.value("kind", "");
  if (kind == "SecurityProfile") return {};
  if (kind == "Node") return Owns(who, {"Node", "", NameOf(object)});
  if (kind == "Allocation") {
    if (LabelOf(object, kLabelNode) == who.node) return {};
    return Forbidden(who, "read allocation " + NameOf(object) + ": it is not placed on node " + who.node,
                     "a token of the node it is placed on");
  }
  if (kind == "Event") {
    const Json& ref = object.value("spec", Json::object()).value("involvedObject", Json::object());
    std::string about = ref.value("kind", "");
    if (about == "Node" || about == "Allocation") {
      return Owns(who, {about, about == "Node" ? "" : ref.value("namespace", NamespaceOf(object)),
                        ref.value("name", "")});
    }
  }
  return Forbidden(who, "read " + kind + " " + NameOf(object),
                   "a role other than node: a node reads only what it runs");
}

Status NodeAuthorizer::CanReadArtifact(const Principal& who, const std::string& digest) const {
  if (who.role != Role::kNode) return {};
  ListOptions lo;
  MT_ASSIGN_OR_RETURN(lo.selector, LabelSelector::Parse(NodeLabelTerm(who)));
  MT_ASSIGN_OR_RETURN(auto allocs, store_->List("Allocation", lo));
  for (const auto& a : allocs.items) {
    if (ArtifactsNamedBy(a.value("spec", Json::object())).count(digest)) return {};
  }
  return Forbidden(who, "download artifact " + digest + ": no allocation on node " + who.node +
                            " names it",
                   "an allocation on this node that runs it");
}

Status NodeAuthorizer::CanWriteObject(const Principal& who, const Json& object) const {
  if (who.role != Role::kNode) return {};
  std::string kind = object.value("kind", "");
  if (kind == "Node") return CanWriteNode(who, object);
  if (kind != "Event") return {};  // CanWrite has refused every other kind already
  const Json& ref = object.value("spec", Json::object()).value("involvedObject", Json::object());
  ObjectKey about{ref.value("kind", ""), ref.value("namespace", NamespaceOf(object)), ref.value("name", "")};
  if (about.kind != "Node" && about.kind != "Allocation") {
    return Forbidden(who, "record events about " + about.kind + " objects", "the admin role");
  }
  if (about.kind == "Node") about.ns = "";
  return Owns(who, about);
}

Status NodeAuthorizer::CanWriteNode(const Principal& who, const Json& node) const {
  MT_ASSIGN_OR_RETURN(auto guarded, PlacementLabels(*store_));
  Json before = Json::object();
  auto current = store_->Get({"Node", "", NameOf(node)});
  if (current) {
    before = (*current)["metadata"].value("labels", Json::object());
  } else if (current.error().code() != Code::kNotFound) {
    return std::unexpected(current.error());
  }
  const Json after = node.value("metadata", Json::object()).value("labels", Json::object());
  std::vector<FieldError> refused;
  for (const auto& key : guarded) {
    if (before.value(key, Json()) == after.value(key, Json())) continue;
    refused.push_back({"metadata.labels." + key, 0, 0,
                       "a security profile's allowed_nodes names " + key +
                           ": only an admin sets or removes it"});
  }
  if (refused.empty()) return {};
  return MakeError(Code::kForbidden,
                   "token \"" + who.name + "\" (role node) may not change the labels that place "
                   "workloads on node " + NameOf(node) + "; that needs the admin role",
                   std::move(refused));
}

}  // namespace mentat
